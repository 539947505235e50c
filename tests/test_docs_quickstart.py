"""docs/quickstart.md, "Your first setup", run as written against a real Mosquitto.

The section's ```python and ```toml blocks are written to the files their first line names, and
its ```sh blocks are run line by line, in order, in a temporary directory, with the installed
``mqttq`` first on PATH. The one substitution: the broker's port, 1883 in the page, becomes the
port of the test's private broker (the ``mosquitto`` fixture). ``mqttq run`` runs in the
background, as in the page's first terminal; where the page says to stop it with Ctrl-C (before
it starts the next one, and at the end) the test sends SIGINT and expects exit status 0. The
```text blocks are what the reader sees; the test checks the same things in each command's
output (``EXPECTED``), and fails when the page's commands are not the ones it knows.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from mqttq.testing import eventually_sync
from mqttq.testing.fixtures import mosquitto  # noqa: F401  (a private broker per test)
from mqttq.testing.services import Mosquitto

ROOT = Path(__file__).parent.parent
PAGE = ROOT / "docs" / "quickstart.md"
PAGE_PORT = "1883"
PUB = f"mosquitto_pub -h 127.0.0.1 -p {PAGE_PORT} -q 1"


@dataclass(frozen=True)
class Step:
    kind: str  #: "file" (write ``name``) or "sh" (run ``text``)
    text: str
    name: str = ""


def page_steps() -> list[Step]:
    text = PAGE.read_text(encoding="utf-8")
    section = text.split("\n## Your first setup", 1)[1].split("\n## ", 1)[0]
    steps = []
    for lang, body in re.findall(r"```(\w+)\n(.*?)```", section, re.S):
        if lang in ("python", "toml"):
            first = body.splitlines()[0]
            assert first.startswith("# "), f"a {lang} block must start with '# <file name>'"
            steps.append(Step("file", body, first.removeprefix("# ").strip()))
        elif lang == "sh":
            steps += [Step("sh", line.strip()) for line in body.splitlines() if line.strip()]
    return steps


@dataclass(frozen=True)
class Done:
    """What the reader sees once a command ran: its own output, or the first terminal's."""

    stdout: str = ""
    stderr: str = ""
    #: printed by the jobs that ``mqttq run`` runs (the page's first terminal)
    run_prints: str = ""
    #: run the command again until its output shows ``stdout`` (the page says "a few seconds
    #: later")
    repeat: bool = False


#: the page's steps in order: a file it writes, or the start of a command and what it shows
EXPECTED: list[tuple[str, Done | None]] = [
    ("telemetry.py", None),
    ("mqttq.toml", None),
    ("mqttq config check", Done(stdout="ok: mqttq.toml")),
    ("mqttq run", None),
    (f'{PUB} -t sensors/kitchen/temperature -m \'{{"celsius"', Done(run_prints="kitchen: 21.5 °C")),
    (f"{PUB} -t sensors/kitchen/temperature -m 'not json'", Done()),
    (f'{PUB} -t sensors/garage/temperature -m \'{{"fahrenheit"', Done()),
    ("mqttq failed list", Done(stdout="KeyError: 'celsius'", repeat=True)),
    ("telemetry.py", None),
    ("mqttq run", None),
    (
        "mqttq failed retry --all",
        Done(stdout="requeued 1 job", stderr="1 poison message", run_prints="garage: 21.1 °C"),
    ),
    ("mqttq failed purge --yes", Done(stdout="purged 1 job")),
]


class Terminal:
    """The page's terminals: commands in ``directory`` with the test's ``mqttq`` on PATH."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("MQTTQ_")}
        self.env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), self.env["PATH"]])
        self.run_proc: subprocess.Popen[bytes] | None = None
        self.runs = 0

    def sh(self, command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-c", command],
            cwd=self.dir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def start_run(self, command: str) -> None:
        """``mqttq run`` in the first terminal: stop the one running (Ctrl-C), start anew."""
        self.stop_run()
        self.runs += 1
        out = (self.dir / f"run{self.runs}.out").open("wb")
        err = (self.dir / f"run{self.runs}.err").open("wb")
        self.run_proc = subprocess.Popen(
            ["bash", "-c", f"exec {command}"], cwd=self.dir, env=self.env, stdout=out, stderr=err
        )
        out.close()
        err.close()
        eventually_sync(
            lambda: "listening: sensors/+/temperature" in self.log("err") or self._died(),
            what="mqttq run listening",
        )
        assert not self._died(), self.log("err")

    def _died(self) -> bool:
        return self.run_proc is not None and self.run_proc.poll() is not None

    def log(self, stream: str) -> str:
        path = self.dir / f"run{self.runs}.{stream}"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    def stop_run(self) -> None:
        """Ctrl-C: it finishes what it received and exits 0."""
        if self.run_proc is None:
            return
        self.run_proc.send_signal(signal.SIGINT)
        code = self.run_proc.wait(timeout=60)
        assert code == 0, f"mqttq run exited {code}: {self.log('err')[-2000:]}"
        self.run_proc = None

    def kill(self) -> None:
        if self.run_proc is not None and self.run_proc.poll() is None:
            self.run_proc.kill()
            self.run_proc.wait(30)


@contextmanager
def terminal(directory: Path) -> Iterator[Terminal]:
    term = Terminal(directory)
    try:
        yield term
    finally:
        term.kill()


def _shows(done: Done, result: subprocess.CompletedProcess[str]) -> bool:
    return done.stdout in result.stdout and done.stderr in result.stderr


def _check(term: Terminal, command: str, done: Done) -> None:
    def shown() -> subprocess.CompletedProcess[str] | None:
        result = term.sh(command)
        return result if result.returncode == 0 and _shows(done, result) else None

    what = f"`{command}` showing {done.stdout!r}"
    result = eventually_sync(shown, what=what) if done.repeat else term.sh(command)
    assert result is not None
    assert result.returncode == 0, (command, result.stdout, result.stderr)
    assert _shows(done, result), (command, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    if done.run_prints:
        eventually_sync(
            lambda: done.run_prints in term.log("out"),
            what=f"the first terminal printing {done.run_prints!r}",
        )


def test_the_page_has_the_steps_this_test_checks() -> None:
    steps = page_steps()
    written = [s.name if s.kind == "file" else s.text for s in steps]
    assert len(written) == len(EXPECTED), written
    for got, (want, _) in zip(written, EXPECTED, strict=True):
        assert got.startswith(want), (got, want)
    assert all(PAGE_PORT in s.text for s in steps if "mosquitto_pub" in s.text)
    assert any(f"127.0.0.1:{PAGE_PORT}" in s.text for s in steps if s.name == "mqttq.toml")


def test_first_setup_runs_as_written(tmp_path: Path, mosquitto: Mosquitto) -> None:  # noqa: F811
    if shutil.which("mosquitto_pub") is None:
        pytest.skip("mosquitto_pub is not installed: apt-get install -y mosquitto-clients")
    port = str(mosquitto.port)
    steps = page_steps()
    assert len(steps) == len(EXPECTED)
    with terminal(tmp_path) as term:
        for step, (_, done) in zip(steps, EXPECTED, strict=True):
            text = step.text.replace(PAGE_PORT, port)
            if step.kind == "file":
                (tmp_path / step.name).write_text(text, encoding="utf-8")
            elif text == "mqttq run":
                term.start_run(text)
            else:
                assert done is not None
                _check(term, text, done)
        term.stop_run()
    assert "garage: 21.1 °C" in term.log("out")
