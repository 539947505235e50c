"""mqttq entry point for the SQLite queue driver and command store. Import-light: each loads on
first use."""

from __future__ import annotations

from mqttq.plugin import Register, hookimpl


@hookimpl
def mqttq_register_queue_drivers(register: Register) -> None:
    register("sqlite", "mqttq_sqlite.driver:SqliteQueueDriver")


@hookimpl
def mqttq_register_command_stores(register: Register) -> None:
    register("sqlite", "mqttq_sqlite.commands:SqliteCommandStore")
