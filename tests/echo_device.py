"""A minimal device family for the device client's tests: commands go to ``echo/<id>/cmd`` as
``{"n": <number>, "cmd": <id>}``; a real MQTT client plays the device and answers each one on
``echo/<id>/ack`` (or ``/busy``, ``/nak``), and records what it got."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import orjson

import mqttq
from mqttq.config import MqttConfig
from mqttq.devices import Command, DeviceAdapter, Reply
from mqttq.plugin import Register
from mqttq.transports.mqtt import MqttTransport


class EchoAdapter(DeviceAdapter):
    family = "echo"
    pacing: ClassVar[float] = 0.0
    ack_timeout: ClassVar[float] = 2.0
    in_flight: ClassVar[int] = 1

    def subscriptions(self, device: str) -> list[str]:
        return [f"echo/{device}/+"]

    def command(self, device: str, n: int, *, kind: str = "set", **fields: Any) -> Command:
        return Command(
            device=device,
            kind=kind,
            family="echo",
            topic=f"echo/{device}/cmd",
            payload=orjson.dumps({"n": n, "kind": kind}),
            **fields,
        )

    def interpret(self, topic: str, payload: bytes) -> Reply | None:
        _, device, what = topic.split("/")
        if what == "cmd":
            return None  # our own request
        try:
            body = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return None
        outcome = {"ack": "ok", "nak": "rejected", "busy": "busy"}.get(what)
        online = {"online": True, "offline": False}.get(what)
        return Reply(
            device=device,
            kind=what,
            outcome=outcome,  # type: ignore[arg-type]
            data=body,
            request_topic=f"echo/{device}/cmd",
            reason=what,
            retry_after=0.2 if what == "busy" else None,
            online=online,
        )


class EchoPlugin:
    @mqttq.hookimpl
    def mqttq_register_devices(self, register: Register) -> None:
        register("echo", EchoAdapter)


class EchoDevice:
    """The device end: answers every command (``mode``: ack, busy_first, silent, nak)."""

    def __init__(self, url: str, device: str, mode: str = "ack") -> None:
        self.url = url
        self.device = device
        self.mode = mode
        self.got: list[int] = []
        self.transport = MqttTransport(MqttConfig(url=url), client_id=f"echo-device-{device}")
        self._task: asyncio.Task[None] | None = None
        self._busy_sent: set[int] = set()

    async def __aenter__(self) -> EchoDevice:
        await self.transport.connect()
        await self.transport.subscribe(
            [mqttq.plugin.Subscription(topic=f"echo/{self.device}/cmd", qos=1)]
        )
        self._task = asyncio.create_task(self._serve())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.transport.aclose()

    async def _serve(self) -> None:
        async for delivery in self.transport.messages():
            body = orjson.loads(delivery.payload)
            n = body["n"]
            self.got.append(n)
            await self.transport.ack([delivery])
            what = "ack"
            if self.mode == "silent":
                continue
            if self.mode == "nak":
                what = "nak"
            elif self.mode == "busy_first" and n not in self._busy_sent:
                self._busy_sent.add(n)
                what = "busy"
            # an answer lost with the connection: the client sends again
            with contextlib.suppress(mqttq.NotConnectedError):
                await self.transport.publish(f"echo/{self.device}/{what}", orjson.dumps(body))

    async def say(self, what: str) -> None:
        await self.transport.publish(f"echo/{self.device}/{what}", b"{}")


@contextlib.asynccontextmanager
async def echo_devices(url: str, *names: str, mode: str = "ack") -> AsyncIterator[list[EchoDevice]]:
    async with contextlib.AsyncExitStack() as stack:
        yield [await stack.enter_async_context(EchoDevice(url, n, mode)) for n in names]
