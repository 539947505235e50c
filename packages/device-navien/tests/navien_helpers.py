"""Helpers for tests against a real broker: an MQTT client that watches topics and publishes, and a
clock tests move by hand."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from typing import Any, Self

from mqttq.config import MqttConfig
from mqttq.interfaces import Subscription
from mqttq.testing import eventually
from mqttq.transports.mqtt import MqttTransport

MAC = "04786332fca0"


class Clock:
    """Monotonic seconds that move only when a test says so."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Watcher:
    """A plain MQTT client: records every message on ``filters`` and publishes raw bytes."""

    def __init__(self, url: str, *filters: str) -> None:
        self.client_id = f"watcher-{uuid.uuid4().hex[:8]}"
        self.transport = MqttTransport(
            MqttConfig(url=url, session_expiry=0), client_id=self.client_id
        )
        self.filters = filters or ("cmd/#", "evt/#")
        self.messages: list[tuple[str, bytes]] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        await self.transport.subscribe([Subscription(topic=f, qos=1) for f in self.filters])
        await self.transport.connect()
        self._task = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.transport.stop_reading()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.transport.aclose()

    async def _read(self) -> None:
        async for delivery in self.transport.messages():
            self.messages.append((delivery.topic, delivery.payload))
            await self.transport.ack([delivery])

    async def publish(self, topic: str, payload: bytes | str) -> None:
        await self.transport.publish(topic, payload, qos=1)

    def on(self, topic: str) -> list[bytes]:
        return [payload for t, payload in self.messages if t == topic]

    def documents(self, topic: str) -> list[dict[str, Any]]:
        return [json.loads(payload) for payload in self.on(topic)]

    async def next_on(self, topic: str, after: int = 0, timeout: float = 15.0) -> bytes:
        """The ``after``-th (0-based) message on ``topic``, waiting for it."""
        found = await eventually(
            lambda: len(self.on(topic)) > after, timeout=timeout, what=f"message {after} on {topic}"
        )
        assert found
        return self.on(topic)[after]
