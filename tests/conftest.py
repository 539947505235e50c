"""Fixtures for the CLI tests (``tests/test_cli_*.py``).

Nothing here is autouse, so the other cross-package tests in this folder are unaffected. The
``cli`` fixture gives each test a temporary directory (the working directory, holding
``mqttq.toml``), an environment without ``MQTTQ_*`` variables, and a real queue: SQLite when
``mqttq-sqlite`` is installed, else a private ``memory://`` store (which only works while the
whole test runs in this process).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from mqttq import App, Call, MqttqError, load_config
from mqttq.cli import make_app
from mqttq.plugins import make_plugin_manager
from mqttq.testing.fixtures import mosquitto  # noqa: F401  (a private broker per test)

#: a job module written to a temporary directory on sys.path (and PYTHONPATH for subprocesses)
JOBS = "mqttq_cli_jobs"
JOBS_SOURCE = '''\
"""Jobs for the CLI tests."""


def add(a, b):
    return a + b


def boom(**kwargs):
    raise RuntimeError("boom " + repr(kwargs))


def noop(*args, **kwargs):
    return None
'''

MQTTQ = str(Path(sys.executable).with_name("mqttq"))


def sqlite_available() -> bool:
    try:
        make_plugin_manager().catalog("queue_drivers").load("sqlite")
    except MqttqError:
        return False
    return True


def config_text(queue_url: str, extra: str = "") -> str:
    return f"""\
[queue]
url = "{queue_url}"

[worker]
concurrency = 4
lease = 10
max_tries = 1

[jobs]
register = ["{JOBS}:add", "{JOBS}:boom", "{JOBS}:noop"]
{extra}"""


class Cli:
    """Runs ``mqttq`` in-process (``cli(...)``) or as a real process (``cli.run(...)``)."""

    #: the test job module: f"{cli.jobs}:add" etc.
    jobs = JOBS
    #: the installed console script
    mqttq = MQTTQ

    def __init__(self, tmp_path: Path, queue_url: str, jobs_dir: Path) -> None:
        self.tmp_path = tmp_path
        self.queue_url = queue_url
        self.jobs_dir = jobs_dir
        self.config_path = tmp_path / "mqttq.toml"
        self.write_config()

    def write_config(self, text: str | None = None) -> Path:
        self.config_path.write_text(config_text(self.queue_url) if text is None else text)
        return self.config_path

    def __call__(self, *args: str, input: str | None = None) -> Result:
        """``mqttq ARGS`` through typer's CliRunner, with a fresh plugin host like ``main()``."""
        app = make_app(make_plugin_manager())
        return CliRunner().invoke(app, list(args), input=input, prog_name="mqttq")

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MQTTQ_")}
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(self.jobs_dir), env.get("PYTHONPATH")) if p
        )
        env.update(extra)
        return env

    def run(self, *args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
        """The installed ``mqttq`` console script as a real process, in the test's directory."""
        return subprocess.run(
            [self.mqttq, *args],
            cwd=self.tmp_path,
            env=self.env(**env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    @contextmanager
    def start(self, *args: str, **env: str) -> Iterator[subprocess.Popen[str]]:
        """A long-running ``mqttq`` process (output to a log file); killed at the end if alive."""
        log_path = self.tmp_path / f"mqttq-{len(list(self.tmp_path.glob('mqttq-*.log')))}.log"
        with log_path.open("w") as log:
            proc = subprocess.Popen(
                [self.mqttq, *args],
                cwd=self.tmp_path,
                env=self.env(**env),
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
            )
            try:
                yield proc
            finally:
                if proc.poll() is None:
                    proc.kill()
                proc.wait(30)

    def app(self) -> App:
        return App(load_config(self.config_path))

    def push(self, calls: Sequence[Call]) -> list[str]:
        async def go() -> list[str]:
            async with self.app() as app:
                return await app.queue.bulk(calls)

        return asyncio.run(go())

    def seed_failed(self, n: int, queue: str = "default") -> list[str]:
        """Put ``n`` jobs straight into the driver's failed registry (oldest first)."""

        async def go() -> list[str]:
            async with self.app() as app:
                ids = []
                for i in range(n):
                    call = Call(name=f"{JOBS}:boom", kwargs={"i": i}, queue=queue)
                    job = app.queue.make_job(call)
                    await app.driver.fail(
                        job, error=f"RuntimeError: boom {i}", traceback=f"File x\nboom {i}\n"
                    )
                    ids.append(job.id)
                return ids

        return asyncio.run(go())

    @staticmethod
    def error(result: Result | subprocess.CompletedProcess[str], code: int, *fragments: str) -> str:
        """The command failed with ``code`` and exactly one ``mqttq: ...`` line, no traceback."""
        exit_code = result.exit_code if isinstance(result, Result) else result.returncode
        lines = result.stderr.splitlines()
        assert exit_code == code, (exit_code, result.stdout, result.stderr)
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("mqttq: "), lines[0]
        assert "Traceback" not in result.stderr + result.stdout
        assert result.stdout == ""
        for fragment in fragments:
            assert fragment in lines[0], (fragment, lines[0])
        return lines[0]


@pytest.fixture(scope="session")
def jobs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli-jobs")
    (path / f"{JOBS}.py").write_text(JOBS_SOURCE)
    return path


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    if not sqlite_available():
        pytest.fail("mqttq-sqlite is not installed: pip install -e packages/driver-sqlite")
    return f"sqlite:///{tmp_path / 'q.db'}"


@pytest.fixture
def queue_url(tmp_path: Path) -> str:
    if sqlite_available():
        return f"sqlite:///{tmp_path / 'q.db'}"
    return f"memory://cli-{uuid.uuid4().hex}"


@pytest.fixture
def cli(tmp_path: Path, queue_url: str, jobs_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    for name in list(os.environ):
        if name.startswith("MQTTQ_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(jobs_dir))
    return Cli(tmp_path, queue_url, jobs_dir)


@pytest.fixture
def sqlite_cli(cli: Cli, sqlite_url: str) -> Cli:
    """``cli`` on a SQLite file, for tests that span several processes."""
    cli.queue_url = sqlite_url
    cli.write_config()
    return cli
