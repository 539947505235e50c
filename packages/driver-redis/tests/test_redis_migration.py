"""Queues stored by earlier versions (a ready list and a delayed set per queue) are moved into
the queued sorted set by the first script that touches the queue, and then behave as pushed."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable

import attrs
import pytest
from redis_raw_entries import ListLayout

from mqttq.models import Envelope
from mqttq_redis.driver import RedisQueueDriver

Q = "old"


def job(name: str, available_at: float, queue: str = Q) -> Envelope:
    return Envelope(name="tests:noop", queue=queue, available_at=available_at, kwargs={"n": name})


def names(jobs: list[Envelope]) -> list[str]:
    return [j.kwargs["n"] for j in jobs]


class OldQueue:
    """One queue in the list layout. Ids sort against the claim order, so that an order by id
    shows; the ready list is not in available_at order, so that keeping list order shows."""

    def __init__(self) -> None:
        self.t = t = time.time()
        at = {"l1": t - 30, "r2": t - 20, "d1": t - 10, "r1": t - 5, "r3": t - 5}
        at |= {"d2": t + 600, "l2": t - 40}
        tag = uuid.uuid4().hex[:8]
        self.jobs = {
            name: attrs.evolve(job(name, when), id=f"{9 - i}-{name}-{tag}")
            for i, (name, when) in enumerate(at.items())
        }
        # claimable now, in (available_at, list order) order
        self.order = ["l1", "r2", "d1", "r1", "r3"]

    async def store(self, driver: RedisQueueDriver) -> None:
        j = self.jobs
        async with driver.redis.pipeline(transaction=True) as pipe:
            old = ListLayout(pipe, driver.prefix)
            old.ready(j["r1"])
            old.stale(Q, "gone")
            old.ready(j["r2"])
            old.ready(j["r3"])
            old.delayed(j["d1"])
            old.delayed(j["d2"])
            old.leased(j["l1"], deadline=self.t - 1)
            old.leased(j["l2"], deadline=self.t + 600)
            await pipe.execute()


async def list_keys_left(driver: RedisQueueDriver, queue: str = Q) -> int:
    keys = [f"{driver.prefix}q:{queue}:ready", f"{driver.prefix}q:{queue}:delayed"]
    return int(await driver.redis.exists(*keys))


async def test_a_claim_moves_the_queue_and_takes_it_by_available_at(
    driver: RedisQueueDriver,
) -> None:
    old = OldQueue()
    await old.store(driver)
    got = await driver.claim([Q], 10, lease=30)
    assert names(got) == old.order
    assert {j.kwargs["n"]: j.attempts for j in got} == {"l1": 2, "r2": 1, "d1": 1, "r1": 1, "r3": 1}
    assert await list_keys_left(driver) == 0
    s = (await driver.stats())[Q]
    assert (s.ready, s.delayed, s.reserved) == (0, 1, 6)
    record = await driver.get_job(old.jobs["d2"].id)
    assert record is not None
    assert record.state == "delayed"


async def test_get_job_reads_the_list_layout_as_it_is(driver: RedisQueueDriver) -> None:
    old = OldQueue()
    await old.store(driver)
    states = {}
    for name, j in old.jobs.items():
        record = await driver.get_job(j.id)
        assert record is not None
        states[name] = record.state
    assert states == {
        "l1": "ready",  # its lease ran out
        "r2": "ready",
        "d1": "ready",  # due, not promoted yet
        "r1": "ready",
        "r3": "ready",
        "d2": "delayed",
        "l2": "reserved",
    }


Touch = Callable[[RedisQueueDriver, OldQueue], Awaitable[list[str]]]


async def by_stats(driver: RedisQueueDriver, old: OldQueue) -> list[str]:
    s = (await driver.stats())[Q]
    assert (s.ready, s.delayed, s.reserved) == (5, 1, 1)  # the stale id is not counted
    assert s.oldest_ready_age is not None
    assert s.oldest_ready_age >= 20  # r2's available_at, kept
    return old.order


async def by_size(driver: RedisQueueDriver, old: OldQueue) -> list[str]:
    assert await driver.size(Q) == 6
    return old.order


async def by_push(driver: RedisQueueDriver, old: OldQueue) -> list[str]:
    await driver.push([job("new", old.jobs["r1"].available_at)])  # ties with r1 and r3
    return [*old.order, "new"]


async def by_ack(driver: RedisQueueDriver, old: OldQueue) -> list[str]:
    await driver.ack([old.jobs["r2"].id, old.jobs["d1"].id])
    return ["l1", "r1", "r3"]


async def by_retry(driver: RedisQueueDriver, old: OldQueue) -> list[str]:
    await driver.retry(old.jobs["d2"], delay=0, error="again")
    return [*old.order, "d2"]


async def by_release(driver: RedisQueueDriver, old: OldQueue) -> list[str]:
    await driver.release([old.jobs["l2"].id])  # back at its available_at, the oldest
    return ["l2", *old.order]


async def by_requeue(driver: RedisQueueDriver, old: OldQueue) -> list[str]:
    await driver.fail(job("failed", old.t - 100), error="x")
    assert await driver.failed_requeue(await driver.failed_ids(Q)) == 1
    return [*old.order, "failed"]


async def by_cancel(driver: RedisQueueDriver, old: OldQueue) -> list[str]:
    assert await driver.cancel(old.jobs["d1"].id) == "cancelled"  # in the delayed set
    assert await driver.cancel(old.jobs["l2"].id) == "stopping"  # leased, no n yet
    assert (await driver.stats())[Q].reserved == 0
    return ["l1", "r2", "r1", "r3"]


async def by_fire(driver: RedisQueueDriver, old: OldQueue) -> list[str]:
    fired = job("fired", old.jobs["r1"].available_at)  # ties with r1 and r3
    assert await driver.fire_schedule("s", 1.0, fired) == fired.id
    return [*old.order, "fired"]


@pytest.mark.parametrize(
    "touch",
    [by_stats, by_size, by_push, by_ack, by_retry, by_release, by_requeue, by_cancel, by_fire],
)
async def test_the_first_script_on_the_queue_moves_it(
    driver: RedisQueueDriver, touch: Touch
) -> None:
    old = OldQueue()
    await old.store(driver)
    expected = await touch(driver, old)
    assert await list_keys_left(driver) == 0
    got = await driver.claim([Q], 20, lease=30)
    assert names(got) == expected
    assert await driver.claim([Q], 20, lease=30) == []
    s = (await driver.stats())[Q]
    assert (s.ready, s.delayed) == (0, 0 if touch is by_retry else 1)


async def test_jobs_an_old_producer_adds_later_are_moved_too(driver: RedisQueueDriver) -> None:
    old = OldQueue()
    await old.store(driver)
    assert await driver.size(Q) == 6
    assert await list_keys_left(driver) == 0
    late, early = job("late", old.t), job("early", old.t - 100)
    async with driver.redis.pipeline(transaction=True) as pipe:
        writer = ListLayout(pipe, driver.prefix)
        writer.ready(late)
        writer.ready(early)
        await pipe.execute()
    got = await driver.claim([Q], 20, lease=30)
    assert names(got) == ["early", *old.order, "late"]
    assert await list_keys_left(driver) == 0


async def test_other_queues_are_left_alone(driver: RedisQueueDriver) -> None:
    old = OldQueue()
    await old.store(driver)
    [pushed] = await driver.push([job("elsewhere", old.t, queue="new")])
    assert [j.id for j in await driver.claim(["new"], 5, lease=30)] == [pushed]
    assert await list_keys_left(driver) == 2
    assert names(await driver.claim([Q], 20, lease=30)) == old.order
