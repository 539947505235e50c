"""The deployment files in ``deploy/`` do what ``docs/operations.md`` says.

The install and start commands of the Dockerfile and the compose file must be the documented
ones. They are then run as written, without Docker: the install command in a fresh virtualenv
inside a stand-in file system root (under which the absolute paths of the image and the units
are relocated), the start commands against a real Mosquitto and redis-server, until messages
published to the broker are jobs that the workers ran. The systemd units pass
``systemd-analyze verify`` and their ``ExecStart`` lines run the same way, with the units'
environment, environment files and working directory.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from mqttq.cli._common import EXIT_USAGE
from mqttq.config import MqttConfig, load_config
from mqttq.interfaces import Subscription
from mqttq.testing.fixtures import mosquitto, redis_server  # noqa: F401
from mqttq.testing.services import Mosquitto, RedisServer
from mqttq.testing.waiting import eventually_sync
from mqttq.transports.mqtt import MqttTransport
from mqttq.worker.worker import ACK_FLUSH_GRACE

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
UNITS = DEPLOY / "systemd"
DOC = ROOT / "docs" / "operations.md"
#: what the processes get from their environment before the image's or the unit's settings
BASE_PATH = "/usr/local/bin:/usr/bin:/bin"


# -- reading the files ----------------------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (KEYWORD, arguments), continuation lines joined."""
    out: list[tuple[str, str]] = []
    current = ""
    for line in (DEPLOY / "Dockerfile").read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        current += line.strip()
        if current.endswith("\\"):
            current = current[:-1] + " "
            continue
        keyword, _, args = current.partition(" ")
        out.append((keyword.upper(), " ".join(args.split())))
        current = ""
    return out


def instruction(keyword: str) -> list[str]:
    return [args for k, args in dockerfile() if k == keyword]


def exec_form(args: str) -> list[str]:
    """``["mqttq", "run"]`` (exec form) or ``mqttq run`` (shell form), as a list."""
    if args.startswith("["):
        value: list[str] = json.loads(args)
        return value
    return shlex.split(args)


def docker_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for args in instruction("ENV"):
        for item in shlex.split(args):
            name, _, value = item.partition("=")
            env[name] = value
    return env


def docker_install_commands() -> list[list[str]]:
    """Every ``RUN pip install ...`` of the Dockerfile."""
    runs = [shlex.split(args) for args in instruction("RUN")]
    return [command for command in runs if command[:2] == ["pip", "install"]]


def dockerignored_names() -> list[str]:
    """The names deploy/Dockerfile.dockerignore leaves out of the build context (``*`` with
    ``!packages/`` let only the packages in)."""
    lines = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and line[0] not in "#!"]
    return [Path(p.rstrip("/")).name for p in patterns if p != "*"]


def entrypoint() -> list[str]:
    return exec_form(instruction("ENTRYPOINT")[-1])


def image_command() -> list[str]:
    """What ``docker run`` of the image runs by default: ENTRYPOINT and CMD."""
    return entrypoint() + exec_form(instruction("CMD")[-1])


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return data


def mqttq_services() -> dict[str, dict[str, Any]]:
    """The compose services built from the Dockerfile: those that run mqttq."""
    return {name: s for name, s in compose()["services"].items() if "build" in s}


def service_command(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    return entrypoint() + (command if isinstance(command, list) else shlex.split(command))


def healthcheck(service: dict[str, Any]) -> list[str]:
    test: list[str] = service["healthcheck"]["test"]
    assert test[0] == "CMD", f"healthcheck {test}: the exec form runs without a shell"
    return test[1:]


def documented() -> set[str]:
    """Every command line in the ``sh`` blocks of docs/operations.md (comments cut off)."""
    lines = set()
    for block in re.findall(r"```sh\n(.*?)```", DOC.read_text(), flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line and not line.startswith("#"):
                lines.add(" ".join(line.split()))
    return lines


Unit = dict[str, dict[str, list[str]]]


def read_unit(path: Path) -> Unit:
    """A unit file as {section: {key: [values, in order]}}."""
    sections: Unit = {}
    current: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def service(path: Path) -> dict[str, str]:
    """The [Service] section of a unit, the last value of each key."""
    return {key: values[-1] for key, values in read_unit(path)["Service"].items()}


def seconds(text: str) -> float:
    """A systemd or compose duration (``45s``, ``90``, ``10min``) in seconds."""
    match = re.fullmatch(r"(\d+)\s*(s|min|m)?", text)
    assert match, f"unexpected duration {text!r}"
    return int(match[1]) * (60 if match[2] in ("min", "m") else 1)


UNIT_FILES = sorted(UNITS.glob("*.service"))
#: the instance names the template units are started with here
INSTANCE = "1"


def instance_name(path: Path, instance: str = INSTANCE) -> str:
    return path.name.replace("@.", f"@{instance}.")


# -- a stand-in root ------------------------------------------------------------------------------


class Root:
    """A directory standing in for ``/``: the absolute paths the image and the units use
    (``/opt/mqttq``, ``/etc/mqttq``, ``/var/lib/mqttq``, ``/app``, ``/src``) are under it."""

    PREFIXES = ("/opt/mqttq", "/etc/mqttq", "/var/lib/mqttq", "/app", "/src")

    def __init__(self, path: Path) -> None:
        self.path = path

    def __truediv__(self, absolute: str) -> Path:
        return self.path / absolute.lstrip("/")

    def relocate(self, value: str) -> str:
        """Every one of those paths in ``value`` (a path, a ``sqlite:///`` URL, a path list)
        moved under this root."""
        for prefix in self.PREFIXES:
            value = re.sub(
                rf"(?<![\w.-]){re.escape(prefix)}(?=/|:|\"|$)",
                str(self / prefix).replace("\\", "\\\\"),
                value,
                flags=re.M,
            )
        return value

    @property
    def bin(self) -> Path:
        return self / "/opt/mqttq/bin"

    def install_example(self, **env_file: str) -> None:
        """deploy/mqttq.toml as /etc/mqttq/mqttq.toml (as compose mounts it and the units read
        it), deploy/jobs as /app (compose) and /opt/mqttq/app (the units), ``env_file`` as
        /etc/mqttq/mqttq.env, and an empty /var/lib/mqttq."""
        etc = self / "/etc/mqttq"
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "mqttq.toml").write_text(self.relocate((DEPLOY / "mqttq.toml").read_text()))
        (etc / "mqttq.env").write_text("".join(f"{k}={v}\n" for k, v in env_file.items()))
        for place in ("/app", "/opt/mqttq/app"):
            shutil.rmtree(self / place, ignore_errors=True)
            shutil.copytree(DEPLOY / "jobs", self / place)
        state = self / "/var/lib/mqttq"
        shutil.rmtree(state, ignore_errors=True)
        state.mkdir(parents=True)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Root:
    """The Dockerfile's install commands run as written, in a fresh virtualenv at /opt/mqttq
    (where the units' ExecStart looks), from the image's /src holding what ``COPY packages/``
    copies (deploy/Dockerfile.dockerignore leaves the packages' tests out)."""
    if shutil.which("uv") is None:
        pytest.fail("uv is not installed: python3 -m pip install uv")
    fake = Root(tmp_path_factory.mktemp("root"))
    src = fake / "/src"
    ignore = shutil.ignore_patterns(*dockerignored_names())
    shutil.copytree(ROOT / "packages", src / "packages", ignore=ignore)
    venv = fake / "/opt/mqttq"
    subprocess.run(
        ["uv", "venv", "--quiet", "--seed", "--python", sys.executable, str(venv)], check=True
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PATH"] = f"{fake.bin}{os.pathsep}{os.environ['PATH']}"
    env["VIRTUAL_ENV"] = str(venv)
    for command in docker_install_commands():
        result = subprocess.run(command, cwd=src, env=env, capture_output=True, text=True)
        assert result.returncode == 0, f"{shlex.join(command)}:\n{result.stdout}{result.stderr}"
    assert (fake.bin / "mqttq").exists()
    return fake


# -- processes ------------------------------------------------------------------------------------


class Process:
    """One long-running command, its output (stdout and stderr) in a log file."""

    def __init__(
        self, name: str, argv: list[str], env: dict[str, str], cwd: Path, log: Path
    ) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.cwd = cwd
        self.log = log
        with log.open("w") as out:
            self.proc = subprocess.Popen(
                argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, text=True
            )

    def output(self) -> str:
        return self.log.read_text()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, sig: int, timeout: float) -> int:
        """Send ``sig`` and wait up to ``timeout`` for the exit code, as a service manager does
        before it kills."""
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{self.name} did not stop within {timeout:g}s:\n{self.output()}")


@contextmanager
def running(
    specs: list[tuple[str, list[str], dict[str, str], Path]], logs: Path
) -> Iterator[list[Process]]:
    """Start every (name, argv, env, cwd); kill whatever still runs at the end."""
    logs.mkdir(parents=True, exist_ok=True)
    procs: list[Process] = []
    try:
        for name, argv, env, cwd in specs:
            procs.append(Process(name, argv, env, cwd, logs / f"{name}.log"))
        yield procs
    finally:
        for p in procs:
            if p.alive():
                p.proc.kill()
            p.proc.wait(10)


def wait_listening(listener: Process) -> None:
    """The listener subscribed (before that, a message would reach no session)."""

    def subscribed() -> bool:
        assert listener.alive(), f"{listener.name} exited:\n{listener.output()}"
        return "listening: " in listener.output()

    eventually_sync(subscribed, timeout=60, what=f"{listener.name} to subscribe")


def publish(broker_url: str, messages: dict[str, str]) -> None:
    """Publish {topic: payload} at QoS 1, each acknowledged by the broker."""

    async def go() -> None:
        async with MqttTransport(MqttConfig(url=broker_url, client_id="")) as publisher:
            for topic, payload in messages.items():
                await publisher.publish(topic, payload, qos=1)

    asyncio.run(go())


def readings(n: int) -> dict[str, str]:
    """``n`` messages for the example route, and (in the keys) the devices."""
    return {f"sensors/room-{i}/temperature": f"{20 + i}.5" for i in range(n)}


def printed(topic: str, payload: str) -> str:
    """The line deploy/jobs/sensors.py prints for a message."""
    return f"temperature of {topic.split('/')[1]}: {payload}"


def wait_jobs_ran(messages: dict[str, str], workers: list[Process]) -> None:
    expected = {printed(t, p) for t, p in messages.items()}

    def all_ran() -> bool:
        out = "".join(w.output() for w in workers)
        for w in workers:
            assert w.alive(), f"{w.name} exited:\n{w.output()}"
        return all(line in out for line in expected)

    eventually_sync(all_ran, timeout=60, what=f"{len(expected)} jobs run by the workers")


def run_json(argv: list[str], env: dict[str, str], cwd: Path) -> Any:
    result = subprocess.run(
        [*argv, "--json"], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# -- the documented commands ----------------------------------------------------------------------


def test_the_install_commands_are_the_documented_ones() -> None:
    commands = docker_install_commands()
    assert commands, "the Dockerfile installs mqttq with RUN pip install ..."
    lines = documented()
    for command in commands:
        line = shlex.join(command)
        assert line in lines, f"docs/operations.md does not show `{line}`"
        # the systemd install is the same packages into /opt/mqttq
        assert f"sudo /opt/mqttq/bin/{line}" in lines
        assert not any(arg.startswith(("-e", "--editable")) for arg in command)
    pip_lines = [line for line in lines if re.search(r"\bpip install \./packages/", line)]
    installs = {line.split("pip install ", 1)[1] for line in pip_lines}
    assert installs == {shlex.join(c[2:]) for c in commands}, pip_lines


def test_the_start_commands_are_the_documented_ones() -> None:
    lines = documented()
    assert shlex.join(image_command()) in lines
    services = mqttq_services()
    assert sorted(shlex.join(service_command(s)) for s in services.values()) == [
        "mqttq listen",
        "mqttq worker",
    ]
    for name, spec in services.items():
        for command in (service_command(spec), healthcheck(spec)):
            assert shlex.join(command) in lines, f"{name}: `{shlex.join(command)}` not documented"


def test_the_image_runs_as_a_user_and_stops_with_sigterm() -> None:
    users = instruction("USER")
    assert users, "the image runs as a user of its own"
    assert users[-1] not in ("root", "0"), "the image runs as a user of its own"
    assert instruction("STOPSIGNAL") == ["SIGTERM"]
    base = instruction("FROM")[0]
    assert base.startswith("python:"), base
    assert "slim" in base, base


def drain_time(command: str) -> float:
    """The longest a graceful stop of ``mqttq COMMAND`` takes with deploy/mqttq.toml: running
    jobs get ``worker.shutdown_grace``, sync-route jobs in a listener as long, and a worker's
    last acks up to ACK_FLUSH_GRACE."""
    grace = load_config(DEPLOY / "mqttq.toml", env={}).worker.shutdown_grace
    return {"listen": grace, "worker": grace + ACK_FLUSH_GRACE}.get(
        command, 2 * grace + ACK_FLUSH_GRACE
    )


def test_the_stop_timeouts_cover_the_drain() -> None:
    """A service manager waits long enough after SIGTERM for mqttq to finish."""
    for name, spec in mqttq_services().items():
        command = service_command(spec)[1]
        assert spec.get("stop_signal", "SIGTERM") == "SIGTERM", name
        assert seconds(spec["stop_grace_period"]) > drain_time(command), name
    for path in UNIT_FILES:
        svc = service(path)
        command = shlex.split(svc["ExecStart"])[1]
        assert svc["KillSignal"] == "SIGTERM", path.name
        # SIGTERM to mqttq alone: the process runner's children and RQ's workers are stopped
        # by mqttq, and a signal of their own would cut their jobs short
        assert svc["KillMode"] == "mixed", path.name
        assert seconds(svc["TimeoutStopSec"]) > drain_time(command), path.name


def test_the_units_restart_on_failure_but_not_on_a_configuration_mistake() -> None:
    for path in UNIT_FILES:
        svc = service(path)
        assert svc["Restart"] == "on-failure", path.name
        assert seconds(svc["RestartSec"]) >= 1, path.name
        assert svc["RestartPreventExitStatus"] == str(EXIT_USAGE), path.name
        assert (svc["User"], svc["Group"]) == ("mqttq", "mqttq"), path.name
        assert (svc["ProtectSystem"], svc["StateDirectory"]) == ("strict", "mqttq"), path.name
        assert svc["WorkingDirectory"] == "/var/lib/mqttq", path.name
        sections = read_unit(path)
        assert sections["Install"]["WantedBy"] == ["multi-user.target"], path.name


# -- systemd --------------------------------------------------------------------------------------


def unit_env(fake: Root, path: Path, instance: str = INSTANCE) -> dict[str, str]:
    """The environment systemd gives the unit's process (Environment=, then EnvironmentFile=,
    a leading '-' making a file optional), its paths under ``fake``."""
    env = {"PATH": BASE_PATH, "LANG": "C.UTF-8", "HOME": str(fake / "/var/lib/mqttq")}
    values = read_unit(path)["Service"]
    for value in values.get("Environment", []):
        for item in shlex.split(value):
            name, _, setting = item.partition("=")
            env[name] = fake.relocate(setting.replace("%i", instance))
    for value in values.get("EnvironmentFile", []):
        optional = value.startswith("-")
        file = Path(fake.relocate(value.removeprefix("-").replace("%i", instance)))
        if not file.exists():
            assert optional, f"{path.name}: {file} is missing"
            continue
        for line in file.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                name, _, setting = line.partition("=")
                env[name.strip()] = setting.strip()
    return env


def unit_process(fake: Root, path: Path, instance: str = INSTANCE) -> tuple[list[str], Path]:
    """The unit's ExecStart (its program under ``fake``) and working directory."""
    svc = service(path)
    argv = shlex.split(svc["ExecStart"].replace("%i", instance))
    assert argv[0].startswith("/"), f"{path.name}: ExecStart wants an absolute path"
    return [fake.relocate(argv[0]), *argv[1:]], Path(fake.relocate(svc["WorkingDirectory"]))


def test_the_units_pass_systemd_analyze_verify(root: Root, tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (apt-get install -y systemd): not verified")
    for path in UNIT_FILES:
        # the same unit, its ExecStart program where the test installed it
        copy = tmp_path / path.name
        copy.write_text(path.read_text().replace("/opt/mqttq/bin/", f"{root.bin}/"))
        result = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert result.stdout + result.stderr == "", f"{path.name}:\n{result.stderr}"


@pytest.mark.parametrize("path", UNIT_FILES, ids=[p.name for p in UNIT_FILES])
def test_every_exec_start_is_a_valid_mqttq_command(root: Root, path: Path) -> None:
    """Its options parse (``--help``), and with the unit's environment the example's
    configuration checks out (``mqttq config check``: keys, driver, routes, job imports)."""
    root.install_example()
    argv, cwd = unit_process(root, path)
    env = unit_env(root, path)
    helped = subprocess.run([*argv, "--help"], env=env, cwd=cwd, capture_output=True, text=True)
    assert helped.returncode == 0, helped.stderr
    assert f"Usage: mqttq {argv[1]}" in helped.stdout
    checked = subprocess.run(
        [argv[0], "config", "check"], env=env, cwd=cwd, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.strip() == f"ok: {root / '/etc/mqttq/mqttq.toml'}"


def test_the_sysusers_file_makes_the_units_user(tmp_path: Path) -> None:
    sysusers = shutil.which("systemd-sysusers")
    if sysusers is None:
        pytest.skip("systemd-sysusers is not installed (apt-get install -y systemd): not run")
    (tmp_path / "etc").mkdir()
    config = UNITS / "mqttq.sysusers"
    result = subprocess.run(
        [sysusers, f"--root={tmp_path}", str(config)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    users = (tmp_path / "etc" / "passwd").read_text().splitlines()
    entry = next(line.split(":") for line in users if line.startswith("mqttq:"))
    assert entry[5] == "/var/lib/mqttq"
    assert "mqttq:" in (tmp_path / "etc" / "group").read_text()


@pytest.mark.parametrize(
    "units",
    [
        ["mqttq-run.service"],
        ["mqttq-listen.service", "mqttq-worker@.service:1", "mqttq-worker@.service:2"],
    ],
    ids=["run", "listen+workers"],
)
def test_the_units_turn_messages_into_jobs_on_sqlite(
    root: Root,
    mosquitto: Mosquitto,  # noqa: F811
    tmp_path: Path,
    units: list[str],
) -> None:
    """The units' commands, environment and working directory, with the example's
    configuration (SQLite in /var/lib/mqttq) and the broker's URL in /etc/mqttq/mqttq.env;
    SIGTERM stops each one with exit code 0 before TimeoutStopSec."""
    root.install_example(MQTTQ_MQTT_URL=mosquitto.url)
    (root / "/etc/mqttq/worker-2.env").write_text("MQTTQ_WORKER_CONCURRENCY=3\n")
    specs = []
    for spec in units:
        name, _, instance = spec.partition(":")
        path = UNITS / name
        instance = instance or INSTANCE
        argv, cwd = unit_process(root, path, instance)
        specs.append((instance_name(path, instance), argv, unit_env(root, path, instance), cwd))
    messages = readings(10)
    with running(specs, tmp_path / "logs") as procs:
        wait_listening(procs[0])
        publish(mosquitto.url, messages)
        wait_jobs_ran(messages, procs if len(procs) == 1 else procs[1:])
        assert (root / "/var/lib/mqttq/mqttq.db").exists()
        if len(procs) > 1:  # each instance read its own environment file, if it has one
            argv, env, cwd = procs[1].argv, procs[1].env, procs[1].cwd
            live = run_json([argv[0], "workers"], env, cwd)
            assert sorted(w["concurrency"] for w in live) == [3, 8]
        for p, spec in zip(procs, units, strict=True):
            timeout = seconds(service(UNITS / spec.partition(":")[0])["TimeoutStopSec"])
            assert p.stop(signal.SIGTERM, timeout) == 0, p.output()


# -- the image and the compose file ---------------------------------------------------------------


def compose_env(
    fake: Root, spec: dict[str, Any], broker: Mosquitto, redis: RedisServer, prefix: str
) -> dict[str, str]:
    """The image's ENV, then the service's environment, with the compose hosts replaced by the
    test's broker and Redis (keys under ``prefix``)."""
    hosts = {
        "mqtt://mosquitto:1883": broker.url,
        "redis://redis:6379/0": f"{redis.url}?prefix={prefix}",
    }
    env = {"PATH": f"{fake.bin}:{BASE_PATH}", "HOME": str(fake / "/var/lib/mqttq")}
    env.update({k: fake.relocate(v) for k, v in docker_env().items()})
    for name, value in spec.get("environment", {}).items():
        value = str(value)
        for host, url in hosts.items():
            value = value.replace(host, url)
        assert not re.search(r"://(mosquitto|redis):", value), value
        env[name] = value
    return env


def test_the_compose_services_turn_messages_into_jobs_on_redis(
    root: Root,
    mosquitto: Mosquitto,  # noqa: F811
    redis_server: RedisServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    """One listener and the workers' replicas, as compose.yaml starts them from the image:
    messages become jobs, the healthcheck passes, every replica shows in `mqttq workers`, and
    SIGTERM stops each with exit code 0 within its stop_grace_period."""
    root.install_example()
    workdir = Path(root.relocate(instruction("WORKDIR")[-1]))
    prefix = f"deploy-{uuid.uuid4().hex[:8]}:"
    services = mqttq_services()
    specs = []
    for name, spec in sorted(services.items(), key=lambda item: item[0] != "listener"):
        env = compose_env(root, spec, mosquitto, redis_server, prefix)
        for i in range(spec.get("deploy", {}).get("replicas", 1)):
            specs.append((f"{name}-{i + 1}", service_command(spec), env, workdir))
    assert [s[0] for s in specs] == ["listener-1", "worker-1", "worker-2"]
    messages = readings(20)
    with running(specs, tmp_path / "logs") as procs:
        listener, *workers = procs
        wait_listening(listener)
        publish(mosquitto.url, messages)
        wait_jobs_ran(messages, workers)
        for p in procs:
            check = subprocess.run(
                healthcheck(services[p.name.rsplit("-", 1)[0]]),
                env=p.env,
                cwd=p.cwd,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert check.returncode == 0, f"{p.name} healthcheck: {check.stderr}"

        def both_live() -> list[dict[str, Any]]:
            found: list[dict[str, Any]] = run_json(["mqttq", "workers"], workers[0].env, workdir)
            return found if len(found) == 2 else []

        live = eventually_sync(both_live, timeout=30, what="both workers' heartbeats")
        assert {w["pid"] for w in live} == {w.proc.pid for w in workers}
        for p in procs:
            grace = seconds(services[p.name.rsplit("-", 1)[0]]["stop_grace_period"])
            assert p.stop(signal.SIGTERM, grace) == 0, p.output()


# -- the broker's configuration -------------------------------------------------------------------


def test_mosquitto_conf_keeps_a_session_and_its_messages_across_a_restart(
    tmp_path: Path,
) -> None:
    """deploy/mosquitto.conf (its port and data directory moved here): a QoS 1 message for a
    listener that is away is kept across a broker restart and delivered when it is back."""
    broker = Mosquitto(tmp_path)
    text = (DEPLOY / "mosquitto.conf").read_text()
    text = re.sub(r"(?m)^listener 1883$", f"listener {broker.port} 127.0.0.1", text)
    text = text.replace("/mosquitto/data/", f"{tmp_path}/")
    assert f"listener {broker.port} " in text
    assert f"persistence_location {tmp_path}/" in text
    broker.conf.write_text(f"{text}\nuser {getpass.getuser()}\n")
    broker.start()
    session = MqttConfig(url=broker.url, client_id="listener-1", session_expiry=3600)

    async def subscribe() -> None:
        async with MqttTransport(session) as listener:
            await listener.subscribe([Subscription(topic="sensors/#", qos=1)])

    async def receive() -> list[bytes]:
        async with MqttTransport(session) as listener:
            async with asyncio.timeout(15):
                deliveries = await listener.receive(10)
            await listener.ack(deliveries)
            return [d.payload for d in deliveries]

    try:
        asyncio.run(subscribe())
        publish(broker.url, {"sensors/attic/temperature": "19.5"})
        broker.restart()  # SIGTERM: the broker saves its persistence file, then starts again
        assert asyncio.run(receive()) == [b"19.5"]
    finally:
        broker.stop(signal.SIGKILL)


def test_mosquitto_conf_holds_the_settings_the_docs_explain() -> None:
    settings = dict(
        line.split(None, 1)
        for line in (DEPLOY / "mosquitto.conf").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )
    assert settings["persistence"] == "true"
    for key in (
        "autosave_interval",
        "max_queued_messages",
        "max_inflight_messages",
        "persistent_client_expiration",
    ):
        assert key in settings, key
        assert f"`{key}`" in DOC.read_text(), f"docs/operations.md does not explain {key}"


# -- scaling out ----------------------------------------------------------------------------------


def test_a_listener_retired_from_a_share_group_hands_over_what_waited_for_it(
    mosquitto: Mosquitto,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Two listeners in a share group (distinct client ids) and a worker. While one listener is
    stopped, the broker keeps its share of new messages in its session; started once more with
    MQTTQ_MQTT_SESSION_EXPIRY=0 it takes them and, once stopped, gets no more: every message
    becomes a job."""
    shutil.copytree(DEPLOY / "jobs", tmp_path / "jobs")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MQTTQ_")}
    env.update(
        MQTTQ_CONFIG=str(DEPLOY / "mqttq.toml"),
        PYTHONPATH=str(tmp_path / "jobs"),
        MQTTQ_MQTT_URL=mosquitto.url,
        MQTTQ_MQTT_SHARE_GROUP="mqttq",
        MQTTQ_QUEUE_URL=f"sqlite:///{tmp_path / 'mqttq.db'}",
    )
    mqttq = [sys.executable, "-m", "mqttq"]

    def listener(n: int, name: str, **extra: str) -> tuple[str, list[str], dict[str, str], Path]:
        own = {**env, "MQTTQ_MQTT_CLIENT_ID": f"mqttq-listener-{n}", **extra}
        return (name, [*mqttq, "listen"], own, tmp_path)

    first = readings(20)
    later = {topic.replace("room", "hall"): value for topic, value in readings(10).items()}
    with running(
        [listener(1, "one"), listener(2, "two"), ("worker", [*mqttq, "worker"], env, tmp_path)],
        tmp_path / "logs",
    ) as (one, two, worker):
        wait_listening(one)
        wait_listening(two)
        assert two.stop(signal.SIGTERM, 45) == 0, two.output()
        publish(mosquitto.url, first)
        lines = {printed(t, p) for t, p in first.items()}

        def ran() -> int:
            return sum(line in worker.output() for line in lines)

        eventually_sync(lambda: ran() >= len(first) // 2, what="the first listener's share")
        assert ran() < len(first), "the stopped listener's share waits in its session"
        retire = listener(2, "two-retiring", MQTTQ_MQTT_SESSION_EXPIRY="0")
        with running([retire], tmp_path / "logs") as (retiring,):
            wait_jobs_ran(first, [worker])
            assert retiring.stop(signal.SIGTERM, 45) == 0, retiring.output()
        publish(mosquitto.url, later)
        wait_jobs_ran(later, [worker])
        for p in (one, worker):
            assert p.stop(signal.SIGTERM, 60) == 0, p.output()
