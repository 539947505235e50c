"""Broker restart under load: the listener reconnects with backoff, resubscribes, and every
message the publisher got a PUBACK for is processed.

Mosquitto is stopped with SIGTERM, which writes its persistence file (its in-memory state since
the last save would be lost to SIGKILL: that is the broker's own durability, not mqttq's).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import ingest_jobs
import orjson

from mqttq import App, MqttqError
from mqttq.config import MqttConfig, structure
from mqttq.listener import Listener
from mqttq.run import serve
from mqttq.testing import eventually
from mqttq.testing.services import Mosquitto
from mqttq.transports.mqtt import MqttTransport

N = 3000


async def publish_through_restart(url: str, acked: set[int], stop_at: int) -> None:
    """Publish 0..N-1; a message counts once the broker acknowledged it (else it is retried)."""
    pub = MqttTransport(
        MqttConfig(url=url, client_id="restart-pub", reconnect_min=0.05, reconnect_max=0.5)
    )
    async with pub:
        pending = list(range(N))
        while pending:
            chunk, pending = pending[:50], pending[50:]
            results = await asyncio.gather(
                *(pub.publish(f"load/d{i % 5}/reading", orjson.dumps({"i": i})) for i in chunk),
                return_exceptions=True,
            )
            for i, result in zip(chunk, results, strict=True):
                if isinstance(result, MqttqError):
                    pending.append(i)
                elif isinstance(result, BaseException):
                    raise result
                else:
                    acked.add(i)
            if len(acked) < stop_at and not pub.connected:
                await eventually(
                    lambda: pub.connected, timeout=30, what="the publisher to reconnect"
                )


async def test_broker_restart_mid_load_loses_no_acknowledged_message(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    ingest_jobs.RUNS.clear()
    config = structure(
        {
            "mqtt": {
                "url": mosquitto.url,
                "client_id": "restart-listener",
                "inflight": 200,
                "reconnect_min": 0.1,
                "reconnect_max": 1.0,
            },
            "queue": {"url": f"sqlite:///{tmp_path / 'queue.db'}"},
            "worker": {"concurrency": 8, "lease": 10},
            "routes": [{"topic": "load/{device_id}/reading", "job": "ingest_jobs:temperature"}],
        }
    )
    app = App(config)
    listener = Listener(app)
    service = asyncio.create_task(serve(app, listener=listener, install_signals=False))
    await eventually(listener.running.is_set, timeout=20, what="the listener")
    acked: set[int] = set()
    publishing = asyncio.create_task(publish_through_restart(mosquitto.url, acked, N))
    await eventually(
        lambda: len(ingest_jobs.RUNS) >= 500, timeout=60, what="500 jobs before the restart"
    )
    mosquitto.stop()  # mid-load
    mosquitto.start()
    await asyncio.wait_for(publishing, 120)
    done = lambda: {r["payload"]["i"] for r in ingest_jobs.RUNS}  # noqa: E731
    await eventually(
        lambda: acked <= done(), timeout=120, what="every acknowledged message to be processed"
    )
    listener.stop()
    await asyncio.wait_for(service, 30)
    assert len(acked) == N
    assert listener.transport.connections >= 2  # type: ignore[attr-defined]
