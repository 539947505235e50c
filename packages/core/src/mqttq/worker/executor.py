"""Running one claimed job: look it up, run it, then ack, retry or fail it.

A job's name is only ever looked up in the app's registry: an unknown name goes straight to the
failed registry and nothing is imported. While it runs, :mod:`mqttq.context` names it and the
app's queue (``mqttq.current_queue()``, ``dispatch()``). A job the worker stops because it was
cancelled (its id is in ``cancelling``) ends as cancelled whatever it does then: the driver has
recorded it so already, and neither a retry nor ``on_failure``/``failed()`` follows.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import attrs

from mqttq.context import CURRENT
from mqttq.errors import UnknownJobError
from mqttq.interfaces import JobRunner
from mqttq.jobs import JobSpec, retry_delay
from mqttq.models import Envelope, JobEvent
from mqttq.retry import Outage, RetryPolicy, retry
from mqttq.routing import PoisonError, poison_error, poison_message, redecode

if TYPE_CHECKING:
    from mqttq.app import App

log = logging.getLogger("mqttq.worker")

#: retries of a settling write while the queue backend is unreachable
UNAVAILABLE = RetryPolicy(first=0.1, max=5.0)


@attrs.frozen
class Policy:
    """The effective limits of one job: the job's overrides, else its spec's, else the worker's."""

    max_tries: int
    timeout: float | None


class Executor:
    """Runs jobs with ``runner`` and settles them through the app's driver.

    ``ack`` is how successes are acknowledged: the worker passes a batching acker; by default each
    success is acked on its own. ``max_tries`` and ``timeout`` override every job's defaults
    (``mqttq worker --max-tries/--timeout``), not what a push or a route set for one job.
    ``cancelling`` holds the ids of jobs the worker is stopping because they were cancelled.
    """

    def __init__(
        self,
        app: App,
        runner: JobRunner,
        *,
        ack: Callable[[str], Any] | None = None,
        outage: Outage | None = None,
        max_tries: int | None = None,
        timeout: float | None = None,
        cancelling: set[str] | None = None,
    ) -> None:
        self.app = app
        self.runner = runner
        self._ack = ack
        self._outage = outage or Outage("queue unavailable", log)
        self.max_tries = max_tries
        self.timeout = timeout
        self.cancelling: set[str] = set() if cancelling is None else cancelling
        self.processed = 0
        self.failed = 0
        self.cancelled = 0

    async def _store(self, op: Callable[[], Awaitable[Any]]) -> None:
        """A settling write, retried while the backend is unavailable (a stop cancels it)."""
        await retry(op, outage=self._outage, policy=UNAVAILABLE)

    def policy(self, job: Envelope, spec: JobSpec) -> Policy:
        worker = self.app.config.worker
        return Policy(
            max_tries=job.max_tries or self.max_tries or spec.max_tries or worker.max_tries,
            timeout=job.timeout or self.timeout or spec.timeout or worker.timeout,
        )

    async def execute(self, job: Envelope, *, inline: bool = False) -> bool:
        """Run a claimed job to its end state; True when it succeeded. Cancellation propagates
        (the caller releases the job). ``inline``: the job is not stored in the queue."""
        app = self.app
        try:
            spec = app.jobs.get(job.name)
        except UnknownJobError as exc:
            await self._fail(job, str(exc), "", None)
            return False
        message = poison_message(job)
        if message is not None:  # a poison entry retried: decode it again, or fail it again
            try:
                job = redecode(job)
            except PoisonError as exc:
                await self._fail(job, poison_error(exc.reason, message["topic"]), "", None)
                return False
        policy = self.policy(job, spec)
        if app.observed:
            app.emit(JobEvent(kind="started", job=job))
        started = time.monotonic()
        token = CURRENT.set((app.queue, job))
        try:
            await self.runner.run(spec.func, spec.target, job, timeout=policy.timeout)
        except asyncio.CancelledError:
            if job.id not in self.cancelling:
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()  # our own stop of a cancelled job, not the worker's shutdown
            return self._settle_cancelled(job)
        except Exception as exc:
            if job.id in self.cancelling:
                return self._settle_cancelled(job)
            # a runner in another process hands over the job's own error text and traceback
            error = getattr(exc, "job_error", None) or f"{type(exc).__name__}: {exc}"
            tb = getattr(exc, "job_traceback", None) or traceback.format_exc()
            await self._settle_failure(job, spec, policy, error, tb, inline, exc)
            return False
        finally:
            CURRENT.reset(token)
        if job.id in self.cancelling:  # it ignored the cancellation and returned
            return self._settle_cancelled(job)
        self.processed += 1
        if self._ack is not None and not inline:
            self._ack(job.id)
        elif not inline:
            await self._store(functools.partial(app.driver.ack, [job.id]))
        if app.observed:
            app.emit(JobEvent(kind="succeeded", job=job, duration=time.monotonic() - started))
        return True

    def _settle_cancelled(self, job: Envelope) -> bool:
        """The job was cancelled while it ran: the driver recorded that already."""
        log.info("job %s (%s) stopped: it was cancelled", job.id, job.name)
        self.cancelled += 1
        if self.app.observed:
            self.app.emit(JobEvent(kind="cancelled", job=job))
        return False

    async def _settle_failure(
        self,
        job: Envelope,
        spec: JobSpec,
        policy: Policy,
        error: str,
        tb: str,
        inline: bool,
        exc: BaseException | None = None,
    ) -> None:
        if job.attempts < policy.max_tries:
            delay = retry_delay(job.backoff or spec.backoff, job.attempts)
            log.info("job %s (%s) failed, retry in %.2fs: %s", job.id, job.name, delay, error)
            if inline:  # not in the queue yet: store it as a delayed job
                later = attrs.evolve(job, available_at=time.time() + delay, last_error=error)
                await self._store(functools.partial(self.app.driver.push, [later]))
            else:
                await self._store(
                    functools.partial(self.app.driver.retry, job, delay=delay, error=error)
                )
            if self.app.observed:
                self.app.emit(JobEvent(kind="retrying", job=job, error=error, retry_in=delay))
            return
        await self._fail(job, error, tb, spec, exc)

    async def _fail(
        self,
        job: Envelope,
        error: str,
        tb: str,
        spec: JobSpec | None,
        exc: BaseException | None = None,
    ) -> None:
        log.warning(
            "job %s (%s) failed after %d attempt(s): %s", job.id, job.name, job.attempts, error
        )
        self.failed += 1
        await self._store(functools.partial(self.app.driver.fail, job, error=error, traceback=tb))
        if self.app.observed:
            self.app.emit(JobEvent(kind="failed", job=job, error=error))
        if spec is not None and spec.on_failure is not None:
            await self._on_failure(spec, job, error, exc)

    async def _on_failure(
        self, spec: JobSpec, job: Envelope, error: str, exc: BaseException | None
    ) -> None:
        assert spec.on_failure is not None
        try:
            if spec.job_class is not None:  # failed(): it also takes the exception
                result = spec.on_failure(job, error, exc)  # type: ignore[call-arg]
            else:
                result = spec.on_failure(job, error)
            if asyncio.iscoroutine(result):
                await result
        except Exception:
            log.exception("on_failure callback of %s failed", job.name)

    async def run_inline(self, job: Envelope) -> bool:
        """Run a job that is not in the queue (the listener's sync mode).

        It counts as attempt 1; on failure the job's retry policy applies exactly as for a queued
        job: it is pushed back as a delayed retry, or recorded in the failed registry.
        """
        return await self.execute(attrs.evolve(job, attempts=job.attempts + 1), inline=True)


@contextlib.asynccontextmanager
async def inline_executor(app: App) -> AsyncIterator[Executor]:
    """An executor on a runner of its own, for jobs run inline (the listener's sync routes)."""
    async with app.make_runner() as runner:
        yield Executor(app, runner)
