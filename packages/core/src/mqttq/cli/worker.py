"""``mqttq worker``: claim and run jobs until stopped."""

from __future__ import annotations

import asyncio
import logging

import typer

from mqttq.cli._common import CliError, get_state


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
    count: int | None = typer.Option(
        None,
        "--count",
        "-n",
        min=1,
        metavar="N",
        help="Worker processes to run and supervise (default: worker.count).",
    ),
    simple: bool = typer.Option(
        False,
        "--simple",
        help="Run each job in the worker process itself, never in a forked child (the "
        "default for mqttq's own workers; RQ's SimpleWorker for rq+redis queues).",
    ),
    max_tries: int | None = typer.Option(
        None,
        "--max-tries",
        min=1,
        metavar="N",
        help="Tries of every job, over its own default and worker.max_tries (a value pushed "
        "with a job, or set by its route, still wins).",
    ),
    timeout: float | None = typer.Option(
        None,
        "--timeout",
        min=0,
        metavar="SECONDS",
        help="Timeout of every job, likewise; must be below worker.lease.",
    ),
    no_schedules: bool = typer.Option(
        False, "--no-schedules", help="Do not fire [[schedules]] from this worker."
    ),
) -> None:
    """Run jobs from the queue. SIGTERM/SIGINT stop it gracefully; a second one stops it now.

    With a push-only queue (rq+redis://) this runs that driver's own workers.
    """
    from mqttq.worker import Worker  # the worker's imports are only paid by this command

    state = get_state(ctx)
    if state.owns_logging and not state.debug:
        logging.getLogger("mqttq").setLevel(logging.INFO)
    app = state.app()
    pool = app.worker_pool_class()
    if pool is not None:
        if max_tries is not None or timeout is not None:
            raise CliError(
                "--max-tries and --timeout are for mqttq's own workers; this queue's driver "
                "runs its own: set max_tries and timeout on the jobs instead"
            )
        the_pool = pool(
            app,
            queues=queues or app.config.worker.queues,
            count=count or app.config.worker.count,
            burst=burst,
            simple=simple,
        )
        raise typer.Exit(asyncio.run(the_pool.run()))
    if (count or app.config.worker.count) > 1:
        raise CliError(
            "--count above 1 (worker.count) is for queues whose driver runs its own workers; "
            "start several `mqttq worker` processes (or one unit per process) instead"
        )
    the_worker = Worker(
        app,
        queues=queues or None,
        concurrency=concurrency,
        burst=burst,
        max_jobs=max_jobs,
        max_time=max_time,
        runner=runner,
        max_tries=max_tries,
        timeout=timeout,
        schedules=False if no_schedules else None,
    )
    code = asyncio.run(the_worker.run())
    raise typer.Exit(code)
