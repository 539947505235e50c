"""The job being run, as a context variable: ``mqttq.current_queue()``, ``current_job()``,
``dispatch()``.

The executor sets it around every job it runs (worker or a listener's sync route), in that job's
own context: jobs running side by side, and several apps in one process, each see their own. In
the ``process`` runner the child process sets it to a queue that pushes through the worker that
sent the job (over the same pipe), so a job dispatches the same way wherever it runs.
"""

from __future__ import annotations

import contextvars
from typing import TYPE_CHECKING, Any

from mqttq.errors import MqttqError

if TYPE_CHECKING:
    from mqttq.classjobs import Job
    from mqttq.models import Envelope
    from mqttq.queue import JobRef, Producer

#: (the queue of the app running the job, the job's envelope)
CURRENT: contextvars.ContextVar[tuple[Producer, Envelope] | None] = contextvars.ContextVar(
    "mqttq_current_job", default=None
)


def current_queue() -> Producer:
    """The queue of the app running the current job, to push follow-up jobs."""
    current = CURRENT.get()
    if current is None:
        raise MqttqError(
            "mqttq.current_queue() and mqttq.dispatch() work inside a running job or route "
            "handler; elsewhere use app.queue"
        )
    return current[0]


def current_job() -> Envelope | None:
    """The envelope of the job being run (its id, attempts...), or ``None`` outside a job."""
    current = CURRENT.get()
    return None if current is None else current[1]


async def dispatch(job: Job | JobRef, *args: Any, **options: Any) -> str:
    """Push ``job`` (a :class:`mqttq.Job` instance, or a job name or function with its
    arguments) on the queue of the running job's app: ``current_queue().push(...)``."""
    return await current_queue().push(job, *args, **options)
