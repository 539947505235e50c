"""QueueDriverSuite, part 2: inspection — stats, get_job, failed registry, unique keys, workers,
schedule marks."""

from __future__ import annotations

import asyncio
import os
import time

import attrs
import pytest

from mqttq.errors import DriverError
from mqttq.interfaces import Capability, QueueDriver
from mqttq.models import Envelope, FailedJob, WorkerInfo
from mqttq.testing._support import (
    LONG_AGO,
    DriverFactory,
    SuiteBase,
    descending_ids,
    ids,
    make_job,
    requires,
    unique_name,
)
from mqttq.testing.waiting import eventually

CLAIM, DELAY = Capability.CLAIM, Capability.DELAY
FAILED, UNIQUE = Capability.FAILED_REGISTRY, Capability.UNIQUE
SCHEDULES = Capability.SCHEDULES


async def _failed_jobs(driver: QueueDriver, queue: str, n: int) -> list[Envelope]:
    """Push, claim and fail ``n`` jobs of ``queue``, one after the other (oldest first). Their
    ids sort the other way round, so an order by id shows."""
    job_ids = descending_ids(n)
    jobs = [make_job(queue, id=job_id, kwargs={"i": i}) for i, job_id in enumerate(job_ids)]
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
        smallest available_at among ready jobs (None when none is ready), not their enqueued_at.
        """
        requires(driver, CLAIM, DELAY, FAILED)
        q, other = unique_name(), unique_name()
        now = time.time()
        old = make_job(q, enqueued_at=now - LONG_AGO, available_at=now - 5)
        await driver.push([old, make_job(q), make_job(q), make_job(q, available_at=now + 60)])
        await driver.push([make_job(other)])
        s = (await driver.stats())[q]
        assert (s.ready, s.delayed, s.reserved, s.failed) == (3, 1, 0, 0)
        assert s.oldest_ready_age is not None
        assert 4.5 <= s.oldest_ready_age < LONG_AGO / 2, "not counted from when it became ready"
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

    async def test_a_due_delayed_job_counts_as_ready(self, driver: QueueDriver) -> None:
        """Once its available_at has passed, a delayed job counts as ready in stats(), size()
        and get_job(), before any claim has touched it.

        Troubleshooting: compare available_at with the current time when counting and looking
        up; do not report the stored state of a job that no claim has moved yet.
        """
        requires(driver, DELAY)
        q = unique_name()
        job = make_job(q, available_at=time.time() + self.delay)
        await driver.push([job])
        s = (await driver.stats())[q]
        assert (s.ready, s.delayed) == (0, 1)

        async def due() -> bool:
            record = await driver.get_job(job.id)
            return record is not None and record.state == "ready"

        await eventually(due, timeout=self.delay + self.timeout, what="the delayed job to be due")
        s = (await driver.stats())[q]
        assert (s.ready, s.delayed, s.reserved) == (1, 0, 0)
        assert s.oldest_ready_age is not None
        assert await driver.size(q) == 1

    async def test_get_job_reports_each_state(self, driver: QueueDriver) -> None:
        """get_job() says ready / delayed / reserved (with lease) / failed; None when done.

        Troubleshooting: look the id up in every state; a reserved record carries
        lease_expires_at (the deadline, now + lease), a failed one its error and traceback.
        """
        requires(driver, CLAIM, DELAY, FAILED)
        q = unique_name()
        ready, delayed = make_job(q), make_job(q, available_at=time.time() + 60)
        await driver.push([ready, delayed])
        rec = await driver.get_job(ready.id)
        assert rec is not None
        assert (rec.state, rec.job) == ("ready", ready)
        rec = await driver.get_job(delayed.id)
        assert rec is not None
        assert rec.state == "delayed"
        before = time.time()
        [job] = await driver.claim([q], 1, lease=30)
        after = time.time()
        rec = await driver.get_job(job.id)
        assert rec is not None
        assert (rec.state, rec.job.attempts) == ("reserved", 1)
        assert rec.lease_expires_at is not None
        assert before + 29 <= rec.lease_expires_at <= after + 31, "lease is not now + lease"
        await driver.fail(job, error="bad", traceback="Traceback (most recent call last): ...")
        rec = await driver.get_job(job.id)
        assert rec is not None
        assert (rec.state, rec.error) == ("failed", "bad")
        assert rec.traceback == "Traceback (most recent call last): ..."
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

    async def test_failed_requeue_goes_to_the_end_with_attempts_zero(
        self, driver: QueueDriver
    ) -> None:
        """A requeued job is ready again behind the jobs already waiting (also when it was first
        due long ago), with attempts 0, so its next claim makes it 1.

        Troubleshooting: requeue with available_at = now and a new push sequence (RPUSH), and
        attempts = 0; keeping the job's old available_at lets it jump the queue.
        """
        requires(driver, CLAIM, FAILED)
        q = unique_name()
        long_ago = time.time() - LONG_AGO
        old = make_job(q, enqueued_at=long_ago, available_at=long_ago)
        await driver.push([old])
        [job] = await driver.claim([q], 1, lease=30)
        await driver.fail(job, error="x")
        waiting = make_job(q)
        await driver.push([waiting])
        assert await driver.failed_requeue([old.id]) == 1
        record = await driver.get_job(old.id)
        assert record is not None
        assert (record.state, record.job.attempts) == ("ready", 0)
        got = await driver.claim([q], 2, lease=30)
        assert ids(got) == [waiting.id, old.id], "a requeued job goes to the end of ready"
        assert got[1].attempts == 1

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
        failed_at on read, in a cleanup task, or with backend key expiry; stats() and
        failed_list() must not count or show them either.
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
        assert (await driver.stats())[job.queue].failed == 0, "stats() counts an expired entry"
        assert await driver.failed_list(job.queue) == []
        assert job.id not in await driver.failed_ids(job.queue)

    async def test_failed_ttl_counts_from_the_failure(
        self, driver: QueueDriver, make_driver: DriverFactory | None
    ) -> None:
        """A job enqueued long before it failed stays in the registry for the whole TTL after
        its failure.

        Troubleshooting: expire entries by failed_at (the time of fail()), not by the job's
        enqueued_at or available_at.
        """
        requires(driver, FAILED)
        if make_driver is None:
            pytest.skip("no `make_driver` fixture: cannot build a driver with a given failed TTL")
        driver = await make_driver(**self.failed_ttl_options(LONG_AGO / 6))
        long_ago = time.time() - LONG_AGO
        job = make_job(unique_name(), enqueued_at=long_ago, available_at=long_ago)
        await driver.fail(job, error="an old job, failed now")
        assert await driver.failed_get(job.id) is not None, "expired at once"
        assert await driver.failed_ids(job.queue) == [job.id]
        assert [f.id for f in await driver.failed_list(job.queue)] == [job.id]
        assert (await driver.stats())[job.queue].failed == 1

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

    async def test_an_empty_unique_key_means_none(self, driver: QueueDriver) -> None:
        """Jobs with ``unique_key=""`` are all stored, in one batch or across pushes.

        Troubleshooting: treat an empty key like None (``job.unique_key or None``) before
        looking it up or indexing it.
        """
        requires(driver, UNIQUE)
        q = unique_name()
        a, b, c = (make_job(q, unique_key="") for _ in range(3))
        assert await driver.push([a, b]) == [a.id, b.id]
        assert await driver.push([c]) == [c.id]
        assert await driver.size(q) == 3

    async def test_unique_key_is_held_while_delayed_or_retried(self, driver: QueueDriver) -> None:
        """A delayed job, and a job waiting after retry(), hold their unique keys: pushing the
        key again returns their ids.

        Troubleshooting: a job is live in every state (ready, delayed, reserved); when retry()
        stores the job again, keep (or write again) its key in the index.
        """
        requires(driver, CLAIM, DELAY, UNIQUE)
        q = unique_name()
        key_delayed, key_retried = unique_name("key"), unique_name("key")
        delayed = make_job(q, unique_key=key_delayed, available_at=time.time() + 60)
        retried = make_job(q, unique_key=key_retried)
        await driver.push([delayed, retried])
        assert await driver.push([make_job(q, unique_key=key_delayed)]) == [delayed.id]
        [job] = await driver.claim([q], 1, lease=30)
        assert job.id == retried.id
        await driver.retry(job, delay=60, error="later")
        assert await driver.push([make_job(q, unique_key=key_retried)]) == [retried.id]
        assert await driver.size(q) == 2

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

    # -- schedules ------------------------------------------------------------------------------

    async def test_a_schedule_slot_fires_once(self, driver: QueueDriver) -> None:
        """fire_schedule() stores the job and marks the slot; the same slot or an earlier one
        stores nothing and answers None, also after the first job is gone; a later slot fires.
        Schedules keep marks of their own (names that share a prefix too).

        Troubleshooting: compare the slot with the schedule's mark (strictly later fires) and
        write the job and the mark in one transaction or script, keyed by the whole name.
        """
        requires(driver, SCHEDULES)
        q, name = unique_name(), unique_name("schedule")
        slot = 1_700_000_000.25
        first = make_job(q, kwargs={"slot": 1})
        assert await driver.fire_schedule(name, slot, first) == first.id
        again = make_job(q, kwargs={"slot": "again"})
        assert await driver.fire_schedule(name, slot, again) is None
        assert await driver.fire_schedule(name, slot - 60, make_job(q)) is None
        assert await driver.size(q) == 1
        if CLAIM in driver.capabilities:
            await driver.ack(ids(await driver.claim([q], 1, lease=30)))
            assert await driver.fire_schedule(name, slot, again) is None, "fired after its ack"
            assert await driver.size(q) == 0
        other = make_job(q)
        assert await driver.fire_schedule(name + ":x", slot, other) == other.id, "marks shared"
        later = make_job(q, kwargs={"slot": 2})
        assert await driver.fire_schedule(name, slot + 0.5, later) == later.id
        marks = await driver.schedule_marks()
        assert (marks[name], marks[name + ":x"]) == (slot + 0.5, slot)
        record = await driver.get_job(later.id)
        assert record is not None
        assert record.job.kwargs == {"slot": 2}

    async def test_a_schedule_slot_fires_once_across_instances(
        self, driver: QueueDriver, reopen: DriverFactory | None
    ) -> None:
        """Four instances racing to fire the same slots (with different jobs): each slot is
        fired by exactly one, and its job is the only one stored; the marks survive a restart
        of a durable driver.

        Troubleshooting: the compare-and-mark must run in the backend, inside the same
        transaction or script as the push; a read of the mark followed by a write races.
        """
        requires(driver, SCHEDULES)
        instances = [driver] + [await self.second_instance(reopen) for _ in range(3)]
        q, name = unique_name(), unique_name("schedule")
        for slot in range(1, 11):
            racers = instances * 3
            jobs = [make_job(q, kwargs={"slot": slot}) for _ in racers]
            fired = await asyncio.gather(
                *(d.fire_schedule(name, float(slot), j) for d, j in zip(racers, jobs, strict=True))
            )
            winners = [f for f in fired if f is not None]
            assert len(winners) == 1, f"slot {slot} fired {len(winners)} times"
            assert winners[0] in ids(jobs)
        assert await driver.size(q) == 10
        if Capability.DURABLE in driver.capabilities:
            await driver.aclose()
            again = await self.second_instance(reopen)
            assert (await again.schedule_marks())[name] == 10.0
            assert await again.fire_schedule(name, 10.0, make_job(q)) is None

    async def test_a_failed_fire_marks_nothing(self, driver: QueueDriver) -> None:
        """fire_schedule() whose job cannot be stored (its id is already live) raises
        DriverError and leaves the mark as it was: the slot can still fire.

        Troubleshooting: check the push before writing the mark, or roll both back together.
        """
        requires(driver, SCHEDULES)
        q, name = unique_name(), unique_name("schedule")
        live = make_job(q)
        await driver.push([live])
        with pytest.raises(DriverError):
            await driver.fire_schedule(name, 5.0, live)
        assert name not in await driver.schedule_marks()
        fresh = make_job(q)
        assert await driver.fire_schedule(name, 5.0, fresh) == fresh.id

    async def test_a_fired_job_keeps_its_unique_key(self, driver: QueueDriver) -> None:
        """A fired job holds its unique key like a pushed one; a slot whose key is held by a
        live job is marked fired and answers that job's id, storing nothing more.

        Troubleshooting: store the job of fire_schedule() exactly as push() does.
        """
        requires(driver, SCHEDULES, UNIQUE)
        q, name, key = unique_name(), unique_name("schedule"), unique_name("key")
        held = make_job(q, unique_key=key)
        await driver.push([held])
        assert await driver.fire_schedule(name, 1.0, make_job(q, unique_key=key)) == held.id
        assert (await driver.schedule_marks())[name] == 1.0
        fired = make_job(q, unique_key=key + "-2")
        assert await driver.fire_schedule(name, 2.0, fired) == fired.id
        assert await driver.push([make_job(q, unique_key=key + "-2")]) == [fired.id]
        assert await driver.size(q) == 2
