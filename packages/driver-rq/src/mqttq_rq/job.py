"""RQ classes for mqttq jobs: a ``Job`` that only ever runs mqttq-rq's entry point and only ever
reads JSON, and a ``Queue`` whose scheduled times never round down.

Every mqttq-rq job has the function :data:`mqttq_rq.ENTRY` and one argument, mqttq's envelope as
plain JSON. A job hash naming anything else (written by someone else, or tampered with) is refused
by :func:`refusal` before anything runs; callbacks, webhooks and bound instances stored in a hash
are ignored. RQ's JSON serializer is forced on every instance: nothing is ever unpickled.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import orjson
import rq.job
import rq.queue
from rq.exceptions import DeserializationError
from rq.serializers import JSONSerializer

from mqttq.plugin import Envelope, PayloadError, decode_job, encode_job
from mqttq_rq import ENTRY

#: the key of mqttq's own data in an RQ job's ``meta``
META = "mqttq"


class RefusedJobError(Exception):
    """An RQ job mqttq-rq will not run: it names other code, or its data is not an envelope."""


class Job(rq.job.Job):
    """An RQ job as mqttq-rq writes and runs it. Reads JSON only; runs only :data:`ENTRY`."""

    def __init__(self, id: str | None = None, connection: Any = None, serializer: Any = None):
        # RQ resolves a serializer through a (slow) runtime Protocol check per job; JSON is forced
        # here anyway, and nothing is deserialized before this assignment
        super().__init__(id=id, connection=connection, serializer=None)
        self.serializer = JSONSerializer

    @property
    def func(self) -> Any:
        if self.mqttq_envelope is not None and self.func_name == ENTRY and self.instance is None:
            problem = None  # vetted by the worker before it started the job
        else:
            problem = refusal(self)
        if problem is not None:
            raise RefusedJobError(problem)
        from mqttq_rq.entry import run

        return run

    # stored callbacks and webhooks would import or contact whatever a hash names: never used
    @property
    def success_callback(self) -> None:
        return None

    @property
    def failure_callback(self) -> None:
        return None

    @property
    def stopped_callback(self) -> None:
        return None

    def send_webhooks(self, *args: Any, **kwargs: Any) -> None:
        return None

    #: set by the worker before the job runs: its decoded envelope, and mqttq's policy fields,
    #: written with RQ's own bookkeeping when execution starts (no extra round trip)
    mqttq_envelope: Envelope | None = None
    mqttq_fields: dict[str, Any] | None = None

    def prepare_for_execution(self, worker_name: str, pipeline: Any, *args: Any, **kw: Any) -> None:
        super().prepare_for_execution(worker_name, pipeline, *args, **kw)
        if self.mqttq_fields:
            pipeline.hset(self.key, mapping=self.mqttq_fields)


class Queue(rq.queue.Queue):
    """RQ's queue with JSON forced, and scheduled times rounded *up* to the second: RQ keeps
    scheduled jobs by whole seconds and moves a job once the current second reaches its score, so
    a time rounded down (as RQ does) could run a job up to a second early."""

    job_class = Job

    def __init__(self, name: str = "default", *args: Any, **kwargs: Any) -> None:
        kwargs["serializer"] = JSONSerializer
        kwargs["job_class"] = Job
        super().__init__(name, *args, **kwargs)

    def schedule_job(self, job: Any, datetime: datetime, *args: Any, **kwargs: Any) -> Any:
        return super().schedule_job(job, round_up(datetime), *args, **kwargs)


def round_up(when: datetime) -> datetime:
    """``when`` rounded up to the next whole second (UTC)."""
    if when.tzinfo is None:
        when = when.astimezone()
    return datetime.fromtimestamp(math.ceil(when.timestamp()), UTC)


def plain(job: Envelope) -> dict[str, Any]:
    """The envelope as the plain JSON value an RQ job carries (bytes stay tagged)."""
    value: dict[str, Any] = orjson.loads(encode_job(job))
    return value


def envelope_of(value: Any) -> Envelope:
    """The envelope back from an RQ job's argument; ``PayloadError`` when it is none."""
    if not isinstance(value, dict):
        raise PayloadError(f"cannot decode job envelope: expected an object, got {value!r:.60}")
    try:
        data = orjson.dumps(value)
    except TypeError as exc:
        raise PayloadError(f"cannot decode job envelope: {exc}") from None
    return decode_job(data)


def refusal(job: rq.job.Job) -> str | None:
    """Why ``job`` must not run (``None`` when it is a job mqttq-rq wrote)."""
    return vet(job)[0]


def vet(job: rq.job.Job) -> tuple[str | None, Envelope | None]:
    """(why ``job`` must not run, or ``None``; its envelope when it has one)."""
    try:
        func_name, instance, args, kwargs = job.func_name, job.instance, job.args, job.kwargs
    except DeserializationError:
        return (
            "cannot decode the RQ job: its data is not JSON (a pickle, or corrupt); "
            "mqttq-rq never unpickles, nothing was run"
        ), None
    if func_name != ENTRY or instance is not None:
        return (
            f"refused: the RQ job names {func_name!r}, not mqttq-rq's entry point {ENTRY!r}; "
            "nothing was run"
        ), None
    if not isinstance(args, list | tuple) or len(args) != 1 or kwargs:
        return "cannot decode the RQ job: its arguments are not one mqttq envelope", None
    try:
        return None, envelope_of(args[0])
    except PayloadError as exc:
        return str(exc), None


def mqttq_meta(job: rq.job.Job) -> dict[str, Any]:
    """mqttq's data in the job's meta (attempts, error, traceback...), as a new dict."""
    meta = job.meta.get(META) if isinstance(job.meta, dict) else None
    return dict(meta) if isinstance(meta, dict) else {}
