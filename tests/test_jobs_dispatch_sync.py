"""A sync route's job dispatches follow-up jobs (``mqttq.dispatch`` and ``current_queue()``):
real ``mqttq listen`` and ``mqttq worker`` processes, a real Mosquitto, a real SQLite file."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mqttq.config import MqttConfig
from mqttq.testing import WorkerEnv
from mqttq.testing.jobs import read_records
from mqttq.testing.services import Mosquitto
from mqttq.transports.mqtt import MqttTransport


def configure(env: WorkerEnv, broker: Mosquitto, runner: str, job: str) -> None:
    env.config.write_text(
        f"""\
[mqtt]
url = "{broker.url}"
client_id = "sync-dispatch"

[queue]
url = "{env.queue_url}"

[worker]
concurrency = 2
lease = 30
shutdown_grace = 5
runner = "{runner}"

[jobs]
modules = ["dispatch_sync_jobs"]

[[routes]]
topic = "plant/{{device_id}}/reading"
job = "dispatch_sync_jobs:{job}"
mode = "sync"
qos = 1
"""
    )


async def publish(url: str, topic: str, payload: bytes) -> None:
    async with MqttTransport(MqttConfig(url=url, client_id="sync-dispatch-pub")) as pub:
        await pub.publish(topic, payload, qos=1)


def events(env: WorkerEnv) -> dict[str, list[tuple[str, int]]]:
    seen: dict[str, list[tuple[str, int]]] = {}
    for event, key, pid, _ in read_records(env.records):
        seen.setdefault(event, []).append((key, pid))
    return seen


@pytest.mark.parametrize("job", ["on_reading", "OnReading"])
@pytest.mark.parametrize("runner", ["asyncio", "process"])
def test_a_sync_route_job_dispatches_follow_ups_that_a_worker_runs(
    mosquitto: Mosquitto, tmp_path: Path, runner: str, job: str
) -> None:
    env = WorkerEnv(tmp_path, f"sqlite:///{tmp_path / 'q.db'}", lease=30)
    configure(env, mosquitto, runner, job)
    with env.start("listen") as listener:
        log = listener.log_path  # type: ignore[attr-defined]
        env.wait(lambda: "listening: " in log.read_text(), "the listener to subscribe")
        asyncio.run(publish(mosquitto.url, "plant/p7/reading", b'{"celsius": 21.5}'))
        env.wait(lambda: sum(s.ready for s in env.stats().values()) == 2, "the follow-ups")
        assert listener.poll() is None, log.read_text()
    [(key, inline_pid)] = events(env)["inline"]
    assert key == "p7:True"  # run inline, as the current job
    if runner == "asyncio":
        assert inline_pid == listener.pid
    else:
        assert inline_pid != listener.pid  # in one of the listener's child processes

    result = env.run("worker", "--burst")
    assert result.returncode == 0, result.stderr
    ran = events(env)
    assert [key for key, _ in ran["follow-up"]] == ["dispatch:p7:21.5"]
    assert [key for key, _ in ran["alert"]] == ["p7:21.5"]
    assert {pid for _, pid in ran["follow-up"] + ran["alert"]}.isdisjoint({listener.pid})
    assert sum(s.ready + s.delayed + s.reserved for s in env.stats().values()) == 0
    assert env.json("failed", "list") == []
