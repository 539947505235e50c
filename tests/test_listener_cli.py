"""``mqttq run`` and ``mqttq listen`` as real processes: SIGTERM flushes, acks and exits 0."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import orjson

from mqttq import App, load_config
from mqttq.config import MqttConfig
from mqttq.testing import eventually
from mqttq.testing.services import Mosquitto
from mqttq.transports.mqtt import MqttTransport

MQTTQ = str(Path(sys.executable).with_name("mqttq"))
TESTS = Path(__file__).parent


def write_config(tmp_path: Path, broker: Mosquitto, routes: bool = True) -> Path:
    path = tmp_path / "mqttq.toml"
    route = """
[[routes]]
topic = "cli/{device_id}/reading"
job = "ingest_jobs:temperature"
queue = "readings"
"""
    path.write_text(
        f"""
[mqtt]
url = "{broker.url}"
client_id = "cli-listener"
inflight = 50

[queue]
url = "sqlite:///{tmp_path / "queue.db"}"

[worker]
concurrency = 4
lease = 10
{route if routes else ""}"""
    )
    return path


class Mqttq:
    """A running ``mqttq`` process; its stderr lines are collected as they come."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.err: list[str] = []
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        async for line in self.proc.stderr:
            self.err.append(line.decode().rstrip())

    async def listening(self) -> None:
        """Wait for the listener's "listening: <filters>" log line (it has subscribed)."""

        def seen() -> bool:
            assert self.proc.returncode is None, self.err
            return any("listening: " in line for line in self.err)

        await eventually(seen, timeout=30, what="the listener to subscribe")

    async def stop(self) -> tuple[int, str]:
        """SIGTERM; the exit code and stderr."""
        self.proc.send_signal(signal.SIGTERM)
        return await self.wait()

    async def wait(self) -> tuple[int, str]:
        code = await asyncio.wait_for(self.proc.wait(), 60)
        await self.reader
        return code, "\n".join(self.err)


async def mqttq(tmp_path: Path, *args: str) -> Mqttq:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MQTTQ_")}
    env.update(
        PYTHONPATH=str(TESTS),
        MQTTQ_CONFIG=str(tmp_path / "mqttq.toml"),
        INGEST_RECORD=str(tmp_path / "runs.jsonl"),
    )
    proc = await asyncio.create_subprocess_exec(
        MQTTQ, *args, cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    return Mqttq(proc)


def runs(tmp_path: Path) -> list[int]:
    path = tmp_path / "runs.jsonl"
    if not path.exists():
        return []
    lines = path.read_bytes().splitlines()
    return [orjson.loads(line)["payload"]["i"] for line in lines if line.endswith(b"}")]


async def publish(url: str, items: range) -> None:
    async with MqttTransport(MqttConfig(url=url, client_id="cli-pub")) as pub:
        for start in range(items.start, items.stop, 100):
            chunk = range(start, min(start + 100, items.stop))
            await asyncio.gather(
                *(pub.publish(f"cli/d{i % 4}/reading", orjson.dumps({"i": i})) for i in chunk)
            )


async def test_run_processes_messages_and_stops_cleanly_on_sigterm(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    write_config(tmp_path, mosquitto)
    proc = await mqttq(tmp_path, "run")
    await proc.listening()
    await publish(mosquitto.url, range(300))
    await eventually(lambda: len(runs(tmp_path)) >= 300, timeout=60, what="300 job runs")
    code, err = await proc.stop()
    assert code == 0, err
    assert "Traceback" not in err
    assert sorted(runs(tmp_path)) == list(range(300))


async def test_listen_flushes_what_it_received_on_sigterm(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    config = write_config(tmp_path, mosquitto)
    listen = await mqttq(tmp_path, "listen")
    await listen.listening()
    app = App(load_config(config))
    async with app:
        publishing = asyncio.create_task(publish(mosquitto.url, range(1000)))
        await eventually(lambda: app.queue.size("readings"), timeout=30, what="the first jobs")
        code, err = await listen.stop()  # mid-stream
        assert code == 0, err
        await publishing
        queued_at_stop = await app.queue.size("readings")
    assert queued_at_stop > 0
    run = await mqttq(tmp_path, "run")  # same client id: picks up the rest of the session
    await eventually(lambda: len(runs(tmp_path)) >= 1000, timeout=60, what="every message's job")
    code, err = await run.stop()
    assert code == 0, err
    assert sorted(runs(tmp_path)) == list(range(1000))  # nothing lost, nothing twice


async def test_listen_without_routes_is_a_one_line_error(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    write_config(tmp_path, mosquitto, routes=False)
    proc = await mqttq(tmp_path, "listen")
    code, err = await proc.wait()
    assert code == 2
    assert err.splitlines() == [
        "mqttq: no [[routes]] configured: nothing to listen to (see `mqttq config init`)"
    ]


async def test_sigterm_while_the_broker_is_unreachable_exits_0(tmp_path: Path) -> None:
    nobody = Mosquitto(tmp_path)  # configured, never started: its port refuses connections
    write_config(tmp_path, nobody)
    proc = await mqttq(tmp_path, "run")

    def retrying() -> bool:
        assert proc.proc.returncode is None, proc.err
        return any("cannot reach the MQTT broker" in line for line in proc.err)

    await eventually(retrying, timeout=30, what="a retry warning")
    code, err = await proc.stop()
    assert code == 0, err
    assert "Traceback" not in err
