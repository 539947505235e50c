"""What the device command queue moves around: commands, their states, replies and events."""

from __future__ import annotations

import enum
import time
import uuid
from typing import Any, Literal

import attrs


def new_command_id() -> str:
    return uuid.uuid4().hex


def _as_bytes(payload: bytes | str) -> bytes:
    return payload.encode() if isinstance(payload, str) else payload


class CommandState(enum.StrEnum):
    """Where a command is. ``queued`` and ``sent`` may still change; the others are final.

    For an adapter whose devices send no acknowledgement, ``sent`` is final too.
    """

    QUEUED = "queued"  #: waiting in its device's lane (not connected, paced, or behind others)
    SENT = "sent"  #: published; the broker acknowledged it (PUBACK); waiting for the device
    ACKNOWLEDGED = "acknowledged"  #: the device confirmed it (the adapter says what counts)
    REJECTED = "rejected"  #: the device said no
    EXPIRED = "expired"  #: not delivered in time (max age, or sent too often unacknowledged)
    DROPPED = "dropped"  #: evicted by the queue bound, superseded, cleared, or refused


FINAL = frozenset(
    {CommandState.ACKNOWLEDGED, CommandState.REJECTED, CommandState.EXPIRED, CommandState.DROPPED}
)


@attrs.frozen(kw_only=True)
class Command:
    """One message for one device, as its adapter built it.

    ``kind`` names what it does (``dhw-temperature``); with ``coalesce`` a newer command of the
    same kind for the same device replaces one still waiting (last write wins). ``control``
    commands are paced (the adapter's minimum interval between controls to one device);
    queries are not. ``acknowledged_by_device``: the device answers it (else it is delivered at
    PUBACK). ``retain`` is never set: commands are never published retained.
    """

    device: str
    kind: str
    topic: str
    payload: bytes = attrs.field(converter=_as_bytes)
    #: the adapter family that built it (its replies are read by that adapter)
    family: str = ""
    qos: int = attrs.field(default=1, validator=attrs.validators.in_((0, 1, 2)))
    control: bool = True
    coalesce: bool = False
    acknowledged_by_device: bool = True
    id: str = attrs.field(factory=new_command_id)
    created_at: float = attrs.field(factory=time.time)


@attrs.frozen(kw_only=True)
class Transition:
    """One step of a command's life: its new state, when, and why."""

    state: CommandState
    at: float
    reason: str = ""


Outcome = Literal["ok", "rejected", "busy"]


@attrs.frozen(kw_only=True)
class Reply:
    """A message from a device, decoded by its adapter.

    ``outcome`` is set when the message answers a command: ``ok`` (acknowledged), ``rejected``
    (the device said no: final) or ``busy`` (the device wants it later: the command goes back to
    the front of its lane and the lane waits ``retry_after`` seconds, or a backoff). A reply
    answers the oldest command in flight to ``device`` that the adapter's
    :meth:`~mqttq.devices.DeviceAdapter.answers` accepts. Without ``outcome`` (pushed status,
    presence), nothing is settled. ``data`` is the decoded content (an attrs model). ``online``
    (presence): whether the device is connected; no command is sent to a device known offline.
    """

    device: str
    kind: str
    outcome: Outcome | None = None
    request_topic: str | None = None
    data: Any = None
    reason: str = ""
    retry_after: float | None = None
    online: bool | None = None


@attrs.frozen(kw_only=True)
class CommandEvent:
    """A command changed state (``kind`` is ``command.<state>``, or ``command.resent`` when a
    command sent earlier goes out again), passed to ``mqttq_job_event`` observers beside the
    job events."""

    kind: str
    command: Command
    state: CommandState
    reason: str = ""
    at: float = attrs.field(factory=time.time)
    attempt: int = 0
