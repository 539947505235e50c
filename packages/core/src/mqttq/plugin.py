"""The plugin-author API: everything a queue driver, job runner, transport or device plugin
needs, in one import. This is the stable surface: names here keep their meaning across minor
versions; anything imported from elsewhere in ``mqttq`` may change.

A plugin module::

    from mqttq.plugin import Register, hookimpl

    @hookimpl
    def mqttq_register_queue_drivers(register: Register) -> None:
        register("mydb", "mqttq_mydb.driver:MyQueueDriver")

and its driver::

    from mqttq.plugin import Capability, Envelope, QueueDriver, encode_job, decode_job
"""

from __future__ import annotations

from mqttq.catalog import Register, import_target
from mqttq.codec import decode_job, decode_value, dumps, encode_job, loads
from mqttq.config import MqttConfig
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

__all__ = [
    "AsyncResource",
    "Backoff",
    "Capability",
    "ConfigError",
    "Delivery",
    "DriverError",
    "DriverUnavailable",
    "Envelope",
    "FailedJob",
    "JobEvent",
    "JobNotFoundError",
    "JobRecord",
    "JobRunner",
    "Message",
    "MqttConfig",
    "MqttqError",
    "NotConnectedError",
    "NotSupportedError",
    "Outage",
    "PayloadError",
    "QueueDriver",
    "QueueNotFoundError",
    "QueueStats",
    "Register",
    "RetryPolicy",
    "Stopped",
    "Subscription",
    "Transport",
    "TransportError",
    "Will",
    "WorkerInfo",
    "WorkerPool",
    "decode_job",
    "decode_value",
    "dumps",
    "encode_job",
    "hookimpl",
    "import_target",
    "loads",
    "new_job_id",
    "require",
    "retry",
    "retry_sync",
]
