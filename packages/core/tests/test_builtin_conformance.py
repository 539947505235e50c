"""The memory driver, the reference implementation, against the conformance kit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import attrs
import pytest
import pytest_asyncio

from mqttq.builtin.memory import MemoryQueueDriver
from mqttq.interfaces import QueueDriver
from mqttq.models import Envelope
from mqttq.testing import DriverFactory, QueueDriverSuite, make_job, unique_name
from mqttq.testing.queue_drivers import weakened_tests


class TestMemoryQueueDriver(QueueDriverSuite):
    @pytest.fixture
    def store(self) -> Iterator[str]:
        name = unique_name("store")
        yield name
        MemoryQueueDriver.reset(name)

    @pytest_asyncio.fixture
    async def make_driver(self, store: str) -> AsyncIterator[DriverFactory]:
        made: list[QueueDriver] = []

        async def make(**options: Any) -> QueueDriver:
            driver = MemoryQueueDriver.from_url(f"memory://{store}", **options)
            await driver.open()
            made.append(driver)
            return driver

        yield make
        for driver in made:
            await driver.aclose()

    @pytest_asyncio.fixture
    async def driver(self, make_driver: DriverFactory) -> QueueDriver:
        return await make_driver()


def test_memory_store_outlives_an_event_loop() -> None:
    """A named store is shared across event loops (one per test): its wake-up event follows."""
    name = unique_name("store")

    async def push_then_claim() -> list[str]:
        driver = MemoryQueueDriver(name)
        await driver.push([make_job("q")])
        return [j.id for j in await driver.claim(["q"], 1, lease=30, wait=0.01)]

    try:
        assert len(asyncio.run(push_then_claim())) == 1
        assert len(asyncio.run(push_then_claim())) == 1
    finally:
        MemoryQueueDriver.reset(name)


# -- the kit can fail: broken drivers are caught --------------------------------------------


class _Probe(QueueDriverSuite):
    timeout = 1.0


class _DoubleHandout(MemoryQueueDriver):
    """Hands a job out without keeping it reserved."""

    async def claim(
        self, queues: Sequence[str], n: int, *, lease: float, wait: float = 0.0
    ) -> list[Envelope]:
        jobs = await super().claim(queues, n, lease=lease, wait=wait)
        await super().release([j.id for j in jobs])
        return jobs


class _LIFO(MemoryQueueDriver):
    async def claim(
        self, queues: Sequence[str], n: int, *, lease: float, wait: float = 0.0
    ) -> list[Envelope]:
        return list(reversed(await super().claim(queues, n, lease=lease, wait=wait)))


class _NoWakeUp(MemoryQueueDriver):
    def _wake(self) -> None:
        pass


class _KeepsAttempt(MemoryQueueDriver):
    async def release(self, ids: Sequence[str]) -> None:
        for job_id in ids:
            if self._s.reserved.pop(job_id, None) is not None:
                self._wait(self._s.jobs[job_id])


class _PartialPush(MemoryQueueDriver):
    async def push(self, jobs: Sequence[Envelope]) -> list[str]:
        out = []
        for job in jobs:
            out += await super().push([job])
        return out


class _OverwritesLiveIds(MemoryQueueDriver):
    """Upserts: a pushed id that is already live replaces that job."""

    async def push(self, jobs: Sequence[Envelope]) -> list[str]:
        for job in jobs:
            self._forget(job.id)
        return await super().push(jobs)


class _Alphabetical(MemoryQueueDriver):
    """Visits the queues by name, not in the order given."""

    async def claim(
        self, queues: Sequence[str], n: int, *, lease: float, wait: float = 0.0
    ) -> list[Envelope]:
        return await super().claim(sorted(queues), n, lease=lease, wait=wait)


class _ExtendKeepsTheLater(MemoryQueueDriver):
    """Never moves a lease deadline earlier."""

    async def extend(self, ids: Sequence[str], *, lease: float) -> None:
        before = {i: self._s.reserved[i] for i in ids if i in self._s.reserved}
        await super().extend(ids, lease=lease)
        for job_id, deadline in before.items():
            self._s.reserved[job_id] = max(deadline, self._s.reserved[job_id])


class _FailedAtEnqueue(MemoryQueueDriver):
    """Stamps failed_at with the job's enqueue time."""

    async def fail(self, job: Envelope, *, error: str, traceback: str = "") -> None:
        await super().fail(job, error=error, traceback=traceback)
        entry = self._s.failed[job.id]
        self._s.failed[job.id] = attrs.evolve(entry, failed_at=job.enqueued_at)


class _ReleaseToBack(MemoryQueueDriver):
    """Puts released jobs behind the others."""

    async def release(self, ids: Sequence[str]) -> None:
        held = [i for i in ids if i in self._s.reserved]
        await super().release(ids)
        for job_id in held:
            self._wait(self._s.jobs[job_id])  # a new, last place in line


@pytest.mark.parametrize(
    ("broken", "test_name"),
    [
        (_DoubleHandout, "test_claim_never_hands_out_a_leased_job"),
        (_LIFO, "test_fifo_within_one_push"),
        (_NoWakeUp, "test_claim_wait_wakes_up_on_push"),
        (_KeepsAttempt, "test_release_gives_the_attempt_back"),
        (_PartialPush, "test_push_is_atomic_per_batch"),
        (_OverwritesLiveIds, "test_push_of_a_live_id_stores_nothing_of_the_batch"),
        (_Alphabetical, "test_claim_takes_queues_in_the_order_given_not_by_name"),
        (_ExtendKeepsTheLater, "test_extend_sets_the_deadline_to_now_plus_lease"),
        (_FailedAtEnqueue, "test_failed_at_is_the_time_of_fail"),
        (_ReleaseToBack, "test_release_puts_jobs_back_at_the_front"),
    ],
)
async def test_suite_catches_a_broken_driver(
    broken: type[MemoryQueueDriver], test_name: str
) -> None:
    name = unique_name("store")
    try:
        async with broken(name) as driver:
            await getattr(_Probe(), test_name)(driver)  # the sound driver passes, see above
    except (AssertionError, pytest.fail.Exception):
        return
    finally:
        MemoryQueueDriver.reset(name)
    pytest.fail(f"{test_name} passed for {broken.__name__}")


async def test_guard_flags_tests_overridden_without_xfail() -> None:
    class Weakened(QueueDriverSuite):
        async def test_fifo_across_pushes(self, driver: QueueDriver) -> None:
            pass

        test_ack_removes_and_is_idempotent = None

    class Honest(QueueDriverSuite):
        @pytest.mark.xfail(reason="known bug", strict=True)
        async def test_fifo_across_pushes(self, driver: QueueDriver) -> None:
            await super().test_fifo_across_pushes(driver)

    assert weakened_tests(Weakened) == [
        "test_ack_removes_and_is_idempotent",
        "test_fifo_across_pushes",
    ]
    with pytest.raises(pytest.fail.Exception, match="test_fifo_across_pushes"):
        await Weakened().test_suite_is_not_weakened()
    assert weakened_tests(Honest) == []
    await Honest().test_suite_is_not_weakened()
