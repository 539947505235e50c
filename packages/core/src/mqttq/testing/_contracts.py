"""QueueDriverSuite, part 3: what mqttq itself relies on when it builds and uses a driver —
the options ``App.make_driver`` passes, ``create=False``, ``ack`` wherever a job is, and ids
that are free again once their job is done.

A mixin of :class:`~mqttq.testing._support.SuiteBase`, like the other parts; it adds one
optional fixture, ``absent_url``.
"""

from __future__ import annotations

import time

import attrs
import pytest

from mqttq.errors import QueueNotFoundError
from mqttq.interfaces import Capability, QueueDriver
from mqttq.testing._support import DriverFactory, SuiteBase, ids, make_job, requires, unique_name
from mqttq.testing.waiting import eventually

CLAIM, DELAY = Capability.CLAIM, Capability.DELAY


class ContractTests(SuiteBase):
    @pytest.fixture
    def absent_url(self) -> str | None:
        """A URL of this driver for storage that does not exist yet (a file under
        ``tmp_path``, a database name never used). ``None``, the default, skips the test of
        ``create=False``: a backend with nothing to create (Redis, memory) has no such URL."""
        return None

    async def test_from_url_takes_the_options_mqttq_passes(
        self, driver: QueueDriver, make_driver: DriverFactory | None
    ) -> None:
        """from_url() accepts failed_ttl and create=False, which mqttq passes (the latter for
        ``mqttq stats``, ``failed retry`` and the other commands that only look or touch what
        exists); such a driver opens existing storage for reading and writing.

        Troubleshooting: accept both options (ignore ``create`` when the backend has nothing
        to create); with ``create=False`` open existing storage as usual.
        """
        if make_driver is None:
            pytest.skip("no `make_driver` fixture: cannot build a driver with extra options")
        q = unique_name()
        await driver.push([make_job(q)])
        looking = await make_driver(failed_ttl=3600.0, create=False)
        assert await looking.size(q) == 1, "a driver built with create=False sees no job"
        await looking.push([make_job(q)])
        assert await driver.size(q) == 2, "a driver built with create=False cannot push"

    async def test_create_false_creates_nothing(
        self, driver: QueueDriver, absent_url: str | None
    ) -> None:
        """With create=False, opening storage that does not exist raises QueueNotFoundError
        and creates nothing (opening it so again still raises); once a job is pushed there
        through a driver that may create, create=False opens it.

        Troubleshooting: look for the storage before connecting in ``open()`` (a file, a
        database, a schema) and raise ``QueueNotFoundError`` naming where you looked; create
        nothing on the way (no empty file, no journal).
        """
        if absent_url is None:
            pytest.skip("no `absent_url` fixture: the driver has no storage to create")
        cls = type(driver)
        for attempt in ("first", "second"):
            looking = cls.from_url(absent_url, failed_ttl=3600.0, create=False)
            try:
                await looking.open()
            except QueueNotFoundError:
                continue
            await looking.aclose()
            pytest.fail(f"the {attempt} open with create=False found storage to open")
        q = unique_name()
        async with cls.from_url(absent_url, failed_ttl=3600.0) as made:
            await made.push([make_job(q)])
        async with cls.from_url(absent_url, failed_ttl=3600.0, create=False) as looking:
            assert await looking.size(q) == 1

    async def test_ack_forgets_a_job_wherever_it_is(self, driver: QueueDriver) -> None:
        """ack() forgets jobs that are not reserved too: one whose lease ran out (a slow worker
        acks after its job went back to ready), a ready job never claimed, a delayed one.

        Troubleshooting: delete by id in every state (``DELETE ... WHERE id IN``), not only
        among the reserved jobs; an expired lease may not have been reaped yet.
        """
        requires(driver, CLAIM)
        q = unique_name()
        lapsed = make_job(q, kwargs={"lapsed": True})
        await driver.push([lapsed])
        assert ids(await driver.claim([q], 1, lease=self.lease)) == [lapsed.id]

        async def lease_ran_out() -> bool:
            return (await driver.stats())[q].reserved == 0

        await eventually(lease_ran_out, timeout=self.timeout, what="the lease to run out")
        waiting = [make_job(q)]
        if DELAY in driver.capabilities:
            waiting.append(make_job(q, available_at=time.time() + 60))
        await driver.push(waiting)
        await driver.ack([lapsed.id, *ids(waiting)])
        s = (await driver.stats())[q]
        assert (s.ready, s.delayed, s.reserved) == (0, 0, 0), "ack() left a job that was not held"
        assert await driver.claim([q], 10, lease=30) == []

    async def test_an_acked_id_can_be_pushed_again(self, driver: QueueDriver) -> None:
        """Once its job is acknowledged, an id is free: pushing it again stores a new job,
        claimed with the attempts it was pushed with.

        Troubleshooting: refuse only ids that are live (ready, delayed or reserved); do not
        keep every id ever pushed, and forget the id with the job in ``ack()``.
        """
        requires(driver, CLAIM)
        q = unique_name()
        job = make_job(q, kwargs={"n": 1})
        await driver.push([job])
        await driver.ack(ids(await driver.claim([q], 1, lease=30)))
        again = attrs.evolve(job, kwargs={"n": 2})
        assert await driver.push([again]) == [job.id]
        [back] = await driver.claim([q], 1, lease=30)
        assert (back.id, back.kwargs, back.attempts) == (job.id, {"n": 2}, 1)
