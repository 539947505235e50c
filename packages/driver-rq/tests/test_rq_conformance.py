"""The QueueDriver contract on a real redis-server. The driver is push-only (RQ's workers run the
jobs), so the tests that claim are skipped by capability; every other one runs."""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from mqttq.testing import DriverFactory, QueueDriverSuite
from mqttq_rq.driver import RqQueueDriver


class TestRqQueueDriver(QueueDriverSuite):
    @pytest.fixture
    async def driver(self, queue_url: str) -> AsyncIterator[RqQueueDriver]:
        async with RqQueueDriver.from_url(queue_url, failed_ttl=3600) as d:
            yield d

    @pytest.fixture
    async def make_driver(self, queue_url: str) -> AsyncIterator[DriverFactory]:
        made: list[RqQueueDriver] = []

        async def make(**options: Any) -> RqQueueDriver:
            options.setdefault("failed_ttl", 3600)
            d = RqQueueDriver.from_url(queue_url, **options)
            await d.open()
            made.append(d)
            return d

        yield make
        for d in made:
            await d.aclose()

    async def store_raw(self, driver: Any, queue: str, job_id: str, raw: bytes) -> bool:
        """A queued RQ job hash whose data is ``raw`` (what a foreign writer would leave)."""
        client = driver.client
        client.hset(f"rq:job:{job_id}", mapping={"data": zlib.compress(raw), "origin": queue,
                                                  "status": "queued"})  # fmt: skip
        client.rpush(f"rq:queue:{queue}", job_id)
        return True
