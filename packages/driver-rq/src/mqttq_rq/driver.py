"""``RqQueueDriver``: mqttq's queue API on RQ's data in Redis (push-only: RQ's workers run jobs).

A pushed job becomes an RQ job in the RQ queue named by ``Envelope.queue``: function
:data:`mqttq_rq.ENTRY`, one argument (the envelope as plain JSON), RQ's JSON serializer. A push is
one Lua script run through a redis.asyncio client (one round trip, atomic: every job of the batch
or none), which writes exactly what RQ's enqueue writes (the queue's list for ready jobs, RQ's
scheduled-job registry for delayed ones; see :mod:`mqttq_rq._push`); a unique key becomes a
deterministic RQ job id. ``stats``, ``get_job`` and the failed registry read RQ's own registries;
those redis-py calls run on a small thread pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import math
import re
import time
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, ClassVar, Self, TypeVar

import attrs
import redis
from redis import exceptions as rx
from rq.job import JobStatus
from rq.registry import (
    FailedJobRegistry,
    FinishedJobRegistry,
    ScheduledJobRegistry,
    StartedJobRegistry,
)
from rq.results import Result
from rq.serializers import JSONSerializer
from rq.utils import utcformat, utcparse

from mqttq.plugin import (
    Capability,
    DriverError,
    Envelope,
    FailedJob,
    JobRecord,
    MqttqError,
    PayloadError,
    QueueDriver,
    QueueStats,
    WorkerInfo,
    dumps,
    loads,
)
from mqttq_rq import ENTRY, _push, _url
from mqttq_rq._errors import RqDriverError, translate
from mqttq_rq.job import META, Queue, envelope_of, plain

T = TypeVar("T")

_ID = re.compile(r"[A-Za-z0-9_-]+")
#: mqttq's own keys beside RQ's: the heartbeats of ``worker_heartbeat`` (not RQ workers)
HEARTBEATS, HEARTBEAT_EXPIRY = "mqttq-rq:workers", "mqttq-rq:workers:expiry"


def unique_id(key: str) -> str:
    """The RQ job id of the job holding unique ``key``: the same for every producer."""
    return "u-" + hashlib.blake2b(key.encode(), digest_size=16).hexdigest()


def _reg(cls: Any, name: str) -> str:
    return str(cls.key_template.format(name))


def _ts(value: bytes | None) -> float | None:
    if not value:
        return None
    try:
        return utcparse(value.decode()).replace(tzinfo=UTC).timestamp()
    except (ValueError, UnicodeDecodeError):
        return None


def _json(value: bytes | None) -> Any:
    """JSON from a hash field (never anything else); ``None`` when it is not JSON."""
    if not value:
        return None
    try:
        return json.loads(value.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None


def _json_bytes(value: Any) -> bytes:
    """``value`` as RQ's JSON serializer writes it."""
    return json.dumps(value).encode("utf-8")


def _results_key(job_id: str) -> str:
    return str(Result.get_key(job_id))  # type: ignore[no-untyped-call]


def _decompressed(value: bytes | None) -> bytes:
    if not value:
        return b""
    try:
        return zlib.decompress(value)
    except zlib.error:
        return bytes(value)


@attrs.frozen
class _Stored:
    """One RQ job hash as mqttq sees it."""

    envelope: Envelope
    raw: bytes | None  #: the stored data when it is not an mqttq envelope
    meta: dict[str, Any]
    status: bytes
    origin: str


def read_hash(job_id: str, h: dict[bytes, bytes]) -> _Stored:
    """An RQ job hash as an envelope (attempts and last error from mqttq's meta), or a stand-in
    with the raw data when it is not one. Nothing but JSON is ever decoded."""
    origin = (h.get(b"origin") or b"").decode("utf-8", "replace")
    meta_all = _json(h.get(b"meta"))
    meta = meta_all.get(META) if isinstance(meta_all, dict) else None
    meta = meta if isinstance(meta, dict) else {}
    data = _decompressed(h.get(b"data"))
    value = _json(data)
    raw: bytes | None = data
    name = ""
    envelope: Envelope | None = None
    if isinstance(value, list) and len(value) == 4:
        func, instance, args, kwargs = value
        name = func if isinstance(func, str) else ""
        job_like = isinstance(args, list) and len(args) == 1 and not kwargs
        if func == ENTRY and instance is None and job_like:
            try:
                envelope = envelope_of(args[0])
            except PayloadError:
                envelope = None
    if envelope is not None:
        raw = None
        changes: dict[str, Any] = {"id": job_id}
        if "attempts" in meta:
            changes["attempts"] = int(meta["attempts"])
        if meta.get("error"):
            changes["last_error"] = str(meta["error"])
        envelope = attrs.evolve(envelope, **changes)
    else:
        envelope = Envelope(id=job_id, name=name, queue=origin or "default")
    return _Stored(
        envelope=envelope, raw=raw, meta=meta, status=h.get(b"status") or b"", origin=origin
    )


class RqQueueDriver(QueueDriver):
    """mqttq jobs as RQ jobs. See the module docstring and ``docs/rq.md``."""

    schemes: ClassVar[tuple[str, ...]] = tuple(_url.SCHEMES)
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.DELAY,
            Capability.DURABLE,
            Capability.UNIQUE,
            Capability.FAILED_REGISTRY,
            Capability.WORKERS,
            Capability.MULTI_PROCESS,
        }
    )

    def __init__(self, settings: _url.Settings) -> None:
        self.settings = settings
        self._redis: redis.Redis | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._queues: dict[str, Queue] = {}
        self._clients: _push.LoopClients | None = None  #: push's redis.asyncio clients
        self._writer: _push.Writer | None = None

    @classmethod
    def from_url(cls, url: str, /, **options: Any) -> Self:
        return cls(_url.parse(url, options))

    @property
    def url(self) -> str:
        return self.settings.display_url

    async def open(self) -> None:
        if self._redis is None:
            self._redis = self.connect(self.settings)
            self._pool = ThreadPoolExecutor(4, thread_name_prefix="mqttq-rq")
            self._clients = _push.LoopClients(
                self.settings.redis_url, socket_connect_timeout=5.0, socket_timeout=30.0
            )

    @staticmethod
    def connect(settings: _url.Settings) -> redis.Redis:
        """A redis-py client for the URL (no I/O until used)."""
        return redis.Redis.from_url(
            settings.redis_url, socket_connect_timeout=5.0, socket_timeout=30.0
        )

    async def aclose(self) -> None:
        clients, self._clients = self._clients, None
        if clients is not None:
            with contextlib.suppress(rx.RedisError, OSError):
                await clients.aclose()
        client, self._redis = self._redis, None
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        if client is not None:
            client.close()

    @property
    def client(self) -> redis.Redis:
        """The open redis-py client."""
        if self._redis is None:
            raise DriverError("the rq driver is not open: use `async with driver:`")
        return self._redis

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking RQ/redis-py operation on the driver's threads, errors translated."""
        client = self.client
        assert self._pool is not None
        call = functools.partial(self._translated, fn, client, *args)
        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    def _translated(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return fn(*args)
        except (rx.RedisError, OSError) as exc:
            raise translate(exc, self.url) from exc
        except MqttqError:
            raise
        except Exception as exc:  # RQ raises plain exceptions (ValueError, NoSuchJobError...)
            raise RqDriverError(f"RQ refused the operation on {self.url}: {exc}") from exc

    def queue(self, client: Any, name: str) -> Queue:
        q = self._queues.get(name)
        if q is None:
            q = self._queues[name] = Queue(name, connection=client)
        return q

    def _queue_names(self, client: Any) -> list[str]:
        prefix = Queue.redis_queue_namespace_prefix
        names = []
        for key in client.smembers(Queue.redis_queues_keys):
            text = key.decode("utf-8", "replace")
            if text.startswith(prefix):
                names.append(text[len(prefix) :])
        return sorted(names)

    # -- producing ------------------------------------------------------------------------------

    async def push(self, jobs: Sequence[Envelope]) -> list[str]:
        if not jobs:
            return []
        client = self.client  # DriverError when not open
        assert self._clients is not None
        try:
            ids, planned = self._plan(list(jobs))
            if self._writer is None:
                self._writer = _push.Writer(
                    client,
                    result_ttl=self.settings.result_ttl,
                    failure_ttl=math.ceil(self.settings.failed_ttl),
                )
            args = self._writer.args(planned, time.time())
        except MqttqError:
            raise
        except Exception as exc:  # a value RQ's JSON serializer or Redis cannot take
            raise RqDriverError(f"cannot store the jobs on {self.url}: {exc}") from exc
        try:
            loop_client = await self._clients.get()
            if loop_client is None:  # this loop's first push: the pool's connections
                refused = await self._run(_push.run_blocking, args)
            else:
                refused = await _push.run(loop_client, args)
        except (rx.RedisError, OSError) as exc:
            raise translate(exc, self.url) from exc
        except (TypeError, ValueError) as exc:  # an option redis.asyncio does not take
            raise RqDriverError(f"cannot connect to Redis at {self.url}: {exc}") from exc
        if refused:
            raise RqDriverError(
                f"job id {planned[refused - 1][0].id!r} is already queued, scheduled or "
                "running: nothing stored"
            )
        return ids

    def _plan(self, jobs: list[Envelope]) -> tuple[list[str], list[tuple[Envelope, bool]]]:
        """The ids push returns and the jobs to store (with whether each has a unique key)."""
        ids: list[str] = []
        planned: list[tuple[Envelope, bool]] = []
        seen: set[str] = set()
        keys: dict[str, str] = {}
        for job in jobs:
            key = job.unique_key or None
            if key is not None:
                if key in keys:
                    ids.append(keys[key])
                    continue
                job = attrs.evolve(job, id=unique_id(key))
                keys[key] = job.id
            if job.id in seen:
                raise RqDriverError(f"job id {job.id!r} appears twice in one push: nothing stored")
            if not _ID.fullmatch(job.id):
                raise RqDriverError(
                    f"job id {job.id!r} is not a valid RQ job id (letters, digits, _ and - "
                    "only): nothing stored"
                )
            seen.add(job.id)
            planned.append((job, key is not None))
            ids.append(job.id)
        return ids, planned

    def _job_options(self, job: Envelope) -> dict[str, Any]:
        return {
            "job_id": job.id,
            "timeout": max(1, math.ceil(job.timeout)) if job.timeout else None,
            "result_ttl": self.settings.result_ttl,
            "failure_ttl": math.ceil(self.settings.failed_ttl),
            "description": f"mqttq {job.name}",
            "meta": {META: {"attempts": job.attempts}},
        }

    # -- failing (the listener's poison, kept in RQ's failed registry) --------------------------

    async def fail(self, job: Envelope, *, error: str, traceback: str = "") -> None:
        await self._run(self._fail, job, error, traceback)

    def _fail(self, client: Any, job: Envelope, error: str, tb: str) -> None:
        if not _ID.fullmatch(job.id):
            raise RqDriverError(f"job id {job.id!r} is not a valid RQ job id")
        now = time.time()
        ttl = math.ceil(self.settings.failed_ttl)
        key = Queue.job_class.key_for(job.id)
        old = client.hget(key, "origin")
        q = self.queue(client, job.queue)
        meta = {"attempts": job.attempts, "error": error, "traceback": tb, "failed_at": now}
        options = {**self._job_options(job), "failure_ttl": ttl, "meta": {META: meta}}
        rq_job = q.create_job(ENTRY, args=[plain(attrs.evolve(job, last_error=error))], **options)
        rq_job.origin = job.queue
        rq_job.ended_at = datetime.fromtimestamp(now, UTC)
        with client.pipeline(transaction=True) as pipe:
            if old is not None:
                self._forget_everywhere(pipe, job.id, old.decode("utf-8", "replace"))
            rq_job.set_status(JobStatus.FAILED, pipeline=pipe)
            rq_job.save(pipeline=pipe)
            pipe.expire(key, ttl)
            pipe.zadd(_reg(FailedJobRegistry, job.queue), {job.id: now + ttl})
            pipe.sadd(Queue.redis_queues_keys, q.key)
            Result.create_failure(rq_job, ttl, tb or error, pipeline=pipe)
            pipe.execute()

    @staticmethod
    def _forget_everywhere(pipe: Any, job_id: str, origin: str) -> None:
        """Take ``job_id`` out of every place RQ may hold it for queue ``origin``."""
        pipe.lrem(Queue.redis_queue_namespace_prefix + origin, 0, job_id)
        for cls in (ScheduledJobRegistry, FailedJobRegistry, FinishedJobRegistry):
            pipe.zrem(_reg(cls, origin), job_id)
        pipe.delete(Queue.job_class.key_for(job_id), _results_key(job_id))

    # -- inspecting -------------------------------------------------------------------------------

    async def stats(self) -> dict[str, QueueStats]:
        return await self._run(self._stats)

    def _stats(self, client: Any) -> dict[str, QueueStats]:
        names = self._queue_names(client)
        now = time.time()
        with client.pipeline(transaction=False) as pipe:
            for name in names:
                scheduled = _reg(ScheduledJobRegistry, name)
                started = _reg(StartedJobRegistry, name)
                pipe.llen(Queue.redis_queue_namespace_prefix + name)
                pipe.zcount(scheduled, "-inf", now)
                pipe.zcount(scheduled, f"({now}", "+inf")
                pipe.zcount(started, f"({now}", "+inf")
                pipe.zcount(started, "-inf", now)
                pipe.zcount(_reg(FailedJobRegistry, name), f"({now}", "+inf")
                pipe.lindex(Queue.redis_queue_namespace_prefix + name, 0)
                pipe.zrangebyscore(scheduled, "-inf", now, start=0, num=1, withscores=True)
            replies = pipe.execute()
        rows = [replies[i : i + 8] for i in range(0, len(replies), 8)]
        with client.pipeline(transaction=False) as pipe:
            for row in rows:
                pipe.hget(
                    Queue.job_class.key_for(row[6].decode()) if row[6] else "-", "enqueued_at"
                )
            heads = pipe.execute()
        out: dict[str, QueueStats] = {}
        for name, row, head in zip(names, rows, heads, strict=True):
            queued, due, later, running, abandoned, failed, _, first_due = row
            ages = []
            if (since := _ts(head)) is not None:
                ages.append(now - since)
            if first_due:
                ages.append(now - first_due[0][1])
            ready = queued + due + abandoned
            out[name] = QueueStats(
                ready=ready,
                delayed=later,
                reserved=running,
                failed=failed,
                oldest_ready_age=max(0.0, max(ages)) if ready and ages else None,
            )
        return out

    async def get_job(self, job_id: str) -> JobRecord | None:
        return await self._run(self._get_job, job_id)

    def _get_job(self, client: Any, job_id: str) -> JobRecord | None:
        if not _ID.fullmatch(job_id):
            return None
        h = client.hgetall(Queue.job_class.key_for(job_id))
        if not h:
            return None
        stored = read_hash(job_id, h)
        status, origin, now = stored.status.decode(), stored.origin, time.time()
        job = stored.envelope
        if status == JobStatus.QUEUED.value:
            return JobRecord(job=job, state="ready")
        if status in (JobStatus.SCHEDULED.value, JobStatus.DEFERRED.value):
            score = client.zscore(_reg(ScheduledJobRegistry, origin), job_id)
            due = score is not None and score <= now
            return JobRecord(job=job, state="ready" if due else "delayed")
        if status == JobStatus.STARTED.value:
            entries = client.zrange(_reg(StartedJobRegistry, origin), 0, -1, withscores=True)
            leases = [s for m, s in entries if m.decode().split(":")[0] == job_id]
            lease = max(leases) if leases else None
            if lease is None or lease <= now:
                return JobRecord(job=job, state="ready")  # abandoned: waiting for RQ's clean-up
            return JobRecord(job=job, state="reserved", lease_expires_at=lease)
        if status in (JobStatus.FAILED.value, JobStatus.STOPPED.value):
            entry = self._failed_entry(client, job_id, origin, h)
            if entry is None:
                return None
            return JobRecord(
                job=entry.job, state="failed", error=entry.error, traceback=entry.traceback
            )
        return None  # finished, canceled: done

    # -- failed registry --------------------------------------------------------------------------

    def _failed_scores(self, client: Any, queue: str | None) -> list[tuple[str, float]]:
        """(job id, score) of every live entry of the failed registries (of ``queue``)."""
        names = [queue] if queue is not None else self._queue_names(client)
        now = time.time()
        with client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.zrangebyscore(
                    _reg(FailedJobRegistry, name), f"({now}", "+inf", withscores=True
                )
            replies = pipe.execute()
        return [(m.decode(), s) for reply in replies for m, s in reply]

    def _failed_entry(
        self, client: Any, job_id: str, origin: str, h: dict[bytes, bytes]
    ) -> FailedJob | None:
        score = client.zscore(_reg(FailedJobRegistry, origin), job_id)
        if score is None or score <= time.time():
            return None
        return self._as_failed(client, job_id, h, score)

    def _as_failed(
        self, client: Any, job_id: str, h: dict[bytes, bytes], score: float
    ) -> FailedJob:
        stored = read_hash(job_id, h)
        meta = stored.meta
        error, tb = meta.get("error"), meta.get("traceback")
        if not error or tb is None:
            exc = self._latest_exc(client, job_id)
            tb = tb if tb is not None else exc
            lines = [line for line in exc.strip().splitlines() if line.strip()]
            error = error or (lines[-1].strip() if lines else "failed")
        failed_at = meta.get("failed_at")
        if not isinstance(failed_at, int | float):
            ttl = h.get(b"failure_ttl")
            failed_at = score - float(ttl) if ttl else (_ts(h.get(b"ended_at")) or score)
        job = (
            attrs.evolve(stored.envelope, last_error=str(error))
            if stored.raw is None
            else (stored.envelope)
        )
        return FailedJob(
            job=job, error=str(error), traceback=str(tb or ""), failed_at=float(failed_at),
            raw=stored.raw,
        )  # fmt: skip

    def _latest_exc(self, client: Any, job_id: str) -> str:
        job = Queue.job_class(job_id, connection=client)
        try:
            result = Result.fetch_latest(job, serializer=JSONSerializer)
        except Exception:  # an unreadable result: no traceback to show
            return ""
        return str(getattr(result, "exc_string", "") or "") if result is not None else ""

    async def failed_list(
        self, queue: str | None = None, *, offset: int = 0, limit: int = 100
    ) -> list[FailedJob]:
        return await self._run(self._failed_list, queue, offset, limit)

    def _failed_list(
        self, client: Any, queue: str | None, offset: int, limit: int
    ) -> list[FailedJob]:
        entries = sorted(self._failed_scores(client, queue), key=lambda e: (e[1], e[0]))
        page = entries[::-1][offset : offset + limit]
        with client.pipeline(transaction=False) as pipe:
            for job_id, _ in page:
                pipe.hgetall(Queue.job_class.key_for(job_id))
            hashes = pipe.execute()
        return [
            self._as_failed(client, job_id, h, score)
            for (job_id, score), h in zip(page, hashes, strict=True)
            if h
        ]

    async def failed_get(self, job_id: str) -> FailedJob | None:
        return await self._run(self._failed_get, job_id)

    def _failed_get(self, client: Any, job_id: str) -> FailedJob | None:
        if not _ID.fullmatch(job_id):
            return None
        h = client.hgetall(Queue.job_class.key_for(job_id))
        if not h:
            return None
        return self._failed_entry(client, job_id, (h.get(b"origin") or b"").decode(), h)

    async def failed_ids(self, queue: str | None = None) -> list[str]:
        return await self._run(self._failed_ids, queue)

    def _failed_ids(self, client: Any, queue: str | None) -> list[str]:
        return [
            i for i, _ in sorted(self._failed_scores(client, queue), key=lambda e: (e[1], e[0]))
        ]

    def _located(self, client: Any, ids: Sequence[str]) -> list[tuple[str, dict[bytes, bytes]]]:
        """The failed entries (id, job hash) among ``ids`` that are live."""
        wanted = [i for i in dict.fromkeys(ids) if _ID.fullmatch(i)]
        with client.pipeline(transaction=False) as pipe:
            for job_id in wanted:
                pipe.hgetall(Queue.job_class.key_for(job_id))
            hashes = pipe.execute()
        now = time.time()
        found = []
        for job_id, h in zip(wanted, hashes, strict=True):
            if not h:
                continue
            origin = (h.get(b"origin") or b"").decode()
            score = client.zscore(_reg(FailedJobRegistry, origin), job_id)
            if score is not None and score > now:
                found.append((job_id, h))
        return found

    async def failed_requeue(self, ids: Sequence[str]) -> int:
        return await self._run(self._failed_requeue, list(ids))

    def _failed_requeue(self, client: Any, ids: list[str]) -> int:
        moved = 0
        with client.pipeline(transaction=True) as pipe:
            for job_id, h in self._located(client, ids):
                stored = read_hash(job_id, h)
                if stored.raw is not None:
                    continue  # not an envelope: never requeued
                origin = stored.origin
                key = Queue.job_class.key_for(job_id)
                pipe.zrem(_reg(FailedJobRegistry, origin), job_id)
                pipe.hdel(key, "retries_left", "retry_intervals", "number_of_retries", "exc_info")
                pipe.hset(
                    key,
                    mapping={
                        "status": JobStatus.QUEUED.value,
                        "enqueued_at": utcformat(datetime.now(UTC)),
                        "meta": _json_bytes({META: {"attempts": 0}}),
                        "started_at": "",
                        "ended_at": "",
                    },
                )
                pipe.persist(key)
                pipe.rpush(Queue.redis_queue_namespace_prefix + origin, job_id)
                pipe.sadd(Queue.redis_queues_keys, Queue.redis_queue_namespace_prefix + origin)
                moved += 1
            pipe.execute()
        return moved

    async def failed_forget(self, ids: Sequence[str]) -> int:
        return await self._run(self._failed_forget, list(ids))

    def _failed_forget(self, client: Any, ids: list[str]) -> int:
        found = self._located(client, ids)
        with client.pipeline(transaction=True) as pipe:
            for job_id, h in found:
                origin = (h.get(b"origin") or b"").decode()
                pipe.zrem(_reg(FailedJobRegistry, origin), job_id)
                pipe.delete(Queue.job_class.key_for(job_id), _results_key(job_id))
            pipe.execute()
        return len(found)

    async def failed_purge(self, queue: str | None = None) -> int:
        return await self._run(self._failed_purge, queue)

    def _failed_purge(self, client: Any, queue: str | None) -> int:
        names = [queue] if queue is not None else self._queue_names(client)
        now = time.time()
        count = 0
        for name in names:
            registry = _reg(FailedJobRegistry, name)
            entries = client.zrange(registry, 0, -1, withscores=True)
            if not entries:
                continue
            with client.pipeline(transaction=True) as pipe:
                for member, _ in entries:
                    job_id = member.decode()
                    pipe.delete(Queue.job_class.key_for(job_id), _results_key(job_id))
                pipe.zrem(registry, *(m for m, _ in entries))
                pipe.execute()
            count += sum(1 for _, score in entries if score > now)
        return count

    # -- workers: RQ's worker registry, and heartbeats given to worker_heartbeat ------------------

    async def worker_heartbeat(self, info: WorkerInfo, *, ttl: float) -> None:
        await self._run(self._heartbeat, info, ttl)

    def _heartbeat(self, client: Any, info: WorkerInfo, ttl: float) -> None:
        with client.pipeline(transaction=True) as pipe:
            pipe.hset(HEARTBEATS, info.id, dumps(info))
            pipe.zadd(HEARTBEAT_EXPIRY, {info.id: time.time() + ttl})
            pipe.execute()

    async def worker_gone(self, worker_id: str) -> None:
        await self._run(self._gone, worker_id)

    def _gone(self, client: Any, worker_id: str) -> None:
        with client.pipeline(transaction=True) as pipe:
            pipe.hdel(HEARTBEATS, worker_id)
            pipe.zrem(HEARTBEAT_EXPIRY, worker_id)
            pipe.execute()

    async def workers(self) -> list[WorkerInfo]:
        return await self._run(self._workers)

    def _workers(self, client: Any) -> list[WorkerInfo]:
        return rq_workers(client) + self._heartbeats(client)

    def _heartbeats(self, client: Any) -> list[WorkerInfo]:
        now = time.time()
        expired = client.zrangebyscore(HEARTBEAT_EXPIRY, "-inf", now)
        if expired:
            client.zrem(HEARTBEAT_EXPIRY, *expired)
            client.hdel(HEARTBEATS, *expired)
        live = client.zrangebyscore(HEARTBEAT_EXPIRY, f"({now}", "+inf")
        if not live:
            return []
        return [loads(v, WorkerInfo) for v in client.hmget(HEARTBEATS, live) if v is not None]


def rq_workers(client: Any) -> list[WorkerInfo]:
    """The live workers of RQ's worker registry, as mqttq shows workers (one job at a time)."""
    from rq.worker_registration import REDIS_WORKER_KEYS

    keys = sorted(client.smembers(REDIS_WORKER_KEYS))
    with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.hgetall(key)
        hashes = pipe.execute()
    out = []
    for key, h in zip(keys, hashes, strict=True):
        if not h or h.get(b"death"):
            continue
        name = bytes(key).decode().rpartition(":")[2]
        started = _ts(h.get(b"birth")) or 0.0
        out.append(
            WorkerInfo(
                id=name,
                hostname=(h.get(b"hostname") or b"").decode(),
                pid=int(h.get(b"pid") or 0),
                queues=[q for q in (h.get(b"queues") or b"").decode().split(",") if q],
                concurrency=1,
                started_at=started,
                heartbeat_at=_ts(h.get(b"last_heartbeat")) or started,
                processed=int(h.get(b"successful_job_count") or 0),
                failed=int(h.get(b"failed_job_count") or 0),
                running=1 if h.get(b"state") == b"busy" else 0,
            )
        )
    return out
