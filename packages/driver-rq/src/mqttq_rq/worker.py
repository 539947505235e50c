"""RQ workers for mqttq jobs: ``rq worker --worker-class mqttq_rq.worker.Worker`` (forking) or
``mqttq_rq.worker.SimpleWorker`` (in-process), also what ``mqttq worker`` runs.

Before a job runs, the worker checks it without running anything: a job naming other code, data
that is not JSON (a pickle), an envelope that does not decode, a job name the registry does not
know and a poison entry that still does not decode go straight to RQ's failed registry, and the
worker goes on. Otherwise it sets mqttq's policy on the RQ job (job > registered job >
``[worker]``): RQ's job timeout, and on the first run
``rq.Retry(max=max_tries - 1, interval=[...])`` with the intervals of mqttq's backoff.
RQ's JSON serializer and mqttq-rq's job and queue classes are forced.
"""

from __future__ import annotations

import gc
import json
import logging
import math
import time
from collections.abc import Sequence
from typing import Any

import rq.queue
import rq.utils
import rq.worker
from rq.exceptions import AbandonedJobError
from rq.job import JobStatus, Retry
from rq.registry import FailedJobRegistry
from rq.results import Result
from rq.serializers import JSONSerializer
from rq.utils import utcformat

from mqttq.plugin import Envelope, PoisonError, poison_error, poison_message, redecode, retry_delay
from mqttq_rq import _app, entry
from mqttq_rq.job import META, Job, Queue, envelope_of, mqttq_meta, vet

log = logging.getLogger("mqttq.rq")


def _json_bytes(value: Any) -> bytes:
    """``value`` as RQ's JSON serializer writes it."""
    return json.dumps(value).encode("utf-8")


def _names(queues: Any) -> tuple[list[str], Any]:
    items = [queues] if isinstance(queues, str | rq.queue.Queue) else list(queues)
    names = [q if isinstance(q, str) else q.name for q in items]
    connection = next((q.connection for q in items if not isinstance(q, str)), None)
    return names, connection


def check(app: Any, job: Any) -> tuple[str | None, Envelope | None]:
    """(why ``job`` must not run, its envelope): what the worker looks at before running it."""
    problem, envelope = vet(job)
    if problem is not None or envelope is None:
        return problem, None
    if envelope.name not in app.jobs:
        return str(entry._unknown(app, envelope.name)), envelope
    message = poison_message(envelope)
    if message is not None:
        try:
            redecode(envelope)
        except PoisonError as exc:
            return poison_error(exc.reason, message["topic"]), envelope
    return None, envelope


def policy_mapping(app: Any, job: Any, envelope: Envelope) -> dict[str, Any]:
    """Apply mqttq's policy to ``job`` (in memory) and return the hash fields to store."""
    spec = app.jobs.get(envelope.name)
    worker = app.config.worker
    max_tries = envelope.max_tries or spec.max_tries or worker.max_tries
    timeout = envelope.timeout or spec.timeout or worker.timeout
    meta = mqttq_meta(job)
    job.timeout = max(1, math.ceil(timeout)) if timeout else -1
    job.failure_ttl = math.ceil(app.config.queue.failed_ttl)
    mapping: dict[str, Any] = {"timeout": job.timeout, "failure_ttl": job.failure_ttl}
    if not meta.get("policy"):  # the first run (or the first after `mqttq failed retry`)
        if max_tries > 1:
            backoff = envelope.backoff or spec.backoff
            intervals: list[Any] = [retry_delay(backoff, n) for n in range(1, max_tries)]
            retry = Retry(max=max_tries - 1, interval=intervals)
            job.retries_left, job.retry_intervals = retry.max, retry.intervals
            mapping["retries_left"] = retry.max
            mapping["retry_intervals"] = json.dumps(retry.intervals)
        meta["policy"] = True
    meta["attempts"] = int(meta.get("attempts", 0)) + 1
    job.meta = {**(job.meta if isinstance(job.meta, dict) else {}), META: meta}
    mapping["meta"] = _json_bytes(job.meta)
    return mapping


def refuse(connection: Any, job: Any, queue: Any, problem: str, failed_ttl: float) -> None:
    """Fail ``job`` without running anything: RQ's failed registry, its raw data kept."""
    now = time.time()
    ttl = math.ceil(failed_ttl)
    try:
        meta = mqttq_meta(job)
    except Exception:
        meta = {}
    meta.update(error=problem, traceback="", failed_at=now)
    meta["attempts"] = int(meta.get("attempts", 0)) + 1
    with connection.pipeline() as pipe:
        pipe.hset(
            job.key,
            mapping={
                "status": JobStatus.FAILED.value,
                "ended_at": utcformat(rq.utils.now()),
                "meta": _json_bytes({META: meta}),
                "failure_ttl": ttl,
                "retries_left": 0,
            },
        )
        pipe.expire(job.key, ttl)
        pipe.zadd(FailedJobRegistry(job.origin, connection=connection).key, {job.id: now + ttl})
        intermediate = getattr(queue, "intermediate_queue_key", None)
        if intermediate:
            pipe.lrem(intermediate, 1, job.id)
        Result.create_failure(job, ttl, problem, pipeline=pipe)
        pipe.execute()


class _Mqttq:
    """What mqttq-rq adds to RQ's workers (mixed into :class:`Worker` and :class:`SimpleWorker`)."""

    #: True under ``mqttq worker``: a second signal stops at once, without RQ's 1 s guard
    #: against a terminal's duplicate signals (the pool sends each signal once)
    supervised = False
    #: mqttq shows no results: RQ's "result is kept for N seconds" line after every job is noise
    log_result_lifespan = False

    def __init__(self, queues: Any, *args: Any, **kwargs: Any) -> None:
        names, connection = _names(queues)
        if kwargs.get("connection") is None and connection is not None:
            kwargs["connection"] = connection
        kwargs.update(serializer=JSONSerializer, job_class=Job, queue_class=Queue)
        super().__init__(names, *args, **kwargs)  # type: ignore[call-arg]
        self.push_exc_handler(_record_abandoned)  # type: ignore[attr-defined]

    def bootstrap(self, *args: Any, **kwargs: Any) -> None:
        # load the configured jobs now, and open the app (no I/O): forked work-horses inherit it
        _app.open_app(_app.current_app())
        # keep the garbage collector of each work-horse off everything loaded so far: it would
        # otherwise write to (and so copy) every inherited page of the worker's heap
        gc.freeze()
        super().bootstrap(*args, **kwargs)  # type: ignore[misc]

    def execute_job(self, job: Any, queue: Any) -> None:
        app = _app.current_app()
        problem, envelope = check(app, job)
        if problem is not None:
            log.warning("refused RQ job %s from queue %s: %s", job.id, queue.name, problem)
            refuse(self.connection, job, queue, problem, app.config.queue.failed_ttl)  # type: ignore[attr-defined]
            self.increment_failed_job_count()  # type: ignore[attr-defined]
            return
        assert envelope is not None
        job.mqttq_envelope = envelope
        job.mqttq_fields = policy_mapping(app, job, envelope)  # stored as the job starts
        super().execute_job(job, queue)  # type: ignore[misc]

    def handle_work_horse_killed(self, job: Any, retpid: Any, ret_val: Any, rusage: Any) -> None:
        signal_note = ""
        if isinstance(ret_val, int) and ret_val and (ret_val & 0x7F):
            signal_note = f" (signal {ret_val & 0x7F})"
        _record_failure(job, f"the job's work-horse process died{signal_note}")
        super().handle_work_horse_killed(job, retpid, ret_val, rusage)  # type: ignore[misc]

    def request_force_stop(self, signum: int, frame: Any) -> None:
        if not self.supervised:
            super().request_force_stop(signum, frame)  # type: ignore[misc]
            return
        self.log.warning("Worker %s: cold shut down", self.name)  # type: ignore[attr-defined]
        if self.horse_pid:  # type: ignore[attr-defined]
            self.kill_horse()  # type: ignore[attr-defined]
            self.wait_for_horse()  # type: ignore[attr-defined]
        raise SystemExit()


def _record_failure(job: Any, error: str) -> None:
    """mqttq's error on a job that failed outside the entry point; ``on_failure`` if final."""
    try:
        app = _app.current_app()
        envelope = envelope_of(job.args[0])
        spec = app.jobs.get(envelope.name) if envelope.name in app.jobs else None
    except Exception:
        log.exception("job %s failed (%s) and cannot be decoded", job.id, error)
        return
    entry.failed(job, envelope, spec, error, tb="")


def _record_abandoned(job: Any, exc_type: Any, exc_value: Any, tb: Any) -> bool:
    """RQ's exception handler: a job RQ found abandoned (its worker died mid-job)."""
    if exc_type is not None and issubclass(exc_type, AbandonedJobError):
        _record_failure(job, "abandoned: the RQ worker running it died or was stopped")
    return True


class Worker(_Mqttq, rq.worker.Worker):
    """RQ's forking worker (a work-horse process per job) for mqttq jobs."""


class SimpleWorker(_Mqttq, rq.worker.SimpleWorker):
    """RQ's SimpleWorker (jobs run in the worker process itself) for mqttq jobs."""


def make_worker(
    queues: Sequence[str], connection: Any, *, simple: bool = False, **kwargs: Any
) -> Any:
    cls = SimpleWorker if simple else Worker
    return cls(list(queues), connection=connection, **kwargs)


def run_worker(
    settings: Any,
    queues: Sequence[str],
    *,
    name: str | None = None,
    simple: bool = False,
    burst: bool = False,
    supervised: bool = False,
) -> int:
    """Run one RQ worker for mqttq jobs until it stops; the exit code (3: Redis unreachable)."""
    import redis

    from mqttq_rq.driver import RqQueueDriver

    try:
        worker = make_worker(  # RQ talks to Redis already here
            queues,
            RqQueueDriver.connect(settings),
            simple=simple,
            name=name,
            maintenance_interval=settings.maintenance_interval,
            default_result_ttl=settings.result_ttl,
        )
        worker.supervised = supervised
        worker.work(burst=burst, with_scheduler=True, logging_level="INFO")
    except redis.ConnectionError as exc:
        print(f"mqttq-rq: cannot reach Redis at {settings.display_url}: {exc}", flush=True)
        return 3
    return 0
