"""The demo's heaters: Navien simulators on the broker, asked for their status through a
``DeviceClient``, and a few commands sent while the device client's connection is cut.

The heaters answer every status request on the reply topic the listener routes to
``record_status`` jobs; every ``FAULT_EVERY``-th status reply of the last heater reports an error
code, so some jobs fail. Status requests are never queued: while the device client is cut off
they are refused at once (``queue=False``) and the poller waits for the connection; the
commands, sent during the outage, wait in their heater's lane and go out after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import attrs

from mqttq.config import MqttConfig
from mqttq.devices import CommandHandle, CommandState, DeviceClient
from mqttq.errors import MqttqError

if TYPE_CHECKING:
    from mqttq_navien import NavienAdapter, NavienSimulator
    from mqttq_navien.simulator import Published, ReceivedRequest

#: every FAULT_EVERY-th status reply of the last heater carries an error code (a failing job)
FAULT_EVERY = 10
#: how long the device client's connection stays cut (seconds)
OUTAGE = 1.5
#: the commands the demo sends during the outage: (what, build(adapter, mac))
COMMANDS: list[tuple[str, Callable[[NavienAdapter, str], Any]]] = [
    ("setpoint 130 °F", lambda a, mac: a.set_temperature(mac, 130, unit="F")),
    ("mode high-demand", lambda a, mac: a.set_mode(mac, "high-demand")),
    ("setpoint 120 °F", lambda a, mac: a.set_temperature(mac, 120, unit="F")),
]


def navien_adapter(client: DeviceClient) -> NavienAdapter:
    adapter: NavienAdapter = client.adapter("navien")  # type: ignore[assignment]
    return adapter


def mac_of(number: int) -> str:
    """Heater ``number``'s MAC address: 000000000001, 000000000002, ..."""
    return f"{number:012x}"


@attrs.define
class SentCommand:
    heater: int
    what: str
    handle: CommandHandle

    @property
    def path(self) -> list[str]:
        """The states it went through, each once, in order."""
        seen: list[str] = []
        for transition in self.handle.history:
            if not seen or seen[-1] != transition.state:
                seen.append(str(transition.state))
        return seen


@attrs.define
class Traffic:
    """What went between the demo and its heaters."""

    requested: int = 0  #: status requests sent
    refused: int = 0  #: status requests refused while the device client was cut off
    published: int = 0  #: replies the heaters published on the routed topic
    round_trips: list[float] = attrs.field(factory=list)  #: request -> reply, seconds
    commands: list[SentCommand] = attrs.field(factory=list)
    outage: str = "not yet"  #: not yet, cut, restored, skipped (why)


def _import_navien() -> Any:
    try:
        import mqttq_navien
    except ImportError:
        raise MqttqError(
            "the demo's heaters are mqttq-navien's simulator: pip install 'mqttq[demo]'"
        ) from None
    return mqttq_navien


@contextlib.asynccontextmanager
async def run_heaters(
    mqtt: MqttConfig, count: int, traffic: Traffic, reply_topic: Callable[[str], str]
) -> AsyncIterator[list[NavienSimulator]]:
    """``count`` simulated heaters on the broker of ``mqtt``; each reply on ``reply_topic(mac)``
    counts in ``traffic``."""
    navien = _import_navien()
    async with contextlib.AsyncExitStack() as stack:
        heaters: list[NavienSimulator] = []
        for number in range(1, count + 1):
            heater = navien.NavienSimulator(mac=mac_of(number), mqtt=mqtt)
            heater.on_request.append(_count_replies(traffic, reply_topic(heater.mac)))
            if number == count:
                heater.on_request.append(_faulty(heater))
            heaters.append(await stack.enter_async_context(heater))
        yield heaters


def _count_replies(traffic: Traffic, topic: str) -> Callable[[ReceivedRequest, Published], None]:
    def count(request: ReceivedRequest, answer: Published) -> None:
        if answer.topic == topic:
            traffic.published += 1

    return count


def _faulty(heater: NavienSimulator) -> Callable[[ReceivedRequest, Published], None]:
    """After the 9th status reply, the 10th reports error code 1; then it clears again."""
    replies = 0

    def fault(request: ReceivedRequest, answer: Published) -> None:
        nonlocal replies
        if request.suffix == "st":
            replies += 1
            heater.state.error_code = 1 if replies % FAULT_EVERY == FAULT_EVERY - 1 else 0

    return fault


async def poll(
    client: DeviceClient, mac: str, requests: int, interval: float, traffic: Traffic
) -> None:
    """Ask heater ``mac`` for its status ``requests`` times (0: forever), one at a time, at
    most one every ``interval`` seconds."""
    adapter = navien_adapter(client)
    next_at = time.monotonic()
    sent = 0
    while requests == 0 or sent < requests:
        delay = next_at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)  # the poll rate
        next_at = max(next_at + interval, time.monotonic())
        started = time.monotonic()
        handle = await client.send(adapter.status(mac), queue=False)
        if handle.state is CommandState.DROPPED:  # not connected: polls are never queued
            traffic.refused += 1
            await client.wait_connected()
            continue
        sent += 1
        traffic.requested += 1
        with contextlib.suppress(TimeoutError):
            await handle.wait(timeout=60)
        if handle.state is CommandState.ACKNOWLEDGED:
            traffic.round_trips.append(time.monotonic() - started)


async def outage(
    client: DeviceClient,
    cut: Callable[[], None],
    restore: Callable[[], None],
    heaters: int,
    traffic: Traffic,
) -> None:
    """Cut the device client off, send the commands while it is away, restore it after
    ``OUTAGE`` seconds and wait for the commands to settle."""
    adapter = navien_adapter(client)
    cut()
    traffic.outage = "cut"
    with contextlib.suppress(TimeoutError):  # the client notices the dropped connection
        async with asyncio.timeout(5):
            while client.connected:  # noqa: ASYNC110 (the client has no event for it)
                await asyncio.sleep(0.01)
    targets = max(1, heaters - 1)  # the last heater is the faulty one
    for i, (what, build) in enumerate(COMMANDS):
        number = i % targets + 1
        handle = await client.send(build(adapter, mac_of(number)))
        traffic.commands.append(SentCommand(number, what, handle))
    await asyncio.sleep(OUTAGE)  # the outage itself
    restore()
    traffic.outage = "restored"
    for sent in traffic.commands:
        with contextlib.suppress(TimeoutError):
            await sent.handle.wait(timeout=60)
