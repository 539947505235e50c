"""The app whose jobs this process runs: its job registry, ``[worker]`` settings and queue (for
``mqttq.dispatch`` from inside a job)."""

from __future__ import annotations

import asyncio

from mqttq.plugin import App

_app: App | None = None


def set_app(app: App) -> None:
    """Use ``app`` (its job registry and ``[worker]`` settings) for the jobs of this process."""
    global _app
    _app = app


def open_app(app: App) -> None:
    """Open ``app`` (its queue driver) so that jobs can push follow-up jobs (``dispatch``).
    Opening the RQ driver does no I/O and starts no thread: safe before a fork."""
    if not app.is_open:
        asyncio.run(app.open())


def current_app() -> App:
    """The app of this process: the one given to :func:`set_app`, else the one the configuration
    names, found as every mqttq command finds it (``MQTTQ_CONFIG``, then ``./mqttq.toml``)."""
    global _app
    if _app is None:
        _app = App.from_config()
    return _app
