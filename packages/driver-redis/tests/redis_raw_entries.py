"""Write stored entries straight into Redis, past the driver (as a bug or a foreign writer would).

``queue_raw_job`` follows the key layout documented in ``mqttq_redis._scripts``;
``ListLayout`` writes what earlier versions stored (a ready list and a delayed set per queue).
"""

from __future__ import annotations

import time
from typing import Any

import attrs

from mqttq.plugin import Envelope, encode_job

# KEYS: job hash, queued set, seq counter, queues set, wake list. ARGV: envelope, queue, t, id.
_QUEUE_RAW = """
local n = string.format('%016d', redis.call('INCR', KEYS[3]))
redis.call('HSET', KEYS[1], 'b', ARGV[1], 'a', 0, 'q', ARGV[2], 's', 'r', 't', ARGV[3], 'n', n)
redis.call('ZADD', KEYS[2], ARGV[3], n .. ARGV[4])
redis.call('SADD', KEYS[4], ARGV[2])
redis.call('LPUSH', KEYS[5], '1')
"""


def queue_raw_job(pipe: Any, prefix: str, queue: str, job_id: str, raw: bytes) -> None:
    """Add to ``pipe`` (a sync or async redis-py pipeline) the commands that store ``raw`` as
    the envelope of a ready job ``job_id`` at the end of ``queue``; the caller executes it."""
    keys = [f"{prefix}j:{job_id}", f"{prefix}q:{queue}:queued", f"{prefix}seq"]
    keys += [f"{prefix}queues", f"{prefix}q:{queue}:wake"]
    pipe.eval(_QUEUE_RAW, len(keys), *keys, raw, queue, repr(time.time()), job_id)


@attrs.define
class ListLayout:
    """Queues as earlier versions stored them: ``P q:<queue>:ready`` a list of ids in push order
    (claims took its head, expired leases went back to its head), ``P q:<queue>:delayed`` ids
    by available_at, ``P q:<queue>:leased`` ids by lease deadline; job hashes without ``n``."""

    pipe: Any
    prefix: str

    def _job(self, job: Envelope, state: str, t: float, attempts: int) -> None:
        fields: dict[str, Any] = {"b": encode_job(job), "a": attempts, "q": job.queue}
        fields |= {"s": state, "t": repr(t)}
        if job.unique_key:
            fields["u"] = job.unique_key
            self.pipe.hset(f"{self.prefix}unique", job.unique_key, job.id)
        self.pipe.hset(f"{self.prefix}j:{job.id}", mapping=fields)
        self.pipe.sadd(f"{self.prefix}queues", job.queue)

    def ready(self, job: Envelope) -> None:
        """At the tail of the ready list; ready since its available_at."""
        self._job(job, "r", job.available_at, job.attempts)
        self.pipe.rpush(f"{self.prefix}q:{job.queue}:ready", job.id)

    def stale(self, queue: str, job_id: str) -> None:
        """An id in the ready list whose job is gone."""
        self.pipe.rpush(f"{self.prefix}q:{queue}:ready", job_id)

    def delayed(self, job: Envelope) -> None:
        """In the delayed set, not promoted yet (also when it is due)."""
        self._job(job, "d", job.available_at, job.attempts)
        self.pipe.zadd(f"{self.prefix}q:{job.queue}:delayed", {job.id: job.available_at})

    def leased(self, job: Envelope, deadline: float) -> None:
        """Claimed once (attempts + 1), its lease ending at ``deadline``."""
        self._job(job, "l", job.available_at, job.attempts + 1)
        self.pipe.zadd(f"{self.prefix}q:{job.queue}:leased", {job.id: deadline})
