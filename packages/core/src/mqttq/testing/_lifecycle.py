"""QueueDriverSuite, part 1: a job's life — push, claim, ack, extend, retry, fail, release,
cancel."""

from __future__ import annotations

import asyncio
import time
from typing import ClassVar

import attrs
import pytest

from mqttq.errors import ConfigError, DriverError, PayloadError
from mqttq.interfaces import Capability, QueueDriver
from mqttq.models import Backoff, JobRecord
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

CLAIM, DELAY, FAILED = Capability.CLAIM, Capability.DELAY, Capability.FAILED_REGISTRY
CANCEL = Capability.CANCEL


async def _record(driver: QueueDriver, job_id: str) -> JobRecord:
    record = await driver.get_job(job_id)
    assert record is not None, f"get_job({job_id!r}) found nothing"
    return record


class LifecycleTests(SuiteBase):
    # -- push -----------------------------------------------------------------------------------

    async def test_push_returns_ids_in_order(self, driver: QueueDriver) -> None:
        """push() returns the ids of the stored jobs, in the order given.

        Troubleshooting: return ``[job.id for job in jobs]`` (or the live job's id for a
        duplicate unique key), not ids of your own making and not in storage order.
        """
        q = unique_name()
        jobs = [make_job(q, kwargs={"i": i}) for i in range(5)]
        assert await driver.push(jobs) == ids(jobs)
        assert await driver.size(q) == 5

    async def test_fifo_within_one_push(self, driver: QueueDriver) -> None:
        """Ready jobs of a queue come out in the order they were pushed in one batch.

        Troubleshooting: order ready jobs by (available_at, insertion sequence); a batched claim
        must return them in that order too.
        """
        requires(driver, CLAIM)
        q = unique_name()
        jobs = [make_job(q, kwargs={"i": i}) for i in range(6)]
        await driver.push(jobs)
        first = await driver.claim([q], 2, lease=30)
        rest = await driver.claim([q], 10, lease=30)
        assert ids(first + rest) == ids(jobs)

    async def test_fifo_across_pushes(self, driver: QueueDriver) -> None:
        """Jobs pushed one call at a time come out in push order.

        Troubleshooting: a per-queue sequence or list tail must order separate pushes, not
        only the rows of one batch.
        """
        requires(driver, CLAIM)
        q = unique_name()
        jobs = [make_job(q, kwargs={"i": i}) for i in range(5)]
        for job in jobs:
            await driver.push([job])
        claimed = [(await driver.claim([q], 1, lease=30))[0] for _ in jobs]
        assert ids(claimed) == ids(jobs)

    async def test_push_is_atomic_per_batch(self, driver: QueueDriver) -> None:
        """A batch with two jobs sharing an id raises DriverError and stores none of its jobs.

        Troubleshooting: validate the whole batch before writing, write it in one transaction
        (or one script), and translate the backend's integrity error into ``DriverError``.
        """
        q = unique_name()
        a, b = make_job(q), make_job(q)
        clash = attrs.evolve(a, kwargs={"other": True})
        with pytest.raises(DriverError):
            await driver.push([a, b, clash])
        assert await driver.size(q) == 0
        assert await driver.get_job(b.id) is None

    async def test_a_batch_with_a_job_that_cannot_be_encoded_stores_nothing(
        self, driver: QueueDriver
    ) -> None:
        """A batch whose middle job carries data JSON cannot hold raises ``PayloadError`` and
        stores none of its jobs.

        Troubleshooting: encode every job of the batch (``encode_job``) before writing any.
        """
        q = unique_name()
        first, bad, last = make_job(q), make_job(q, kwargs={"when": object()}), make_job(q)
        with pytest.raises(PayloadError):
            await driver.push([first, bad, last])
        assert [await driver.get_job(j.id) for j in (first, bad, last)] == [None, None, None]
        stats = (await driver.stats()).get(q)
        assert stats is None or (stats.ready, stats.delayed) == (0, 0), stats
        if CLAIM in driver.capabilities:
            assert await driver.size(q) == 0

    async def test_push_of_a_live_id_stores_nothing_of_the_batch(self, driver: QueueDriver) -> None:
        """Pushing an id that is already live (ready, or reserved) raises DriverError, stores
        none of that batch and leaves the live job as it was.

        Troubleshooting: check the batch's ids against the stored jobs too, not only against
        each other, inside the same transaction or script; never overwrite a live job nor skip
        it silently (``INSERT OR IGNORE``).
        """
        q = unique_name()
        live = make_job(q, kwargs={"v": "live"})
        await driver.push([live])
        fresh, clash = make_job(q), attrs.evolve(live, kwargs={"v": "again"})
        with pytest.raises(DriverError):
            await driver.push([fresh, clash])
        assert await driver.size(q) == 1
        assert await driver.get_job(fresh.id) is None
        if CLAIM not in driver.capabilities:
            return
        assert await driver.claim([q], 10, lease=30) == [attrs.evolve(live, attempts=1)]
        with pytest.raises(DriverError):
            await driver.push([clash, fresh])
        assert await driver.get_job(fresh.id) is None
        assert await driver.claim([q], 10, lease=30) == []

    async def test_ready_jobs_come_out_by_available_at_then_push_order(
        self, driver: QueueDriver
    ) -> None:
        """Ready jobs leave by available_at, then push order: a job pushed later but due
        earlier (queued for a time already past) goes first, one at a time or in one claim.

        Troubleshooting: order the ready jobs of a queue by (available_at, push sequence), also
        across pushes, and sort a batched claim the same way; a list in push order is not
        enough, and neither is ordering by id.
        """
        requires(driver, CLAIM)
        tie = time.time() - 10
        for how in ("one at a time", "in one claim"):
            q = unique_name()
            a, b, early, c = (
                make_job(q, id=job_id, available_at=at)
                for job_id, at in zip(descending_ids(4), (tie, tie, tie - 50, tie), strict=True)
            )
            await driver.push([a, b])
            await driver.push([early])
            await driver.push([c])
            if how == "one at a time":
                got = [j for _ in range(4) for j in await driver.claim([q], 1, lease=30)]
            else:
                got = await driver.claim([q], 4, lease=30)
            assert ids(got) == ids([early, a, b, c]), how

    # -- delayed jobs ---------------------------------------------------------------------------

    async def test_delayed_job_waits_until_available_at(self, driver: QueueDriver) -> None:
        """A delayed job is not claimable before available_at and is claimable within 1 s after.

        Troubleshooting: claim must compare available_at with the current time (and move due
        jobs from the delayed set promptly); a waiting claim must wake up when the next delayed
        job becomes due, not only when something is pushed.
        """
        requires(driver, CLAIM, DELAY)
        q = unique_name()
        job = make_job(q, available_at=time.time() + self.delay)
        await driver.push([job])
        assert await driver.claim([q], 1, lease=30) == []
        stats = (await driver.stats())[q]
        assert (stats.ready, stats.delayed) == (0, 1)
        bound = job.available_at - time.time() + 1.0 + self.grace
        got = await self.claim_eventually(driver, [q], timeout=bound, what="the delayed job")
        assert time.time() >= job.available_at, "claimed before its available_at"
        assert ids(got) == [job.id]

    async def test_a_waiting_claim_wakes_when_a_delayed_job_falls_due(
        self, driver: QueueDriver
    ) -> None:
        """A claim that is already waiting returns a delayed job within 1 s after its
        available_at, whether the job was pushed before the claim began or during its wait.

        Troubleshooting: a waiting claim must also wake when the next delayed job of its queues
        falls due (a timer, a bounded block, a poll), and the push of a delayed job must let
        waiting claims learn the new due time; waking only on pushes of ready jobs misses both.
        """
        requires(driver, CLAIM, DELAY)
        for when in ("before", "during"):
            q = unique_name()
            job = make_job(q, available_at=time.time() + self.delay)
            if when == "before":
                await driver.push([job])
            task = await self.waiting_claim(driver, [q], wait=self.delay + self.timeout * 3)
            if when == "during":
                await driver.push([job])
            bound = job.available_at - time.time() + self.promptly
            got = await self.claimed_within(task, bound, f"a delayed job (pushed {when}) fell due")
            assert time.time() >= job.available_at, "claimed before its available_at"
            assert ids(got) == [job.id]

    async def test_delayed_job_survives_restart(
        self, driver: QueueDriver, reopen: DriverFactory | None
    ) -> None:
        """Ready and delayed jobs are still there after the driver is closed and reopened.

        Troubleshooting: store delayed jobs in the durable backend (not in a process-local
        timer), and make sure ``aclose()`` does not drop them.
        """
        requires(driver, CLAIM, DELAY, Capability.DURABLE)
        if reopen is None:
            pytest.skip("no `reopen`/`make_driver` fixture: cannot restart the driver")
        q = unique_name()
        ready = make_job(q)
        delayed = make_job(q, available_at=time.time() + self.delay, kwargs={"late": True})
        await driver.push([ready, delayed])
        await driver.aclose()
        again = await reopen()
        assert await again.claim([q], 1, lease=30) == [attrs.evolve(ready, attempts=1)]
        got = await self.claim_eventually(again, [q], what="the delayed job after a restart")
        assert got == [attrs.evolve(delayed, attempts=1)]

    # -- claim ----------------------------------------------------------------------------------

    async def test_claim_takes_up_to_n_and_counts_attempts(self, driver: QueueDriver) -> None:
        """claim(n) reserves n jobs when enough are ready, the rest later; attempts become 1.

        Troubleshooting: LIMIT the claim to n, return fewer only when fewer are ready, and
        return the jobs with ``attempts`` already incremented.
        """
        requires(driver, CLAIM)
        q = unique_name()
        await driver.push([make_job(q) for _ in range(5)])
        first = await driver.claim([q], 3, lease=30)
        assert len(first) == 3
        assert all(j.attempts == 1 for j in first)
        stats = (await driver.stats())[q]
        assert (stats.ready, stats.reserved) == (2, 3)
        assert len(await driver.claim([q], 10, lease=30)) == 2
        assert await driver.claim([q], 10, lease=30) == []

    async def test_claim_takes_queues_in_priority_order(self, driver: QueueDriver) -> None:
        """claim(["high", "low"]) drains high before it takes anything from low.

        Troubleshooting: visit the queues in the order given, not alphabetically or by age.
        """
        requires(driver, CLAIM)
        high, low = unique_name("high"), unique_name("low")
        lows = [make_job(low) for _ in range(2)]
        highs = [make_job(high) for _ in range(2)]
        await driver.push(lows)
        await driver.push(highs)
        assert ids(await driver.claim([high, low], 1, lease=30)) == [highs[0].id]
        got = ids(await driver.claim([high, low], 3, lease=30))
        assert got, "claim returned nothing although jobs were ready"
        assert got == [highs[1].id, *ids(lows)][: len(got)]

    async def test_claim_takes_queues_in_the_order_given_not_by_name(
        self, driver: QueueDriver
    ) -> None:
        """Priority is the order of the queues passed to claim (repeats ignored), whatever their
        names and ages: here neither alphabetical nor reverse order.

        Troubleshooting: keep the list as given (de-duplicate with ``dict.fromkeys``, not
        ``set()`` or ``sorted()``) all the way into the query or script.
        """
        requires(driver, CLAIM)
        first, second, third = (unique_name(p) for p in ("m", "z", "a"))
        jobs = {name: [make_job(name), make_job(name)] for name in (third, second, first)}
        for batch in jobs.values():  # the lowest priority is the oldest
            await driver.push(batch)
        order = [first, second, first, third]
        assert ids(await driver.claim(order, 1, lease=30)) == [jobs[first][0].id]
        got = ids(await driver.claim(order, 3, lease=30))
        assert got == ids([jobs[first][1], *jobs[second]])
        assert ids(await driver.claim(order, 10, lease=30)) == ids(jobs[third])

    async def test_claim_never_hands_out_a_leased_job(self, driver: QueueDriver) -> None:
        """Concurrent claims never return the same job twice while its lease is valid.

        Troubleshooting: claim must select and reserve in one atomic step (a transaction with
        an UPDATE ... RETURNING, a Lua script, a lock), not read then write.
        """
        requires(driver, CLAIM)
        q = unique_name()
        jobs = [make_job(q) for _ in range(20)]
        await driver.push(jobs)
        batches = await asyncio.gather(*(driver.claim([q], 3, lease=30) for _ in range(10)))
        claimed = [j.id for batch in batches for j in batch]
        assert len(claimed) == len(set(claimed)), "a job was handed to two claimers"
        assert sorted(claimed) == sorted(ids(jobs))
        assert await driver.claim([q], 5, lease=30) == []

    async def test_claim_is_exclusive_across_instances(
        self, driver: QueueDriver, reopen: DriverFactory | None
    ) -> None:
        """Instances on the same storage never claim the same job, also when many claims of
        four instances race for it (30 rounds of 24 at once: a race gets every chance to show).

        Troubleshooting: the exclusion must live in the backend (one transaction or script that
        selects and reserves), not in a per-instance lock, and not a read followed by a write.
        """
        requires(driver, CLAIM)
        instances = [driver]
        for _ in range(3):
            instances.append(await self.second_instance(reopen))
        for _ in range(30):
            q = unique_name()
            jobs = [make_job(q) for _ in range(50)]
            await driver.push(jobs)
            batches = await asyncio.gather(*(d.claim([q], 2, lease=30) for d in instances * 6))
            claimed = [j.id for batch in batches for j in batch]
            assert len(claimed) == len(set(claimed)), "a job was handed to two instances"
            rest = await instances[1].claim([q], len(jobs), lease=30)
            assert sorted(claimed + ids(rest)) == sorted(ids(jobs))

    async def test_claim_wait_wakes_up_on_push(self, driver: QueueDriver) -> None:
        """A claim waiting for work returns the job pushed during its wait, long before ``wait``.

        Troubleshooting: wake waiting claims on push (an event, BLMOVE, notification, or short
        adaptive polling), never sleep the whole ``wait``.
        """
        requires(driver, CLAIM)
        q = unique_name()
        task = await self.waiting_claim(driver, [q], wait=self.promptly + self.timeout * 3)
        job = make_job(q)
        await driver.push([job])
        assert ids(await self.claimed_within(task, self.promptly, "a push")) == [job.id]

    async def test_claim_wait_wakes_up_on_a_push_through_another_instance(
        self, driver: QueueDriver, reopen: DriverFactory | None
    ) -> None:
        """A claim waiting on one instance returns a job pushed through another instance on the
        same storage (another worker process, the listener), promptly.

        Troubleshooting: the wake-up must travel through the backend (a blocking pop on a
        wake-up key, LISTEN/NOTIFY, a change counter such as ``PRAGMA data_version``, short
        adaptive polling), not only through an in-process event set by this instance's push.
        """
        requires(driver, CLAIM)
        other = await self.second_instance(reopen)
        q = unique_name()
        task = await self.waiting_claim(driver, [q], wait=self.promptly + self.timeout * 3)
        job = make_job(q)
        await other.push([job])
        got = await self.claimed_within(task, self.promptly, "a push through another instance")
        assert ids(got) == [job.id]

    async def test_claim_wait_returns_empty_when_nothing_arrives(self, driver: QueueDriver) -> None:
        """claim(wait=w) on an empty queue returns [] after the wait, without an error.

        Troubleshooting: treat a timed-out blocking call as "no job", not as a failure.
        """
        requires(driver, CLAIM)
        q = unique_name()
        got = await asyncio.wait_for(driver.claim([q], 1, lease=30, wait=0.2), self.timeout)
        assert got == []

    # -- settling claimed jobs ------------------------------------------------------------------

    async def test_ack_removes_and_is_idempotent(self, driver: QueueDriver) -> None:
        """ack() forgets claimed jobs; acking again, or unknown ids, is a no-op.

        Troubleshooting: delete by id and ignore ids that are not there (no error, no
        negative counters).
        """
        requires(driver, CLAIM)
        q = unique_name()
        await driver.push([make_job(q), make_job(q)])
        claimed = await driver.claim([q], 2, lease=30)
        await driver.ack(ids(claimed))
        await driver.ack([*ids(claimed), unique_name("unknown")])
        stats = (await driver.stats()).get(q)
        assert stats is None or (stats.ready, stats.reserved, stats.delayed) == (0, 0, 0)
        assert await driver.get_job(claimed[0].id) is None
        assert await driver.claim([q], 2, lease=30) == []

    async def test_extend_keeps_the_job_reserved(self, driver: QueueDriver) -> None:
        """After extend(), a job stays reserved past its original lease.

        Troubleshooting: extend must move the lease deadline of reserved jobs to now + lease
        (where the reaper / claim looks for expired leases).
        """
        requires(driver, CLAIM)
        q = unique_name()
        await driver.push([make_job(q)])
        first_lease = self.lease * 3  # room for a slow machine between claim and extend
        [job] = await driver.claim([q], 1, lease=first_lease)
        await driver.extend([job.id], lease=60)
        # waits past the original lease: an expired lease would hand the job out here
        assert await driver.claim([q], 1, lease=30, wait=first_lease * 1.5) == []
        assert (await driver.stats())[q].reserved == 1

    async def test_extend_sets_the_deadline_to_now_plus_lease(self, driver: QueueDriver) -> None:
        """extend(lease=s) moves the deadline to now + s: later (get_job shows it), and also
        earlier (a shorter lease lets the job go sooner).

        Troubleshooting: write now + lease as the new deadline; do not add lease to the old
        deadline, keep the larger of the two, or store the lease itself. (Deadlines are compared
        with this machine's clock, 1 s either way allowed.)
        """
        requires(driver, CLAIM)
        q = unique_name()
        await driver.push([make_job(q)])

        async def deadline_between(job_id: str, low: float, high: float) -> None:
            record = await _record(driver, job_id)
            assert record.state == "reserved"
            assert record.lease_expires_at is not None
            assert low - 1 <= record.lease_expires_at <= high + 1, "not now + lease"

        before = time.time()
        [job] = await driver.claim([q], 1, lease=30)
        await deadline_between(job.id, before + 30, time.time() + 30)
        before = time.time()
        await driver.extend([job.id], lease=120)
        await deadline_between(job.id, before + 120, time.time() + 120)
        await driver.extend([job.id], lease=self.lease)
        [again] = await self.claim_eventually(driver, [q], what="the job after a shorter lease")
        assert (again.id, again.attempts) == (job.id, 2)

    async def test_extend_and_release_ignore_jobs_that_are_not_reserved(
        self, driver: QueueDriver
    ) -> None:
        """extend() and release() of a ready or a delayed job change nothing: it is not
        reserved, keeps its attempts, and a delayed job stays delayed.

        Troubleshooting: touch only reserved jobs (``WHERE state = reserved``, a state check in
        the script); a release must never give back an attempt of a job nobody holds.
        """
        requires(driver, CLAIM)
        q = unique_name()
        ready = make_job(q, attempts=2)
        jobs = [ready]
        if DELAY in driver.capabilities:
            jobs.append(make_job(q, attempts=2, available_at=time.time() + 60))
        await driver.push(jobs)
        for _ in range(2):
            await driver.extend(ids(jobs), lease=60)
            await driver.release(ids(jobs))
        s = (await driver.stats())[q]
        assert (s.ready, s.reserved, s.delayed) == (1, 0, len(jobs) - 1)
        for job, state in zip(jobs, ("ready", "delayed"), strict=False):
            record = await _record(driver, job.id)
            assert (record.state, record.job.attempts) == (state, 2)
        [got] = await driver.claim([q], 10, lease=30)
        assert (got.id, got.attempts) == (ready.id, 3)

    async def test_expired_lease_makes_job_claimable_again(self, driver: QueueDriver) -> None:
        """A job whose lease ran out is claimed again, with the earlier attempt still counted.

        Troubleshooting: reap expired leases (on claim or in a reaper) back to ready without
        touching ``attempts``; the next claim then makes it 2.
        """
        requires(driver, CLAIM)
        q = unique_name()
        await driver.push([make_job(q)])
        [first] = await driver.claim([q], 1, lease=self.lease)
        assert first.attempts == 1
        [again] = await self.claim_eventually(driver, [q], what="the job after lease expiry")
        assert (again.id, again.attempts) == (first.id, 2)

    async def test_an_expired_lease_keeps_its_place_in_the_queue(self, driver: QueueDriver) -> None:
        """A job whose lease ran out goes back where it was in its queue (its available_at and
        push order): in front of the job pushed with it and of one pushed while it was held.

        Troubleshooting: put a reaped job back as release does, with its own available_at and
        sequence number; giving it a new sequence number or available_at = now sends it behind
        jobs that waited less than it did.
        """
        requires(driver, CLAIM)
        q = unique_name()
        due = time.time() - 10
        first, second, third = (make_job(q, id=i, available_at=due) for i in descending_ids(3))
        await driver.push([first, second])
        assert ids(await driver.claim([q], 1, lease=self.lease)) == [first.id]
        await driver.push([third])

        async def lapsed() -> bool:
            return (await driver.stats())[q].reserved == 0

        await eventually(lapsed, timeout=self.timeout, what="the lease to run out")
        got = await driver.claim([q], 3, lease=30)
        assert [(j.id, j.attempts) for j in got] == [(first.id, 2), (second.id, 1), (third.id, 1)]

    async def test_retry_records_error_and_delays(self, driver: QueueDriver) -> None:
        """retry() puts the job back with last_error, not claimable before ``delay`` is over,
        counted from the retry (also for a job enqueued and due long before).

        Troubleshooting: store the job given to retry (attempts, last_error=error) with
        available_at = now + delay (not the job's own available_at + delay) and clear its lease.
        """
        requires(driver, CLAIM, DELAY)
        q = unique_name()
        long_ago = time.time() - LONG_AGO
        await driver.push([make_job(q, enqueued_at=long_ago, available_at=long_ago)])
        [job] = await driver.claim([q], 1, lease=30)
        due = time.time() + self.delay
        await driver.retry(job, delay=self.delay, error="boom")
        assert await driver.claim([q], 1, lease=30) == [], "retried job claimable at once"
        stats = (await driver.stats())[q]
        assert (stats.reserved, stats.delayed) == (0, 1)
        assert (await _record(driver, job.id)).state == "delayed"
        [again] = await self.claim_eventually(driver, [q], what="the retried job")
        assert time.time() >= due, "retried job claimable before its delay"
        assert (again.id, again.attempts, again.last_error) == (job.id, 2, "boom")

    async def test_retry_after_a_lapsed_lease_keeps_its_delay(self, driver: QueueDriver) -> None:
        """A job retried after its lease ran out (a slow worker) still waits for its delay.

        Troubleshooting: when an expired lease put the job back in the ready set, ``retry`` must
        take it out of there again; a stale ready entry would hand the job out at once.
        """
        requires(driver, CLAIM, DELAY)
        q = unique_name()
        await driver.push([make_job(q)])
        [job] = await driver.claim([q], 1, lease=self.lease)

        async def lapsed() -> bool:
            return (await driver.stats())[q].reserved == 0

        await eventually(lapsed, timeout=self.timeout, what="the lease to run out")
        due = time.time() + self.delay
        await driver.retry(job, delay=self.delay, error="slow")
        assert await driver.claim([q], 1, lease=30) == [], "retried job claimable before its delay"
        [again] = await self.claim_eventually(driver, [q], what="the retried job")
        assert time.time() >= due, "retried job claimable before its delay"
        assert (again.id, again.last_error) == (job.id, "slow")

    async def test_retry_without_delay_is_ready_at_once(self, driver: QueueDriver) -> None:
        """retry(delay=0) makes the job ready again.

        Troubleshooting: a zero delay means available_at = now, i.e. ready.
        """
        requires(driver, CLAIM)
        q = unique_name()
        await driver.push([make_job(q)])
        [job] = await driver.claim([q], 1, lease=30)
        await driver.retry(job, delay=0, error="again")
        [again] = await self.claim_eventually(driver, [q], what="the retried job")
        assert (again.id, again.last_error) == (job.id, "again")

    async def test_fail_moves_job_to_failed_registry(self, driver: QueueDriver) -> None:
        """fail() keeps the payload, error, traceback, attempts and failure time.

        Troubleshooting: remove the job from reserved and store the whole envelope with
        error, traceback and failed_at (the current UNIX time).
        """
        requires(driver, CLAIM, FAILED)
        q = unique_name()
        await driver.push([make_job(q, kwargs={"payload": [1, 2]})])
        [job] = await driver.claim([q], 1, lease=30)
        before = time.time()
        await driver.fail(job, error="ValueError: bad", traceback="Traceback ...")
        after = time.time()
        entry = await driver.failed_get(job.id)
        assert entry is not None
        assert (entry.error, entry.traceback) == ("ValueError: bad", "Traceback ...")
        assert (entry.job.kwargs, entry.job.attempts) == ({"payload": [1, 2]}, 1)
        assert before - 1 <= entry.failed_at <= after + 1
        stats = (await driver.stats())[q]
        assert (stats.ready, stats.reserved, stats.failed) == (0, 0, 1)
        assert await driver.claim([q], 1, lease=30) == []

    async def test_fail_accepts_a_job_never_pushed(self, driver: QueueDriver) -> None:
        """fail() also records a job that was never stored (poison input from the listener).

        Troubleshooting: fail must insert into the failed registry even when there is no
        ready/reserved row to remove.
        """
        requires(driver, FAILED)
        q = unique_name()
        job = make_job(q, kwargs={"raw": b"\xff\x00"}, attempts=3)
        await driver.fail(job, error="PayloadError: not JSON")
        entry = await driver.failed_get(job.id)
        assert entry is not None
        assert (entry.job.kwargs, entry.error) == ({"raw": b"\xff\x00"}, "PayloadError: not JSON")
        assert (entry.job.attempts, entry.traceback) == (3, ""), "attempts as given, no traceback"
        s = (await driver.stats()).get(q)
        assert s is not None, "a queue holding only a failed job is missing from stats()"
        assert (s.ready, s.reserved, s.failed) == (0, 0, 1)

    async def test_failed_at_is_the_time_of_fail(self, driver: QueueDriver) -> None:
        """An entry's failed_at is when fail() was called, also for a job enqueued and due long
        before (the failed TTL counts from failed_at).

        Troubleshooting: stamp failed_at with the current time inside fail(), not with the
        job's enqueued_at or available_at.
        """
        requires(driver, FAILED)
        q = unique_name()
        long_ago = time.time() - LONG_AGO
        job = make_job(q, enqueued_at=long_ago, available_at=long_ago)
        if CLAIM in driver.capabilities:
            await driver.push([job])
            [job] = await driver.claim([q], 1, lease=30)
        before = time.time()
        await driver.fail(job, error="late")
        after = time.time()
        entry = await driver.failed_get(job.id)
        assert entry is not None
        [listed] = await driver.failed_list(q)
        for got in (entry.failed_at, listed.failed_at):
            assert before - 1 <= got <= after + 1, f"failed_at {got} is not the time of fail()"

    async def test_fail_sets_last_error_on_the_entry(self, driver: QueueDriver) -> None:
        """The failed entry's job carries ``last_error`` = the error given to fail() (replacing
        an older one), in failed_get, failed_list and get_job.

        Troubleshooting: store ``attrs.evolve(job, last_error=error)`` in the registry, not the
        job as it was claimed.
        """
        requires(driver, FAILED)
        q = unique_name()
        job = make_job(q, last_error="an earlier try")
        if CLAIM in driver.capabilities:
            await driver.push([job])
            [job] = await driver.claim([q], 1, lease=30)
        await driver.fail(job, error="ValueError: final")
        entry = await driver.failed_get(job.id)
        assert entry is not None
        [listed] = await driver.failed_list(q)
        record = await _record(driver, job.id)
        for where, got in (("failed_get", entry), ("failed_list", listed), ("get_job", record)):
            assert got.job.last_error == "ValueError: final", where

    async def test_failing_an_id_again_replaces_its_entry(self, driver: QueueDriver) -> None:
        """fail() of an id already in the registry replaces that entry (error, traceback,
        attempts, queue, failed_at): it is there once, under its new queue only, and counts as
        the latest failure.

        Troubleshooting: upsert the entry by id (``INSERT OR REPLACE``; delete, then write) and
        move the id between per-queue indexes; do not keep the first entry or add a second.
        """
        requires(driver, FAILED)
        q, q2 = unique_name(), unique_name()
        job_id, other_id = descending_ids(2)
        job, other = make_job(q, id=job_id), make_job(q, id=other_id)
        await driver.fail(job, error="first", traceback="tb 1")
        await driver.fail(other, error="other")
        await driver.fail(attrs.evolve(job, queue=q2, attempts=3), error="second", traceback="tb 2")
        entry = await driver.failed_get(job.id)
        assert entry is not None
        assert (entry.error, entry.traceback, entry.job.attempts) == ("second", "tb 2", 3)
        assert entry.job.queue == q2
        assert await driver.failed_ids(q) == [other.id]
        assert [f.id for f in await driver.failed_list(q2)] == [job.id]
        everything = await driver.failed_ids()
        assert everything.count(job.id) == 1
        assert everything.index(other.id) < everything.index(job.id), "not the latest failure"
        stats = await driver.stats()
        assert (stats[q].failed, stats[q2].failed) == (1, 1)

    async def test_release_gives_the_attempt_back(self, driver: QueueDriver) -> None:
        """release() makes reserved jobs ready again with attempts decremented; idempotent.

        Troubleshooting: release = un-claim: clear the lease, attempts - 1, back to ready;
        ignore ids that are not reserved.
        """
        requires(driver, CLAIM)
        q = unique_name()
        await driver.push([make_job(q)])
        [job] = await driver.claim([q], 1, lease=30)
        await driver.release([job.id])
        await driver.release([job.id, unique_name("unknown")])
        stats = (await driver.stats())[q]
        assert (stats.ready, stats.reserved) == (1, 0)
        [again] = await driver.claim([q], 1, lease=30)
        assert (again.id, again.attempts) == (job.id, 1)

    async def test_release_puts_jobs_back_at_the_front(self, driver: QueueDriver) -> None:
        """Released jobs are claimed again before the jobs that waited behind them (all due at
        the same time here, so only the order of the queue decides).

        Troubleshooting: put released jobs back where they were (keep their sequence number,
        LPUSH), not at the back with a new sequence number or available_at = now.
        """
        requires(driver, CLAIM)
        q = unique_name()
        due = time.time() - 10
        jobs = [make_job(q, id=job_id, available_at=due) for job_id in descending_ids(3)]
        await driver.push(jobs)
        taken = await driver.claim([q], 2, lease=30)
        assert ids(taken) == ids(jobs[:2])
        await driver.release(ids(taken))
        again = await driver.claim([q], 3, lease=30)
        assert ids(again) == ids(jobs), "released jobs did not go back to the front"
        assert [j.attempts for j in again] == [1, 1, 1]

    async def test_large_batches(self, driver: QueueDriver) -> None:
        """1,001 jobs (more than a statement or script usually takes) are pushed, claimed,
        released and acked whole, each in one call.

        Troubleshooting: when splitting ids into chunks (SQL parameter limits, script argument
        counts), cover the whole list: ``ids[i : i + size] for i in range(0, len(ids), size)``.
        """
        requires(driver, CLAIM)
        q = unique_name()
        jobs = [make_job(q) for _ in range(1001)]
        assert await driver.push(jobs) == ids(jobs)
        assert await driver.size(q) == len(jobs)
        claimed = await driver.claim([q], len(jobs), lease=30)
        assert ids(claimed) == ids(jobs)
        await driver.release(ids(claimed))
        s = (await driver.stats())[q]
        assert (s.ready, s.reserved) == (len(jobs), 0), "release() missed some ids"
        claimed = await driver.claim([q], len(jobs), lease=30)
        assert sorted(ids(claimed)) == sorted(ids(jobs))
        assert {j.attempts for j in claimed} == {1}
        await driver.ack(ids(claimed))
        s = (await driver.stats())[q]
        assert (s.ready, s.reserved, s.delayed) == (0, 0, 0), "ack() missed some ids"
        assert await driver.get_job(claimed[-1].id) is None

    # -- the driver object ----------------------------------------------------------------------

    async def test_an_unknown_option_is_a_config_error(
        self, make_driver: DriverFactory | None
    ) -> None:
        """from_url() with an option it does not know raises ConfigError.

        Troubleshooting: check keyword options (and the URL's query string) against the
        options the driver supports, and raise ``mqttq.errors.ConfigError`` naming the unknown
        one; never ignore it.
        """
        if make_driver is None:
            pytest.skip("no `make_driver` fixture: cannot build a driver with extra options")
        with pytest.raises(ConfigError):
            await make_driver(mqttq_kit_no_such_option=1)

    async def test_aclose_is_safe_twice(self, driver: QueueDriver) -> None:
        """aclose() may be called again on a closed driver.

        Troubleshooting: set the connection (thread, pool) to None when closing and return
        early when it already is.
        """
        await driver.aclose()
        await driver.aclose()

    # -- entries that cannot be decoded ---------------------------------------------------------

    UNDECODABLE: ClassVar[dict[str, bytes]] = {
        "not UTF-8": b"\xff\xfe\x00garbage",
        "a pickle": b"\x80\x04\x95\x15\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x94"
        b"\x8c\x06system\x94\x93\x94.",
        "truncated JSON": b'{"id": "x", "name": "mqttq.testing:noop", "queue": "q", "kwa',
        "a JSON array": b'["not", "an", "envelope"]',
        "a newer envelope version": b'{"id": "x", "name": "mqttq.testing:noop", "v": 999}',
    }

    async def test_an_undecodable_entry_is_failed_and_the_queue_goes_on(
        self, driver: QueueDriver
    ) -> None:
        """A stored entry no one can decode (not UTF-8, a pickle, truncated JSON, a JSON array,
        an envelope of a newer version) is never handed out and never stops a claim: it goes
        to the failed registry with its raw bytes and the reason, and the jobs behind it run.

        Troubleshooting: decode each claimed entry on its own; on ``PayloadError`` move that
        entry (its raw stored bytes untouched) to the failed registry with an error starting
        "cannot decode" and leave it out of the claim's result, instead of raising.
        """
        requires(driver, CLAIM, FAILED)
        q = unique_name()
        first, last = make_job(q, kwargs={"n": 1}), make_job(q, kwargs={"n": 2})
        await driver.push([first])
        bad: dict[str, bytes] = {}
        for raw in self.UNDECODABLE.values():
            job_id = unique_name("bad")
            if not await self.store_raw(driver, q, job_id, raw):
                pytest.skip(f"{type(self).__name__}.store_raw: the driver stores no raw form")
            bad[job_id] = raw
        await driver.push([last])
        claimed = []
        for _ in range(len(bad) + 2):
            claimed += await driver.claim([q], 10, lease=30)
        assert ids(claimed) == [first.id, last.id], "only the decodable jobs, in order"
        assert await driver.claim([q], 10, lease=30) == []
        for job_id, raw in bad.items():
            entry = await driver.failed_get(job_id)
            assert entry is not None, f"undecodable entry {raw!r} is not in the failed registry"
            assert entry.raw == raw, "the failed entry must keep the stored bytes exactly"
            assert entry.error.startswith("cannot decode"), entry.error
            assert entry.id == job_id
            assert entry.job.queue == q
        s = (await driver.stats())[q]
        assert (s.ready, s.reserved, s.failed) == (0, 2, len(bad))
        assert sorted(await driver.failed_ids(q)) == sorted(bad)
        assert await driver.failed_requeue(list(bad)) == 0, "an undecodable entry was requeued"

    async def test_job_envelope_round_trips(self, driver: QueueDriver) -> None:
        """A claimed job equals the pushed one (attempts + 1): bytes, nesting, every field.

        Troubleshooting: store the envelope with ``mqttq.codec.encode_job`` and read it with
        ``decode_job``; do not rebuild jobs from columns that lose types or precision.
        """
        requires(driver, CLAIM)
        q = unique_name()
        job = make_job(
            q,
            args=[1, "two", None, [3.5, True]],
            kwargs={"raw": b"\x00\xff\x10", "text": "h\u00e9llo", "nested": {"b": [b"ok"]}},
            max_tries=7,
            timeout=12.5,
            backoff=Backoff(base=0.5, factor=3.0, max=10.0, jitter=0.0),
            available_at=time.time() - 1,
            unique_key=unique_name("key") if Capability.UNIQUE in driver.capabilities else None,
            last_error="earlier",
        )
        await driver.push([job])
        assert await driver.claim([q], 1, lease=30) == [attrs.evolve(job, attempts=1)]

    # -- cancellation ---------------------------------------------------------------------------

    async def test_cancel_removes_a_waiting_job_and_records_it(self, driver: QueueDriver) -> None:
        """cancel() of a ready or a delayed job removes it (never claimed, also once due),
        records it as cancelled (get_job), not failed, and answers "cancelled"; the jobs around
        it stay, in order.

        Troubleshooting: delete the job from wherever it waits (ready list, delayed set) and
        write a cancelled record with its envelope, in one step; remove that one id only.
        """
        requires(driver, CANCEL)
        q = unique_name()
        due = time.time() - 10
        first, ready, last = (make_job(q, id=i, available_at=due) for i in descending_ids(3))
        delayed = make_job(q, available_at=time.time() + self.delay)
        await driver.push([first, ready, delayed, last])
        assert await driver.cancel(ready.id) == "cancelled"
        if DELAY in driver.capabilities:
            assert await driver.cancel(delayed.id) == "cancelled"
        for job in (ready, delayed) if DELAY in driver.capabilities else (ready,):
            record = await _record(driver, job.id)
            assert (record.state, record.job.id, record.job.kwargs) == ("cancelled", job.id, {})
        stats = (await driver.stats())[q]
        assert (stats.ready, stats.delayed, stats.failed) == (2, 0, 0)
        if FAILED in driver.capabilities:
            assert await driver.failed_ids(q) == []
        if CLAIM not in driver.capabilities:
            return
        assert ids(await driver.claim([q], 10, lease=30)) == [first.id, last.id]
        await asyncio.sleep(max(0.0, delayed.available_at - time.time()) + 0.1)
        assert await driver.claim([q], 10, lease=30) == [], "a cancelled delayed job came due"

    async def test_a_cancelled_record_keeps_the_job(self, driver: QueueDriver) -> None:
        """get_job() of a cancelled job gives the job as it was when cancelled: its data and
        options and, for a running one, the attempt its claim counted.

        Troubleshooting: write the stored envelope and attempt count into the cancelled record,
        not a placeholder, and read it back with ``mqttq.codec.decode_job``.
        """
        requires(driver, CANCEL)
        q = unique_name()
        waiting = make_job(q, kwargs={"to": "a@b.c", "n": [1, 2]}, max_tries=4, attempts=2)
        await driver.push([waiting])
        assert await driver.cancel(waiting.id) == "cancelled"
        assert (await _record(driver, waiting.id)).job == waiting
        if CLAIM not in driver.capabilities:
            return
        await driver.push([make_job(q, args=["running"], timeout=5.0)])
        [running] = await driver.claim([q], 1, lease=30)
        assert await driver.cancel(running.id) == "stopping"
        assert (await _record(driver, running.id)).job == running

    async def test_cancel_of_a_running_job_records_it_and_its_worker_learns(
        self, driver: QueueDriver, reopen: DriverFactory | None
    ) -> None:
        """cancel() of a reserved job answers "stopping" and records it as cancelled at once;
        cancelled() tells any instance which of its ids were cancelled. The worker settling it
        afterwards (ack, extend, release, retry, fail) changes nothing: it is never claimed
        again, never retried, never in the failed registry.

        Troubleshooting: a cancelled job is not live: move it out of the reserved set into the
        cancelled records in one step, and make every settling call skip ids that have a
        cancelled record (retry must not store it again, fail must not record it).
        """
        requires(driver, CLAIM, CANCEL)
        q = unique_name()
        await driver.push([make_job(q), make_job(q)])
        running, other = await driver.claim([q], 2, lease=30)
        assert await driver.cancel(running.id) == "stopping"
        assert await driver.cancelled([other.id, running.id, unique_name("x")]) == [running.id]
        if reopen is not None:
            again = await reopen()
            assert await again.cancelled([running.id, other.id]) == [running.id], "not shared"
        stats = (await driver.stats())[q]
        assert (stats.ready, stats.reserved) == (0, 1)
        await driver.extend([running.id], lease=30)
        await driver.release([running.id])
        assert await driver.claim([q], 10, lease=30) == [], "release() revived a cancelled job"
        await driver.retry(running, delay=0, error="too late")
        assert await driver.claim([q], 10, lease=30) == [], "retry() revived a cancelled job"
        if FAILED in driver.capabilities:
            await driver.fail(running, error="too late")
            assert await driver.failed_get(running.id) is None, "a cancelled job was failed"
        await driver.ack([running.id])
        record = await _record(driver, running.id)
        assert record.state == "cancelled"
        assert await driver.claim([q], 10, lease=30) == []
        stats = (await driver.stats())[q]
        assert (stats.ready, stats.delayed, stats.reserved, stats.failed) == (0, 0, 1, 0)

    async def test_cancel_of_a_job_whose_lease_ran_out_is_a_waiting_one(
        self, driver: QueueDriver
    ) -> None:
        """A reserved job whose lease has run out counts as waiting: cancel() answers
        "cancelled" and nothing claims it afterwards.

        Troubleshooting: compare the lease deadline with the current time, as stats() does.
        """
        requires(driver, CLAIM, CANCEL)
        q = unique_name()
        await driver.push([make_job(q)])
        [job] = await driver.claim([q], 1, lease=self.lease)
        deadline = (await _record(driver, job.id)).lease_expires_at
        assert deadline is not None
        # the clock, not stats() or get_job(): those may move the job back to ready first
        await eventually(lambda: time.time() > deadline + 0.05, what="the lease to run out")
        assert await driver.cancel(job.id) == "cancelled"
        assert await driver.claim([q], 1, lease=30) == []
        assert (await _record(driver, job.id)).state == "cancelled"

    async def test_cancel_frees_the_unique_key(self, driver: QueueDriver) -> None:
        """A cancelled job's unique key is free: a new job with it is stored under its own id.

        Troubleshooting: delete the key's index entry with the job.
        """
        requires(driver, CANCEL, Capability.UNIQUE)
        q, key = unique_name(), unique_name("key")
        first = make_job(q, unique_key=key)
        await driver.push([first])
        assert await driver.cancel(first.id) == "cancelled"
        fresh = make_job(q, unique_key=key)
        assert await driver.push([fresh]) == [fresh.id]

    async def test_cancel_of_an_ended_or_unknown_job_changes_nothing(
        self, driver: QueueDriver
    ) -> None:
        """cancel() answers "already" for a cancelled job, "failed" for one in the failed
        registry (which keeps it), and "unknown" for one that finished or never existed.

        Troubleshooting: look in the cancelled records and the failed registry before saying
        "unknown"; never move a failed entry.
        """
        requires(driver, CANCEL)
        q = unique_name()
        job = make_job(q)
        await driver.push([job])
        assert await driver.cancel(job.id) == "cancelled"
        assert await driver.cancel(job.id) == "already"
        assert await driver.cancel(unique_name("unknown")) == "unknown"
        if CLAIM in driver.capabilities:
            done = make_job(q)
            await driver.push([done])
            await driver.ack(ids(await driver.claim([q], 1, lease=30)))
            assert await driver.cancel(done.id) == "unknown"
        if FAILED in driver.capabilities:
            failed = make_job(q)
            await driver.fail(failed, error="boom")
            assert await driver.cancel(failed.id) == "failed"
            assert (await _record(driver, failed.id)).state == "failed"
            assert await driver.cancelled([failed.id]) == []

    async def test_cancelled_records_expire_with_the_failed_ttl(
        self, driver: QueueDriver, make_driver: DriverFactory | None
    ) -> None:
        """Cancelled records go once the failed TTL has passed since the cancellation.

        Troubleshooting: expire cancelled records by the time of cancel() (key expiry, or a
        filter on read), like failed entries.
        """
        requires(driver, CANCEL)
        if make_driver is None:
            pytest.skip("no `make_driver` fixture: cannot build a driver with a short TTL")
        short = await make_driver(**self.failed_ttl_options(1.0))
        long_ago = time.time() - LONG_AGO
        job = make_job(unique_name(), enqueued_at=long_ago, available_at=long_ago)
        await short.push([job])
        assert await short.cancel(job.id) == "cancelled"
        assert (await _record(short, job.id)).state == "cancelled", "expired at once"

        async def gone() -> bool:
            return await short.get_job(job.id) is None

        await eventually(gone, timeout=self.timeout, what="the cancelled record to expire")
        assert await short.cancelled([job.id]) == []
