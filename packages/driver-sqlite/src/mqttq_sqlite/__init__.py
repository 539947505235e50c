"""mqttq-sqlite: the durable SQLite queue driver for mqttq (``sqlite:///path.db``)."""

from __future__ import annotations

from mqttq_sqlite.errors import (
    SchemaVersionError,
    SqliteQueueError,
    SqliteQueueNotFound,
    SqliteQueueUnavailable,
)

__all__ = [
    "SchemaVersionError",
    "SqliteQueueDriver",
    "SqliteQueueError",
    "SqliteQueueNotFound",
    "SqliteQueueUnavailable",
]


def __getattr__(name: str) -> object:
    # the driver loads on first use, so importing the plugin module stays cheap
    if name == "SqliteQueueDriver":
        from mqttq_sqlite.driver import SqliteQueueDriver

        return SqliteQueueDriver
    raise AttributeError(name)
