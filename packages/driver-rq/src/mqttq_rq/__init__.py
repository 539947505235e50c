"""mqttq-rq: mqttq jobs in RQ queues (``rq+redis://``, ``rq+rediss://``, ``rq+unix://``).

Jobs are RQ jobs whose function is always :data:`ENTRY` and whose one argument is mqttq's JSON
envelope (RQ's JSON serializer, never pickle); :class:`mqttq_rq.worker.Worker` runs them the way
mqttq does. Importing this package is cheap: rq loads on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

#: the function of every RQ job mqttq-rq writes, as RQ stores it
ENTRY = "mqttq_rq.entry.run"

if TYPE_CHECKING:
    from mqttq_rq.driver import RqQueueDriver
    from mqttq_rq.pool import RqWorkerPool

__all__ = ["ENTRY", "RqQueueDriver", "RqWorkerPool"]


def __getattr__(name: str) -> Any:
    if name == "RqQueueDriver":
        from mqttq_rq.driver import RqQueueDriver

        return RqQueueDriver
    if name == "RqWorkerPool":
        from mqttq_rq.pool import RqWorkerPool

        return RqWorkerPool
    raise AttributeError(f"module 'mqttq_rq' has no attribute {name!r}")
