"""``mqttq failed list|show|retry|forget|purge``: the failed-job registry."""

from __future__ import annotations

import base64
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
    run_app,
    sub_app,
)
from mqttq.codec import converter
from mqttq.errors import JobNotFoundError, QueueNotFoundError
from mqttq.interfaces import Capability, QueueDriver, require
from mqttq.models import FailedJob
from mqttq.routing import poison_message

if TYPE_CHECKING:
    from rich.progress import Progress

#: failed jobs requeued per driver call by ``retry --all``
CHUNK = 500

_JSON = typer.Option(False, "--json", help="Print JSON.")


def register(app: typer.Typer) -> None:
    failed = sub_app("Inspect, retry and clear failed jobs.")
    failed.command("list")(list_)
    failed.command("show")(show)
    failed.command("retry")(retry)
    failed.command("forget")(forget)
    failed.command("purge")(purge)
    app.add_typer(failed, name="failed")


def _registry(a: App) -> QueueDriver:
    require(a.driver, Capability.FAILED_REGISTRY, "mqttq failed")
    return a.driver


def kind_of(entry: FailedJob) -> str:
    """``job`` (a job that failed), ``poison`` (a message its route could not decode) or
    ``undecodable`` (a stored entry no one can read)."""
    if entry.raw is not None:
        return "undecodable"
    return "poison" if poison_message(entry.job) is not None else "job"


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
        "kind": kind_of(entry),
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
        if entry.raw is not None:  # the stored bytes, as text when they are UTF-8
            try:
                data["raw"] = entry.raw.decode("utf-8")
            except UnicodeDecodeError:
                data["raw_base64"] = base64.b64encode(entry.raw).decode("ascii")
    return data


def list_(
    ctx: typer.Context,
    queue: str | None = typer.Option(
        None, "--queue", "-q", help="Only this queue.", metavar="QUEUE"
    ),
    limit: int = typer.Option(100, "--limit", "-n", min=1, help="At most this many.", metavar="N"),
    offset: int = typer.Option(0, "--offset", min=0, help="Skip the newest N.", metavar="N"),
    as_json: bool = _JSON,
) -> None:
    """List failed jobs, newest first."""

    async def fetch(a: App) -> list[FailedJob]:
        return await _registry(a).failed_list(queue, offset=offset, limit=limit)

    nothing: list[FailedJob] = []
    entries = run_app(get_state(ctx), fetch, create=False, empty=nothing)
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

    try:
        entry = run_app(get_state(ctx), fetch, create=False)
    except QueueNotFoundError as exc:
        raise JobNotFoundError(f"no failed job {job_id!r}: {exc}") from None
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


async def _requeue(driver: QueueDriver, entries: Sequence[FailedJob]) -> int:
    """Requeue in chunks of :data:`CHUNK`, with a progress bar on a terminal."""
    ids = [e.id for e in entries]
    moved = 0
    with _progress() as progress:
        task = progress.add_task("requeueing", total=len(ids))
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            moved += await driver.failed_requeue(chunk)
            progress.advance(task, len(chunk))
    return moved


async def _every_entry(driver: QueueDriver, queue: str | None) -> list[FailedJob]:
    entries: list[FailedJob] = []
    while page := await driver.failed_list(queue, offset=len(entries), limit=CHUNK):
        entries += page
    return entries


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
    queue: str | None = typer.Option(
        None, "--queue", "-q", help="With --all: only this queue.", metavar="QUEUE"
    ),
    force: bool = typer.Option(
        False,
        "--force",
        help="Also requeue poison messages (they are decoded again, and fail "
        "again unless the route now decodes them).",
    ),
    as_json: bool = typer.Option(False, "--json", help='Print {"requeued": N, ...}.'),
) -> None:
    """Put failed jobs back in their queue with their attempts reset.

    Poison messages (payloads their route could not decode) are left alone unless --force;
    entries whose stored envelope cannot be read are never requeued (see `mqttq failed show`).
    """
    if bool(ids) == all_:
        raise CliError("give failed job ids or --all (not both)")
    if queue and not all_:
        raise CliError("--queue only applies with --all")
    wanted = list(dict.fromkeys(ids or []))

    async def work(a: App) -> tuple[int, dict[str, list[str]]]:
        driver = _registry(a)
        if all_:
            entries = await _every_entry(driver, queue)
            missing: list[str] = []
        else:
            found = {i: await driver.failed_get(i) for i in wanted}
            entries = [e for e in found.values() if e is not None]
            missing = [i for i, e in found.items() if e is None]
        kinds = {e.id: kind_of(e) for e in entries}
        left = {
            "missing": missing,
            "poison": [] if force else [i for i, k in kinds.items() if k == "poison"],
            "undecodable": [i for i, k in kinds.items() if k == "undecodable"],
        }
        skipped = {*left["poison"], *left["undecodable"]}
        moved = await _requeue(driver, [e for e in entries if e.id not in skipped])
        return moved, left

    nothing: dict[str, list[str]] = {"missing": wanted, "poison": [], "undecodable": []}
    moved, left = run_app(get_state(ctx), work, create=False, empty=(0, nothing))
    if as_json:
        print_json({"requeued": moved, **left})
    else:
        typer.echo(f"requeued {moved} job{'' if moved == 1 else 's'}")
    notes = []
    if not all_ and moved < len(wanted):
        notes.append(f"requeued {moved} of {len(wanted)} jobs")
    if left["missing"]:
        notes.append(f"{_count(left['missing'], 'id')} not in the failed registry")
    if left["poison"]:
        notes.append(
            f"{_count(left['poison'], 'poison message')} not requeued: its route could not "
            "decode the payload (--force to requeue anyway)"
        )
    if left["undecodable"]:
        notes.append(
            f"{_count(left['undecodable'], 'entry', 'entries')} cannot be requeued: the stored "
            "envelope is unreadable (see `mqttq failed show ID`)"
        )
    if notes and not all_:
        raise JobNotFoundError("; ".join(notes))
    for note in notes:
        typer.echo(f"mqttq: {note}", err=True)


def _count(items: Sequence[str], one: str, many: str | None = None) -> str:
    noun = one if len(items) == 1 else (many or one + "s")
    shown = ", ".join(items[:3]) + (", ..." if len(items) > 3 else "")
    return f"{len(items)} {noun} ({shown})"


def forget(
    ctx: typer.Context,
    ids: list[str] = typer.Argument(..., metavar="ID...", help="Failed job ids."),
    as_json: bool = typer.Option(False, "--json", help='Print {"forgotten": N}.'),
) -> None:
    """Delete failed jobs from the registry."""

    async def work(a: App) -> int:
        return await _registry(a).failed_forget(ids)

    n = run_app(get_state(ctx), work, create=False, empty=0)
    _counted("forgot", n, as_json, "forgotten")
    _missing("forgot", n, len(ids))


def purge(
    ctx: typer.Context,
    queue: str | None = typer.Option(
        None, "--queue", "-q", help="Only this queue.", metavar="QUEUE"
    ),
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

    _counted("purged", run_app(state, work, create=False, empty=0), as_json, "purged")
