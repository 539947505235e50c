"""The producer API: ``app.queue.push / later / at / bulk / size / stats``."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mqttq.interfaces import Capability, require
from mqttq.models import Call, Envelope, JobEvent, QueueStats

if TYPE_CHECKING:
    from mqttq.app import App


class Queue:
    """Pushes jobs through the app's driver. Every name is checked against the job registry."""

    def __init__(self, app: App) -> None:
        self._app = app

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
            enqueued_at=now,
            available_at=now + call.delay if call.delay else now,
            unique_key=call.unique_key,
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

    async def push(
        self,
        job: str | Callable[..., Any],
        args: Iterable[Any] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        queue: str | None = None,
        delay: float | None = None,
        unique_key: str | None = None,
        max_tries: int | None = None,
        timeout: float | None = None,
    ) -> str:
        """Queue one job by registered name (or function) and return its id."""
        call = Call(
            name=self._app.jobs.name_for(job),
            args=list(args),
            kwargs=kwargs or {},
            queue=queue,
            delay=delay,
            unique_key=unique_key,
            max_tries=max_tries,
            timeout=timeout,
        )
        return (await self.push_jobs([self.make_job(call)]))[0]

    async def later(
        self, delay_seconds: float, job: str | Callable[..., Any], *a: Any, **kw: Any
    ) -> str:
        """Queue a job that becomes runnable after ``delay_seconds``."""
        return await self.push(job, *a, delay=max(0.0, delay_seconds), **kw)

    async def at(self, when: datetime, job: str | Callable[..., Any], *a: Any, **kw: Any) -> str:
        """Queue a job that becomes runnable at ``when`` (naive datetimes are local time)."""
        return await self.later(when.timestamp() - time.time(), job, *a, **kw)

    async def bulk(self, calls: Iterable[Call]) -> list[str]:
        """Queue many jobs atomically: all are stored or none is."""
        now = time.time()
        return await self.push_jobs([self.make_job(c, now=now) for c in calls])

    async def size(self, queue: str | None = None) -> int:
        """Jobs waiting (ready + delayed) in ``queue`` (default queue when omitted)."""
        return await self._app.driver.size(queue or self._app.config.queue.default)

    async def stats(self) -> dict[str, QueueStats]:
        return await self._app.driver.stats()
