"""Fixtures: one private redis-server per session, a fresh key prefix per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from mqttq.testing.fixtures import mosquitto, own_redis, redis_server  # noqa: F401
from mqttq.testing.services import RedisServer
from mqttq_redis.driver import RedisQueueDriver


@pytest.fixture
def prefix() -> str:
    """A key prefix no other test uses: tests share one server but never see each other."""
    return f"t{uuid.uuid4().hex[:12]}:"


@pytest.fixture
def redis_url(redis_server: RedisServer, prefix: str) -> str:  # noqa: F811
    return f"{redis_server.url}?prefix={prefix}"


@pytest.fixture
async def driver(redis_url: str) -> AsyncIterator[RedisQueueDriver]:
    async with RedisQueueDriver.from_url(redis_url, failed_ttl=3600) as d:
        yield d
