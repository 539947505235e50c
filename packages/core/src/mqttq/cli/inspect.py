"""``mqttq stats``, ``mqttq workers`` and ``mqttq plugins``."""

from __future__ import annotations

import time
from typing import Any

import typer
from rich.table import Table

from mqttq.app import App
from mqttq.cli._common import age, console, get_state, iso, print_json, run_app
from mqttq.models import QueueStats, WorkerInfo
from mqttq.plugins import PluginInfo

_JSON = typer.Option(False, "--json", help="Print JSON.")


def register(app: typer.Typer) -> None:
    app.command("stats")(stats)
    app.command("workers")(workers)
    app.command("plugins")(plugins)


def stats_json(per_queue: dict[str, QueueStats]) -> dict[str, Any]:
    return {
        "queues": {
            name: {
                "ready": s.ready,
                "delayed": s.delayed,
                "reserved": s.reserved,
                "failed": s.failed,
                "oldest_ready_age": s.oldest_ready_age,
            }
            for name, s in sorted(per_queue.items())
        }
    }


def stats(ctx: typer.Context, as_json: bool = _JSON) -> None:
    """Jobs per queue: ready, delayed, reserved (running) and failed."""

    async def fetch(a: App) -> dict[str, QueueStats]:
        return await a.driver.stats()

    data = stats_json(run_app(get_state(ctx), fetch, create=False, empty={}))
    if as_json:
        print_json(data)
        return
    if not data["queues"]:
        typer.echo("no queues yet")
        return
    table = Table("queue", "ready", "delayed", "reserved", "failed", "oldest ready", box=None)
    for name, s in data["queues"].items():
        oldest = s["oldest_ready_age"]
        table.add_row(
            name,
            *(str(s[k]) for k in ("ready", "delayed", "reserved", "failed")),
            "-" if oldest is None else f"{oldest:.1f}s",
        )
    console().print(table)


def worker_json(w: WorkerInfo) -> dict[str, Any]:
    return {
        "id": w.id,
        "hostname": w.hostname,
        "pid": w.pid,
        "queues": list(w.queues),
        "concurrency": w.concurrency,
        "running": w.running,
        "processed": w.processed,
        "failed": w.failed,
        "started_at": iso(w.started_at),
        "heartbeat_at": iso(w.heartbeat_at),
    }


def workers(ctx: typer.Context, as_json: bool = _JSON) -> None:
    """Live workers (those whose heartbeat has not expired)."""

    async def fetch(a: App) -> list[WorkerInfo]:
        return await a.driver.workers()

    none: list[WorkerInfo] = []
    found = sorted(
        run_app(get_state(ctx), fetch, create=False, empty=none), key=lambda w: (w.hostname, w.id)
    )
    if as_json:
        print_json([worker_json(w) for w in found])
        return
    if not found:
        typer.echo("no live workers")
        return
    now = time.time()
    table = Table("id", "host", "pid", "queues", "running", "processed", "failed", "up", box=None)
    for w in found:
        counts = (str(w.running) + f"/{w.concurrency}", str(w.processed), str(w.failed))
        table.add_row(
            w.id, w.hostname, str(w.pid), ",".join(w.queues), *counts, age(w.started_at, now)
        )
    console().print(table)


def plugin_json(info: PluginInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "distribution": info.distribution,
        "version": info.version,
        "module": info.module,
        "provides": {kind: sorted(names) for kind, names in sorted(info.provides.items())},
        "status": info.status,
        "error": info.error,
    }


def plugins(
    ctx: typer.Context,
    as_json: bool = _JSON,
    check: bool = typer.Option(
        False,
        "--check",
        help="Also import everything each plugin registers; exit 1 when a plugin failed.",
    ),
) -> None:
    """Installed plugins, what each provides, and whether it loaded."""
    infos = get_state(ctx).host.describe(load=check)
    data = [plugin_json(i) for i in infos]
    if as_json:
        print_json(data)
    else:
        table = Table("name", "distribution", "version", "status", "provides", box=None)
        for p in data:
            provides = "; ".join(f"{k}: {', '.join(v)}" for k, v in p["provides"].items())
            status = p["status"] if not p["error"] else f"{p['status']}: {p['error']}"
            table.add_row(
                p["name"], p["distribution"] or "-", p["version"] or "-", status, provides
            )
        console().print(table)
    broken = [p for p in data if p["status"] == "error"]
    if check and broken:
        for p in broken:
            typer.echo(f"mqttq: plugin {p['name']!r} failed: {p['error']}", err=True)
        raise typer.Exit(1)
