"""Jobs for the ingest tests. In-process runs land in ``RUNS``; with ``INGEST_RECORD`` set (jobs
run by another process) each run is also appended to that file as one JSON line."""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

import orjson

from mqttq import Message

RUNS: list[dict[str, Any]] = []
#: ordered ("start" | "done" | "ack", payload) events of the sync-mode tests
EVENTS: list[tuple[str, Any]] = []
_lock = threading.Lock()
#: sync-mode tests hold a job here until they release it
GATE: dict[str, asyncio.Event] = {}


def _record(route: str, message: Any, **params: str) -> None:
    entry = {
        "route": route,
        "params": params,
        "is_message": isinstance(message, Message),
        "topic": message.topic,
        "payload": message.payload,
        "qos": message.qos,
        "message_id": message.message_id,
    }
    with _lock:
        RUNS.append(entry)
    path = os.environ.get("INGEST_RECORD")
    if path:
        line = orjson.dumps(entry, default=lambda b: b.hex()) + b"\n"
        with open(path, "ab") as f:
            f.write(line)


def temperature(device_id: str, message: Message) -> None:
    _record("temperature", message, device_id=device_id)


def status(site: str, device_id: str, message: Message) -> None:
    _record("status", message, site=site, device_id=device_id)


def raw(message: Message) -> None:
    _record("raw", message)


async def gated(device_id: str, message: Message) -> None:
    """Waits for ``GATE[device_id]`` when present, then records."""
    EVENTS.append(("start", message.payload))
    gate = GATE.get(device_id)
    if gate is not None:
        await gate.wait()
    _record("gated", message, device_id=device_id)
    EVENTS.append(("done", message.payload))


def flaky(device_id: str, message: Message) -> None:
    _record("flaky", message, device_id=device_id)
    raise RuntimeError(f"flaky job failed for {device_id}")
