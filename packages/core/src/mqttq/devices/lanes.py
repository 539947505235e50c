"""Per-device lanes: the order, bounds and timing of commands to one device. No I/O here; the
:class:`~mqttq.devices.DeviceClient` publishes what a lane says is next.

A lane holds a device's unsettled commands in the order they were sent to the client. Each is
*waiting* (to be published), *sending* (published, no PUBACK yet) or *sent* (the broker has it,
the device has not confirmed it). What goes out next is always the oldest waiting command, so a
fresh command never overtakes an older one, and a command that has to go again (the connection
dropped, the device said "busy", its acknowledgement never came) is still the oldest.
Commands are in the order they were made, so the oldest one, at the front, expires first.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import time
from collections.abc import Iterator

import attrs

from mqttq.devices.adapter import DeviceAdapter
from mqttq.devices.handle import CommandHandle


class Phase(enum.Enum):
    WAITING = "waiting"
    SENDING = "sending"
    SENT = "sent"


@attrs.define(eq=False)
class Entry:
    handle: CommandHandle
    seq: int
    phase: Phase = Phase.WAITING
    #: when the broker acknowledged its last publish (monotonic)
    sent_at: float = 0.0
    #: still in its lane (False once settled)
    live: bool = True


@attrs.frozen(kw_only=True)
class Limits:
    """The delivery rules of one device: the adapter's, unless the configuration says else."""

    pacing: float
    ack_timeout: float
    in_flight: int
    max_queued: int
    max_age: float | None  #: seconds from creation; None: never
    max_sends: int


class Lane:
    """The unsettled commands of one device, and when the next may go."""

    def __init__(self, device: str, adapter: DeviceAdapter, limits: Limits) -> None:
        self.device = device
        self.adapter = adapter
        self.limits = limits
        self.entries: collections.deque[Entry] = collections.deque()
        self.next_seq = 0
        #: how many entries are in each phase (kept by :meth:`add`, :meth:`mark`, :meth:`remove`)
        self.counts = dict.fromkeys(Phase, 0)
        #: monotonic time before which no control may go (pacing)
        self.next_control_at = 0.0
        #: monotonic time before which nothing goes (the device said busy)
        self.paused_until = 0.0
        self.busy_streak = 0
        #: False once the device said it is offline (presence), until it says it is back
        self.online = True
        self.task: asyncio.Task[None] | None = None
        self._waker: asyncio.Future[None] | None = None

    def __repr__(self) -> str:
        return f"<Lane {self.device}: {len(self.entries)} commands>"

    def seq(self) -> int:
        self.next_seq += 1
        return self.next_seq

    # -- entries ----------------------------------------------------------------------------------

    def add(self, entry: Entry) -> None:
        self.entries.append(entry)
        self.counts[entry.phase] += 1

    def mark(self, entry: Entry, phase: Phase) -> None:
        self.counts[entry.phase] -= 1
        entry.phase = phase
        self.counts[phase] += 1

    def remove(self, entry: Entry) -> None:
        if self.entries and self.entries[0] is entry:
            self.entries.popleft()
        else:
            self.entries.remove(entry)
        self.counts[entry.phase] -= 1
        entry.live = False
        if self.counts[Phase.WAITING]:
            self.wake()

    def in_phase(self, *phases: Phase) -> Iterator[Entry]:
        return (e for e in self.entries if e.phase in phases)

    @property
    def waiting(self) -> int:
        return self.counts[Phase.WAITING]

    @property
    def in_flight(self) -> int:
        return self.counts[Phase.SENDING] + self.counts[Phase.SENT]

    # -- what is due ------------------------------------------------------------------------------

    def next_up(self, now: float) -> tuple[Entry | None, float]:
        """The command to publish now, if any; else when to look again (``inf``: not before
        something happens)."""
        if not self.waiting or self.in_flight >= self.limits.in_flight or not self.online:
            return None, float("inf")
        entry = next(self.in_phase(Phase.WAITING))  # behind at most in_flight others
        ready_at = self.paused_until
        if entry.handle.command.control:
            ready_at = max(ready_at, self.next_control_at)
        if now >= ready_at:
            return entry, now
        return None, ready_at

    def unanswered(self, now: float) -> bool:
        """Whether a sent command's acknowledgement is overdue."""
        if not self.counts[Phase.SENT]:
            return False
        limit = self.limits.ack_timeout
        return any(now - e.sent_at >= limit for e in self.in_phase(Phase.SENT))

    def next_ack_deadline(self) -> float:
        if not self.counts[Phase.SENT]:
            return float("inf")
        times = [e.sent_at + self.limits.ack_timeout for e in self.in_phase(Phase.SENT)]
        return min(times, default=float("inf"))

    def expired(self, wall: float) -> list[Entry]:
        """Commands past their age, from the front (not one being published right now)."""
        age = self.limits.max_age
        if age is None:
            return []
        out = []
        for entry in self.entries:
            if wall - entry.handle.command.created_at < age:
                break
            if entry.phase is not Phase.SENDING:
                out.append(entry)
        return out

    def next_expiry(self) -> float:
        """When the oldest command expires, in monotonic time (``inf`` when none does)."""
        age = self.limits.max_age
        if age is None or not self.entries:
            return float("inf")
        return time.monotonic() + (self.entries[0].handle.command.created_at + age - time.time())

    # -- waking the lane's task (cheaper than an asyncio.Event with a timeout) --------------------

    def wake(self) -> None:
        waker = self._waker
        if waker is not None and not waker.done():
            waker.set_result(None)

    async def sleep(self, timeout: float | None) -> None:
        """Until :meth:`wake` or ``timeout`` seconds (``None``: no limit)."""
        loop = asyncio.get_running_loop()
        self._waker = waker = loop.create_future()
        handle = None if timeout is None else loop.call_later(timeout, _resolve, waker)
        try:
            await waker
        finally:
            if handle is not None:
                handle.cancel()
            self._waker = None


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
