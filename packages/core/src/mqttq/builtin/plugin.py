"""The built-in plugin: memory driver, asyncio/process runners and the mqtt transport.

Import-light on purpose."""

from __future__ import annotations

from mqttq.catalog import Register
from mqttq.hookspecs import hookimpl


@hookimpl(trylast=True)
def mqttq_register_queue_drivers(register: Register) -> None:
    register("memory", "mqttq.builtin.memory:MemoryQueueDriver")


@hookimpl(trylast=True)
def mqttq_register_job_runners(register: Register) -> None:
    register("asyncio", "mqttq.worker.runners:AsyncioJobRunner")
    register("process", "mqttq.worker.process:ProcessJobRunner")


@hookimpl(trylast=True)
def mqttq_register_transports(register: Register) -> None:
    register("mqtt", "mqttq.transports.mqtt:MqttTransport", aliases=("mqtts",))


@hookimpl(trylast=True)
def mqttq_register_command_stores(register: Register) -> None:
    register("memory", "mqttq.devices.store:MemoryCommandStore")
