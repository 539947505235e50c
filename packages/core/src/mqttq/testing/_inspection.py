"""QueueDriverSuite, part 2: inspection — stats, get_job, failed registry, unique keys, workers."""

from __future__ import annotations

import os
import time

import attrs
import pytest

from mqttq.interfaces import Capability, QueueDriver
from mqttq.models import Envelope, FailedJob, WorkerInfo
from mqttq.testing._support import (
    DriverFactory,
    SuiteBase,
    ids,
    make_job,
    requires,
    unique_name,
)
from mqttq.testing.waiting import eventually

CLAIM, FAILED, UNIQUE = Capability.CLAIM, Capability.FAILED_REGISTRY, Capability.UNIQUE


async def _failed_jobs(driver: QueueDriver, queue: str, n: int) -> list[Envelope]:
    """Push, claim and fail ``n`` jobs of ``queue``, one after the other (oldest first)."""
    jobs = [make_job(queue, kwargs={"i": i}) for i in range(n)]
    await driver.push(jobs)
    for i in range(n):
        [job] = await driver.claim([queue], 1, lease=30)
        await driver.fail(job, error=f"error {i}")
    return jobs


class InspectionTests(SuiteBase):
    # -- stats and get_job ----------------------------------------------------------------------

    async def test_stats_counts_per_queue(self, driver: QueueDriver) -> None:
        """stats() reports ready, delayed, reserved, failed and the oldest ready age per queue.

        Troubleshooting: count by state within each queue; oldest_ready_age = now - the
        smallest available_at among ready jobs (None when none is ready).
        """
        requires(driver, CLAIM, Capability.DELAY, FAILED)
        q, other = unique_name(), unique_name()
        now = time.time()
        old = make_job(q, available_at=now - 5)
        await driver.push([old, make_job(q), make_job(q), make_job(q, available_at=now + 60)])
        await driver.push([make_job(other)])
        s = (await driver.stats())[q]
        assert (s.ready, s.delayed, s.reserved, s.failed) == (3, 1, 0, 0)
        assert s.oldest_ready_age is not None
        assert s.oldest_ready_age >= 4.5
        [first] = await driver.claim([q], 1, lease=30)
        assert first.id == old.id
        await driver.fail(first, error="x")
        await driver.claim([q], 1, lease=30)
        s = (await driver.stats())[q]
        assert (s.ready, s.delayed, s.reserved, s.failed) == (1, 1, 1, 1)
        assert s.oldest_ready_age is not None
        assert s.oldest_ready_age >= 0
        o = (await driver.stats())[other]
        assert (o.ready, o.delayed, o.reserved, o.failed) == (1, 0, 0, 0)

    async def test_stats_lists_queues_that_held_jobs(self, driver: QueueDriver) -> None:
        """A queue whose jobs are all done is still listed, with zero counts.

        Troubleshooting: keep a set of known queue names (``mqttq stats`` shows idle queues).
        """
        requires(driver, CLAIM)
        q = unique_name()
        await driver.push([make_job(q)])
        await driver.ack(ids(await driver.claim([q], 1, lease=30)))
        s = (await driver.stats()).get(q)
        assert s is not None, "an emptied queue disappeared from stats()"
        assert (s.ready, s.delayed, s.reserved, s.oldest_ready_age) == (0, 0, 0, None)

    async def test_an_expired_lease_counts_as_ready(self, driver: QueueDriver) -> None:
        """Once its lease has run out, a claimed job counts as ready (not reserved) in stats(),
        size() and get_job(), before anyone claims it again.

        Troubleshooting: compare lease deadlines with the current time when counting, as a claim
        would; a reserved job whose lease passed is waiting for a worker, not held by one.
        """
        requires(driver, CLAIM)
        q = unique_name()
        job = make_job(q)
        await driver.push([job])
        [claimed] = await driver.claim([q], 1, lease=self.lease)
        rec = await driver.get_job(job.id)
        assert rec is not None
        assert rec.state == "reserved"

        async def lapsed() -> bool:
            record = await driver.get_job(job.id)
            return record is not None and record.state == "ready"

        await eventually(lapsed, timeout=self.timeout, what="the lease to run out")
        s = (await driver.stats())[q]
        assert (s.ready, s.reserved, s.delayed) == (1, 0, 0)
        assert s.oldest_ready_age is not None
        assert await driver.size(q) == 1
        [again] = await driver.claim([q], 1, lease=30)
        assert (again.id, again.attempts) == (claimed.id, 2)

    async def test_get_job_reports_each_state(self, driver: QueueDriver) -> None:
        """get_job() says ready / delayed / reserved (with lease) / failed; None when done.

        Troubleshooting: look the id up in every state; a reserved record carries
        lease_expires_at, a failed one its error.
        """
        requires(driver, CLAIM, Capability.DELAY, FAILED)
        q = unique_name()
        ready, delayed = make_job(q), make_job(q, available_at=time.time() + 60)
        await driver.push([ready, delayed])
        rec = await driver.get_job(ready.id)
        assert rec is not None
        assert (rec.state, rec.job) == ("ready", ready)
        rec = await driver.get_job(delayed.id)
        assert rec is not None
        assert rec.state == "delayed"
        [job] = await driver.claim([q], 1, lease=30)
        rec = await driver.get_job(job.id)
        assert rec is not None
        assert (rec.state, rec.job.attempts) == ("reserved", 1)
        assert rec.lease_expires_at is not None
        assert rec.lease_expires_at > time.time()
        await driver.fail(job, error="bad")
        rec = await driver.get_job(job.id)
        assert rec is not None
        assert (rec.state, rec.error) == ("failed", "bad")
        await driver.failed_forget([job.id])
        assert await driver.get_job(job.id) is None
        assert await driver.get_job(unique_name("unknown")) is None

    # -- failed registry ------------------------------------------------------------------------

    async def test_failed_list_is_paged_newest_first(self, driver: QueueDriver) -> None:
        """failed_list() pages newest first and filters by queue; failed_ids() is oldest first.

        Troubleshooting: ORDER BY failed_at DESC (ties: insertion order, newest first) with
        OFFSET/LIMIT; failed_ids ascending.
        """
        requires(driver, CLAIM, FAILED)
        q, other = unique_name(), unique_name()
        jobs = await _failed_jobs(driver, q, 5)
        [stranger] = await _failed_jobs(driver, other, 1)
        newest_first = ids(jobs)[::-1]
        pages = [await driver.failed_list(q, offset=o, limit=2) for o in (0, 2, 4)]
        assert [[f.id for f in page] for page in pages] == [
            newest_first[0:2],
            newest_first[2:4],
            newest_first[4:],
        ]
        assert [f.error for f in pages[0]] == ["error 4", "error 3"]
        assert stranger.id not in {f.id for f in await driver.failed_list(q)}
        everything = {f.id for f in await driver.failed_list(None, limit=1000)}
        assert {stranger.id, *ids(jobs)} <= everything
        assert await driver.failed_ids(q) == ids(jobs)

    async def test_failed_get_and_forget(self, driver: QueueDriver) -> None:
        """failed_get() shows one entry; failed_forget() deletes and counts what it deleted.

        Troubleshooting: failed_forget returns the number of entries actually removed.
        """
        requires(driver, CLAIM, FAILED)
        q = unique_name()
        a, b = await _failed_jobs(driver, q, 2)
        entry = await driver.failed_get(a.id)
        assert isinstance(entry, FailedJob)
        assert (entry.id, entry.error) == (a.id, "error 0")
        assert await driver.failed_get(unique_name("unknown")) is None
        assert await driver.failed_forget([a.id, unique_name("unknown")]) == 1
        assert await driver.failed_forget([a.id]) == 0
        assert await driver.failed_get(a.id) is None
        assert await driver.failed_ids(q) == [b.id]

    async def test_failed_requeue_one_and_all(self, driver: QueueDriver) -> None:
        """failed_requeue() moves entries back to ready with attempts reset.

        Troubleshooting: delete from the failed registry and push back as ready with
        attempts=0 in one step; return how many moved (unknown ids count 0).
        """
        requires(driver, CLAIM, FAILED)
        q = unique_name()
        jobs = await _failed_jobs(driver, q, 3)
        assert await driver.failed_requeue([jobs[1].id, unique_name("unknown")]) == 1
        [again] = await self.claim_eventually(driver, [q], what="the requeued job")
        assert (again.id, again.attempts, again.kwargs) == (jobs[1].id, 1, {"i": 1})
        assert await driver.failed_requeue(await driver.failed_ids(q)) == 2
        assert await driver.failed_ids(q) == []
        rest = await driver.claim([q], 5, lease=30)
        assert sorted(ids(rest)) == sorted([jobs[0].id, jobs[2].id])
        assert all(j.attempts == 1 for j in rest)

    async def test_failed_purge_is_per_queue(self, driver: QueueDriver) -> None:
        """failed_purge(queue) deletes that queue's entries only and returns the count.

        Troubleshooting: filter the delete by queue when one is given.
        """
        requires(driver, CLAIM, FAILED)
        q, other = unique_name(), unique_name()
        await _failed_jobs(driver, q, 3)
        [kept] = await _failed_jobs(driver, other, 1)
        assert await driver.failed_purge(q) == 3
        assert await driver.failed_list(q) == []
        assert await driver.failed_ids(other) == [kept.id]
        assert (await driver.stats())[q].failed == 0

    async def test_failed_entries_expire_after_ttl(
        self, driver: QueueDriver, make_driver: DriverFactory | None
    ) -> None:
        """A driver built with a short failed TTL drops failed entries once it has passed.

        Troubleshooting: honour the TTL option (see ``failed_ttl_options``): expire entries by
        failed_at on read, in a cleanup task, or with backend key expiry.
        """
        requires(driver, FAILED)
        if make_driver is None:
            pytest.skip("no `make_driver` fixture: cannot build a driver with a short failed TTL")
        driver = await make_driver(**self.failed_ttl_options(1.0))
        job = make_job(unique_name())
        await driver.fail(job, error="short-lived")
        assert await driver.failed_get(job.id) is not None

        async def gone() -> bool:
            return await driver.failed_get(job.id) is None

        await eventually(gone, timeout=self.timeout, what="the failed entry to expire")
        assert job.id not in await driver.failed_ids(job.queue)

    # -- unique keys ----------------------------------------------------------------------------

    async def test_unique_key_allows_one_live_job(self, driver: QueueDriver) -> None:
        """While a job with a unique key is live, pushing the key again returns its id.

        Troubleshooting: keep a key -> live id index written in the same transaction as the
        job (including duplicates inside one batch); reserved jobs are live too.
        """
        requires(driver, CLAIM, UNIQUE)
        q, key = unique_name(), unique_name("key")
        first = make_job(q, unique_key=key)
        assert await driver.push([first]) == [first.id]
        assert await driver.push([make_job(q, unique_key=key)]) == [first.id]
        twin_a, twin_b = make_job(q, unique_key=key + "-b"), make_job(q, unique_key=key + "-b")
        assert await driver.push([twin_a, twin_b]) == [twin_a.id, twin_a.id]
        assert await driver.size(q) == 2
        claimed = await driver.claim([q], 2, lease=30)
        assert await driver.push([make_job(q, unique_key=key)]) == [first.id]
        assert sorted(ids(claimed)) == sorted([first.id, twin_a.id])

    async def test_unique_key_is_freed_by_ack_and_fail(self, driver: QueueDriver) -> None:
        """After ack or fail, a new job with the same key is stored under its own id.

        Troubleshooting: delete the key index entry when the job is acked or failed.
        """
        requires(driver, CLAIM, UNIQUE)
        settle = ["ack", "fail"] if FAILED in driver.capabilities else ["ack"]
        for how in settle:
            q, key = unique_name(), unique_name("key")
            await driver.push([make_job(q, unique_key=key)])
            [job] = await driver.claim([q], 1, lease=30)
            if how == "ack":
                await driver.ack([job.id])
            else:
                await driver.fail(job, error="x")
            fresh = make_job(q, unique_key=key)
            assert await driver.push([fresh]) == [fresh.id], f"key still held after {how}"

    # -- workers --------------------------------------------------------------------------------

    def _worker(self, **fields: int) -> WorkerInfo:
        return WorkerInfo(
            id=unique_name("worker"),
            hostname="conformance-host",
            pid=os.getpid(),
            queues=["a", "b"],
            concurrency=4,
            started_at=time.time(),
            **fields,
        )

    async def test_worker_heartbeats(self, driver: QueueDriver) -> None:
        """A heartbeat makes the worker visible (latest info wins); worker_gone removes it.

        Troubleshooting: store WorkerInfo by id with an expiry of now + ttl; list only
        unexpired entries.
        """
        requires(driver, Capability.WORKERS)
        info = self._worker()
        await driver.worker_heartbeat(info, ttl=60)
        await driver.worker_heartbeat(self._worker(), ttl=60)  # someone else
        newer = attrs.evolve(info, processed=5, heartbeat_at=time.time())
        await driver.worker_heartbeat(newer, ttl=60)
        mine = [w for w in await driver.workers() if w.id == info.id]
        assert mine == [newer]
        await driver.worker_gone(info.id)
        assert info.id not in {w.id for w in await driver.workers()}

    async def test_worker_heartbeat_expires(self, driver: QueueDriver) -> None:
        """A worker that stops heartbeating disappears after its ttl.

        Troubleshooting: honour ``ttl`` (expiring key, or filter by expiry time on read).
        """
        requires(driver, Capability.WORKERS)
        info = self._worker()
        await driver.worker_heartbeat(info, ttl=1.0)
        assert info.id in {w.id for w in await driver.workers()}

        async def gone() -> bool:
            return info.id not in {w.id for w in await driver.workers()}

        await eventually(gone, timeout=self.timeout, what="the worker heartbeat to expire")
