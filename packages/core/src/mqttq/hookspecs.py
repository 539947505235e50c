"""Hook specifications for mqttq plugins.

A plugin is a module named by an entry point in the ``mqttq.plugins`` group whose functions are
marked ``@mqttq.hookimpl`` and named after the specs below.

Rules that hold for every hook:

* Hooks are called with keyword arguments. An implementation may accept any subset of a spec's
  parameters, so new parameters can appear without breaking plugins.
* Hooks are synchronous and do no I/O: they *register* things; the registered objects do the
  async work.
* Registration targets may be ``"module:Class"`` strings, imported only when a user selects that
  name, so a plugin module stays cheap to import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import typer

    from mqttq.catalog import Register
    from mqttq.devices.models import CommandEvent
    from mqttq.models import JobEvent

hookspec = pluggy.HookspecMarker("mqttq")
#: marks implementations of these hooks (also ``mqttq.hookimpl`` and ``mqttq.plugin.hookimpl``)
hookimpl = pluggy.HookimplMarker("mqttq")


# ---------------------------------------------------------------------------------------------
# Registration: tell mqttq what you provide
# ---------------------------------------------------------------------------------------------


@hookspec
def mqttq_register_transports(register: Register) -> None:
    """Register MQTT transports, keyed by URL scheme.

    :param register: ``register(name, target, aliases=())``; ``target`` is a ``Transport``
        subclass or a ``"module:Class"`` string.

    Example::

        @hookimpl
        def mqttq_register_transports(register):
            register("mqtt", "mqttq.transports.mqtt:MqttTransport", aliases=("mqtts",))
    """


@hookspec
def mqttq_register_queue_drivers(register: Register) -> None:
    """Register ``QueueDriver`` classes, keyed by URL scheme (``sqlite``, ``redis``, ``memory``).

    Example::

        @hookimpl
        def mqttq_register_queue_drivers(register):
            register("sqlite", "mqttq_sqlite.driver:SqliteQueueDriver")
    """


@hookspec
def mqttq_register_job_runners(register: Register) -> None:
    """Register ``JobRunner`` classes, keyed by the name used in ``[worker] runner``.

    Example::

        @hookimpl
        def mqttq_register_job_runners(register):
            register("asyncio", "mqttq.worker.runners:AsyncioJobRunner")
    """


@hookspec
def mqttq_register_worker_pools(register: Register) -> None:
    """Register ``WorkerPool`` classes, keyed by the queue driver's URL scheme.

    A push-only queue driver (one without ``Capability.CLAIM``, such as ``rq+redis``) runs its
    jobs in workers of its own; ``mqttq worker`` then runs the pool registered for the scheme of
    ``queue.url`` instead of mqttq's worker.

    Example::

        @hookimpl
        def mqttq_register_worker_pools(register):
            register("rq+redis", "mqttq_rq.pool:RqWorkerPool", aliases=("rq+rediss", "rq+unix"))
    """


@hookspec
def mqttq_register_devices(register: Register) -> None:
    """Register ``DeviceAdapter`` classes, keyed by device family (``navien``).

    Example::

        @hookimpl
        def mqttq_register_devices(register):
            register("navien", "mqttq_navien.adapter:NavienAdapter")
    """


@hookspec
def mqttq_register_command_stores(register: Register) -> None:
    """Register ``CommandStore`` classes, keyed by URL scheme (``[devices] store``): where the
    device command queue keeps commands so that they survive a restart.

    Example::

        @hookimpl
        def mqttq_register_command_stores(register):
            register("sqlite", "mqttq_sqlite.commands:SqliteCommandStore")
    """


@hookspec
def mqttq_register_commands(cli: typer.Typer) -> None:
    """Add commands to the ``mqttq`` CLI, preferably as one sub-app per plugin.

    Import your CLI module inside the hook so ``mqttq --help`` stays fast.

    Example::

        @hookimpl
        def mqttq_register_commands(cli):
            from mqttq_navien.cli import app
            cli.add_typer(app, name="navien")
    """


# ---------------------------------------------------------------------------------------------
# Observation
# ---------------------------------------------------------------------------------------------


@hookspec
def mqttq_job_event(event: JobEvent | CommandEvent) -> None:
    """Called for every job event (a ``JobEvent``: enqueued, started, succeeded, retrying,
    failed, released) and every device command event (a ``CommandEvent``, ``kind`` starting
    with ``command.``: queued, sent, resent, acknowledged, rejected, expired, dropped).

    Runs on the worker's event loop: it must be quick and do no I/O (hand the event to a queue
    or a metrics counter). An exception here is logged and never affects the job.

    Example::

        @hookimpl
        def mqttq_job_event(event):
            if event.kind == "failed":
                FAILED.inc()
    """
