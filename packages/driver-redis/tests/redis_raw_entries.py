"""Write a stored entry straight into Redis, past the driver (as a bug or a foreign writer would).

The key layout is the one documented in ``mqttq_redis._scripts``.
"""

from __future__ import annotations

import time
from typing import Any


def queue_raw_job(pipe: Any, prefix: str, queue: str, job_id: str, raw: bytes) -> None:
    """Add to ``pipe`` (a sync or async redis-py pipeline) the commands that store ``raw`` as
    the envelope of a ready job ``job_id`` at the end of ``queue``; the caller executes it."""
    now = repr(time.time())
    pipe.hset(f"{prefix}j:{job_id}", mapping={"b": raw, "a": 0, "q": queue, "s": "r", "t": now})
    pipe.rpush(f"{prefix}q:{queue}:ready", job_id)
    pipe.sadd(f"{prefix}queues", queue)
    pipe.lpush(f"{prefix}q:{queue}:wake", "1")
