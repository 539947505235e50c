"""``mqttq schedules list``: each schedule, when it fires next and when it last fired."""

from __future__ import annotations

import time
from typing import Any

import typer

from mqttq.app import App
from mqttq.cli._common import console, get_state, iso, print_json, run_app, sub_app
from mqttq.interfaces import Capability


def register(app: typer.Typer) -> None:
    schedules = sub_app("Periodic schedules ([[schedules]]).")
    schedules.command("list")(list_schedules)
    app.add_typer(schedules, name="schedules")


def list_schedules(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Each schedule: its job and timing, its next slot, and the last slot fired (by any
    worker)."""
    from mqttq.schedules import check_schedules

    state = get_state(ctx)
    app = state.app()
    schedules = check_schedules(app)

    async def marks(a: App) -> dict[str, float]:
        if Capability.SCHEDULES not in a.driver.capabilities:
            return {}
        return await a.driver.schedule_marks()

    nothing: dict[str, float] = {}
    fired = run_app(state, marks, app, create=False, empty=nothing) if schedules else nothing
    now = time.time()
    rows: list[dict[str, Any]] = [
        {
            "name": s.name,
            "job": s.job,
            "cron": s.cron,
            "every": s.every,
            "timezone": s.timezone,
            "queue": s.queue,
            "catch_up": s.catch_up,
            "next": iso(s.next_after(now)),
            "last": iso(fired.get(s.name)),
        }
        for s in schedules
    ]
    if as_json:
        print_json(rows)
        return
    if not rows:
        typer.echo("no schedules ([[schedules]] in mqttq.toml)")
        return
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column in ("name", "job", "timing", "next", "last"):
        table.add_column(column)
    for s, row in zip(schedules, rows, strict=True):
        table.add_row(s.name, s.job, s.timing, row["next"], row["last"] or "never")
    console().print(table)
