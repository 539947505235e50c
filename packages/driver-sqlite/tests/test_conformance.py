"""The shared conformance suites, against real SQLite files."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from mqttq.interfaces import QueueDriver
from mqttq.testing import DriverFactory, PluginPackageSuite, QueueDriverSuite
from mqttq_sqlite.driver import SqliteQueueDriver


class TestSqliteQueueDriver(QueueDriverSuite):
    @pytest.fixture
    async def make_driver(self, tmp_path: Path) -> AsyncIterator[DriverFactory]:
        made: list[QueueDriver] = []
        url = f"sqlite:///{tmp_path / 'queue.db'}"

        async def make(**options: Any) -> QueueDriver:
            driver = SqliteQueueDriver.from_url(url, **options)
            await driver.open()
            made.append(driver)
            return driver

        yield make
        for driver in made:
            await driver.aclose()

    @pytest.fixture
    async def driver(self, make_driver: DriverFactory) -> QueueDriver:
        return await make_driver()

    @pytest.fixture
    def absent_url(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path / 'absent.db'}"

    async def store_raw(self, driver: QueueDriver, queue: str, job_id: str, raw: bytes) -> bool:
        assert isinstance(driver, SqliteQueueDriver)
        with sqlite3.connect(driver.path) as conn:
            conn.execute("INSERT OR IGNORE INTO mqttq_queues (name) VALUES (?)", (queue,))
            conn.execute(
                "INSERT INTO mqttq_jobs (id, queue, state, available_at, attempts, envelope) "
                "VALUES (?, ?, 0, ?, 0, ?)",
                (job_id, queue, time.time(), raw),
            )
        return True


class TestSqlitePlugin(PluginPackageSuite):
    distribution = "mqttq-sqlite"
    plugin_name = "sqlite"
    provides = {"queue_drivers": {"sqlite"}, "command_stores": {"sqlite"}}
    heavy_imports = {"sqlite3", "mqttq_sqlite.driver", "mqttq_sqlite.commands"}
