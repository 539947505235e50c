"""mqttq entry point for the RQ queue driver and its worker pool. Import-light: rq loads on use."""

from __future__ import annotations

from mqttq.plugin import Register, hookimpl

SCHEMES = ("rq+redis", "rq+rediss", "rq+unix")


@hookimpl
def mqttq_register_queue_drivers(register: Register) -> None:
    register(SCHEMES[0], "mqttq_rq.driver:RqQueueDriver", aliases=SCHEMES[1:])


@hookimpl
def mqttq_register_worker_pools(register: Register) -> None:
    register(SCHEMES[0], "mqttq_rq.pool:RqWorkerPool", aliases=SCHEMES[1:])
