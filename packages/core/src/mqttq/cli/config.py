"""``mqttq config check|init``."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

import typer

from mqttq.app import driver_scheme
from mqttq.cli._common import CliError, get_state, print_json
from mqttq.config import TEMPLATE, Config, find_config_file, load_config
from mqttq.errors import ConfigError, MqttqError
from mqttq.jobs import JobRegistry
from mqttq.plugins import PluginHost

Problems = list[tuple[str, str]]


def register(app: typer.Typer) -> None:
    config = typer.Typer(help="Check or create mqttq.toml.", no_args_is_help=True)
    config.command("check")(check)
    config.command("init")(init)
    app.add_typer(config, name="config")


def _driver_problems(config: Config, host: PluginHost) -> Problems:
    url = config.queue.url
    try:
        cls = host.registry("queue_drivers").load(driver_scheme(url))
        cls.from_url(url, failed_ttl=config.queue.failed_ttl)  # parses the URL, no I/O
    except MqttqError as exc:
        return [("queue.url", str(exc))]
    return []


def _runner_problems(config: Config, host: PluginHost) -> Problems:
    try:
        host.registry("job_runners").load(config.worker.runner)
    except MqttqError as exc:
        return [("worker.runner", str(exc))]
    return []


def _describe(exc: Exception) -> str:
    return str(exc) if isinstance(exc, MqttqError) else f"{type(exc).__name__}: {exc}"


def _job_problems(config: Config) -> Problems:
    """Import every configured job, reporting each failure (App stops at the first).

    Any exception counts: a job module with a syntax error is a problem to list, not a crash.
    """
    problems: Problems = []
    registry = JobRegistry()
    for i, target in enumerate(config.jobs.register):
        try:
            registry.add_target(target)
        except Exception as exc:
            problems.append((f"jobs.register[{i}]", _describe(exc)))
    for i, module in enumerate(config.jobs.modules):
        try:
            registry.add_module(module)
        except Exception as exc:
            problems.append((f"jobs.modules[{i}]", _describe(exc)))
    for i, route in enumerate(config.routes):
        if route.job in registry:
            continue
        if ":" not in route.job:
            problems.append(
                (f"routes[{i}].job", f"unknown job {route.job!r}: not registered by [jobs]")
            )
            continue
        try:
            registry.add_target(route.job)
        except Exception as exc:
            problems.append((f"routes[{i}].job", _describe(exc)))
    return problems


def _keyed(exc: ConfigError, default_key: str) -> tuple[str, str]:
    key = exc.problems[0][0] if exc.problems else default_key
    return key, str(exc).removeprefix(f"{key}: ")


def _route_problems(config: Config, host: PluginHost) -> Problems:
    """Route topics, and the MQTT transport they need (only checked when there are routes)."""
    if not config.routes:
        return []
    from mqttq.routing import compile_route

    problems: Problems = []
    try:
        host.registry("transports").load(urlsplit(config.mqtt.url).scheme or "(no scheme)")
    except MqttqError as exc:
        problems.append(("mqtt.url", str(exc)))
    for i, route in enumerate(config.routes):
        try:
            compile_route(route, i, job=route.job, queue=route.queue or config.queue.default)
        except ConfigError as exc:
            problems.append(_keyed(exc, f"routes[{i}].topic"))
    return problems


def find_problems(config: Config, host: PluginHost) -> Problems:
    """Everything ``config check`` verifies beyond the file's own structure."""
    return (
        _driver_problems(config, host)
        + _runner_problems(config, host)
        + _route_problems(config, host)
        + _job_problems(config)
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
            f.write(TEMPLATE)
    except FileExistsError:
        raise CliError(f"{target} already exists; use --force to overwrite it", 1) from None
    typer.echo(f"wrote {target}")
