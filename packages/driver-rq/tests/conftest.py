"""Fixtures: one private redis-server per session for the driver's contract tests (they keep
apart by queue name); a redis-server per test for anything that runs RQ workers."""

from __future__ import annotations

import pytest
from rq_helpers import rq_url

from mqttq.testing.fixtures import mosquitto, own_redis, redis_server  # noqa: F401
from mqttq.testing.services import RedisServer


@pytest.fixture
def queue_url(redis_server: RedisServer) -> str:  # noqa: F811
    return rq_url(redis_server)
