"""Fixtures: one private redis-server per session, a fresh key prefix per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis_server_support import RedisServer

from mqttq_redis.driver import RedisQueueDriver


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def prefix() -> str:
    """A key prefix no other test uses: tests share one server but never see each other."""
    return f"t{uuid.uuid4().hex[:12]}:"


@pytest.fixture
def redis_url(redis_server: RedisServer, prefix: str) -> str:
    return f"{redis_server.url}?prefix={prefix}"


@pytest.fixture
async def driver(redis_url: str) -> AsyncIterator[RedisQueueDriver]:
    async with RedisQueueDriver.from_url(redis_url, failed_ttl=3600) as d:
        yield d


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own, which it may kill and restart."""
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()
