"""mqttq: turn MQTT traffic into reliable background work.

The public API. Everything else is reachable from its module but may change between minors.
"""

from __future__ import annotations

from importlib import metadata

from mqttq.app import App
from mqttq.classjobs import Job
from mqttq.config import Config, load_config
from mqttq.context import current_job, current_queue, dispatch
from mqttq.errors import (
    ConfigError,
    DriverError,
    DriverUnavailable,
    JobFailedError,
    JobFinishedError,
    JobNotFoundError,
    JobTimeoutError,
    MqttqError,
    NotConnectedError,
    NotSupportedError,
    PayloadError,
    PluginConflictError,
    PluginError,
    PluginLoadError,
    QueueNotFoundError,
    TransportError,
    UnknownJobError,
    UnknownPluginError,
)
from mqttq.hookspecs import hookimpl
from mqttq.interfaces import Capability, JobRunner, QueueDriver
from mqttq.jobs import JobSpec, job
from mqttq.models import (
    Backoff,
    Call,
    Envelope,
    FailedJob,
    JobEvent,
    JobRecord,
    Message,
    QueueStats,
    WorkerInfo,
)
from mqttq.plugins import make_plugin_manager

try:
    __version__ = metadata.version("mqttq")
except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "App",
    "Backoff",
    "Call",
    "Capability",
    "Config",
    "ConfigError",
    "DriverError",
    "DriverUnavailable",
    "Envelope",
    "FailedJob",
    "Job",
    "JobEvent",
    "JobFailedError",
    "JobFinishedError",
    "JobNotFoundError",
    "JobRecord",
    "JobRunner",
    "JobSpec",
    "JobTimeoutError",
    "Message",
    "MqttqError",
    "NotConnectedError",
    "NotSupportedError",
    "PayloadError",
    "PluginConflictError",
    "PluginError",
    "PluginLoadError",
    "QueueDriver",
    "QueueNotFoundError",
    "QueueStats",
    "TransportError",
    "UnknownJobError",
    "UnknownPluginError",
    "WorkerInfo",
    "__version__",
    "current_job",
    "current_queue",
    "dispatch",
    "hookimpl",
    "job",
    "load_config",
    "make_plugin_manager",
]
