"""The data mqttq moves around: attrs classes, frozen and keyword-only.

Times are UNIX timestamps (``float`` seconds) on the wire and in drivers: they compare cheaply in
SQL and Lua, and every backend agrees on them. The API accepts ``datetime`` where people write
times by hand (``queue.at``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

import attrs

#: Version of the JSON job envelope, bumped only for incompatible changes.
ENVELOPE_VERSION = 1


def new_job_id() -> str:
    """A random, collision-free job id (uuid4, 32 hex characters)."""
    return uuid.uuid4().hex


@attrs.frozen(kw_only=True)
class Backoff:
    """Exponential backoff between retries: ``min(max, base * factor ** (attempt - 1))``,
    then up to ``jitter`` (a fraction) added at random so failing jobs don't retry in lockstep."""

    base: float = attrs.field(default=1.0, validator=attrs.validators.ge(0))
    factor: float = attrs.field(default=2.0, validator=attrs.validators.ge(1))
    max: float = attrs.field(default=300.0, validator=attrs.validators.ge(0))
    jitter: float = attrs.field(
        default=0.1, validator=attrs.validators.and_(attrs.validators.ge(0), attrs.validators.le(1))
    )


@attrs.frozen(kw_only=True)
class Envelope:
    """One unit of work as it travels through a queue driver (the versioned JSON envelope).

    ``name`` is a registered job name; a worker looks it up in its own registry and never imports
    it. ``attempts`` counts the claims so far: ``claim`` increments it, ``release`` gives it back.
    ``max_tries``, ``timeout`` and ``backoff`` override the job's registered defaults when set.
    """

    id: str = attrs.field(factory=new_job_id)
    name: str
    queue: str = "default"
    args: list[Any] = attrs.field(factory=list)
    kwargs: dict[str, Any] = attrs.field(factory=dict)
    attempts: int = 0
    max_tries: int | None = None
    timeout: float | None = None
    backoff: Backoff | None = None
    enqueued_at: float = attrs.field(factory=time.time)
    available_at: float = attrs.field(factory=time.time)
    unique_key: str | None = None
    last_error: str | None = None
    v: int = ENVELOPE_VERSION


@attrs.frozen(kw_only=True)
class Call:
    """A job to push, as written by application code: ``Call("myapp.jobs:send", kwargs={...})``."""

    name: str = attrs.field(kw_only=False)
    args: list[Any] = attrs.field(factory=list, converter=list)
    kwargs: dict[str, Any] = attrs.field(factory=dict, converter=dict)
    queue: str | None = None
    delay: float | None = None
    unique_key: str | None = None
    max_tries: int | None = None
    timeout: float | None = None
    backoff: Backoff | None = None


@attrs.frozen(kw_only=True)
class FailedJob:
    """An entry of the failed registry: the job as it was, and why it failed.

    ``raw`` holds the stored bytes of an entry whose envelope could not be decoded (then ``job``
    is a stand-in with the id, queue and, when readable, the name); ``None`` otherwise.
    """

    job: Envelope
    error: str
    traceback: str = ""
    failed_at: float = attrs.field(factory=time.time)
    raw: bytes | None = None

    @property
    def id(self) -> str:
        return self.job.id


@attrs.frozen(kw_only=True)
class QueueStats:
    """Counts for one queue. ``oldest_ready_age`` is seconds since the oldest ready job was due."""

    ready: int = 0
    delayed: int = 0
    reserved: int = 0
    failed: int = 0
    oldest_ready_age: float | None = None


@attrs.frozen(kw_only=True)
class JobRecord:
    """Where a job is now (``mqttq jobs show``): ready, delayed, reserved, failed or cancelled."""

    job: Envelope
    state: str
    lease_expires_at: float | None = None
    error: str | None = None
    traceback: str | None = None


@attrs.frozen(kw_only=True)
class WorkerInfo:
    """A live worker, as published by its heartbeat."""

    id: str
    hostname: str
    pid: int
    queues: list[str]
    concurrency: int
    started_at: float
    heartbeat_at: float = attrs.field(factory=time.time)
    processed: int = 0
    failed: int = 0
    running: int = 0


@attrs.frozen(kw_only=True)
class JobEvent:
    """What happened to a job, passed to ``mqttq_job_event`` observers.

    ``kind`` is one of ``enqueued``, ``started``, ``succeeded``, ``retrying``, ``failed`` (into the
    failed registry), ``released`` and ``cancelled``.
    """

    kind: str
    job: Envelope
    error: str | None = None
    duration: float | None = None
    retry_in: float | None = None


@attrs.frozen(kw_only=True)
class Message:
    """One MQTT message as mqttq sees it, independent of the transport library.

    ``payload`` is decoded per the route (``dict``/``list`` for json, ``str`` for text, ``bytes``).
    ``message_id`` is stable across redeliveries and usable as an idempotency key.
    """

    topic: str
    payload: Any
    qos: int = 0
    retain: bool = False
    message_id: str = ""
    properties: Mapping[str, Any] = attrs.field(factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain values (as stored in a route job's ``message`` kwarg)."""
        return {
            "topic": self.topic,
            "payload": self.payload,
            "qos": self.qos,
            "retain": self.retain,
            "message_id": self.message_id,
            "properties": dict(self.properties),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Message:
        """The inverse of :meth:`to_dict`; unknown keys are ignored (newer writers)."""
        return cls(
            topic=data["topic"],
            payload=data.get("payload"),
            qos=data.get("qos", 0),
            retain=data.get("retain", False),
            message_id=data.get("message_id", ""),
            properties=data.get("properties") or {},
        )
