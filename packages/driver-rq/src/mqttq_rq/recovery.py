"""Jobs of RQ workers that are gone, handled at once rather than after RQ's heartbeat expiry."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import rq.worker
from rq.job import JobStatus
from rq.registry import StartedJobRegistry
from rq.serializers import JSONSerializer

from mqttq_rq import _url
from mqttq_rq.driver import RqQueueDriver
from mqttq_rq.job import META, Job, Queue, mqttq_meta
from mqttq_rq.worker import _json_bytes, _record_abandoned


def recover(
    settings: _url.Settings, queues: Sequence[str], names: Sequence[str], *, release: bool = False
) -> int:
    """See :meth:`mqttq_rq.pool.RqWorkerPool.recover`."""
    client: Any = RqQueueDriver.connect(settings)
    wanted = {n.encode() for n in names}
    count = 0
    try:
        for name in dict.fromkeys(queues):
            registry = StartedJobRegistry(name, connection=client, job_class=Job,
                                          serializer=JSONSerializer)  # fmt: skip
            mine: list[tuple[bytes, str]] = []
            for member, _ in client.zrange(registry.key, 0, -1, withscores=True):
                job_id = member.decode().split(":")[0]
                status, worker = client.hmget(Job.key_for(job_id), "status", "worker_name")
                if status == JobStatus.STARTED.value.encode() and worker in wanted:
                    mine.append((member, job_id))
            if not mine:
                continue
            count += len(mine)
            if release:
                _release(client, name, mine)
            else:  # expire their executions now: RQ's clean-up retries or fails them
                client.zadd(registry.key, {m: 0 for m, _ in mine}, xx=True)
                registry.cleanup(exception_handlers=[_record_abandoned])
        for worker_name in names:
            found = rq.worker.Worker.find_by_key(
                rq.worker.Worker.redis_worker_namespace_prefix + worker_name, connection=client
            )
            if found is not None:
                found.register_death()  # type: ignore[no-untyped-call]
    finally:
        client.close()
    return count


def _release(client: Any, queue: str, jobs: list[tuple[bytes, str]]) -> None:
    """Back to the front of the queue, the interrupted attempt given back (a cold stop)."""
    q = Queue(queue, connection=client)
    registry = StartedJobRegistry(
        queue, connection=client, job_class=Job, serializer=JSONSerializer
    )
    for member, job_id in jobs:
        job = Job.fetch(job_id, connection=client)
        meta = mqttq_meta(job)
        meta["attempts"] = max(0, int(meta.get("attempts", 1)) - 1)
        job.meta[META] = meta
        with client.pipeline(transaction=True) as pipe:
            pipe.zrem(registry.key, member)
            pipe.hset(job.key, mapping={"status": JobStatus.QUEUED.value,
                                        "meta": _json_bytes(job.meta)})  # fmt: skip
            pipe.lpush(q.key, job_id)
            pipe.execute()
