"""``redis://``, ``rediss://``, ``unix://``: the scale-out queue driver on redis.asyncio.

Every state change runs as one Lua script (see :mod:`mqttq_redis._scripts` for the key layout),
so concurrent workers in any number of processes can never both hold a live lease on a job.
While Redis is unreachable an operation retries with bounded exponential backoff for
``retry_for`` seconds before raising ``DriverUnavailable``; a Redis restart is a pause, not a crash.
A stored envelope that cannot be decoded is never handed out: a claim that meets one moves it to
the failed registry with its bytes as they are and goes on with the jobs behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Self, TypeVar, get_args

import attrs
import orjson
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from mqttq.plugin import (
    CancelOutcome,
    Capability,
    DriverError,
    Envelope,
    FailedJob,
    JobRecord,
    Outage,
    PayloadError,
    QueueDriver,
    QueueStats,
    RetryPolicy,
    WorkerInfo,
    decode_job,
    dumps,
    encode_job,
    loads,
    retry,
)
from mqttq_redis import _errors, _url
from mqttq_redis._scripts import PRELUDE, SCRIPTS

log = logging.getLogger(__name__)
T = TypeVar("T")

#: expired leases put back per queue and claim (bounds one script's run time)
_MOVE_LIMIT = 1000
#: ids per script call for bulk operations on the failed registry
_CHUNK = 500
#: retries while Redis is unreachable (up to ``retry_for`` seconds in all)
_RECONNECT = RetryPolicy(first=0.05, max=1.0)
#: what the cancel script may answer
_OUTCOMES: frozenset[str] = frozenset(get_args(CancelOutcome))


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _num(value: bytes | str | int) -> float:
    return float(_s(value)) if not isinstance(value, int) else float(value)


def _count(value: bytes | str | int | None) -> int:
    """A stored attempt count; 0 when missing or unreadable."""
    try:
        return int(_num(value or 0))
    except (ValueError, OverflowError):
        return 0


def _undecodable(problem: PayloadError) -> str:
    return f"cannot decode job envelope: {problem}"


def _stand_in(job_id: str, queue: str, attempts: int, raw: bytes, when: float) -> Envelope:
    """Stands in for a job whose stored envelope cannot be decoded: its id, queue, attempts and,
    when the bytes are a JSON object with a string ``name``, that name. Nothing else is read."""
    name = "<undecodable>"
    with contextlib.suppress(orjson.JSONDecodeError):
        data = orjson.loads(raw)
        if isinstance(data, dict) and isinstance(data.get("name"), str):
            name = data["name"]
    return Envelope(
        id=job_id, name=name, queue=queue, attempts=attempts, enqueued_at=when, available_at=when
    )


class RedisQueueDriver(QueueDriver):
    """Queue driver on Redis sorted sets and Lua scripts (Redis >= 6.2)."""

    schemes = _url.SCHEMES
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

    def __init__(self, settings: _url.Settings) -> None:
        self.settings = settings
        self.prefix = settings.prefix
        self.url = settings.display_url
        self._redis: aioredis.Redis | None = None
        self._scripts: dict[str, AsyncScript] = {}
        self._outage = Outage(
            "Redis queue", log, describe=lambda exc: str(_errors.unavailable(exc, self.url))
        )

    @classmethod
    def from_url(cls, url: str, /, **options: Any) -> Self:
        """``redis://[user:password@]host[:port][/db][?prefix=app1:&failed_ttl=...]``.

        Options (query string or keywords): ``prefix`` (default ``mqttq:``), ``failed_ttl``
        (seconds), ``retry_for`` (seconds an operation retries while Redis is unreachable),
        ``max_block`` (longest single blocking wait); ``create`` is accepted and ignored (there
        is no storage to create). Other query parameters go to redis-py (``socket_timeout``,
        ``ssl_ca_certs``...); unknown ones and bad values are a ``ConfigError`` here.
        """
        return cls(_url.parse(url, options))

    # -- lifecycle ----------------------------------------------------------------------------

    async def open(self) -> None:
        if self._redis is not None:
            return
        kwargs: dict[str, Any] = {
            "retry": Retry(NoBackoff(), 0),
            "socket_timeout": max(15.0, self.settings.max_block + 5.0),
        }
        if not self.settings.redis_url.startswith("unix:"):
            kwargs["socket_keepalive"] = True
        try:
            pool = aioredis.ConnectionPool.from_url(self.settings.redis_url, **kwargs)
        except (ValueError, TypeError) as exc:
            raise _errors.bad_option(exc, self.url) from None
        client = aioredis.Redis.from_pool(pool)  # the client owns the pool: aclose() closes it
        try:
            await client.ping()
        except (RedisError, OSError) as exc:
            with contextlib.suppress(RedisError, OSError):
                await client.aclose()
            raise _errors.translate(exc, self.url) from None
        except (TypeError, ValueError, LookupError) as exc:  # an option redis-py refuses
            with contextlib.suppress(RedisError, OSError):
                await client.aclose()
            raise _errors.bad_option(exc, self.url) from None
        self._scripts = {
            name: client.register_script(PRELUDE + lua) for name, lua in SCRIPTS.items()
        }
        self._redis = client

    async def aclose(self) -> None:
        client, self._redis = self._redis, None
        if client is not None:
            with contextlib.suppress(RedisError, OSError):  # a dead connection: nothing to free
                await client.aclose()

    @property
    def redis(self) -> aioredis.Redis:
        """The redis-py client (open the driver first)."""
        if self._redis is None:
            raise DriverError("the Redis queue driver is not open; use 'async with driver:'")
        return self._redis

    # -- plumbing -----------------------------------------------------------------------------

    async def _do(self, op: Callable[[], Awaitable[T]], *, retry_for: float | None = None) -> T:
        """Run ``op``, retrying connectivity errors with bounded backoff; translate errors."""
        if self._redis is None:
            raise DriverError("the Redis queue driver is not open; use 'async with driver:'")
        budget = self.settings.retry_for if retry_for is None else retry_for
        try:
            return await retry(
                op,
                outage=self._outage,
                policy=_RECONNECT,
                retry_if=_errors.is_retryable,
                budget=budget,
            )
        except (RedisError, OSError) as exc:
            if _errors.is_retryable(exc):
                raise _errors.unavailable(exc, self.url) from None
            raise _errors.translate(exc, self.url) from None

    async def _cmd(self, *args: Any) -> Any:
        """One plain command (typed alike across redis-py 5 to 8)."""
        return await self.redis.execute_command(*args)  # type: ignore[no-untyped-call,unused-ignore]

    async def _run(self, name: str, args: Sequence[Any], **kw: Any) -> Any:
        script = self._scripts[name]
        argv = [self.prefix, *args]
        return await self._do(lambda: script(keys=[], args=argv), **kw)

    def _key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    @staticmethod
    def _decode(body: bytes | str | None, attempts: bytes | str | int | None) -> Envelope:
        """The stored envelope with its current attempt count; raises ``PayloadError``."""
        try:
            job = decode_job(body if body is not None else b"")
        except RecursionError:  # deeply nested input can exhaust the decoder's stack
            raise PayloadError("cannot decode Envelope: nested too deeply") from None
        count = _count(attempts)
        return job if job.attempts == count else attrs.evolve(job, attempts=count)

    # -- producing ----------------------------------------------------------------------------

    @staticmethod
    def _batch(jobs: Sequence[Envelope]) -> tuple[bytes, list[bytes]]:
        """The script arguments of jobs to store: their metadata (one JSON argument) and their
        envelopes. Raises ``DriverError`` for a batch no script may store."""
        seen: set[str] = set()
        for job in jobs:
            if job.id in seen:
                raise DriverError(f"job id {job.id!r} appears twice in one push; nothing stored")
            if math.isnan(job.available_at):  # not a sorted-set score
                raise DriverError(f"job {job.id!r} has available_at NaN; nothing stored")
            seen.add(job.id)
        meta = orjson.dumps(
            [
                [job.id, job.queue, repr(job.available_at), job.unique_key or "", job.attempts]
                for job in jobs
            ]
        )
        return meta, [encode_job(job) for job in jobs]

    async def push(self, jobs: Sequence[Envelope]) -> list[str]:
        if not jobs:
            return []
        meta, bodies = self._batch(jobs)
        script = self._scripts["push"]
        tries = 0

        async def attempt() -> Any:
            # a retry after a lost connection may find the batch stored: then keep it as it is
            nonlocal tries
            tries += 1
            mode = "new" if tries == 1 else "again"
            return await script(keys=[], args=[self.prefix, mode, meta, *bodies])

        result = await self._do(attempt)
        if result[0] == 0:
            raise DriverError(f"job id {_s(result[1])!r} is already queued; nothing was pushed")
        ids = [job.id for job in jobs]
        for k in range(1, len(result), 2):  # unique keys held by live jobs: their ids instead
            ids[int(result[k])] = _s(result[k + 1])
        return ids

    # -- consuming ----------------------------------------------------------------------------

    async def claim(
        self, queues: Sequence[str], n: int, *, lease: float, wait: float = 0.0
    ) -> list[Envelope]:
        if n <= 0 or not queues:
            return []
        deadline = time.monotonic() + max(0.0, wait)
        args = [n, repr(float(lease)), _MOVE_LIMIT, *queues]
        wake_keys = [self._key("q", q, "wake") for q in queues]
        while True:
            result = await self._run("claim", args)
            if len(result) > 1:
                jobs: list[Envelope] = []
                bad: list[str] = []
                for i in range(1, len(result), 3):
                    job_id, body, attempts = result[i : i + 3]
                    try:
                        jobs.append(self._decode(body, attempts))
                    except PayloadError as exc:
                        bad += (_s(job_id), _undecodable(exc))
                if bad:
                    await self._fail_stored(bad)
                if jobs or not bad:
                    return jobs
                continue  # only undecodable entries: the jobs behind them are next
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            block = min(remaining, self.settings.max_block)
            if result[0]:
                block = min(block, max(0.0, _num(result[0])) + 0.002)
            if block < 0.001:
                continue
            try:  # one try: on a lost connection the next claim does the retrying
                await self._do(functools.partial(self._block, wake_keys, block), retry_for=0)
            except _errors.RedisUnavailable:
                continue

    async def _fail_stored(self, bad: list[str]) -> None:
        """Move claimed entries that cannot be decoded (``[id, error, ...]``) to the failed
        registry. On an error they stay leased: the next claim after their lease tries again."""
        for job_id, error in zip(bad[::2], bad[1::2], strict=True):
            log.error("job %s cannot be decoded; it goes to the failed registry: %s", job_id, error)
        try:
            await self._run("fail_stored", [self._ttl_ms(), *bad], retry_for=0)
        except DriverError as exc:
            log.warning("could not move undecodable jobs to the failed registry yet: %s", exc)

    async def _block(self, keys: list[str], seconds: float) -> None:
        async with asyncio.timeout(seconds + 5.0):
            await self._cmd("BLPOP", *keys, round(seconds, 3))

    async def ack(self, ids: Sequence[str]) -> None:
        for i in range(0, len(ids), _CHUNK):
            await self._run("ack", ids[i : i + _CHUNK])

    async def extend(self, ids: Sequence[str], *, lease: float) -> None:
        for i in range(0, len(ids), _CHUNK):
            await self._run("extend", [repr(float(lease)), *ids[i : i + _CHUNK]])

    async def retry(self, job: Envelope, *, delay: float, error: str) -> None:
        delay = max(0.0, delay)
        body = encode_job(attrs.evolve(job, available_at=time.time() + delay, last_error=error))
        args = [job.id, job.queue, repr(delay), job.unique_key or "", job.attempts, body]
        await self._run("retry", args)

    def _ttl_ms(self) -> int:
        """How long failed entries and cancelled records are kept, in milliseconds."""
        return max(1, int(self.settings.failed_ttl * 1000))

    async def fail(self, job: Envelope, *, error: str, traceback: str = "") -> None:
        body = encode_job(attrs.evolve(job, last_error=error))
        args = [job.id, job.queue, self._ttl_ms(), job.attempts, body, error, traceback]
        await self._run("fail", args)

    async def release(self, ids: Sequence[str]) -> None:
        for i in range(0, len(ids), _CHUNK):
            await self._run("release", ids[i : i + _CHUNK])

    # -- inspecting ---------------------------------------------------------------------------

    async def stats(self) -> dict[str, QueueStats]:
        result = await self._run("stats", [repr(self.settings.failed_ttl)])
        now = _num(result[0])
        out: dict[str, QueueStats] = {}
        for i in range(1, len(result), 6):
            name, ready, delayed, reserved, failed, oldest = result[i : i + 6]
            out[_s(name)] = QueueStats(
                ready=int(ready),
                delayed=int(delayed),
                reserved=int(reserved),
                failed=int(failed),
                oldest_ready_age=max(0.0, now - _num(oldest)) if oldest else None,
            )
        return dict(sorted(out.items()))

    async def size(self, queue: str) -> int:
        return int(await self._run("size", [queue]))

    async def get_job(self, job_id: str) -> JobRecord | None:
        result = await self._run("get_job", [job_id])
        if not result:
            return None
        kind = _s(result[0])
        if kind == "failed":
            entry = self._failed(job_id, result[1:7])
            return JobRecord(
                job=entry.job, state="failed", error=entry.error, traceback=entry.traceback
            )
        if kind == "cancelled":
            _, queue, body, attempts = result
            state, lease = "cancelled", None
        else:
            _, queue, body, attempts, state, lease = result
        error = None
        try:
            job = self._decode(body, attempts)
        except PayloadError as exc:
            job = _stand_in(job_id, _s(queue), _count(attempts), bytes(body), time.time())
            error = _undecodable(exc)
        return JobRecord(
            job=job,
            state=_s(state),
            lease_expires_at=_num(lease) if lease else None,
            error=error,
        )

    # -- cancellation and schedules -----------------------------------------------------------

    async def cancel(self, job_id: str) -> CancelOutcome:
        # the token lets a call repeated after a lost reply get its own first answer back
        args = [job_id, self._ttl_ms(), uuid.uuid4().hex]
        found = _s(await self._run("cancel", args))
        if found not in _OUTCOMES:
            raise DriverError(f"the cancel script answered {found!r}")
        return found  # type: ignore[return-value]

    async def cancelled(self, ids: Sequence[str]) -> list[str]:
        found: set[str] = set()
        for i in range(0, len(ids), _CHUNK):
            found.update(_s(x) for x in await self._run("cancelled", ids[i : i + _CHUNK]))
        return [job_id for job_id in ids if job_id in found]

    async def fire_schedule(self, name: str, slot: float, job: Envelope) -> str | None:
        if not math.isfinite(slot):
            raise DriverError(f"schedule {name!r}: slot {slot!r} is not a time; nothing stored")
        meta, bodies = self._batch([job])
        # after a lost reply the retry finds the slot marked and answers None: it fired once
        result = await self._run("fire", [name, repr(float(slot)), meta, *bodies])
        if result[0] == 2:
            return None
        if result[0] == 0:
            raise DriverError(f"job id {_s(result[1])!r} is already queued; nothing was pushed")
        return _s(result[2]) if len(result) > 1 else job.id

    async def schedule_marks(self) -> dict[str, float]:
        key = self._key("schedules")
        marks = await self._do(lambda: self._cmd("HGETALL", key))  # a dict (RESP 2 and 3)
        return {_s(name): _num(slot) for name, slot in marks.items()}

    # -- failed registry ----------------------------------------------------------------------

    def _failed(self, job_id: str, fields: Sequence[Any]) -> FailedJob:
        """An entry from its stored fields: queue, envelope, attempts, error, traceback, at."""
        queue, body, attempts, error, tb, at = fields
        failed_at = _num(at) if at else 0.0
        raw = None
        try:
            job = self._decode(body, attempts)
        except PayloadError:
            raw = bytes(body or b"")
            job = _stand_in(job_id, _s(queue or b""), _count(attempts), raw, failed_at)
        return FailedJob(
            job=job,
            error=_s(error or b""),
            traceback=_s(tb or b""),
            failed_at=failed_at,
            raw=raw,
        )

    async def failed_list(
        self, queue: str | None = None, *, offset: int = 0, limit: int = 100
    ) -> list[FailedJob]:
        if limit <= 0:
            return []
        args = [queue or "", repr(self.settings.failed_ttl), max(0, offset), limit, "list"]
        result = await self._run("failed_list", args)
        return [
            self._failed(_s(result[i]), result[i + 1 : i + 7]) for i in range(0, len(result), 7)
        ]

    async def failed_get(self, job_id: str) -> FailedJob | None:
        key = self._key("f", job_id)
        fields = await self._do(lambda: self._cmd("HMGET", key, "q", "b", "a", "e", "tb", "at"))
        return None if fields[0] is None else self._failed(job_id, fields)

    async def failed_requeue(self, ids: Sequence[str]) -> int:
        moved = 0
        for i in range(0, len(ids), _CHUNK):
            chunk = list(ids[i : i + _CHUNK])

            async def read(chunk: list[str] = chunk) -> list[Any]:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for job_id in chunk:
                        pipe.hmget(self._key("f", job_id), ["b", "q"])
                    return await pipe.execute()

            args: list[Any] = []
            now = time.time()
            for job_id, (body, queue) in zip(chunk, await self._do(read), strict=True):
                if body is None:
                    continue
                try:
                    job = self._decode(body, 0)
                except PayloadError:
                    continue  # no worker could read it: it stays where it can be looked at
                body = encode_job(attrs.evolve(job, attempts=0, available_at=now))
                args += (job_id, _s(queue), job.unique_key or "", body)
            if args:
                moved += int(await self._run("requeue", args))
        return moved

    async def failed_forget(self, ids: Sequence[str]) -> int:
        removed = 0
        for i in range(0, len(ids), _CHUNK):
            removed += int(await self._run("forget", ids[i : i + _CHUNK]))
        return removed

    async def failed_purge(self, queue: str | None = None) -> int:
        removed = 0
        while True:
            n, scanned = await self._run("purge", [queue or "", _CHUNK])
            removed += int(n)
            if not scanned:
                return removed

    async def failed_ids(self, queue: str | None = None) -> list[str]:
        args = [queue or "", repr(self.settings.failed_ttl), 0, 0, "ids"]
        return [_s(i) for i in await self._run("failed_list", args)]

    # -- workers ------------------------------------------------------------------------------

    async def worker_heartbeat(self, info: WorkerInfo, *, ttl: float) -> None:
        key, body, ms = self._key("w", info.id), dumps(info), max(1, int(ttl * 1000))

        async def op() -> None:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.set(key, body, px=ms)
                pipe.sadd(self._key("workers"), info.id)
                await pipe.execute()

        await self._do(op)

    async def worker_gone(self, worker_id: str) -> None:
        async def op() -> None:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.delete(self._key("w", worker_id))
                pipe.srem(self._key("workers"), worker_id)
                await pipe.execute()

        await self._do(op)

    async def workers(self) -> list[WorkerInfo]:
        index = self._key("workers")
        ids = sorted(_s(i) for i in await self._do(lambda: self._cmd("SMEMBERS", index)))
        if not ids:
            return []
        keys = [self._key("w", i) for i in ids]
        bodies = await self._do(lambda: self._cmd("MGET", *keys))
        gone = [i for i, body in zip(ids, bodies, strict=True) if body is None]
        if gone:
            await self._do(lambda: self._cmd("SREM", index, *gone))
        out = []
        for body in bodies:
            if body is None:
                continue
            try:
                out.append(loads(body, WorkerInfo))
            except PayloadError:
                log.warning("ignoring an unreadable worker heartbeat in %s", index)
        return out
