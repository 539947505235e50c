"""``mqttq worker``: claim and run jobs until stopped."""

from __future__ import annotations

import asyncio
import logging

import typer

from mqttq.cli._common import get_state


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)


def worker(
    ctx: typer.Context,
    queues: list[str] | None = typer.Option(
        None,
        "--queue",
        "-q",
        help="Queue to claim from; repeat for several, in priority order.",
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
    burst: bool = typer.Option(False, "--burst", help="Exit once the queues are empty."),
    max_jobs: int | None = typer.Option(
        None, "--max-jobs", min=1, help="Exit after N jobs.", metavar="N"
    ),
    max_time: float | None = typer.Option(
        None, "--max-time", min=0, metavar="SECONDS", help="Exit after this long."
    ),
    runner: str | None = typer.Option(
        None,
        "--runner",
        help="Job runner: asyncio, process... (default: worker.runner).",
        metavar="NAME",
    ),
) -> None:
    """Run jobs from the queue. SIGTERM/SIGINT stop it gracefully; a second one stops it now."""
    from mqttq.worker import Worker  # the worker's imports are only paid by this command

    state = get_state(ctx)
    if state.owns_logging and not state.debug:
        logging.getLogger("mqttq").setLevel(logging.INFO)
    the_worker = Worker(
        state.app(),
        queues=queues or None,
        concurrency=concurrency,
        burst=burst,
        max_jobs=max_jobs,
        max_time=max_time,
        runner=runner,
    )
    code = asyncio.run(the_worker.run())
    raise typer.Exit(code)
