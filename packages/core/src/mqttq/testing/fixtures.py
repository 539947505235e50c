"""pytest fixtures for real services. Import the ones a test module (or conftest) needs::

    from mqttq.testing.fixtures import mosquitto, redis_server  # noqa: F401

``mosquitto``: a fresh private broker per test. ``redis_server``: one private redis-server per
session (tests keep apart by key prefix); ``own_redis``: one per test, free to kill.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from mqttq.testing.services import Mosquitto, RedisServer


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    directory = tmp_path / "mosquitto"
    directory.mkdir()
    broker = Mosquitto(directory)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop(signal.SIGKILL)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own, which it may kill and restart."""
    directory = tmp_path / "redis"
    directory.mkdir()
    server = RedisServer(directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()
