"""``mqttq failed list|show|retry|forget|purge``: the failed-job registry."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from mqttq.app import App
from mqttq.cli._common import (
    CliError,
    age,
    console,
    first_line,
    get_state,
    iso,
    print_json,
    require,
    run_app,
)
from mqttq.codec import converter
from mqttq.errors import JobNotFoundError
from mqttq.interfaces import Capability, QueueDriver
from mqttq.models import FailedJob

if TYPE_CHECKING:
    from rich.progress import Progress

#: failed jobs requeued per driver call by ``retry --all``
CHUNK = 500

_JSON = typer.Option(False, "--json", help="Print JSON.")


def register(app: typer.Typer) -> None:
    failed = typer.Typer(help="Inspect, retry and clear failed jobs.", no_args_is_help=True)
    failed.command("list")(list_)
    failed.command("show")(show)
    failed.command("retry")(retry)
    failed.command("forget")(forget)
    failed.command("purge")(purge)
    app.add_typer(failed, name="failed")


def _registry(a: App) -> QueueDriver:
    require(a.driver, Capability.FAILED_REGISTRY, "a failed-job registry")
    return a.driver


def entry_json(entry: FailedJob, *, details: bool = False) -> dict[str, Any]:
    """One failed job as ``failed list --json`` prints it (``details``: as ``failed show``)."""
    job = entry.job
    data: dict[str, Any] = {
        "id": job.id,
        "queue": job.queue,
        "job": job.name,
        "error": entry.error,
        "attempts": job.attempts,
        "failed_at": iso(entry.failed_at),
    }
    if details:
        plain = converter.unstructure(job)  # bytes arguments stay JSON ({"$bytes": ...})
        data.update(
            traceback=entry.traceback,
            args=plain["args"],
            kwargs=plain["kwargs"],
            max_tries=job.max_tries,
            enqueued_at=iso(job.enqueued_at),
            unique_key=job.unique_key,
        )
    return data


def list_(
    ctx: typer.Context,
    queue: str | None = typer.Option(None, "--queue", "-q", help="Only this queue."),
    limit: int = typer.Option(100, "--limit", "-n", min=1, help="At most this many."),
    offset: int = typer.Option(0, "--offset", min=0, help="Skip the newest N."),
    as_json: bool = _JSON,
) -> None:
    """List failed jobs, newest first."""

    async def fetch(a: App) -> list[FailedJob]:
        return await _registry(a).failed_list(queue, offset=offset, limit=limit)

    entries = run_app(get_state(ctx), fetch)
    if as_json:
        print_json([entry_json(e) for e in entries])
        return
    if not entries:
        typer.echo("no failed jobs")
        return
    now = time.time()
    table = Table(box=None)
    table.add_column("id", no_wrap=True, min_width=max(len(e.id) for e in entries))
    table.add_column("queue", no_wrap=True)
    table.add_column("job", no_wrap=True)
    table.add_column("tries", justify="right")
    table.add_column("failed", no_wrap=True)
    table.add_column("error", no_wrap=True, overflow="ellipsis")
    for e in entries:
        tries = str(e.job.attempts)
        when = age(e.failed_at, now) + " ago"
        table.add_row(e.id, e.job.queue, e.job.name, tries, when, first_line(e.error))
    console().print(table)


def show(
    ctx: typer.Context,
    job_id: str = typer.Argument(..., metavar="ID"),
    as_json: bool = _JSON,
) -> None:
    """Show one failed job with its arguments and traceback."""

    async def fetch(a: App) -> FailedJob | None:
        return await _registry(a).failed_get(job_id)

    entry = run_app(get_state(ctx), fetch)
    if entry is None:
        raise JobNotFoundError(f"no failed job {job_id!r}")
    data = entry_json(entry, details=True)
    if as_json:
        print_json(data)
        return
    for key in ("id", "queue", "job", "attempts", "failed_at", "enqueued_at", "args", "kwargs"):
        typer.echo(f"{key + ':':<13}{data[key]}")
    typer.echo(f"{'error:':<13}{data['error']}")
    if data["traceback"]:
        typer.echo("traceback:\n" + data["traceback"].rstrip())


async def _requeue_ids(driver: QueueDriver, ids: Sequence[str], progress: Progress) -> int:
    """Requeue in chunks of :data:`CHUNK`, advancing ``progress``."""
    moved = 0
    task = progress.add_task("requeueing", total=len(ids))
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        moved += await driver.failed_requeue(chunk)
        progress.advance(task, len(chunk))
    return moved


def _progress() -> Progress:
    """A progress bar on stderr, shown only when stderr is a terminal."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console(stderr=True),
        transient=True,
        disable=not sys.stderr.isatty(),
    )


def _counted(verb: str, n: int, as_json: bool, key: str) -> None:
    if as_json:
        print_json({key: n})
    else:
        typer.echo(f"{verb} {n} job{'' if n == 1 else 's'}")


def _missing(verb: str, done: int, asked: int) -> None:
    if done < asked:
        missing = asked - done
        raise JobNotFoundError(
            f"{verb} {done} of {asked} jobs; {missing} "
            f"{'is' if missing == 1 else 'are'} not in the failed registry"
        )


def retry(
    ctx: typer.Context,
    ids: list[str] | None = typer.Argument(None, metavar="[ID]...", help="Failed job ids."),
    all_: bool = typer.Option(False, "--all", help="Every failed job (of --queue)."),
    queue: str | None = typer.Option(None, "--queue", "-q", help="With --all: only this queue."),
    as_json: bool = typer.Option(False, "--json", help='Print {"requeued": N}.'),
) -> None:
    """Put failed jobs back in their queue with their attempts reset."""
    if bool(ids) == all_:
        raise CliError("give failed job ids or --all (not both)")
    if queue and not all_:
        raise CliError("--queue only applies with --all")
    wanted = list(ids or [])

    async def work(a: App) -> int:
        driver = _registry(a)
        if not all_:
            return await driver.failed_requeue(wanted)
        targets = await driver.failed_ids(queue)
        with _progress() as progress:
            return await _requeue_ids(driver, targets, progress)

    moved = run_app(get_state(ctx), work)
    _counted("requeued", moved, as_json, "requeued")
    if not all_:
        _missing("requeued", moved, len(wanted))


def forget(
    ctx: typer.Context,
    ids: list[str] = typer.Argument(..., metavar="ID...", help="Failed job ids."),
    as_json: bool = typer.Option(False, "--json", help='Print {"forgotten": N}.'),
) -> None:
    """Delete failed jobs from the registry."""

    async def work(a: App) -> int:
        return await _registry(a).failed_forget(ids)

    n = run_app(get_state(ctx), work)
    _counted("forgot", n, as_json, "forgotten")
    _missing("forgot", n, len(ids))


def purge(
    ctx: typer.Context,
    queue: str | None = typer.Option(None, "--queue", "-q", help="Only this queue."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask."),
    as_json: bool = typer.Option(False, "--json", help='Print {"purged": N}.'),
) -> None:
    """Delete every failed job (of a queue). Asks first on a terminal unless --yes."""
    state = get_state(ctx)
    if not yes and sys.stdin.isatty():
        where = f" of queue {queue!r}" if queue else ""
        if not typer.confirm(f"Delete every failed job{where}?", default=False):
            raise CliError("nothing purged", exit_code=1)

    async def work(a: App) -> int:
        return await _registry(a).failed_purge(queue)

    _counted("purged", run_app(state, work), as_json, "purged")
