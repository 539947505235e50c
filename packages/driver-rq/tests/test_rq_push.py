"""The driver's push (one Lua script) stores exactly what RQ's own enqueue stores for mqttq's jobs:
the same hashes, field for field and byte for byte, the same queue lists, scheduled registries and
queue set; a finished or failed job of the same id is replaced as before; a push is atomic, also
when a key holds the wrong kind of value; two producers of one unique key make one job; pushes
work from any event loop (a loop's first push through the thread pool, later ones through its own
asyncio client) and leave no connection behind."""

from __future__ import annotations

import asyncio
import math
import time
from datetime import UTC, datetime
from typing import Any

import attrs
import pytest
import redis
from rq.job import JobStatus
from rq.utils import utcformat, utcparse

from mqttq.plugin import DriverError, Envelope
from mqttq.testing import make_job, unique_name
from mqttq.testing.services import RedisServer
from mqttq.testing.waiting import eventually_sync
from mqttq_rq import ENTRY
from mqttq_rq.driver import RqQueueDriver, unique_id
from mqttq_rq.job import Queue, plain

#: the hash fields holding the time of the write: RQ's time stamps, compared by format
STAMPS = (b"created_at", b"enqueued_at")


def rq_writes(client: redis.Redis, driver: RqQueueDriver, jobs: list[Envelope]) -> None:
    """What RQ's own API stores for ``jobs`` (unique keys already made ids): ``enqueue_many``
    for a ready job, ``create_job`` + ``schedule_job`` for a delayed one, one pipeline."""
    now = time.time()
    with client.pipeline(transaction=True) as pipe:
        for job in jobs:
            q = Queue(job.queue, connection=client)
            options = driver._job_options(job)
            if job.available_at > now:
                rq_job = q.create_job(
                    ENTRY, args=[plain(job)], status=JobStatus.SCHEDULED, **options
                )
                q.schedule_job(rq_job, datetime.fromtimestamp(job.available_at, UTC), pipeline=pipe)
            else:
                data = Queue.prepare_data(ENTRY, args=[plain(job)], **options)
                q.enqueue_many([data], pipeline=pipe)
        pipe.execute()


def _stamp(value: bytes) -> bytes:
    """A time stamp written just now, in RQ's format, as a placeholder (else the value)."""
    try:
        when = utcparse(value.decode())
    except ValueError:
        return value
    fresh = abs(when.replace(tzinfo=UTC).timestamp() - time.time()) < 300
    return b"<now>" if fresh and utcformat(when) == value.decode() else value


def keys_of(queue: str, ids: list[str]) -> list[str]:
    per_job = [f"rq:{kind}:{i}" for i in ids for kind in ("job", "results")]
    registries = ("queue", "scheduled", "failed", "finished", "canceled")
    return per_job + [f"rq:{kind}:{queue}" for kind in registries]


def stored(client: redis.Redis, queue: str, ids: list[str]) -> dict[str, Any]:
    """Every key RQ keeps for ``ids`` in ``queue``: kind, TTL and value (time stamps as
    ``<now>``), and whether RQ's set of queues has the queue."""
    out: dict[str, Any] = {}
    for key in keys_of(queue, ids):
        kind = client.type(key).decode()
        value: Any = None
        if kind == "hash":
            value = {f: _stamp(v) if f in STAMPS else v for f, v in client.hgetall(key).items()}
        elif kind == "list":
            value = client.lrange(key, 0, -1)
        elif kind == "zset":
            value = client.zrange(key, 0, -1, withscores=True)
        elif kind == "stream":
            value = client.xlen(key)
        out[key] = (kind, client.ttl(key), value)
    out["rq:queues"] = client.sismember("rq:queues", f"rq:queue:{queue}")
    return out


def forget(client: redis.Redis, queue: str, ids: list[str]) -> None:
    client.delete(*keys_of(queue, ids))
    client.srem("rq:queues", f"rq:queue:{queue}")


def jobs_of_every_kind(q: str) -> list[Envelope]:
    return [
        make_job(q, kwargs={"raw": b"\x00\xff", "n": 1, "text": "d\u00e9j\u00e0"}, timeout=2.5),
        make_job(q, args=[1, 2.5], available_at=time.time() + 30.4, attempts=2),
        make_job(q, name="other:job", unique_key=unique_name("key"), max_tries=3),
    ]


def as_stored(job: Envelope) -> Envelope:
    """The envelope under the id the driver gives it (a unique key's deterministic id)."""
    return attrs.evolve(job, id=unique_id(job.unique_key)) if job.unique_key else job


async def test_a_push_stores_what_rq_stores_byte_for_byte(redis_server: RedisServer) -> None:
    q = unique_name()
    first, second = jobs_of_every_kind(q), jobs_of_every_kind(q)
    client = redis.Redis.from_url(redis_server.url)
    try:
        async with RqQueueDriver.from_url("rq+" + redis_server.url) as driver:
            # the loop's first push goes through the thread pool, the next through asyncio
            assert await driver.push(first) == [as_stored(j).id for j in first]
            assert await driver.push(second) == [as_stored(j).id for j in second]
            ids = [as_stored(j).id for j in first + second]
            ours = stored(client, q, ids)
            forget(client, q, ids)
            rq_writes(client, driver, [as_stored(j) for j in first])
            rq_writes(client, driver, [as_stored(j) for j in second])
        theirs = stored(client, q, ids)
    finally:
        client.close()
    assert ours == theirs
    ready, delayed, unique = (ours[f"rq:job:{as_stored(j).id}"] for j in first)
    assert (ready[0], ready[2][b"status"]) == ("hash", b"queued")
    assert ready[2][b"enqueued_at"] == b"<now>"
    assert (delayed[2][b"status"], delayed[2][b"created_at"]) == (b"scheduled", b"<now>")
    assert b"enqueued_at" not in delayed[2]
    assert unique[2][b"origin"] == q.encode()
    queued = [as_stored(j).id.encode() for j in (first[0], first[2], second[0], second[2])]
    assert ours[f"rq:queue:{q}"][2] == queued
    scheduled = {m: score for m, score in ours[f"rq:scheduled:{q}"][2]}
    assert scheduled == {j.id.encode(): math.ceil(j.available_at) for j in (first[1], second[1])}


async def test_a_finished_or_failed_job_is_replaced_as_rq_would_store_it_anew(
    redis_server: RedisServer,
) -> None:
    q = unique_name()
    done, failed = make_job(q, kwargs={"a": 1}), make_job(q, kwargs={"b": 2})
    client = redis.Redis.from_url(redis_server.url)
    try:
        async with RqQueueDriver.from_url("rq+" + redis_server.url) as driver:
            await driver.push([done])
            client.lrem(f"rq:queue:{q}", 0, done.id)  # as RQ leaves a finished job
            client.hset(f"rq:job:{done.id}", mapping={"status": "finished", "result_ttl": "9"})
            client.zadd(f"rq:finished:{q}", {done.id: time.time() + 500})
            client.xadd(f"rq:results:{done.id}", {"type": "1"})
            await driver.fail(failed, error="ValueError: no", traceback="Traceback: ...")
            assert client.exists(f"rq:results:{failed.id}")
            again = [attrs.evolve(done, kwargs={"a": 2}), attrs.evolve(failed, kwargs={"b": 3})]
            assert await driver.push(again) == [done.id, failed.id]
            ids = [done.id, failed.id]
            ours = stored(client, q, ids)
            forget(client, q, ids)
            rq_writes(client, driver, again)
        theirs = stored(client, q, ids)
    finally:
        client.close()
    assert ours == theirs
    assert ours[f"rq:results:{done.id}"][0] == ours[f"rq:results:{failed.id}"][0] == "none"
    assert ours[f"rq:finished:{q}"][0] == ours[f"rq:failed:{q}"][0] == "none"
    assert ours[f"rq:job:{done.id}"][2][b"result_ttl"] == b"500"


async def test_two_producers_of_one_unique_key_make_one_job(redis_server: RedisServer) -> None:
    q, key = unique_name(), unique_name("key")
    url = "rq+" + redis_server.url
    async with RqQueueDriver.from_url(url) as a, RqQueueDriver.from_url(url) as b:
        pushes = [d.push([make_job(q, unique_key=key)]) for _ in range(10) for d in (a, b)]
        got = await asyncio.gather(*pushes)
        assert got == [[unique_id(key)]] * 20
        client = a.client
        assert client.lrange(f"rq:queue:{q}", 0, -1) == [unique_id(key).encode()]


async def test_a_key_of_the_wrong_kind_stores_nothing_of_the_push(
    redis_server: RedisServer,
) -> None:
    ok, broken = unique_name(), unique_name()
    async with RqQueueDriver.from_url("rq+" + redis_server.url) as driver:
        client = driver.client
        client.set(f"rq:scheduled:{broken}", "not a sorted set")
        for _ in range(2):  # the thread pool's push, then the loop's own client's
            later = time.time() + 60
            jobs = [
                make_job(ok),
                make_job(ok, available_at=later),
                make_job(broken, available_at=later),
            ]
            with pytest.raises(DriverError, match="WRONGTYPE") as caught:
                await driver.push(jobs)
            assert "\n" not in str(caught.value)
            assert not client.exists(*(f"rq:job:{j.id}" for j in jobs))
            assert not client.exists(f"rq:queue:{ok}", f"rq:scheduled:{ok}")
            assert not client.sismember("rq:queues", f"rq:queue:{ok}")


async def test_a_redis_that_lost_the_script_gets_it_again(own_redis: RedisServer) -> None:
    q = unique_name()
    async with RqQueueDriver.from_url("rq+" + own_redis.url) as driver:
        client = driver.client
        for _ in range(3):  # the thread pool's push, then twice the loop's own client's
            client.script_flush()
            job = make_job(q)
            assert await driver.push([job]) == [job.id]
        assert client.llen(f"rq:queue:{q}") == 3


def test_pushes_from_many_event_loops_leave_no_connection_behind(own_redis: RedisServer) -> None:
    q = unique_name()
    client = redis.Redis.from_url(own_redis.url)
    driver = RqQueueDriver.from_url("rq+" + own_redis.url)
    try:
        before = len(client.client_list())
        asyncio.run(driver.open())

        async def three() -> list[str]:  # each loop: thread pool, then its own client twice
            out = []
            for _ in range(3):
                out += await driver.push([make_job(q)])
            return out

        pushed = [i for _ in range(12) for i in asyncio.run(three())]
        assert len(set(pushed)) == 36
        assert client.llen(f"rq:queue:{q}") == 36
        # the thread pool's connections stay (at most one per thread); each loop's are closed
        eventually_sync(
            lambda: len(client.client_list()) <= before + 4,
            timeout=10,
            what="the connections of the ended loops to close",
        )
        asyncio.run(driver.aclose())
        eventually_sync(
            lambda: len(client.client_list()) == before, timeout=10, what="no connection left"
        )
    finally:
        client.close()
