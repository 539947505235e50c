"""``mqttq config check|init``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer

from mqttq.app import App
from mqttq.cli._common import CliError, get_state, print_json, sub_app
from mqttq.config import Config, find_config_file, load_config, section_of, template
from mqttq.errors import ConfigError, MqttqError
from mqttq.jobs import JobRegistry
from mqttq.plugins import PluginHost

Problems = list[tuple[str, str]]


def register(app: typer.Typer) -> None:
    config = sub_app("Check or create mqttq.toml.")
    config.command("check")(check)
    config.command("init")(init)
    app.add_typer(config, name="config")


def _driver_problems(app: App) -> Problems:
    try:
        app.make_driver()  # parses the URL and options, no I/O
    except MqttqError as exc:
        return [("queue.url", str(exc))]
    return []


def _runner_problems(app: App) -> Problems:
    try:
        app.runner_class()
    except MqttqError as exc:
        return [("worker.runner", str(exc))]
    return []


def _device_problems(app: App) -> Problems:
    """The command store and each device: its family is installed and its id is one the
    family's adapter accepts (no I/O)."""
    from mqttq.devices.client import make_store

    problems: Problems = []
    try:
        make_store(app)
    except MqttqError as exc:
        problems.append(("devices.store", str(exc)))
    adapters: dict[str, Any] = {}
    for i, item in enumerate(app.config.devices.items):
        key = f"devices.items[{i}]"
        try:
            if item.adapter not in adapters:
                cls = app.host.catalog("devices").load(item.adapter)
                adapters[item.adapter] = cls(client_id="mqttq-config-check")
            adapters[item.adapter].add_device(item.id, **item.options)
        except MqttqError as exc:
            problems.append((key, str(exc)))
    return problems


def _keyed(exc: ConfigError, default_key: str) -> tuple[str, str]:
    key = exc.problems[0][0] if exc.problems else default_key
    return key, str(exc).removeprefix(f"{key}: ")


def _transport_problems(app: App) -> Problems:
    try:
        app.make_transport()  # parses the URL, no I/O
    except MqttqError as exc:
        return [("mqtt.url", str(exc))]
    return []


def _route_problems(app: App) -> Problems:
    from mqttq.routing import compile_route

    config = app.config
    problems: Problems = []
    for i, route in enumerate(config.routes):
        try:
            compile_route(route, i, job=route.job, queue=route.queue or config.queue.default)
        except ConfigError as exc:
            problems.append(_keyed(exc, f"routes[{i}].topic"))
    return problems


def _schedule_problems(app: App) -> Problems:
    """Each schedule's cron expression, kwargs and job, and a driver that can fire them."""
    from mqttq.interfaces import Capability, require
    from mqttq.schedules import Schedule

    if not app.config.schedules:
        return []
    problems: Problems = []
    try:
        driver = app.driver_class()
        for capability in (Capability.UNIQUE, Capability.SCHEDULES):
            require(driver, capability, "[[schedules]]")
    except MqttqError as exc:
        problems.append(("schedules", str(exc)))
    for i, config in enumerate(app.config.schedules):
        where = f"schedules[{i}]"
        try:
            Schedule.from_config(config, where)
        except ConfigError as exc:
            problems.append(_keyed(exc, where))
        if config.job in app.jobs:
            continue
        if ":" in config.job:
            try:
                app.jobs.add_target(config.job)
            except ConfigError as exc:
                problems.append((f"{where}.job", str(exc)))
        else:
            problems.append((f"{where}.job", f"unknown job {config.job!r}: not registered"))
    return problems


def find_problems(config: Config, host: PluginHost) -> Problems:
    """Everything ``config check`` verifies beyond the file's own structure."""
    job_problems: Problems = []
    app = App(config, host=host, jobs=JobRegistry.from_config(config, job_problems))
    return (
        _driver_problems(app)
        + _runner_problems(app)
        + _transport_problems(app)
        + _route_problems(app)
        + _device_problems(app)
        + _schedule_problems(app)
        + job_problems
    )


def check(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Check the configuration: keys, queue driver, runner, routes and jobs. Lists every problem."""
    state = get_state(ctx)
    file = find_config_file(state.config_path)
    try:
        config = load_config(state.config_path)
    except ConfigError as exc:
        if not exc.problems:  # unreadable file or bad TOML: one line
            raise
        problems = list(exc.problems)
        if exc.partial is not None:
            broken = {section_of(key) for key, _ in problems}
            more = find_problems(exc.partial, state.host)
            problems += [p for p in more if section_of(p[0]) not in broken]
    else:
        problems = find_problems(config, state.host)
    where = str(file) if file else "(no config file: defaults)"
    if as_json:
        print_json(
            {
                "ok": not problems,
                "file": str(file) if file else None,
                "problems": [{"key": key, "message": message} for key, message in problems],
            }
        )
    elif not problems:
        typer.echo(f"ok: {where}")
    else:
        for key, message in problems:
            typer.echo(f"{key}: {message}", err=True)
    if problems:
        raise typer.Exit(2)


def init(
    ctx: typer.Context,
    path: Path | None = typer.Argument(
        None, help="Where to write (default: --config, $MQTTQ_CONFIG, ./mqttq.toml)."
    ),
    force: bool = typer.Option(False, "--force", "-f", help="Overwrite an existing file."),
) -> None:
    """Write a commented mqttq.toml with every default."""
    state = get_state(ctx)
    target = path or state.config_path or Path(os.environ.get("MQTTQ_CONFIG") or "mqttq.toml")
    try:
        with target.open("w" if force else "x", encoding="utf-8") as f:
            f.write(template())
    except FileExistsError:
        raise CliError(f"{target} already exists; use --force to overwrite it", 1) from None
    typer.echo(f"wrote {target}")
