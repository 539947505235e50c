"""The function of every RQ job mqttq-rq writes: run one mqttq job the way mqttq's executor does.

The job's name is only looked up in the app's job registry (never imported); a route job's
``message`` becomes a :class:`mqttq.Message` again; a poison entry is decoded again as its route
asked; ``on_failure`` runs once, when the job fails for good. Retries, the timeout and the failed
registry are RQ's (the worker set them from mqttq's policy before the job started).
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from typing import Any

import attrs
from rq.job import get_current_job
from rq.timeouts import JobTimeoutException

from mqttq.plugin import (
    PoisonError,
    job_context,
    poison_error,
    poison_message,
    redecode,
    restore_kwargs,
)
from mqttq_rq import _app
from mqttq_rq.job import META, RefusedJobError, envelope_of, mqttq_meta

log = logging.getLogger("mqttq.rq")


def run(envelope: Any) -> None:
    """Run the mqttq job ``envelope`` (the RQ job's one argument). Returns nothing: results are
    not kept, as in mqttq."""
    rq_job = get_current_job()
    app = _app.current_app()
    job = getattr(rq_job, "mqttq_envelope", None) or envelope_of(envelope)
    if job.name not in app.jobs:
        _final(rq_job)
        error = str(_unknown(app, job.name))
        failed(rq_job, job, None, error, tb="")
        raise RefusedJobError(error)
    spec = app.jobs.get(job.name)
    message = poison_message(job)
    if message is not None:
        try:
            job = redecode(job)
        except PoisonError as exc:
            _final(rq_job)
            error = poison_error(exc.reason, message["topic"])
            failed(rq_job, job, None, error, tb="")
            raise RefusedJobError(error) from None
    meta = mqttq_meta(rq_job) if rq_job is not None else {}
    job = attrs.evolve(job, attempts=int(meta.get("attempts", 1)))
    _app.open_app(app)  # for mqttq.dispatch() from inside the job
    with job_context(app.queue, job):  # on_failure too may dispatch
        try:
            result = spec.func(*job.args, **restore_kwargs(job.kwargs))
            if asyncio.iscoroutine(result):
                asyncio.run(result)
        except JobTimeoutException as exc:
            timeout = rq_job.timeout if rq_job is not None else None
            error = f"JobTimeoutError: job {job.name} timed out after {timeout}s"
            failed(rq_job, job, spec, error, exc=exc)
            raise
        except Exception as exc:
            failed(rq_job, job, spec, f"{type(exc).__name__}: {exc}", exc=exc)
            raise


def _unknown(app: Any, name: str) -> Exception:
    try:
        app.jobs.get(name)
    except Exception as exc:  # UnknownJobError, with mqttq's own message
        return exc
    return RefusedJobError(f"unknown job {name!r}")  # pragma: no cover


def _final(rq_job: Any) -> None:
    """Make RQ fail the running job without retries (an unknown name, poison)."""
    if rq_job is not None:
        rq_job.retries_left = None


def will_retry(rq_job: Any) -> bool:
    return rq_job is not None and bool(rq_job.retries_left) and rq_job.retries_left > 0


def failed(
    rq_job: Any,
    job: Any,
    spec: Any,
    error: str,
    tb: str | None = None,
    exc: BaseException | None = None,
) -> None:
    """Record mqttq's error text (and traceback) on the RQ job; call ``on_failure`` when RQ will
    not retry it. Never raises."""
    final = not will_retry(rq_job)
    if rq_job is not None:
        try:
            meta = mqttq_meta(rq_job)
            meta.update(error=error, traceback=tb if tb is not None else traceback.format_exc())
            if final:
                meta["failed_at"] = time.time()
            rq_job.meta[META] = meta
            rq_job.save_meta()
        except Exception:
            log.exception("could not record the error of job %s", getattr(job, "id", "?"))
    log.warning(
        "job %s (%s) failed%s: %s", job.id, job.name, "" if final else ", RQ retries it", error
    )
    if final and spec is not None and spec.on_failure is not None:
        try:
            if getattr(spec, "job_class", None) is not None:  # a class job's failed(): with
                outcome = spec.on_failure(job, error, exc)  # the exception of the last try
            else:
                outcome = spec.on_failure(job, error)
            if asyncio.iscoroutine(outcome):
                asyncio.run(outcome)
        except Exception:
            log.exception("on_failure callback of %s failed", job.name)
