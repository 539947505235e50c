"""Helpers and overridable fixtures shared by the parts of :class:`QueueDriverSuite`."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, ClassVar, TypeVar

import pytest

from mqttq.interfaces import Capability, QueueDriver
from mqttq.models import Envelope
from mqttq.testing.waiting import eventually

T = TypeVar("T")

#: An async factory returning a new, open driver on the same storage as the ``driver`` fixture.
DriverFactory = Callable[..., Awaitable[QueueDriver]]

JOB_NAME = "mqttq.testing:noop"
#: seconds: how far back "long ago" is, for jobs enqueued (or due) long before a test acts on them
LONG_AGO = 3600.0


def unique_name(prefix: str = "q") -> str:
    """A queue (or store) name no other test uses: the suite isolates tests by name, never by
    flushing the backend, so it can run against shared storage."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def make_job(queue: str, **fields: Any) -> Envelope:
    """A job envelope for ``queue``; ``fields`` override any :class:`Envelope` attribute."""
    return Envelope(name=fields.pop("name", JOB_NAME), queue=queue, **fields)


def descending_ids(n: int) -> list[str]:
    """``n`` fresh job ids that sort in the opposite order of their index: tests of an order
    give jobs these ids, so a driver ordering by id instead fails them."""
    tag = uuid.uuid4().hex[:12]
    return [f"{n - i:05d}-{tag}" for i in range(n)]


def requires(driver: QueueDriver, *needed: Capability) -> None:
    """Skip the running test unless ``driver`` declares every capability in ``needed``."""
    missing = [c for c in needed if c not in driver.capabilities]
    if missing:
        names = ", ".join(f"Capability.{c.name}" for c in missing)
        pytest.skip(f"{type(driver).__name__} does not declare {names}")


def ids(jobs: Sequence[Envelope]) -> list[str]:
    return [j.id for j in jobs]


class SuiteBase:
    """Fixtures and knobs a driver's test class may override.

    * ``driver`` (required): an open driver. Tests use fresh queue names (:func:`unique_name`), so
      the storage may be shared between tests.
    * ``make_driver`` (optional): a factory ``await make_driver(**options)`` returning a NEW open
      driver on the same storage as ``driver``, built with extra ``from_url`` options. The fixture
      closes what it made. Enables the failed-TTL tests, the unknown-option test and,
      through ``reopen``, the tests of several instances.
    * ``reopen`` (optional): ``await reopen()`` returns a new instance on the same storage (a
      "restart", or a second worker process). Defaults to ``make_driver`` without options.
    * :meth:`failed_ttl_options` and :meth:`store_raw`: override them when the driver's TTL
      option has another name, and to write raw stored envelopes (the undecodable-entry tests).
    """

    #: Short lease for expiry tests (seconds).
    lease: ClassVar[float] = 0.3
    #: How far in the future delayed jobs are pushed (seconds): long enough that a claim made
    #: right after the push still comes before it, even on a loaded machine.
    delay: ClassVar[float] = 1.0
    #: Bound on every eventual condition (reaper, TTL, lease expiry). Raise it for slow backends.
    timeout: ClassVar[float] = 10.0
    #: Allowance on top of the contract's "within 1 s" (a due job, a wake-up) for a loaded test
    #: machine.
    grace: ClassVar[float] = 2.0

    @pytest.fixture
    def driver(self) -> QueueDriver:
        pytest.fail(f"{type(self).__name__}: override the `driver` fixture (an open QueueDriver)")

    @pytest.fixture
    def make_driver(self) -> DriverFactory | None:
        return None

    @pytest.fixture
    def reopen(self, make_driver: DriverFactory | None) -> DriverFactory | None:
        return make_driver

    def failed_ttl_options(self, ttl: float) -> dict[str, Any]:
        """``from_url`` options that make failed entries expire after ``ttl`` seconds."""
        return {"failed_ttl": ttl}

    async def store_raw(self, driver: QueueDriver, queue: str, job_id: str, raw: bytes) -> bool:
        """Write ``raw`` into the backend as the stored envelope of a ready job ``job_id`` of
        ``queue``, behind the driver's back (as a bug, a disk fault or a foreign writer would).

        Override it for a driver that stores encoded envelopes, writing straight into its
        storage; return ``False`` (the default) when the driver keeps no encoded form, which
        skips the tests of undecodable entries.
        """
        return False

    async def second_instance(self, reopen: DriverFactory | None) -> QueueDriver:
        """Another open instance on the driver's storage (skips the test without ``reopen``)."""
        if reopen is None:
            pytest.skip("no `reopen`/`make_driver` fixture: cannot open a second instance")
        return await reopen()

    @property
    def promptly(self) -> float:
        """Bound on "at once" (a wake-up, a job falling due): the contract's 1 s plus ``grace``."""
        return 1.0 + self.grace

    async def waiting_claim(
        self, driver: QueueDriver, queues: Sequence[str], *, wait: float
    ) -> asyncio.Task[list[Envelope]]:
        """Start ``claim(queues, 1, wait=wait)`` and return it once it has most likely looked
        for work and found none: ``stats()`` is queued behind the claim's first look by most
        drivers (one connection, one thread, one server). The outcome is the same either way."""
        task = asyncio.ensure_future(driver.claim(queues, 1, lease=30, wait=wait))
        await asyncio.sleep(0)
        await driver.stats()
        return task

    async def claimed_within(
        self, task: asyncio.Task[list[Envelope]], bound: float, what: str
    ) -> list[Envelope]:
        """The result of a waiting claim, failing the test when it takes longer than ``bound``."""
        try:
            return await asyncio.wait_for(task, bound)
        except TimeoutError:
            pytest.fail(f"claim(wait=...) still waiting {bound:.1f}s after {what}")

    async def claim_eventually(
        self,
        driver: QueueDriver,
        queues: Sequence[str],
        *,
        what: str,
        lease: float = 30.0,
        timeout: float | None = None,
    ) -> list[Envelope]:
        """Claim one job, retrying until something comes back within ``timeout``."""

        async def attempt() -> list[Envelope]:
            return await driver.claim(queues, 1, lease=lease, wait=0.1)

        return await eventually(attempt, timeout=timeout or self.timeout, what=what)
