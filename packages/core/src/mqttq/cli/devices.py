"""``mqttq devices queue``: the commands waiting for each device in the command store."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from typing import Any

import typer
from rich.table import Table

from mqttq.cli._common import age, console, get_state, iso, print_json, sub_app
from mqttq.devices.client import make_store
from mqttq.devices.store import StoredCommand
from mqttq.errors import QueueNotFoundError


def register(app: typer.Typer) -> None:
    devices = sub_app("Commands to devices.")
    devices.command("queue")(queue)
    app.add_typer(devices, name="devices")


def command_json(stored: StoredCommand) -> dict[str, Any]:
    c = stored.command
    return {
        "id": c.id,
        "kind": c.kind,
        "family": c.family,
        "topic": c.topic,
        "qos": c.qos,
        "control": c.control,
        "created_at": iso(c.created_at),
        "seq": stored.seq,
    }


def queue(
    ctx: typer.Context,
    device: str | None = typer.Option(None, "--device", "-d", help="Only this device."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Commands waiting per device, in the order they go out (from [devices] store)."""
    state = get_state(ctx)
    app = state.app(jobs=False)
    store = make_store(app, create=False)
    if not store.durable:
        typer.echo(
            f"mqttq: [devices] store = {app.config.devices.store!r} keeps commands inside the "
            'process that sends them; set store = "sqlite:///commands.db" to see them here',
            err=True,
        )

    async def load() -> list[StoredCommand]:
        try:
            await store.open()
        except QueueNotFoundError:
            return []  # nothing was ever stored there
        try:
            return await store.load()
        finally:
            await store.aclose()

    stored = asyncio.run(load()) if store.durable else []
    lanes: dict[str, list[StoredCommand]] = defaultdict(list)
    for entry in stored:
        if device is None or entry.command.device == device:
            lanes[entry.command.device].append(entry)
    if as_json:
        print_json({"devices": {d: [command_json(e) for e in es] for d, es in lanes.items()}})
        return
    if not lanes:
        typer.echo("no commands waiting")
        return
    now = time.time()
    table = Table("device", "waiting", "oldest", "next kinds", box=None)
    for name, entries in sorted(lanes.items()):
        kinds = ", ".join(e.command.kind for e in entries[:5]) + (" ..." * (len(entries) > 5))
        table.add_row(name, str(len(entries)), age(entries[0].command.created_at, now), kinds)
    console().print(table)
