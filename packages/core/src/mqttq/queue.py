"""The producer API: ``app.queue.push / later / at / bulk / cancel / size / stats``.

``push``, ``later``, ``at`` and ``bulk`` take a registered job name or function with its
arguments, a :class:`mqttq.Job` instance (its attributes are the data) or, in ``bulk``, ready-made
:class:`Call` objects.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from mqttq.classjobs import OPTIONS, Job, job_call, job_data
from mqttq.errors import JobFinishedError, JobNotFoundError, MqttqError
from mqttq.interfaces import Capability, require
from mqttq.models import Call, Envelope, JobEvent, QueueStats

if TYPE_CHECKING:
    from mqttq.app import App

#: a job named by its registered name or its function (or class)
JobRef = str | Callable[..., Any]


class Producer:
    """push / later / at / bulk, on top of :meth:`_names` and :meth:`_send`."""

    def _name(self, job: JobRef) -> str:
        """The name to push ``job`` under."""
        raise NotImplementedError

    async def _send(self, calls: list[Call]) -> list[str]:
        """Store the jobs of ``calls`` (all or none); their ids, in order."""
        raise NotImplementedError

    def call(
        self,
        job: Job | JobRef,
        args: Iterable[Any] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        queue: str | None = None,
        delay: float | None = None,
        unique_key: str | None = None,
        max_tries: int | None = None,
        timeout: float | None = None,
    ) -> Call:
        """The :class:`Call` that pushes ``job`` with these options."""
        if isinstance(job, Job):
            if args or kwargs:
                raise MqttqError(
                    f"a {type(job).__name__} instance carries its data in its attributes: "
                    "push it without args or kwargs"
                )
            name = self._name(type(job))
            return job_call(
                job,
                name,
                queue=queue,
                delay=delay,
                unique_key=unique_key,
                max_tries=max_tries,
                timeout=timeout,
            )
        return Call(
            name=self._name(job),
            args=list(args),
            kwargs=kwargs or {},
            queue=queue,
            delay=delay,
            unique_key=unique_key,
            max_tries=max_tries,
            timeout=timeout,
        )

    async def push(
        self,
        job: Job | JobRef,
        args: Iterable[Any] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        queue: str | None = None,
        delay: float | None = None,
        unique_key: str | None = None,
        max_tries: int | None = None,
        timeout: float | None = None,
    ) -> str:
        """Queue one job and return its id."""
        call = self.call(
            job,
            args,
            kwargs,
            queue=queue,
            delay=delay,
            unique_key=unique_key,
            max_tries=max_tries,
            timeout=timeout,
        )
        return (await self._send([call]))[0]

    async def later(self, delay_seconds: float, job: Job | JobRef, *a: Any, **kw: Any) -> str:
        """Queue a job that becomes runnable after ``delay_seconds``."""
        return await self.push(job, *a, delay=max(0.0, delay_seconds), **kw)

    async def at(self, when: datetime, job: Job | JobRef, *a: Any, **kw: Any) -> str:
        """Queue a job that becomes runnable at ``when`` (naive datetimes are local time)."""
        return await self.later(when.timestamp() - time.time(), job, *a, **kw)

    async def bulk(self, jobs: Iterable[Call | Job]) -> list[str]:
        """Queue many jobs (``Call`` objects or ``Job`` instances) atomically: all or none."""
        calls = [j if isinstance(j, Call) else self.call(j) for j in jobs]
        return await self._send(calls)


class Queue(Producer):
    """Pushes jobs through the app's driver. Every name is checked against the job registry."""

    def __init__(self, app: App) -> None:
        self._app = app

    def _name(self, job: JobRef) -> str:
        return self._app.jobs.name_for(job)

    async def _send(self, calls: list[Call]) -> list[str]:
        now = time.time()
        return await self.push_jobs([self.make_job(c, now=now) for c in calls])

    async def bulk(self, jobs: Iterable[Call | Job]) -> list[str]:
        now = time.time()
        envelopes = [
            self.make_job(j, now=now) if isinstance(j, Call) else self._envelope_of(j, now)
            for j in jobs
        ]
        return await self.push_jobs(envelopes)

    def make_job(self, call: Call, *, now: float | None = None) -> Envelope:
        """The job envelope for a :class:`Call`; raises ``UnknownJobError`` for unknown names."""
        spec = self._app.jobs.get(call.name)
        now = time.time() if now is None else now
        return Envelope(
            name=spec.name,
            queue=call.queue or spec.queue or self._app.config.queue.default,
            args=call.args,
            kwargs=call.kwargs,
            max_tries=call.max_tries,
            timeout=call.timeout,
            backoff=call.backoff,
            enqueued_at=now,
            available_at=now + call.delay if call.delay else now,
            unique_key=call.unique_key,
        )

    def _envelope_of(self, job: Job, now: float) -> Envelope:
        # bulk's fast path: an instance of a registered class job that sets no options on itself
        # (the usual case) goes straight from its attributes to its envelope, without the Call
        # (and its copy of the data) that push builds; anything else takes push's path
        spec = self._app.jobs.spec_for(type(job))
        if spec is None or not OPTIONS.isdisjoint(vars(job)):
            return self.make_job(self.call(job), now=now)
        return Envelope(
            name=spec.name,
            queue=spec.queue or self._app.config.queue.default,
            kwargs=job_data(job),
            enqueued_at=now,
            available_at=now,
        )

    async def push_jobs(self, jobs: Sequence[Envelope]) -> list[str]:
        """Push ready-made envelopes in one driver call (the listener's batched path).

        A unique key or a delay the driver cannot honour is a ``NotSupportedError``, never
        silently dropped."""
        driver = self._app.driver
        caps = driver.capabilities
        if Capability.UNIQUE not in caps:
            keyed = next((j for j in jobs if j.unique_key), None)
            if keyed is not None:
                require(driver, Capability.UNIQUE, f"unique_key={keyed.unique_key!r}")
        if Capability.DELAY not in caps:
            later = next((j for j in jobs if j.available_at > j.enqueued_at), None)
            if later is not None:
                delay = later.available_at - later.enqueued_at
                require(driver, Capability.DELAY, f"a job delayed by {delay:g}s")
        ids = await driver.push(jobs)
        if self._app.observed:
            for job in jobs:
                self._app.emit(JobEvent(kind="enqueued", job=job))
        return ids

    async def cancel(self, job_id: str) -> Literal["cancelled", "stopping"]:
        """Cancel a job: ``"cancelled"`` when it was waiting (ready or delayed: it is removed),
        ``"stopping"`` when it was running (the worker running it stops it within a second).
        Either way it is recorded as cancelled: never retried, never in the failed registry.

        Raises :class:`JobFinishedError` for a job that failed or was cancelled already, and
        :class:`JobNotFoundError` for one that finished or never existed."""
        driver = self._app.driver
        require(driver, Capability.CANCEL, "cancelling jobs")
        found = await driver.cancel(job_id)
        if found == "cancelled" or found == "stopping":
            if self._app.observed:
                record = await driver.get_job(job_id)
                if record is not None:
                    self._app.emit(JobEvent(kind="cancelled", job=record.job))
            return found
        if found == "failed":
            raise JobFinishedError(
                f"job {job_id} has already failed: nothing to cancel (see `mqttq failed show "
                f"{job_id}`)"
            )
        if found == "already":
            raise JobFinishedError(f"job {job_id} was cancelled already")
        raise JobNotFoundError(
            f"no job {job_id!r} in the queue: it finished (finished jobs are not kept) or never "
            "existed"
        )

    async def size(self, queue: str | None = None) -> int:
        """Jobs waiting (ready + delayed) in ``queue`` (default queue when omitted)."""
        return await self._app.driver.size(queue or self._app.config.queue.default)

    async def stats(self) -> dict[str, QueueStats]:
        return await self._app.driver.stats()
