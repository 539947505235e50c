"""Route modes: ``sync`` runs the job inline and acks after it; ``mixed`` runs QoS 2 inline."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import ingest_jobs
import pytest

from mqttq import App
from mqttq.config import MqttConfig, structure
from mqttq.interfaces import Delivery
from mqttq.listener import Listener
from mqttq.run import serve
from mqttq.testing import eventually
from mqttq.testing.services import Mosquitto
from mqttq.transports.mqtt import MqttTransport


class SpyTransport(MqttTransport):
    """Records each ack in ``ingest_jobs.EVENTS``, in order with the jobs' own events."""

    async def ack(self, deliveries: Iterable[Delivery]) -> None:
        deliveries = list(deliveries)
        for d in deliveries:
            ingest_jobs.EVENTS.append(("ack", d.payload.decode()))
        await super().ack(deliveries)


@pytest.fixture(autouse=True)
def _clear() -> None:
    ingest_jobs.RUNS.clear()
    ingest_jobs.EVENTS.clear()
    ingest_jobs.GATE.clear()


async def start(broker: Mosquitto, tmp_path: Path, routes: list[dict[str, Any]]) -> Any:
    config = structure(
        {
            "mqtt": {"url": broker.url, "client_id": "modes"},
            "queue": {"url": f"sqlite:///{tmp_path / 'queue.db'}"},
            "worker": {"concurrency": 2, "lease": 10},
            "routes": routes,
        }
    )
    app = App(config)
    await app.open()
    listener = Listener(app, transport=SpyTransport(config.mqtt))
    service = asyncio.create_task(
        serve(app, worker=False, listener=listener, install_signals=False)
    )
    await eventually(listener.running.is_set, timeout=20, what="the listener")
    return app, listener, service


async def stop(app: App, listener: Listener, service: Any) -> None:
    listener.stop()
    await asyncio.wait_for(service, 30)
    await app.aclose()


async def publish(url: str, items: list[tuple[str, bytes, int]]) -> None:
    async with MqttTransport(MqttConfig(url=url, client_id="modes-pub")) as pub:
        for topic, payload, qos in items:
            await pub.publish(topic, payload, qos=qos)


async def queued(app: App) -> list[Any]:
    """Every job waiting in the queue (not run by anyone: these tests have no worker)."""
    stats = await app.queue.stats()
    return [(name, s.ready + s.delayed) for name, s in stats.items() if s.ready + s.delayed]


async def test_sync_route_acks_only_after_the_job_finished(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    routes = [{"topic": "sync/{device_id}", "job": "ingest_jobs:gated", "mode": "sync",
               "payload": "text"}]  # fmt: skip
    app, listener, service = await start(mosquitto, tmp_path, routes)
    gate = ingest_jobs.GATE["d1"] = asyncio.Event()
    await publish(mosquitto.url, [("sync/d1", b"one", 1)])
    await eventually(
        lambda: ("start", "one") in ingest_jobs.EVENTS, timeout=20, what="the job to start"
    )
    assert ("ack", "one") not in ingest_jobs.EVENTS
    assert listener.transport.outstanding == 1  # type: ignore[attr-defined]
    gate.set()
    await eventually(lambda: ("ack", "one") in ingest_jobs.EVENTS, timeout=20, what="the ack")
    assert ingest_jobs.EVENTS == [("start", "one"), ("done", "one"), ("ack", "one")]
    assert await queued(app) == []  # ran inline, never queued
    assert (listener.stats.inline, listener.stats.enqueued) == (1, 0)
    await stop(app, listener, service)


async def test_sync_failures_follow_the_retry_policy(mosquitto: Mosquitto, tmp_path: Path) -> None:
    routes = [
        {"topic": "f2/{device_id}", "job": "ingest_jobs:flaky", "mode": "sync", "max_tries": 2,
         "queue": "again", "payload": "text"},
        {"topic": "f1/{device_id}", "job": "ingest_jobs:flaky", "mode": "sync", "max_tries": 1,
         "queue": "once", "payload": "text"},
    ]  # fmt: skip
    app, listener, service = await start(mosquitto, tmp_path, routes)
    await publish(mosquitto.url, [("f2/d1", b"retry me", 1), ("f1/d1", b"fail me", 1)])
    await eventually(lambda: listener.stats.acked == 2, timeout=20, what="both messages acked")
    assert len(ingest_jobs.RUNS) == 2
    assert await queued(app) == [("again", 1)]  # attempt 1 of 2 failed: a delayed retry
    failed = await app.driver.failed_list()
    assert [(f.job.queue, f.job.attempts) for f in failed] == [("once", 1)]
    assert "flaky job failed for d1" in failed[0].error
    await stop(app, listener, service)


async def test_mixed_route_runs_qos2_inline_and_queues_qos1(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    routes = [{"topic": "mix/{device_id}/temperature", "job": "ingest_jobs:temperature",
               "mode": "mixed", "qos": 2, "queue": "mix"}]  # fmt: skip
    app, listener, service = await start(mosquitto, tmp_path, routes)
    await publish(
        mosquitto.url,
        [("mix/d2/temperature", b'{"n": 2}', 2), ("mix/d1/temperature", b'{"n": 1}', 1)],
    )
    await eventually(lambda: listener.stats.acked == 2, timeout=20, what="both messages acked")
    assert [(r["payload"], r["qos"]) for r in ingest_jobs.RUNS] == [({"n": 2}, 2)]
    assert await queued(app) == [("mix", 1)]
    assert (listener.stats.inline, listener.stats.enqueued) == (1, 1)
    await stop(app, listener, service)
