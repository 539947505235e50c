"""Exceptions raised by mqttq, and the ones plugins are expected to raise.

    MqttqError
    ├── ConfigError            bad mqttq.toml / environment; names the key path
    ├── PluginError
    │   ├── PluginLoadError    an entry point failed to import (recorded, not raised, by default)
    │   ├── PluginConflictError two plugins registered the same name; both are named
    │   └── UnknownPluginError "no queue driver for 'redis://'; install mqttq-redis"
    ├── UnknownJobError        a job name that is not registered (never imported from a payload)
    ├── PayloadError           a message or envelope that cannot be decoded
    ├── TransportError
    │   └── NotConnectedError
    ├── DriverError
    │   ├── DriverUnavailable  backend unreachable; retrying is safe
    │   ├── QueueNotFoundError the queue's storage does not exist (and was not to be created)
    │   └── JobNotFoundError
    ├── JobFinishedError       the job already ended (failed, cancelled): nothing left to cancel
    ├── JobFailedError         a job failed where its exception cannot be handed over
    ├── JobTimeoutError        a job ran longer than its timeout
    └── NotSupportedError      an optional capability was used but not declared

Every subclass carries a message meant for a user: the CLI prints ``mqttq: <message>`` and exits
non-zero, with a traceback only under ``--debug``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mqttq.config import Config


class MqttqError(Exception):
    """Base of every error mqttq raises on purpose."""


class ConfigError(MqttqError):
    """The configuration is invalid. ``problems`` lists ``(key path, message)`` pairs;
    ``partial`` is the configuration with the sections that have problems left at their
    defaults (``None`` when the file could not be read)."""

    def __init__(
        self,
        message: str,
        problems: list[tuple[str, str]] | None = None,
        partial: Config | None = None,
    ) -> None:
        super().__init__(message)
        self.problems = problems or []
        self.partial = partial


class PluginError(MqttqError):
    """Something is wrong with a plugin or the plugin registry."""


class PluginLoadError(PluginError):
    """An entry point failed to import or register."""


class PluginConflictError(PluginError):
    """Two plugins registered the same name for the same kind of thing."""


class UnknownPluginError(PluginError):
    """Nothing is registered under the requested name or URL scheme."""


class UnknownJobError(MqttqError):
    """A job name that is not in the registry. Nothing is ever imported by name from a payload."""


class PayloadError(MqttqError):
    """A message or a job envelope could not be decoded."""


class TransportError(MqttqError):
    """The MQTT transport failed."""


class NotConnectedError(TransportError):
    """The transport is not connected and the operation cannot be queued."""


class DriverError(MqttqError):
    """A queue driver failed."""


class DriverUnavailable(DriverError):
    """The queue backend cannot be reached right now; retrying later is safe."""


class QueueNotFoundError(DriverError):
    """The queue's storage does not exist, and the command was not to create it."""


class JobNotFoundError(DriverError):
    """No job (or failed job) with that id."""


class JobFinishedError(MqttqError):
    """The job has already ended (it failed, or was cancelled): there is nothing left to do."""


class JobFailedError(MqttqError):
    """A job failed in another process: carries that process's error text and traceback (the
    exception itself cannot cross a process boundary; nothing is ever unpickled)."""

    def __init__(self, error: str, traceback: str = "") -> None:
        super().__init__(error)
        self.job_error = error
        self.job_traceback = traceback


class JobTimeoutError(MqttqError):
    """A job ran longer than its timeout."""


class NotSupportedError(MqttqError):
    """An optional capability was used but the implementation does not declare it."""
