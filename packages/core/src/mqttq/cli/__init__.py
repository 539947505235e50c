"""The ``mqttq`` command line (typer).

:func:`make_app` builds the command tree without loading plugins; :func:`main` (the console
script) builds the plugin host, lets plugins add commands through ``mqttq_register_commands`` and
runs it. Plugin commands use :func:`get_state` to reach ``--config`` and build an :class:`App`::

    @hookimpl
    def mqttq_register_commands(cli):
        from mqttq_navien.cli import app   # def status(ctx: typer.Context): get_state(ctx).app()
        cli.add_typer(app, name="navien")
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import typer

from mqttq.cli import config, devices, failed, ingest, inspect, jobs, schedules, worker
from mqttq.cli._common import (
    CliError,
    MqttqGroup,
    State,
    age,
    console,
    debug_from_env,
    get_state,
    iso,
    print_json,
    report,
    run_app,
    setup_logging,
    sub_app,
)
from mqttq.errors import MqttqError
from mqttq.plugins import PluginHost, make_plugin_manager

#: what plugin commands use (documented for plugin authors in docs/plugins/hooks.md)
__all__ = [
    "CliError",
    "State",
    "age",
    "console",
    "get_state",
    "iso",
    "main",
    "make_app",
    "print_json",
    "run_app",
    "sub_app",
]

log = logging.getLogger(__name__)


def _version(value: bool) -> None:
    if value:
        from mqttq import __version__

        typer.echo(f"mqttq {__version__}")
        raise typer.Exit()


def make_app(host: PluginHost | None = None) -> typer.Typer:
    """The ``mqttq`` command tree. ``host`` defaults to a plugin host built on first use."""
    app = typer.Typer(
        name="mqttq",
        cls=MqttqGroup,
        help="Turn MQTT traffic into reliable background work.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
        rich_markup_mode=None,
    )

    @app.callback()
    def _root(
        ctx: typer.Context,
        config_path: Path | None = typer.Option(
            None,
            "--config",
            "-c",
            metavar="PATH",
            help="Configuration file (default: $MQTTQ_CONFIG, then ./mqttq.toml).",
        ),
        debug: bool = typer.Option(False, "--debug", help="Show tracebacks and debug logs."),
        version: bool = typer.Option(
            False, "--version", callback=_version, is_eager=True, help="Show the version."
        ),
    ) -> None:
        state = State(host, config_path, debug)
        state.owns_logging = setup_logging(debug)
        ctx.obj = state

    ingest.register(app)
    worker.register(app)
    jobs.register(app)
    failed.register(app)
    inspect.register(app)
    config.register(app)
    devices.register(app)
    schedules.register(app)
    return app


def _add_plugin_commands(host: PluginHost, app: typer.Typer) -> None:
    """Call each plugin's ``mqttq_register_commands``; a failing plugin is recorded, not fatal."""
    for impl in reversed(host.hook.mqttq_register_commands.get_hookimpls()):
        name = host.pm.get_name(impl.plugin) or repr(impl.plugin)
        try:
            impl.function(**({"cli": app} if "cli" in impl.argnames else {}))
        except Exception as exc:
            log.warning("plugin %s failed to add its commands: %s", name, exc)
            info = host.plugins.get(name)
            if info is not None:
                info.status, info.error = "error", f"mqttq_register_commands: {exc}"


def main() -> None:
    """The ``mqttq`` console script."""
    debug = "--debug" in sys.argv[1:] or debug_from_env()
    # like `python -m mqttq`, find the project's job modules in the working directory (appended,
    # so a stray file there never shadows an installed module)
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())
    setup_logging(debug)  # before plugins load, so their warnings are formatted too
    try:
        host = make_plugin_manager()
        app = make_app(host)
        _add_plugin_commands(host, app)
    except (MqttqError, OSError) as exc:
        sys.exit(report(exc, debug=debug))
    app(prog_name="mqttq")
