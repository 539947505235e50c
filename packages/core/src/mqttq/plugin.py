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
"""

from __future__ import annotations

from mqttq.catalog import Register, import_target
from mqttq.codec import decode_job, decode_value, dumps, encode_job, loads
from mqttq.config import MqttConfig
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
    "loads",
    "new_job_id",
    "require",
    "retry",
    "retry_sync",
]
