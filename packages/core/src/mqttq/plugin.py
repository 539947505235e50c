"""The plugin-author API: everything a queue driver, job runner, transport or device plugin
needs, in one import. This is the stable surface: names here keep their meaning across minor
versions; anything imported from elsewhere in ``mqttq`` may change.

Device families and command stores find :class:`DeviceAdapter`, :class:`Command`, :class:`Reply`
and :class:`CommandStore` here too.

A plugin module::

    from mqttq.plugin import Register, hookimpl

    @hookimpl
    def mqttq_register_queue_drivers(register: Register) -> None:
        register("mydb", "mqttq_mydb.driver:MyQueueDriver")

and its driver::

    from mqttq.plugin import Capability, Envelope, QueueDriver, encode_job, decode_job

A worker pool (the workers of a push-only driver, which run jobs in processes of their own) finds
here what mqttq's own worker does with a job: :class:`App` (``App.from_config()`` loads the
configuration and its job registry as every ``mqttq`` command does), :class:`JobSpec`,
:func:`restore_kwargs`, :func:`poison_message` / :func:`redecode` / :func:`poison_error` for a
retried poison entry, :func:`retry_delay` for the backoff, and :func:`job_context` around the call.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from mqttq.app import App
from mqttq.catalog import Register, import_target
from mqttq.codec import decode_job, decode_value, dumps, encode_job, loads
from mqttq.config import MqttConfig
from mqttq.context import CURRENT
from mqttq.devices import (
    Command,
    CommandState,
    CommandStore,
    DeviceAdapter,
    Reply,
    StoredCommand,
    check_device_id,
)
from mqttq.errors import (
    ConfigError,
    DriverError,
    DriverUnavailable,
    JobNotFoundError,
    MqttqError,
    NotConnectedError,
    NotSupportedError,
    PayloadError,
    QueueNotFoundError,
    TransportError,
)
from mqttq.hookspecs import hookimpl
from mqttq.interfaces import (
    AsyncResource,
    CancelOutcome,
    Capability,
    Delivery,
    JobRunner,
    QueueDriver,
    Subscription,
    Transport,
    Will,
    WorkerPool,
    require,
)
from mqttq.jobs import JobSpec, retry_delay
from mqttq.models import (
    Backoff,
    Envelope,
    FailedJob,
    JobEvent,
    JobRecord,
    Message,
    QueueStats,
    WorkerInfo,
    new_job_id,
)
from mqttq.retry import Outage, RetryPolicy, Stopped, retry, retry_sync
from mqttq.routing import PoisonError, poison_error, poison_message, redecode, restore_kwargs

if TYPE_CHECKING:
    from mqttq.queue import Producer

__all__ = [
    "App",
    "AsyncResource",
    "Backoff",
    "CancelOutcome",
    "Capability",
    "Command",
    "CommandState",
    "CommandStore",
    "ConfigError",
    "Delivery",
    "DeviceAdapter",
    "DriverError",
    "DriverUnavailable",
    "Envelope",
    "FailedJob",
    "JobEvent",
    "JobNotFoundError",
    "JobRecord",
    "JobRunner",
    "JobSpec",
    "Message",
    "MqttConfig",
    "MqttqError",
    "NotConnectedError",
    "NotSupportedError",
    "Outage",
    "PayloadError",
    "PoisonError",
    "QueueDriver",
    "QueueNotFoundError",
    "QueueStats",
    "Register",
    "Reply",
    "RetryPolicy",
    "Stopped",
    "StoredCommand",
    "Subscription",
    "Transport",
    "TransportError",
    "Will",
    "WorkerInfo",
    "WorkerPool",
    "check_device_id",
    "decode_job",
    "decode_value",
    "dumps",
    "encode_job",
    "hookimpl",
    "import_target",
    "job_context",
    "loads",
    "new_job_id",
    "poison_error",
    "poison_message",
    "redecode",
    "require",
    "restore_kwargs",
    "retry",
    "retry_delay",
    "retry_sync",
]


@contextlib.contextmanager
def job_context(queue: Producer, job: Envelope) -> Iterator[None]:
    """Run the enclosed code as job ``job``: inside it ``mqttq.current_job()`` is ``job`` and
    ``mqttq.dispatch()`` pushes on ``queue`` (an app's ``app.queue``), as under mqttq's own
    worker. For worker pools that call job functions themselves."""
    token = CURRENT.set((queue, job))
    try:
        yield
    finally:
        CURRENT.reset(token)
