"""``mqttq listen``, ``mqttq run`` and ``mqttq demo``: MQTT messages in, jobs out."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import typer

from mqttq.cli._common import CliError, State, get_state


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("listen")(listen)
    app.command("demo")(demo)


def _prepare(state: State) -> None:
    if state.owns_logging and not state.debug:
        logging.getLogger("mqttq").setLevel(logging.INFO)
    if not state.config().routes:
        raise CliError("no [[routes]] configured: nothing to listen to (see `mqttq config init`)")


def listen(ctx: typer.Context) -> None:
    """Subscribe to every route and queue the jobs; workers run them elsewhere.

    SIGTERM/SIGINT: stop reading, queue and acknowledge what was received, exit 0.
    """
    from mqttq.run import serve

    state = get_state(ctx)
    _prepare(state)
    asyncio.run(serve(state.app(), worker=False))


def run(
    ctx: typer.Context,
    queues: list[str] | None = typer.Option(
        None,
        "--queue",
        "-q",
        help="Queue to work; repeat for several (default: worker.queues, then route queues).",
        metavar="QUEUE",
    ),
    concurrency: int | None = typer.Option(
        None,
        "--concurrency",
        "-c",
        min=1,
        help="Jobs run at once (default: worker.concurrency).",
        metavar="N",
    ),
    runner: str | None = typer.Option(
        None,
        "--runner",
        help="Job runner: asyncio, process... (default: worker.runner).",
        metavar="NAME",
    ),
) -> None:
    """Listen and run the jobs in this process: the main job.

    SIGTERM/SIGINT: stop reading, queue and acknowledge what was received, let running jobs
    finish (worker.shutdown_grace), exit 0. A second signal stops the jobs at once (they are
    released to the queue, not lost).

    With a push-only queue (rq+redis://) its driver's workers run the jobs: worker.count of them,
    supervised beside the listener as `mqttq worker` runs them.
    """
    from mqttq.run import serve

    state = get_state(ctx)
    _prepare(state)
    asyncio.run(
        serve(
            state.app(), worker=True, queues=queues or None, concurrency=concurrency, runner=runner
        )
    )


def demo(
    messages: int = typer.Option(
        500,
        "--messages",
        "-n",
        min=0,
        help="Status requests to make, all heaters together (0: until Ctrl-C).",
        metavar="N",
    ),
    devices: int = typer.Option(
        5, "--devices", min=1, max=100, help="Simulated Navien heaters.", metavar="N"
    ),
    rate: float = typer.Option(
        100.0,
        "--rate",
        min=1.0,
        help="Status requests per second, all heaters together.",
        metavar="PER_SECOND",
    ),
    broker: str | None = typer.Option(
        None,
        "--broker",
        metavar="URL",
        help="Use this broker (mqtt://host:1883) instead of the embedded one.",
    ),
    db: Path | None = typer.Option(
        None,
        "--db",
        help="Keep the SQLite queue in this file (default: a temporary directory).",
        metavar="PATH",
    ),
) -> None:
    """Zero set-up tour: embedded broker, SQLite queue, workers and simulated heaters.

    A device client asks the heaters for their status; their replies become jobs, shown live
    as received -> queued -> done / failed. Midway its connection is cut while it sends a few
    commands, shown queued -> sent -> acknowledged. Then a summary.
    """
    from mqttq.demo import DemoOptions, run_demo

    options = DemoOptions(messages=messages, devices=devices, rate=rate, broker=broker, db=db)
    raise typer.Exit(run_demo(options))
