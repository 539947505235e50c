"""``sqlite:///path.db``: the durable, embedded queue driver.

Concurrency model: one ``sqlite3`` connection per driver, owned by one thread (``DbThread``); each
operation is one function run there in one hop. Several processes share the file through WAL:
readers never block, writers take turns (``BEGIN IMMEDIATE``, busy retries in ``_db``), and a
claim is one ``UPDATE ... RETURNING`` statement, so no job is ever handed out twice.

SQLite cannot block until work arrives, so ``claim(wait=...)`` polls adaptively: this process's own
pushes wake it at once; other processes' commits are noticed by ``Database.change_mark`` (``PRAGMA
data_version``, microseconds, no thread hop), every ``poll_min`` seconds at first, backing off to
``poll_max``, and to ``poll_idle`` once no claim got jobs for ``IDLE_AFTER`` seconds; and it
wakes when the next delayed job or lease deadline of its queues falls due. The claim query itself
only runs when one of those says something may have changed.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, Self, TypeVar

import attrs

from mqttq.plugin import (
    CancelOutcome,
    Capability,
    Envelope,
    FailedJob,
    JobRecord,
    QueueDriver,
    QueueStats,
    WorkerInfo,
)
from mqttq_sqlite._options import SqliteOptions, build_options, parse_url
from mqttq_sqlite._store import Store
from mqttq_sqlite._thread import DbThread
from mqttq_sqlite.errors import SqliteQueueError

T = TypeVar("T")

#: seconds without claimed jobs after which an idle claim backs off from poll_max to poll_idle
IDLE_AFTER = 1.0


def _set_none(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


#: (claimed jobs, when the next job or lease of the queues falls due)
_Poll = tuple[list[Envelope], float | None]


class SqliteQueueDriver(QueueDriver):
    """A queue in one SQLite file, shared safely by any number of worker processes."""

    schemes = ("sqlite",)
    capabilities = frozenset(
        {
            Capability.CLAIM,
            Capability.DELAY,
            Capability.DURABLE,
            Capability.UNIQUE,
            Capability.FAILED_REGISTRY,
            Capability.WORKERS,
            Capability.MULTI_PROCESS,
            Capability.CANCEL,
            Capability.SCHEDULES,
        }
    )

    def __init__(self, path: str | os.PathLike[str], **options: Any) -> None:
        """``SqliteQueueDriver("jobs.db", failed_ttl=86400)``; options as in the README."""
        self.options: SqliteOptions = build_options(os.fspath(path), options)
        self._store = Store(self.options)
        self._thread: DbThread | None = None
        # this process's pushes wake its waiting claims: a counter plus the futures they sleep on
        self._generation = 0
        self._sleepers: set[asyncio.Future[None]] = set()
        # when a claim last got jobs: idle claims poll at poll_idle a second after
        self._claimed_at = time.monotonic()

    @classmethod
    def from_url(cls, url: str, /, **options: Any) -> Self:
        opts = parse_url(url, options)
        return cls(opts.path, **attrs.asdict(opts, filter=lambda a, _: a.name != "path"))

    @property
    def path(self) -> str:
        return self.options.path

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path!r}>"

    # -- lifecycle ------------------------------------------------------------------------------

    async def open(self) -> None:
        if self._thread is not None:
            return
        thread = DbThread(f"mqttq-sqlite:{self.path}")
        try:
            await thread.call(self._store.open)
        except BaseException:
            thread.stop()
            raise
        self._thread = thread

    async def aclose(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            try:
                await thread.call(self._store.close)
            finally:
                thread.stop()

    async def _call(self, fn: Callable[[], T]) -> T:
        if self._thread is None:
            raise SqliteQueueError(f"SQLite queue driver for {self.path} is not open")
        return await self._thread.call(fn)

    def _wake(self) -> None:
        self._generation += 1
        for fut in self._sleepers:
            if not fut.done():
                fut.set_result(None)

    async def _sleep(self, timeout: float, generation: int) -> None:
        """Sleep up to ``timeout`` unless woken (cheaper than ``wait_for(event.wait())``)."""
        if self._generation != generation:
            return
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        handle = loop.call_later(timeout, _set_none, fut)
        self._sleepers.add(fut)
        try:
            await fut
        finally:
            handle.cancel()
            self._sleepers.discard(fut)

    # -- producing ------------------------------------------------------------------------------

    async def push(self, jobs: Sequence[Envelope]) -> list[str]:
        if not jobs:
            return []
        ids = await self._call(partial(self._store.push, list(jobs)))
        self._wake()
        return ids

    # -- consuming ------------------------------------------------------------------------------

    def _poll(self, queues: list[str], n: int, lease: float) -> _Poll:
        """On the db thread: a read-only look first, so idle pollers never take the write lock."""
        ready, expired, due = self._store.probe(queues)
        if not (ready or expired):
            return [], due
        return self._store.claim(queues, n, lease, reap=expired), due

    async def _poll_once(self, queues: list[str], n: int, lease: float) -> _Poll:
        if self._thread is None:
            raise SqliteQueueError(f"SQLite queue driver for {self.path} is not open")
        fut = self._thread.submit(partial(self._poll, queues, n, lease))
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            # the claim still happens on the thread: give those jobs back rather than strand them
            fut.add_done_callback(self._release_orphans)
            raise

    def _release_orphans(self, fut: asyncio.Future[_Poll]) -> None:
        if fut.cancelled() or fut.exception() is not None or self._thread is None:
            return
        jobs = fut.result()[0]
        if jobs:
            self._thread.post(partial(self._store.release, [j.id for j in jobs]))

    async def claim(
        self, queues: Sequence[str], n: int, *, lease: float, wait: float = 0.0
    ) -> list[Envelope]:
        names = list(dict.fromkeys(queues))
        if n <= 0 or not names:
            return []
        poll_min, poll_max = self.options.poll_min, self.options.poll_max
        deadline = time.monotonic() + max(0.0, wait)
        interval = poll_min if self._active() else self.options.poll_idle
        due: float | None = None
        seen: int | None = None  # generation of our own wake-ups at the last look
        mark: int | None = None  # change mark read just before the last look
        while True:
            now_mark = self._store.change_mark()
            if (
                seen != self._generation
                or now_mark is None
                or now_mark != mark
                or (due is not None and time.time() >= due)
            ):
                seen, mark = self._generation, now_mark
                jobs, due = await self._poll_once(names, n, lease)
                if jobs:
                    self._claimed_at = time.monotonic()
                    return jobs
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            timeout = min(remaining, interval)
            if due is not None:
                timeout = min(timeout, max(poll_min, due - time.time()))
            await self._sleep(timeout, seen)
            interval = min(interval * 2, poll_max if self._active() else self.options.poll_idle)

    def _active(self) -> bool:
        """Whether a claim got jobs within the last :data:`IDLE_AFTER` seconds (commits that
        brought none, such as heartbeats, do not count)."""
        return time.monotonic() - self._claimed_at < IDLE_AFTER

    async def ack(self, ids: Sequence[str]) -> None:
        if ids:
            await self._call(partial(self._store.ack, list(ids)))

    async def extend(self, ids: Sequence[str], *, lease: float) -> None:
        if ids:
            await self._call(partial(self._store.extend, list(ids), lease))

    async def retry(self, job: Envelope, *, delay: float, error: str) -> None:
        await self._call(partial(self._store.retry, job, max(0.0, delay), error))
        self._wake()

    async def fail(self, job: Envelope, *, error: str, traceback: str = "") -> None:
        await self._call(partial(self._store.fail, job, error, traceback))

    async def release(self, ids: Sequence[str]) -> None:
        if ids:
            released: int = await self._call(partial(self._store.release, list(ids)))
            if released:
                self._wake()

    # -- inspecting -----------------------------------------------------------------------------

    async def stats(self) -> dict[str, QueueStats]:
        return await self._call(self._store.stats)

    async def size(self, queue: str) -> int:
        return await self._call(partial(self._store.size, queue))

    async def get_job(self, job_id: str) -> JobRecord | None:
        return await self._call(partial(self._store.get_job, job_id))

    # -- failed registry ------------------------------------------------------------------------

    async def failed_list(
        self, queue: str | None = None, *, offset: int = 0, limit: int = 100
    ) -> list[FailedJob]:
        return await self._call(partial(self._store.failed_list, queue, offset, limit))

    async def failed_get(self, job_id: str) -> FailedJob | None:
        return await self._call(partial(self._store.failed_get, job_id))

    async def failed_requeue(self, ids: Sequence[str]) -> int:
        if not ids:
            return 0
        moved = await self._call(partial(self._store.failed_requeue, list(ids)))
        if moved:
            self._wake()
        return moved

    async def failed_forget(self, ids: Sequence[str]) -> int:
        return await self._call(partial(self._store.failed_forget, list(ids)))

    async def failed_purge(self, queue: str | None = None) -> int:
        return await self._call(partial(self._store.failed_purge, queue))

    async def failed_ids(self, queue: str | None = None) -> list[str]:
        return await self._call(partial(self._store.failed_ids, queue))

    # -- cancellation and schedules ---------------------------------------------------------------

    async def cancel(self, job_id: str) -> CancelOutcome:
        return await self._call(partial(self._store.cancel, job_id))

    async def cancelled(self, ids: Sequence[str]) -> list[str]:
        if not ids:
            return []
        return await self._call(partial(self._store.cancelled, list(ids)))

    async def fire_schedule(self, name: str, slot: float, job: Envelope) -> str | None:
        job_id = await self._call(partial(self._store.fire_schedule, name, slot, job))
        if job_id is not None:
            self._wake()
        return job_id

    async def schedule_marks(self) -> dict[str, float]:
        return await self._call(self._store.schedule_marks)

    # -- workers --------------------------------------------------------------------------------

    async def worker_heartbeat(self, info: WorkerInfo, *, ttl: float) -> None:
        await self._call(partial(self._store.worker_heartbeat, info, ttl))

    async def worker_gone(self, worker_id: str) -> None:
        await self._call(partial(self._store.worker_gone, worker_id))

    async def workers(self) -> list[WorkerInfo]:
        return await self._call(self._store.workers)
