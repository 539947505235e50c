"""mqttq entry point for the Redis queue driver. Import-light: redis loads only on use."""

from __future__ import annotations

from mqttq.plugin import Register, hookimpl


@hookimpl
def mqttq_register_queue_drivers(register: Register) -> None:
    register("redis", "mqttq_redis.driver:RedisQueueDriver", aliases=("rediss", "unix"))
