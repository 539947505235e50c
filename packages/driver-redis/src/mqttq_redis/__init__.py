"""mqttq-redis: the Redis queue driver for mqttq (``redis://``, ``rediss://``, ``unix://``).

Importing this package is cheap; ``RedisQueueDriver`` (and redis-py) load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mqttq_redis.driver import RedisQueueDriver

__all__ = ["RedisQueueDriver"]


def __getattr__(name: str) -> Any:
    if name == "RedisQueueDriver":
        from mqttq_redis.driver import RedisQueueDriver

        return RedisQueueDriver
    raise AttributeError(f"module 'mqttq_redis' has no attribute {name!r}")
