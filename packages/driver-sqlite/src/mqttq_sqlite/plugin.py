"""mqttq entry point for the SQLite queue driver. Import-light: the driver loads on first use."""

from __future__ import annotations

from mqttq.plugin import Register, hookimpl


@hookimpl
def mqttq_register_queue_drivers(register: Register) -> None:
    register("sqlite", "mqttq_sqlite.driver:SqliteQueueDriver")
