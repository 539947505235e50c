"""A scripted :class:`~mqttq.interfaces.Transport` for unit tests of core logic (the listener's
routing, batching and acks). Never a stand-in for the real transport in a driver or end-to-end
test: those run against a real broker (:class:`mqttq.testing.services.Mosquitto`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Self

from mqttq.config import MqttConfig
from mqttq.interfaces import Delivery, Subscription, Transport


class FakeTransport(Transport):
    """Hands out the deliveries it is fed, one batch per :meth:`feed`; records acks and
    publishes."""

    def __init__(self) -> None:
        self.batches: asyncio.Queue[list[Delivery]] = asyncio.Queue()
        self.acked: list[bytes] = []
        self.published: list[tuple[str, bytes, int, bool]] = []
        self.subscribed: list[Subscription] = []
        self.closed = False
        self._stopped = asyncio.Event()
        self._callbacks: list[Callable[[], Any]] = []

    @classmethod
    def from_config(cls, config: MqttConfig, /, **options: Any) -> Self:
        return cls()

    def feed(self, *payloads: bytes, topic: str = "s/d1/t", qos: int = 1, **fields: Any) -> None:
        """Deliver one batch of messages to ``topic``."""
        batch = [Delivery(topic=topic, payload=p, qos=qos, **fields) for p in payloads]
        self.batches.put_nowait(batch)

    async def connect(self, *, retry: bool = True) -> None:
        for callback in self._callbacks:
            result = callback()
            if asyncio.iscoroutine(result):
                await result

    async def subscribe(self, subscriptions: Sequence[Subscription]) -> None:
        self.subscribed += subscriptions

    async def receive(self, max_messages: int) -> list[Delivery]:
        if self._stopped.is_set() and self.batches.empty():
            return []
        getter = asyncio.ensure_future(self.batches.get())
        stopped = asyncio.ensure_future(self._stopped.wait())
        done, _ = await asyncio.wait({getter, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if getter in done:
            return getter.result()
        getter.cancel()
        return []

    async def ack(self, deliveries: Iterable[Delivery]) -> None:
        self.acked += [d.payload for d in deliveries]

    def stop_reading(self) -> None:
        self._stopped.set()

    async def publish(
        self,
        topic: str,
        payload: bytes | str,
        *,
        qos: int = 1,
        retain: bool = False,
        properties: Mapping[str, Any] | None = None,
    ) -> int:
        data = payload.encode() if isinstance(payload, str) else payload
        self.published.append((topic, data, qos, retain))
        return len(self.published)

    @property
    def connected(self) -> bool:
        return not self.closed

    def on_connect(self, callback: Callable[[], Any]) -> None:
        self._callbacks.append(callback)

    async def aclose(self) -> None:
        self.closed = True
