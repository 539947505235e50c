"""The kit's tests of what mqttq relies on when it builds and uses a driver
(``mqttq.testing._contracts``, part of ``QueueDriverSuite``, which runs them against every
driver) fail drivers that break those contracts."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Self

import pytest

from mqttq.builtin.memory import MemoryQueueDriver
from mqttq.errors import ConfigError, DriverError, MqttqError
from mqttq.interfaces import QueueDriver
from mqttq.models import Envelope
from mqttq.testing import DriverFactory, unique_name
from mqttq.testing._contracts import ContractTests


def factory(build: Callable[..., QueueDriver], made: list[QueueDriver]) -> DriverFactory:
    async def make(**options: Any) -> QueueDriver:
        driver = build(**options)
        await driver.open()
        made.append(driver)
        return driver

    return make


# -- each test fails a driver that breaks its contract --------------------------------------


class _Probe(ContractTests):
    timeout = 5.0


class _RefusesCreate(MemoryQueueDriver):
    @classmethod
    def from_url(cls, url: str, /, **options: Any) -> Self:
        if "create" in options:
            raise ConfigError("unknown memory driver option(s): create")
        return super().from_url(url, **options)


class _AcksOnlyReserved(MemoryQueueDriver):
    async def ack(self, ids: Sequence[str]) -> None:
        await super().ack([i for i in ids if i in self._s.reserved])


class _RemembersEveryId(MemoryQueueDriver):
    seen: set[str] = set()

    async def push(self, jobs: Sequence[Envelope]) -> list[str]:
        if any(job.id in self.seen for job in jobs):
            raise DriverError("this id was pushed before")
        self.seen.update(job.id for job in jobs)
        return await super().push(jobs)


@pytest.mark.parametrize(
    ("broken", "test_name"),
    [
        (_RefusesCreate, "test_from_url_takes_the_options_mqttq_passes"),
        (_AcksOnlyReserved, "test_ack_forgets_a_job_wherever_it_is"),
        (_RemembersEveryId, "test_an_acked_id_can_be_pushed_again"),
    ],
)
async def test_a_broken_driver_fails_its_contract_test(
    broken: type[MemoryQueueDriver], test_name: str
) -> None:
    store = unique_name("store")
    made: list[QueueDriver] = []
    make = factory(lambda **options: broken.from_url(f"memory://{store}", **options), made)
    try:
        driver = broken(store)
        kwargs: dict[str, Any] = {"driver": driver}
        if "make_driver" in getattr(ContractTests, test_name).__code__.co_varnames:
            kwargs["make_driver"] = make
        await getattr(_Probe(), test_name)(**kwargs)
    except (AssertionError, pytest.fail.Exception, MqttqError):
        return
    finally:
        for d in made:
            await d.aclose()
        MemoryQueueDriver.reset(store)
    pytest.fail(f"{test_name} passed for {broken.__name__}")


async def test_create_false_fails_a_driver_that_creates_anyway(tmp_path: Path) -> None:
    from mqttq_sqlite.driver import SqliteQueueDriver

    class CreatesAnyway(SqliteQueueDriver):
        @classmethod
        def from_url(cls, url: str, /, **options: Any) -> Self:
            options.pop("create", None)
            return super().from_url(url, **options)

    async with CreatesAnyway.from_url(f"sqlite:///{tmp_path / 'q.db'}") as driver:
        with pytest.raises(pytest.fail.Exception):
            await _Probe().test_create_false_creates_nothing(
                driver, f"sqlite:///{tmp_path / 'absent.db'}"
            )
