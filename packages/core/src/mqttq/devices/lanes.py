"""Per-device lanes: the order, bounds and timing of commands to one device. No I/O here; the
:class:`~mqttq.devices.DeviceClient` publishes what a lane says is next.

A lane holds a device's unsettled commands in the order they were sent to the client. Each is
*waiting* (to be published), *sending* (published, no PUBACK yet) or *sent* (the broker has it,
the device has not confirmed it). What goes out next is always the oldest waiting command, so a
fresh command never overtakes an older one, and a command that has to go again (the connection
dropped, the device said "busy", its acknowledgement never came) is still the oldest.
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
        #: monotonic time before which no control may go (pacing)
        self.next_control_at = 0.0
        #: monotonic time before which nothing goes (the device said busy)
        self.paused_until = 0.0
        self.busy_streak = 0
        #: False once the device said it is offline (presence), until it says it is back
        self.online = True
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<Lane {self.device}: {len(self.entries)} commands>"

    def seq(self) -> int:
        self.next_seq += 1
        return self.next_seq

    def in_phase(self, *phases: Phase) -> Iterator[Entry]:
        return (e for e in self.entries if e.phase in phases)

    @property
    def waiting(self) -> int:
        return sum(1 for _ in self.in_phase(Phase.WAITING))

    @property
    def in_flight(self) -> int:
        return sum(1 for _ in self.in_phase(Phase.SENDING, Phase.SENT))

    def next_up(self, now: float) -> tuple[Entry | None, float]:
        """The command to publish now, if any; else when to look again (``inf``: not before
        something happens)."""
        if self.in_flight >= self.limits.in_flight or not self.online:
            return None, float("inf")
        entry = next(self.in_phase(Phase.WAITING), None)
        if entry is None:
            return None, float("inf")
        ready_at = self.paused_until
        if entry.handle.command.control:
            ready_at = max(ready_at, self.next_control_at)
        if now >= ready_at:
            return entry, now
        return None, ready_at

    def unanswered(self, now: float) -> bool:
        """Whether a sent command's acknowledgement is overdue."""
        limit = self.limits.ack_timeout
        return any(now - e.sent_at >= limit for e in self.in_phase(Phase.SENT))

    def next_ack_deadline(self) -> float:
        times = [e.sent_at + self.limits.ack_timeout for e in self.in_phase(Phase.SENT)]
        return min(times, default=float("inf"))

    def expired(self, wall: float) -> list[Entry]:
        """Commands past their age (not the ones being published right now)."""
        age = self.limits.max_age
        if age is None:
            return []
        return [
            e
            for e in self.entries
            if e.phase is not Phase.SENDING and wall - e.handle.command.created_at >= age
        ]

    def next_expiry(self) -> float:
        """When the oldest command expires, in monotonic time (``inf`` when none does)."""
        age = self.limits.max_age
        if age is None or not self.entries:
            return float("inf")
        oldest = min(e.handle.command.created_at for e in self.entries)
        return time.monotonic() + (oldest + age - time.time())

    def remove(self, entry: Entry) -> None:
        self.entries.remove(entry)
        self.wake.set()
