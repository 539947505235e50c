"""``mqttq jobs enqueue|show|cancel``."""

from __future__ import annotations

from typing import Any

import typer

from mqttq.app import App
from mqttq.cli._common import get_state, iso, parse_json, print_json, run_app, sub_app
from mqttq.codec import converter
from mqttq.errors import JobNotFoundError, QueueNotFoundError
from mqttq.models import JobRecord


def register(app: typer.Typer) -> None:
    jobs = sub_app("Queue jobs and look them up.")
    jobs.command("enqueue")(enqueue)
    jobs.command("show")(show)
    jobs.command("cancel")(cancel)
    app.add_typer(jobs, name="jobs")


def enqueue(
    ctx: typer.Context,
    name: str = typer.Argument(
        ..., metavar="NAME", help="A registered job, by its name or its module:function."
    ),
    kwargs: str = typer.Option("{}", "--kwargs", "-k", metavar="JSON", help="Keyword arguments."),
    args: str = typer.Option("[]", "--args", "-a", metavar="JSON", help="Positional arguments."),
    queue: str | None = typer.Option(
        None, "--queue", "-q", help="Queue (default: the job's).", metavar="QUEUE"
    ),
    delay: float | None = typer.Option(
        None, "--delay", min=0, metavar="SECONDS", help="Runnable after this many seconds."
    ),
    unique_key: str | None = typer.Option(
        None,
        "--unique-key",
        help="At most one live job per key (returns the live job's id).",
        metavar="KEY",
    ),
    as_json: bool = typer.Option(False, "--json", help='Print {"id": ...}.'),
) -> None:
    """Queue one job and print its id."""
    kw = parse_json("--kwargs", kwargs, dict)
    positional = parse_json("--args", args, list)
    state = get_state(ctx)
    mqttq_app = state.app()
    mqttq_app.jobs.get(name)  # an unknown name fails before the driver is opened

    async def push(a: App) -> str:
        return await a.queue.push(
            name, positional, kw, queue=queue, delay=delay or None, unique_key=unique_key
        )

    job_id = run_app(state, push, mqttq_app)
    if as_json:
        print_json({"id": job_id})
    else:
        typer.echo(job_id)


def record_json(record: JobRecord) -> dict[str, Any]:
    job = record.job
    return {
        "id": job.id,
        "state": record.state,
        "queue": job.queue,
        "job": job.name,
        "attempts": job.attempts,
        "enqueued_at": iso(job.enqueued_at),
        "available_at": iso(job.available_at),
        "lease_expires_at": iso(record.lease_expires_at),
        "error": record.error if record.error is not None else job.last_error,
        "traceback": record.traceback,
        "envelope": converter.unstructure(job),
    }


def show(
    ctx: typer.Context,
    job_id: str = typer.Argument(..., metavar="ID"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show where a job is now: ready, delayed, reserved, failed or cancelled."""

    async def get(a: App) -> JobRecord | None:
        return await a.driver.get_job(job_id)

    try:
        record = run_app(get_state(ctx), get, create=False)
    except QueueNotFoundError as exc:
        raise JobNotFoundError(f"no job {job_id!r}: {exc}") from None
    if record is None:
        raise JobNotFoundError(
            f"no job {job_id!r} in the queue (finished jobs are not kept; see `mqttq failed list`)"
        )
    data = record_json(record)
    if as_json:
        print_json(data)
        return
    for key in ("id", "state", "queue", "job", "attempts", "enqueued_at", "available_at"):
        typer.echo(f"{key + ':':<14}{data[key]}")
    if data["lease_expires_at"]:
        typer.echo(f"{'lease until:':<14}{data['lease_expires_at']}")
    typer.echo(f"{'args:':<14}{data['envelope']['args']}")
    typer.echo(f"{'kwargs:':<14}{data['envelope']['kwargs']}")
    if data["error"]:
        typer.echo(f"{'error:':<14}{data['error']}")
    if data["traceback"]:
        typer.echo("traceback:\n" + str(data["traceback"]).rstrip())


def cancel(
    ctx: typer.Context,
    job_id: str = typer.Argument(..., metavar="ID"),
    as_json: bool = typer.Option(False, "--json", help='Print {"id": ..., "state": ...}.'),
) -> None:
    """Cancel a job: a waiting one is removed, a running one is stopped by its worker. Either
    way it is recorded as cancelled (never retried, never failed)."""

    async def go(a: App) -> str:
        return await a.queue.cancel(job_id)

    try:
        found = run_app(get_state(ctx), go, create=False)
    except QueueNotFoundError as exc:
        raise JobNotFoundError(f"no job {job_id!r}: {exc}") from None
    if as_json:
        was = "running" if found == "stopping" else "waiting"
        print_json({"id": job_id, "state": "cancelled", "was": was})
    elif found == "stopping":
        typer.echo(f"cancelled {job_id} (it was running: its worker stops it)")
    else:
        typer.echo(f"cancelled {job_id}")
