"""The producer's write: a whole push in one Lua script and one round trip, no RQ object per job.

RQ's own enqueue builds a ``Job`` per job and sends one command per field group; for mqttq's jobs
every field but a handful is the same for every job. So :class:`Writer` asks RQ once, when the
driver first pushes, what it writes for a queued and for a scheduled mqttq job (``create_job`` and
``to_dict``, the running RQ version's own code: its field names, order, constants and encodings),
and keeps that as a *layout*: constants, and slots for what differs per job (the data, times,
queue, description, timeout, meta). Per job it computes the data (RQ's JSON serializer, zlib, as
RQ does) and a few short strings; the script fills the layout in.

:data:`SCRIPT` runs atomically in Redis: it looks at every job's hash first (a live job of a plain
id refuses the whole push, a unique key's live job is kept and its id returned, a finished or
failed one is replaced: its hash, results and registry entries go), checks that every key it will
write holds the right kind of value, and only then writes the hashes, the queues' lists (ready
jobs), RQ's scheduled registries (delayed jobs) and RQ's set of queues. A failed check stores
nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import math
import os
import weakref
import zlib
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import attrs
import orjson
import redis.asyncio as aioredis
from redis import exceptions as rx
from rq.job import JobStatus
from rq.registry import (
    CanceledJobRegistry,
    FailedJobRegistry,
    FinishedJobRegistry,
    ScheduledJobRegistry,
)
from rq.results import Result
from rq.utils import utcformat

from mqttq.plugin import Envelope
from mqttq_rq import ENTRY
from mqttq_rq._errors import RqDriverError
from mqttq_rq.job import META, Queue, plain

#: the fields that differ per job, and their slot in the script's per-job values
SLOTS = {
    "created_at": 1,
    "data": 2,
    "origin": 3,
    "description": 4,
    "enqueued_at": 5,
    "timeout": 6,
    "meta": 7,
}
#: RQ job statuses of a job that is still to run (its id, or unique key, is taken)
LIVE = frozenset(("queued", "scheduled", "started", "deferred", "ready_to_enqueue", "rate_limited"))

#: ARGV[1]: the layouts and RQ's key names (JSON, the same for every push of a driver);
#: ARGV[2]: {"now": RQ's time stamp, "jobs": [[id, queue, ready, unique, score, description,
#: timeout, meta], ...]}; ARGV[2 + i]: the data of job i. Returns 0 when stored, else the
#: (1-based) index of the job whose id is live.
SCRIPT = r"""
local h = cjson.decode(ARGV[1])
local batch = cjson.decode(ARGV[2])
local jobs, now = batch.jobs, batch.now
local live = {}
for _, status in ipairs(h.live) do live[status] = true end

-- 1. look, write nothing: a live plain id refuses the push, a live unique key's job is kept,
--    an ended job of the same id (its old queue) is replaced
local old = {}
for i, job in ipairs(jobs) do
  local found = redis.call('HMGET', h.job .. job[1], 'status', 'origin')
  if found[1] and live[found[1]] then
    if not job[4] then return i end
    old[i] = true
  elseif found[1] or found[2] then
    old[i] = found[2] or ''
  else
    old[i] = false
  end
end

-- 2. every key to write holds its kind of value (or none): a wrong one stores nothing
local queues, names = {}, {}
local function kind(key, want)
  local t = redis.call('TYPE', key)['ok']
  if t ~= 'none' and t ~= want then
    return redis.error_reply('WRONGTYPE ' .. key .. ' is not a ' .. want .. ': nothing stored')
  end
end
local bad = kind(h.queues, 'set')
if bad then return bad end
for i, job in ipairs(jobs) do
  if old[i] ~= true then
    local q = job[2]
    if not queues[q] then
      queues[q] = {ready = {}, delayed = {}}
      names[#names + 1] = q
      bad = kind(h.queue .. q, 'list') or kind(h.scheduled .. q, 'zset')
      if bad then return bad end
    end
    if old[i] then
      for _, prefix in ipairs(h.ended) do
        bad = kind(prefix .. old[i], 'zset')
        if bad then return bad end
      end
    end
  end
end

-- 3. write
for i, job in ipairs(jobs) do
  if old[i] ~= true then
    local id, q = job[1], job[2]
    local key = h.job .. id
    if old[i] then
      redis.call('DEL', key, h.results .. id)
      for _, prefix in ipairs(h.ended) do redis.call('ZREM', prefix .. old[i], id) end
    end
    local values = {now, ARGV[2 + i], q, job[6], now, job[7], job[8]}
    local layout = job[3] and h.ready or h.delayed
    local args = {}
    for j = 1, #layout, 2 do
      local v = layout[j + 1]
      args[j] = layout[j]
      if type(v) == 'number' then args[j + 1] = values[v] else args[j + 1] = v end
    end
    redis.call('HSET', key, unpack(args))
    if job[3] then
      table.insert(queues[q].ready, id)
    else
      table.insert(queues[q].delayed, job[5])
      table.insert(queues[q].delayed, id)
    end
  end
end
local function chunked(command, key, items)
  for s = 1, #items, 1000 do
    redis.call(command, key, unpack(items, s, math.min(s + 999, #items)))
  end
end
for _, q in ipairs(names) do
  redis.call('SADD', h.queues, h.queue .. q)
  chunked('RPUSH', h.queue .. q, queues[q].ready)
  chunked('ZADD', h.scheduled .. q, queues[q].delayed)
end
return 0
"""
SHA = hashlib.sha1(SCRIPT.encode()).hexdigest()


def _text(value: Any) -> str:
    """A hash value as redis-py sends it, as text (RQ's constants are text)."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, bool):
        raise TypeError("a bool")
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return value
    raise TypeError(type(value).__name__)


def _prefix(key: Any, name: str) -> str:
    """The part of RQ's ``key`` for ``name`` before the name."""
    text = key.decode() if isinstance(key, bytes) else str(key)
    if not text.endswith(name):
        raise RqDriverError(f"this RQ version names its keys as mqttq-rq does not know: {text}")
    return text[: len(text) - len(name)]


def _registry(cls: Any) -> str:
    return _prefix(cls.key_template.format("q"), "q")


@attrs.frozen
class Layout:
    """What RQ writes for an mqttq job of this driver, queued (``ready``) and scheduled
    (``delayed``): field name, then its constant value or its slot (:data:`SLOTS`), in RQ's
    order; the status first, as RQ sets it before it saves the job."""

    ready: list[str | int]
    delayed: list[str | int]
    timeout: str  #: RQ's default job timeout (a job without one)


def layout(client: Any, *, result_ttl: int, failure_ttl: int) -> Layout:
    """Ask RQ (no I/O) which fields it writes for a queued and a scheduled mqttq job."""
    q = Queue("q", connection=client)

    def fields(status: JobStatus, enqueued: bool) -> tuple[list[str | int], str]:
        job = q.create_job(
            ENTRY, args=[{}], job_id="x", status=status, timeout=None, result_ttl=result_ttl,
            failure_ttl=failure_ttl, description="-", meta={META: {"attempts": 0}},
        )  # fmt: skip
        if enqueued:  # as RQ's queue does before it saves a job it puts in its list
            job.enqueued_at = datetime.now(UTC)
        mapping = job.to_dict()
        wanted = {"status", *SLOTS} - (set() if enqueued else {"enqueued_at"})
        missing = wanted - set(mapping)
        if missing:
            raise RqDriverError(
                f"this RQ version writes jobs without {', '.join(sorted(missing))}: "
                "mqttq-rq does not know how to write its jobs"
            )
        out: list[str | int] = ["status", _text(mapping.pop("status"))]
        for name, value in mapping.items():
            out += [name, SLOTS[name] if name in SLOTS else _text(value)]
        return out, _text(mapping["timeout"])

    try:
        ready, timeout = fields(JobStatus.QUEUED, True)
        delayed, _ = fields(JobStatus.SCHEDULED, False)
    except (TypeError, UnicodeDecodeError) as exc:
        raise RqDriverError(f"this RQ version writes a job field mqttq-rq cannot: {exc}") from exc
    return Layout(ready=ready, delayed=delayed, timeout=timeout)


class Writer:
    """Builds the script's arguments for a push (see :data:`SCRIPT`)."""

    def __init__(self, client: Any, *, result_ttl: int, failure_ttl: int) -> None:
        shape = layout(client, result_ttl=result_ttl, failure_ttl=failure_ttl)
        self.default_timeout = shape.timeout
        self.header = orjson.dumps(
            {
                "job": _prefix(Queue.job_class.key_for("x"), "x"),
                "results": _prefix(Result.get_key("x"), "x"),  # type: ignore[no-untyped-call]
                "queue": Queue.redis_queue_namespace_prefix,
                "queues": Queue.redis_queues_keys,
                "scheduled": _registry(ScheduledJobRegistry),
                "ended": [_registry(c) for c in (FailedJobRegistry, FinishedJobRegistry,
                                                 CanceledJobRegistry)],
                "live": sorted(LIVE),
                "ready": shape.ready,
                "delayed": shape.delayed,
            }
        )  # fmt: skip
        self._meta: dict[int, str] = {}

    def args(self, planned: Sequence[tuple[Envelope, bool]], now: float) -> list[bytes]:
        """ARGV for ``planned`` (each job, and whether it holds a unique key) at time ``now``:
        a batch is created and enqueued at one time stamp."""
        stamp = utcformat(datetime.fromtimestamp(now, UTC))
        jobs = []
        datas = []
        dumps, compress = json.dumps, zlib.compress
        for job, unique in planned:
            # RQ's JSON serializer on RQ's job tuple (function, instance, args, kwargs), zlib'd
            datas.append(compress(dumps((ENTRY, None, [plain(job)], {})).encode("utf-8")))
            ready = job.available_at <= now
            # a delayed job's score: RQ's whole seconds, rounded up (never early; job.round_up)
            jobs.append(
                (
                    job.id,
                    job.queue,
                    ready,
                    unique,
                    "" if ready else str(math.ceil(job.available_at)),
                    f"mqttq {job.name}",
                    str(max(1, math.ceil(job.timeout))) if job.timeout else self.default_timeout,
                    self.meta(job.attempts),
                )
            )
        return [self.header, orjson.dumps({"now": stamp, "jobs": jobs}), *datas]

    def meta(self, attempts: int) -> str:
        text = self._meta.get(attempts)
        if text is None:
            text = json.dumps({META: {"attempts": attempts}})
            if len(self._meta) < 16:
                self._meta[attempts] = text
        return text


async def run(client: aioredis.Redis, args: list[bytes]) -> int:
    """Run :data:`SCRIPT` (by its digest; loaded once into a Redis that lacks it)."""
    try:
        return int(await client.evalsha(SHA, 0, *args))
    except rx.NoScriptError:
        await client.script_load(SCRIPT)
        return int(await client.evalsha(SHA, 0, *args))


def run_blocking(client: Any, args: list[bytes]) -> int:
    """:func:`run` with a blocking redis-py client."""
    try:
        return int(client.evalsha(SHA, 0, *args))
    except rx.NoScriptError:
        client.script_load(SCRIPT)
        return int(client.evalsha(SHA, 0, *args))


# -- an asyncio client per event loop --------------------------------------------------------------


@attrs.define
class _Bound:
    client: aioredis.Redis
    guard: Any  #: the async generator that closes ``client`` when its loop shuts down
    pid: int


class LoopClients:
    """A redis.asyncio client for each event loop the driver pushes from, from the loop's second
    push on (an asyncio client only works in its own loop, and a process may run several: a job
    that dispatches runs ``asyncio.run`` per job, whose loop lives for one push; a connection of
    its own would cost it more than the driver's thread pool, whose connections outlive loops).
    A loop's client is closed as the loop shuts down (``asyncio.run`` and pytest-asyncio finalize
    async generators) or by :meth:`aclose`; a forked child makes its own."""

    def __init__(self, url: str, **options: Any) -> None:
        self.url = url
        self.options = options
        self._bound: dict[asyncio.AbstractEventLoop, _Bound] = {}
        self._seen: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()

    async def get(self) -> aioredis.Redis | None:
        """The running loop's client; ``None`` on the loop's first push."""
        loop = asyncio.get_running_loop()
        bound = self._bound.get(loop)
        if bound is not None and bound.pid == os.getpid():
            return bound.client
        if loop not in self._seen:
            self._seen.add(loop)
            return None
        for other in [lp for lp in self._bound if lp.is_closed()]:
            del self._bound[other]  # shut down without finalizing: nothing left to await
        client = aioredis.Redis.from_url(self.url, **self.options)
        guard = self._lifetime(loop, client)
        await anext(guard)  # the loop now finalizes it as it shuts down
        self._bound[loop] = _Bound(client, guard, os.getpid())
        return client

    async def _lifetime(
        self, loop: asyncio.AbstractEventLoop, client: aioredis.Redis
    ) -> AsyncIterator[None]:
        try:
            yield
        finally:
            bound = self._bound.get(loop)
            if bound is not None and bound.client is client:
                del self._bound[loop]
            with contextlib.suppress(Exception):
                await client.aclose()

    async def aclose(self) -> None:
        """Close this loop's client; forget the others (their loops close them)."""
        loop = asyncio.get_running_loop()
        bound = self._bound.pop(loop, None)
        self._bound.clear()
        self._seen = weakref.WeakSet()
        if bound is not None and bound.pid == os.getpid():
            await bound.guard.aclose()
