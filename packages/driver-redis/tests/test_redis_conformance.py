"""The shared conformance suites, against a private redis-server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from redis_raw_entries import queue_raw_job

from mqttq.interfaces import QueueDriver
from mqttq.testing import DriverFactory, PluginPackageSuite, QueueDriverSuite
from mqttq.testing.services import LEAST_PASSWORD, LEAST_PREFIX, LEAST_USER, RedisServer
from mqttq_redis.driver import RedisQueueDriver


class TestRedisQueueDriver(QueueDriverSuite):
    @pytest_asyncio.fixture
    async def driver(self, redis_url: str) -> AsyncIterator[QueueDriver]:
        async with RedisQueueDriver.from_url(redis_url) as d:
            yield d

    @pytest_asyncio.fixture
    async def make_driver(self, redis_url: str) -> AsyncIterator[DriverFactory]:
        made: list[RedisQueueDriver] = []

        async def make(**options: Any) -> QueueDriver:
            d = RedisQueueDriver.from_url(redis_url, **options)
            await d.open()
            made.append(d)
            return d

        yield make
        for d in made:
            await d.aclose()

    async def store_raw(self, driver: QueueDriver, queue: str, job_id: str, raw: bytes) -> bool:
        assert isinstance(driver, RedisQueueDriver)
        async with driver.redis.pipeline(transaction=True) as pipe:
            queue_raw_job(pipe, driver.prefix, queue, job_id, raw)
            await pipe.execute()
        return True


class TestRedisQueueDriverLeastPrivilege(TestRedisQueueDriver):
    """The whole suite again, as a Redis user limited to the README's ACL rule and one prefix."""

    @pytest.fixture
    def redis_url(self, redis_server: RedisServer, prefix: str) -> str:
        auth = f"{LEAST_USER}:{LEAST_PASSWORD}@127.0.0.1:{redis_server.port}"
        return f"redis://{auth}/0?prefix={LEAST_PREFIX}{prefix}"


class TestPluginPackage(PluginPackageSuite):
    distribution = "mqttq-redis"
    plugin_name = "redis"
    provides = {"queue_drivers": {"redis", "rediss", "unix"}}
    heavy_imports = {"redis"}


def test_driver_class_declares_its_schemes() -> None:
    assert set(RedisQueueDriver.schemes) == {"redis", "rediss", "unix"}
    with pytest.raises(Exception, match="not a Redis URL"):
        RedisQueueDriver.from_url("sqlite:///x.db")
