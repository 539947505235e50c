"""``memory://[name]``: an in-process queue driver for unit tests and experiments.

Drivers opened with the same name in one process share one store. Nothing survives the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from collections.abc import Sequence
from typing import Any, ClassVar, Self
from urllib.parse import urlsplit

import attrs

from mqttq.codec import decode_job, encode_job
from mqttq.errors import ConfigError, DriverError
from mqttq.interfaces import CancelOutcome, Capability, QueueDriver
from mqttq.models import Envelope, FailedJob, JobRecord, QueueStats, WorkerInfo


@attrs.define
class _Store:
    #: per queue, a heap of (available_at, seq, id); an entry is current only while
    #: ``heads[id] == seq`` (a job that moved leaves a stale entry behind, skipped on pop)
    waiting: dict[str, list[tuple[float, int, str]]] = attrs.field(factory=dict)
    heads: dict[str, int] = attrs.field(factory=dict)
    jobs: dict[str, Envelope] = attrs.field(factory=dict)  # waiting + reserved, by id
    reserved: dict[str, float] = attrs.field(factory=dict)  # id -> lease deadline
    places: dict[str, int] = attrs.field(factory=dict)  # reserved id -> its seq when claimed
    failed: dict[str, FailedJob] = attrs.field(factory=dict)
    cancelled: dict[str, tuple[Envelope, float]] = attrs.field(factory=dict)  # id -> (job, when)
    marks: dict[str, float] = attrs.field(factory=dict)  # schedule -> last fired slot
    unique: dict[str, str] = attrs.field(factory=dict)  # unique key -> live job id
    workers: dict[str, tuple[WorkerInfo, float]] = attrs.field(factory=dict)
    known_queues: set[str] = attrs.field(factory=set)
    seq: itertools.count[int] = attrs.field(factory=itertools.count)
    changed: asyncio.Event = attrs.field(factory=asyncio.Event)
    loop: asyncio.AbstractEventLoop | None = None

    def event(self) -> asyncio.Event:
        """The wake-up event of the running loop (a store may outlive a test's event loop)."""
        loop = asyncio.get_running_loop()
        if self.loop is not loop:
            self.changed, self.loop = asyncio.Event(), loop
        return self.changed


class MemoryQueueDriver(QueueDriver):
    schemes = ("memory",)
    capabilities = frozenset(Capability) - {Capability.DURABLE, Capability.MULTI_PROCESS}
    _stores: ClassVar[dict[str, _Store]] = {}

    def __init__(self, name: str = "", *, failed_ttl: float = 7 * 86400) -> None:
        self.name = name
        self.failed_ttl = failed_ttl
        self._s = self._stores.setdefault(name, _Store())

    @classmethod
    def from_url(cls, url: str, /, **options: Any) -> Self:
        parts = urlsplit(url)
        if parts.scheme != "memory":
            raise ConfigError(f"not a memory:// URL: {url!r}")
        unknown = set(options) - {"failed_ttl", "create"}
        if unknown:
            raise ConfigError(f"unknown memory driver option(s): {', '.join(sorted(unknown))}")
        options.pop("create", None)  # a memory store always exists (empty)
        return cls(parts.netloc + parts.path, **options)

    @classmethod
    def reset(cls, name: str = "") -> None:
        """Drop a named store (tests)."""
        cls._stores.pop(name, None)

    def _wake(self) -> None:
        self._s.event().set()

    def _wait(self, job: Envelope, seq: int | None = None) -> None:
        """Make ``job`` (stored in ``jobs``) waiting again: its one current heap entry. ``seq``
        gives a released or reaped job its old place back; without it the job goes last."""
        s = self._s
        if seq is None:
            seq = next(s.seq)
        s.heads[job.id] = seq
        heapq.heappush(s.waiting.setdefault(job.queue, []), (job.available_at, seq, job.id))

    def _enqueue(self, job: Envelope) -> None:
        s = self._s
        s.jobs[job.id] = job
        s.known_queues.add(job.queue)
        self._wait(job)
        if job.unique_key:
            s.unique[job.unique_key] = job.id

    def _forget(self, job_id: str) -> Envelope | None:
        s = self._s
        job = s.jobs.pop(job_id, None)
        s.reserved.pop(job_id, None)
        s.places.pop(job_id, None)
        s.heads.pop(job_id, None)
        if job is not None and job.unique_key and s.unique.get(job.unique_key) == job_id:
            del s.unique[job.unique_key]
        return job

    async def push(self, jobs: Sequence[Envelope]) -> list[str]:
        seen: set[str] = set()
        for job in jobs:  # validate the whole batch first: all or none
            if job.id in seen or job.id in self._s.jobs:
                raise DriverError(f"duplicate job id {job.id!r}: nothing was pushed")
            seen.add(job.id)
        copies = [decode_job(encode_job(job)) for job in jobs]  # what a store keeps: a copy
        ids = []
        for job in copies:
            live = self._s.unique.get(job.unique_key) if job.unique_key else None
            if live is not None:
                ids.append(live)
                continue
            self._enqueue(job)
            ids.append(job.id)
        self._wake()
        return ids

    def _reap(self, now: float) -> None:
        expired = [i for i, deadline in self._s.reserved.items() if deadline <= now]
        for job_id in expired:
            del self._s.reserved[job_id]
            self._wait(self._s.jobs[job_id], self._s.places.pop(job_id))

    def _take(self, queues: Sequence[str], n: int, lease: float) -> list[Envelope]:
        now = time.time()
        self._reap(now)
        out: list[Envelope] = []
        for queue in queues:
            heap = self._s.waiting.get(queue, [])
            while heap and len(out) < n and heap[0][0] <= now:
                _, seq, job_id = heapq.heappop(heap)
                if self._s.heads.get(job_id) != seq:
                    continue  # stale: the job moved since
                del self._s.heads[job_id]
                self._s.places[job_id] = seq
                job = self._s.jobs[job_id]
                job = attrs.evolve(job, attempts=job.attempts + 1)
                self._s.jobs[job_id] = job
                self._s.reserved[job_id] = now + lease
                out.append(job)
        return out

    def _head(self, queue: str) -> float | None:
        """When the first waiting job of ``queue`` is due (stale entries dropped)."""
        heap = self._s.waiting.get(queue)
        while heap and self._s.heads.get(heap[0][2]) != heap[0][1]:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def _next_due(self, queues: Sequence[str]) -> float | None:
        times = [t for q in queues if (t := self._head(q)) is not None]
        times += list(self._s.reserved.values())
        return min(times) if times else None

    async def claim(
        self, queues: Sequence[str], n: int, *, lease: float, wait: float = 0.0
    ) -> list[Envelope]:
        deadline = time.monotonic() + wait
        while True:
            changed = self._s.event()
            changed.clear()
            jobs = self._take(queues, n, lease)
            remaining = deadline - time.monotonic()
            if jobs or remaining <= 0:
                return jobs
            due = self._next_due(queues)
            if due is not None:
                remaining = min(remaining, max(0.001, due - time.time()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)

    async def ack(self, ids: Sequence[str]) -> None:
        for job_id in ids:
            self._forget(job_id)

    async def extend(self, ids: Sequence[str], *, lease: float) -> None:
        deadline = time.time() + lease
        for job_id in ids:
            if job_id in self._s.reserved:
                self._s.reserved[job_id] = deadline

    async def retry(self, job: Envelope, *, delay: float, error: str) -> None:
        if self._is_cancelled(job.id):
            return
        self._forget(job.id)
        self._enqueue(attrs.evolve(job, available_at=time.time() + delay, last_error=error))
        self._wake()

    async def fail(self, job: Envelope, *, error: str, traceback: str = "") -> None:
        if self._is_cancelled(job.id):
            return
        self._forget(job.id)
        self._s.known_queues.add(job.queue)
        entry = FailedJob(job=attrs.evolve(job, last_error=error), error=error, traceback=traceback)
        self._s.failed.pop(job.id, None)  # a replaced entry is the latest failure
        self._s.failed[job.id] = entry

    async def release(self, ids: Sequence[str]) -> None:
        for job_id in ids:
            if self._s.reserved.pop(job_id, None) is None:
                continue
            job = self._s.jobs[job_id]
            job = attrs.evolve(job, attempts=max(0, job.attempts - 1))
            self._s.jobs[job_id] = job
            self._wait(job, self._s.places.pop(job_id))  # back to its place at the front
        self._wake()

    def _expire_failed(self) -> None:
        cutoff = time.time() - self.failed_ttl
        for job_id in [i for i, f in self._s.failed.items() if f.failed_at < cutoff]:
            del self._s.failed[job_id]

    async def stats(self) -> dict[str, QueueStats]:
        self._expire_failed()
        now = time.time()
        self._reap(now)
        out = {}
        for queue in sorted(self._s.known_queues):
            jobs = [j for j in self._s.jobs.values() if j.queue == queue]
            reserved = sum(1 for j in jobs if j.id in self._s.reserved)
            ready = [j for j in jobs if j.id not in self._s.reserved and j.available_at <= now]
            out[queue] = QueueStats(
                ready=len(ready),
                delayed=len(jobs) - reserved - len(ready),
                reserved=reserved,
                failed=sum(1 for f in self._s.failed.values() if f.job.queue == queue),
                oldest_ready_age=now - min(j.available_at for j in ready) if ready else None,
            )
        return out

    async def get_job(self, job_id: str) -> JobRecord | None:
        self._expire_failed()
        if job_id in self._s.failed:
            f = self._s.failed[job_id]
            return JobRecord(job=f.job, state="failed", error=f.error, traceback=f.traceback)
        job = self._s.jobs.get(job_id)
        if job is None:
            if self._is_cancelled(job_id):
                return JobRecord(job=self._s.cancelled[job_id][0], state="cancelled")
            return None
        self._reap(time.time())
        if job_id in self._s.reserved:
            return JobRecord(job=job, state="reserved", lease_expires_at=self._s.reserved[job_id])
        return JobRecord(job=job, state="ready" if job.available_at <= time.time() else "delayed")

    def _failed_sorted(self, queue: str | None) -> list[FailedJob]:
        self._expire_failed()
        entries = [f for f in self._s.failed.values() if queue is None or f.job.queue == queue]
        return sorted(entries, key=lambda f: f.failed_at)

    async def failed_list(
        self, queue: str | None = None, *, offset: int = 0, limit: int = 100
    ) -> list[FailedJob]:
        return list(reversed(self._failed_sorted(queue)))[offset : offset + limit]

    async def failed_get(self, job_id: str) -> FailedJob | None:
        self._expire_failed()
        return self._s.failed.get(job_id)

    async def failed_requeue(self, ids: Sequence[str]) -> int:
        moved = 0
        now = time.time()
        for job_id in ids:
            entry = self._s.failed.pop(job_id, None)
            if entry is not None:
                self._enqueue(attrs.evolve(entry.job, attempts=0, available_at=now))
                moved += 1
        self._wake()
        return moved

    async def failed_forget(self, ids: Sequence[str]) -> int:
        return sum(self._s.failed.pop(i, None) is not None for i in ids)

    async def failed_purge(self, queue: str | None = None) -> int:
        ids = [f.id for f in self._failed_sorted(queue)]
        return await self.failed_forget(ids)

    async def failed_ids(self, queue: str | None = None) -> list[str]:
        return [f.id for f in self._failed_sorted(queue)]

    # -- cancellation ---------------------------------------------------------------------------

    def _is_cancelled(self, job_id: str) -> bool:
        entry = self._s.cancelled.get(job_id)
        if entry is None:
            return False
        if entry[1] < time.time() - self.failed_ttl:
            del self._s.cancelled[job_id]
            return False
        return True

    async def cancel(self, job_id: str) -> CancelOutcome:
        s = self._s
        if self._is_cancelled(job_id):
            return "already"
        job = s.jobs.get(job_id)
        if job is None:
            self._expire_failed()
            return "failed" if job_id in s.failed else "unknown"
        now = time.time()
        running = s.reserved.get(job_id, now) > now  # an expired lease counts as waiting
        self._forget(job_id)
        s.cancelled[job_id] = (job, now)
        return "stopping" if running else "cancelled"

    async def cancelled(self, ids: Sequence[str]) -> list[str]:
        return [job_id for job_id in ids if self._is_cancelled(job_id)]

    # -- schedules --------------------------------------------------------------------------------

    async def fire_schedule(self, name: str, slot: float, job: Envelope) -> str | None:
        mark = self._s.marks.get(name)
        if mark is not None and slot <= mark:
            return None
        [job_id] = await self.push([job])  # raises before anything changes: the mark too
        self._s.marks[name] = slot
        return job_id

    async def schedule_marks(self) -> dict[str, float]:
        return dict(self._s.marks)

    # -- workers ----------------------------------------------------------------------------------

    async def worker_heartbeat(self, info: WorkerInfo, *, ttl: float) -> None:
        self._s.workers[info.id] = (info, time.time() + ttl)

    async def worker_gone(self, worker_id: str) -> None:
        self._s.workers.pop(worker_id, None)

    async def workers(self) -> list[WorkerInfo]:
        now = time.time()
        return [info for info, expires in self._s.workers.values() if expires > now]
