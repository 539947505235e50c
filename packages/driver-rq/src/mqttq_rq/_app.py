"""What mqttq-rq needs from mqttq beyond ``mqttq.plugin``: the app built from its configuration
(the job registry), and the pieces of mqttq's executor that run a job (``restore_kwargs``, poison
re-decoding, the backoff). Kept in this one module so that only it changes the day the plugin API
offers them."""

from __future__ import annotations

import os
from typing import Any

from mqttq.app import App
from mqttq.context import CURRENT
from mqttq.jobs import JobSpec, retry_delay
from mqttq.routing import PoisonError, poison_error, poison_message, redecode, restore_kwargs

__all__ = [
    "CURRENT",
    "App",
    "JobSpec",
    "PoisonError",
    "current_app",
    "poison_error",
    "poison_message",
    "redecode",
    "restore_kwargs",
    "retry_delay",
    "set_app",
]

_app: Any = None


def set_app(app: Any) -> None:
    """Use ``app`` (its job registry and ``[worker]`` settings) for the jobs of this process."""
    global _app
    _app = app


def open_app(app: Any) -> None:
    """Open ``app`` (its queue driver) so that jobs can push follow-up jobs (``dispatch``).
    Opening the RQ driver does no I/O and starts no thread: safe before a fork."""
    if not app.is_open:
        import asyncio

        asyncio.run(app.open())


def current_app() -> Any:
    """The app of this process: the one given to :func:`set_app`, else the one the configuration
    names, found as every mqttq command finds it (``MQTTQ_CONFIG``, then ``./mqttq.toml``)."""
    global _app
    if _app is None:
        _app = App.from_config(os.environ.get("MQTTQ_CONFIG") or None)
    return _app
