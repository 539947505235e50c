"""Retained messages follow each route's ``retained`` policy across restarts and reconnects,
against a real Mosquitto with a persistent session."""

from __future__ import annotations

import asyncio
from pathlib import Path

import ingest_jobs
import orjson
import pytest

from mqttq import App, load_config
from mqttq.config import MqttConfig
from mqttq.listener import Listener
from mqttq.run import serve
from mqttq.testing import eventually
from mqttq.testing.services import Mosquitto
from mqttq.transports.mqtt import MqttTransport


def write_config(tmp_path: Path, broker: Mosquitto, retained: str, protocol: str = "5") -> Path:
    path = tmp_path / "mqttq.toml"
    path.write_text(
        f"""
[mqtt]
url = "{broker.url}"
client_id = "retained-listener"
protocol = "{protocol}"

[queue]
url = "sqlite:///{tmp_path / "queue.db"}"

[worker]
lease = 10

[[routes]]
topic = "r/{{device_id}}/state"
job = "ingest_jobs:temperature"
retained = "{retained}"
"""
    )
    return path


async def publish_retained(broker: Mosquitto) -> None:
    config = MqttConfig(url=broker.url, client_id="retained-publisher")
    async with MqttTransport(config) as pub:
        await pub.publish("r/d1/state", orjson.dumps({"t": 21.5}), retain=True)
        await pub.publish("r/d2/state", b"{not json", retain=True)


async def failed_entries(path: Path) -> list[str]:
    async with App(load_config(path)) as app:
        return [f.id for f in await app.driver.failed_list()]


class Running:
    """``mqttq run`` in this process (listener + worker) until :meth:`stop`."""

    def __init__(self, path: Path) -> None:
        self.app = App(load_config(path))
        self.listener = Listener(self.app)
        self.task = asyncio.create_task(
            serve(self.app, listener=self.listener, install_signals=False)
        )

    async def started(self) -> Running:
        await eventually(self.listener.running.is_set, timeout=20, what="the listener")
        return self

    async def stop(self) -> None:
        self.listener.stop()
        await asyncio.wait_for(self.task, 30)


async def probe_seen(run: Running, broker: Mosquitto) -> None:
    """Publish a plain message and wait until the listener received it: by then it has also
    received whatever the broker sent when it subscribed (same connection, in order)."""
    before = run.listener.stats.acked
    async with MqttTransport(MqttConfig(url=broker.url, client_id="retained-probe")) as pub:
        await pub.publish("r/d9/state", orjson.dumps({"probe": True}))
    await eventually(lambda: run.listener.stats.acked > before, timeout=20, what="the probe")


def runs_of(topic: str) -> list[object]:
    return [r for r in ingest_jobs.RUNS if r["topic"] == topic]


def probes() -> int:
    """Distinct probe messages that ran (a redelivery after a broker restart is the same)."""
    return len({r["message_id"] for r in ingest_jobs.RUNS if r["topic"] == "r/d9/state"})


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_new_runs_a_retained_message_once_across_reconnects_and_restarts(
    mosquitto: Mosquitto, tmp_path: Path, protocol: str
) -> None:
    ingest_jobs.RUNS.clear()
    await publish_retained(mosquitto)
    path = write_config(tmp_path, mosquitto, "new", protocol)

    run = await Running(path).started()
    await probe_seen(run, mosquitto)
    await eventually(lambda: probes() == 1, timeout=20, what="the first probe's job")
    assert len(runs_of("r/d1/state")) == 1
    poison = await failed_entries(path)
    assert len(poison) == 1

    transport = run.listener.transport
    # a round trip first: the broker has read every ack the listener sent before it restarts
    await transport._flush(transport._client)  # type: ignore[attr-defined]
    mosquitto.restart()  # the broker comes back with the session: a reconnect
    await eventually(lambda: transport.connections >= 2, timeout=30, what="the reconnect")  # type: ignore[attr-defined]
    await probe_seen(run, mosquitto)
    await eventually(lambda: probes() == 2, timeout=20, what="the second probe's job")
    await run.stop()
    assert len(runs_of("r/d1/state")) == 1, "a reconnect ran the retained message again"

    run = await Running(path).started()  # a restart of the listener, its session kept
    await probe_seen(run, mosquitto)
    await eventually(lambda: probes() == 3, timeout=20, what="the third probe's job")
    await run.stop()
    # MQTT 5: Retain Handling 1, the broker sends retained messages only for a new subscription.
    # MQTT 3.1.1 has no such option: a new process subscribes again and gets it once more.
    assert len(runs_of("r/d1/state")) == (1 if protocol == "5" else 2)
    assert await failed_entries(path) == poison  # a retained poison message: one entry, ever


async def test_always_runs_it_on_every_subscription(mosquitto: Mosquitto, tmp_path: Path) -> None:
    ingest_jobs.RUNS.clear()
    await publish_retained(mosquitto)
    path = write_config(tmp_path, mosquitto, "always")
    for subscriptions in (1, 2):
        run = await Running(path).started()
        await probe_seen(run, mosquitto)
        await eventually(lambda n=subscriptions: probes() == n, timeout=20, what="the probe's job")
        await run.stop()
        assert len(runs_of("r/d1/state")) == subscriptions
    assert len(await failed_entries(path)) == 1  # the poison message: one entry, replaced


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_ignore_never_runs_it(mosquitto: Mosquitto, tmp_path: Path, protocol: str) -> None:
    ingest_jobs.RUNS.clear()
    await publish_retained(mosquitto)
    path = write_config(tmp_path, mosquitto, "ignore", protocol)
    run = await Running(path).started()
    await probe_seen(run, mosquitto)
    await eventually(lambda: probes() == 1, timeout=20, what="the probe's job")
    await run.stop()
    assert runs_of("r/d1/state") == []
    assert await failed_entries(path) == []
    # MQTT 5: the broker never sends them (Retain Handling 2); 3.1.1: the listener drops them
    assert run.listener.stats.retained_skipped == (0 if protocol == "5" else 2)
