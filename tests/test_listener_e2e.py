"""End to end in one process: real Mosquitto -> listener -> SQLite queue -> worker -> job."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import ingest_jobs
import orjson
import pytest

from mqttq import App
from mqttq.config import MqttConfig, structure
from mqttq.listener import Listener
from mqttq.run import serve
from mqttq.testing import eventually
from mqttq.testing.services import Mosquitto
from mqttq.transports.mqtt import MqttTransport

ROUTES = [
    {
        "topic": "sensors/{device_id}/temperature",
        "job": "ingest_jobs:temperature",
        "queue": "telemetry",
        "payload": "json",
    },
    {"topic": "sites/{site}/{device_id}/status", "job": "ingest_jobs:status", "payload": "text"},
    {"topic": "raw/#", "job": "ingest_jobs:raw", "payload": "bytes", "queue": "raw"},
]


def make_app(broker: Mosquitto, tmp_path: Path, routes: list[dict[str, Any]], **mqtt: Any) -> App:
    config = structure(
        {
            "mqtt": {"url": broker.url, "client_id": "e2e-listener", "inflight": 500, **mqtt},
            "queue": {"url": f"sqlite:///{tmp_path / 'queue.db'}"},
            "worker": {"concurrency": 8, "lease": 10},
            "routes": routes,
        }
    )
    return App(config)


async def publish_all(url: str, messages: list[tuple[str, bytes]], qos: int = 1) -> None:
    """Publish every message and wait for the broker's acknowledgement of each."""
    publisher = MqttTransport(MqttConfig(url=url, client_id="e2e-publisher"))
    async with publisher:
        for start in range(0, len(messages), 200):
            chunk = messages[start : start + 200]
            await asyncio.gather(*(publisher.publish(t, p, qos=qos) for t, p in chunk))


def sample(i: int) -> tuple[str, bytes, tuple[str, dict[str, str], Any]]:
    """Message ``i`` and the run it must cause: (topic, payload, (route, params, payload))."""
    kind = i % 3
    if kind == 0:
        device = f"d{i % 7}"
        value = {"i": i, "t": 20 + i / 100}
        return (
            f"sensors/{device}/temperature",
            orjson.dumps(value),
            ("temperature", {"device_id": device}, value),
        )
    if kind == 1:
        site, device = f"s{i % 3}", f"d{i % 5}"
        text = f"ok {i} ✓"
        return (
            f"sites/{site}/{device}/status",
            text.encode(),
            ("status", {"site": site, "device_id": device}, text),
        )
    payload = bytes([i % 256, 0xFF]) + i.to_bytes(4, "big")
    return f"raw/x/{i}", payload, ("raw", {}, payload)


def key(route: str, params: dict[str, str], payload: Any) -> str:
    return repr((route, sorted(params.items()), payload))


@pytest.fixture(autouse=True)
def _clear_runs() -> None:
    ingest_jobs.RUNS.clear()


async def run_service(app: App) -> tuple[Listener, asyncio.Task[Any]]:
    listener = Listener(app)
    task = asyncio.create_task(serve(app, install_signals=False, listener=listener))
    await eventually(listener.running.is_set, timeout=20, what="the listener to subscribe")
    return listener, task


async def test_5000_qos1_messages_over_three_routes_run_exactly_once_each(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    app = make_app(mosquitto, tmp_path, ROUTES)
    listener, service = await run_service(app)
    n = 5000
    samples = [sample(i) for i in range(n)]
    await publish_all(mosquitto.url, [(t, p) for t, p, _ in samples])
    await eventually(lambda: len(ingest_jobs.RUNS) >= n, timeout=120, what=f"{n} job runs")
    listener.stop()
    stats = await asyncio.wait_for(service, 60)

    expected = Counter(key(*run) for _, _, run in samples)
    got = Counter(key(r["route"], r["params"], r["payload"]) for r in ingest_jobs.RUNS)
    assert got == expected
    assert all(r["is_message"] and r["qos"] == 1 for r in ingest_jobs.RUNS)
    assert {r["topic"] for r in ingest_jobs.RUNS} == {t for t, _, _ in samples}
    assert (stats.received, stats.enqueued, stats.unmatched, stats.poison) == (n, n, 0, 0)
    assert stats.acked == n
    assert stats.batches < n  # messages that arrived together were pushed together


async def test_a_message_matching_several_routes_makes_one_job_per_route(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    routes = [
        {
            "topic": "sites/{site}/{device_id}/status",
            "job": "ingest_jobs:status",
            "payload": "text",
        },
        {"topic": "sites/#", "job": "ingest_jobs:raw", "payload": "bytes"},
        {"topic": "other/#", "job": "ingest_jobs:raw"},
    ]
    app = make_app(mosquitto, tmp_path, routes)
    listener, service = await run_service(app)
    await publish_all(mosquitto.url, [("sites/a/b/status", b"up")])
    await eventually(lambda: len(ingest_jobs.RUNS) >= 2, timeout=30, what="two job runs")
    listener.stop()
    stats = await asyncio.wait_for(service, 30)
    runs = sorted((r["route"], r["payload"]) for r in ingest_jobs.RUNS)
    assert runs == [("raw", b"up"), ("status", "up")]
    assert ingest_jobs.RUNS[0]["message_id"] == ingest_jobs.RUNS[1]["message_id"]
    assert stats.enqueued == 2


async def test_partly_overlapping_routes_get_one_job_each_over_mqtt5(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    # neither filter covers the other, so the broker sends a copy per subscription; the
    # subscription identifiers route each copy to its own route only
    routes = [
        {"topic": "x/{site}/{device_id}/status", "job": "ingest_jobs:status", "payload": "text"},
        {"topic": "x/s1/#", "job": "ingest_jobs:raw", "payload": "bytes"},
    ]
    app = make_app(mosquitto, tmp_path, routes)
    listener, service = await run_service(app)
    await publish_all(mosquitto.url, [("x/s1/d1/status", b"up"), ("x/s2/d1/status", b"on")])
    await eventually(lambda: len(ingest_jobs.RUNS) >= 3, timeout=30, what="three job runs")
    await eventually(
        lambda: listener.stats.received >= 3, timeout=30, what="both copies of the first message"
    )
    listener.stop()
    stats = await asyncio.wait_for(service, 30)
    runs = sorted((r["route"], r["payload"]) for r in ingest_jobs.RUNS)
    assert runs == [("raw", b"up"), ("status", "on"), ("status", "up")]
    assert (stats.received, stats.enqueued) == (3, 3)


async def test_a_share_group_splits_the_messages_between_listeners(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    routes = [ROUTES[2]]
    apps = [
        make_app(mosquitto, tmp_path, routes, client_id=f"shared-{n}", share_group="g")
        for n in range(2)
    ]
    listeners = [Listener(app) for app in apps]
    services = [
        asyncio.create_task(serve(app, worker=False, listener=lst, install_signals=False))
        for app, lst in zip(apps, listeners, strict=True)
    ]
    for listener in listeners:
        await eventually(listener.running.is_set, timeout=20, what="the listeners")
    await publish_all(mosquitto.url, [(f"raw/{i}", b"%d" % i) for i in range(200)])
    await eventually(
        lambda: sum(lst.stats.enqueued for lst in listeners) >= 200, timeout=30, what="200 jobs"
    )
    for listener in listeners:
        listener.stop()
    await asyncio.wait_for(asyncio.gather(*services), 30)
    assert all(lst.stats.received > 0 for lst in listeners)
    assert sum(lst.stats.received for lst in listeners) == 200  # each message to one listener
