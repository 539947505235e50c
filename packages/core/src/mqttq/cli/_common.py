"""What every command shares: the global state, error reporting and output helpers.

User mistakes (every :class:`~mqttq.errors.MqttqError`, and ``OSError``) become one line on
stderr, ``mqttq: <message>``, and a non-zero exit: 2 for configuration and usage errors, 1
otherwise. ``--debug`` (or ``MQTTQ_DEBUG=1``) prints the traceback first.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import traceback
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import orjson
import typer
from rich.console import Console
from typer.core import TyperGroup

from mqttq.app import App
from mqttq.config import Config, load_config
from mqttq.errors import (
    ConfigError,
    MqttqError,
    PluginConflictError,
    QueueNotFoundError,
    UnknownPluginError,
)
from mqttq.plugins import PluginHost, make_plugin_manager

T = TypeVar("T")

#: exit code of configuration and usage mistakes (as click uses for usage errors)
EXIT_USAGE = 2
#: width of tables written to a pipe or file
PIPE_WIDTH = 200


class CliError(MqttqError):
    """A mistake on the command line, reported as one line with ``exit_code``."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class State:
    """Global options, and the plugin host, configuration and app built from them on demand.

    Plugin commands reach it with :func:`get_state` to build an :class:`App` from ``--config``.
    """

    def __init__(
        self, host: PluginHost | None = None, config_path: Path | None = None, debug: bool = False
    ) -> None:
        self._host = host
        self.config_path = config_path
        self.debug = debug
        #: True when the CLI configured logging itself (commands may then raise mqttq's level)
        self.owns_logging = False
        self._config: Config | None = None

    @property
    def host(self) -> PluginHost:
        if self._host is None:
            self._host = make_plugin_manager()
        return self._host

    def config(self) -> Config:
        """``--config``, else ``MQTTQ_CONFIG``, else ``./mqttq.toml``, else the defaults."""
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config

    def app(self, *, jobs: bool = True) -> App:
        """A new (closed) app. ``jobs``: import the configured jobs now (a bad target is an
        error before anything starts); commands that only look leave them alone."""
        app = App(self.config(), host=self.host)
        if jobs:
            app.jobs  # noqa: B018 (imports them)
        return app


def sub_app(help: str) -> typer.Typer:
    """A command group (``mqttq failed ...``), formatted like the root: help text is plain
    (``[worker]`` stays as written, it is not rich markup)."""
    return typer.Typer(help=help, no_args_is_help=True, rich_markup_mode=None)


def get_state(ctx: typer.Context) -> State:
    """The :class:`State` of the running ``mqttq`` command."""
    state = ctx.find_object(State)
    if state is None:  # a command invoked without the root callback (tests of sub-apps)
        state = ctx.ensure_object(State)
    return state


def debug_from_env() -> bool:
    return os.environ.get("MQTTQ_DEBUG", "").strip().lower() in {"1", "true", "yes", "on"}


def _debug_enabled(ctx: Any) -> bool:
    state = ctx.find_object(State)
    return (state is not None and state.debug) or debug_from_env()


def exit_code_for(exc: BaseException) -> int:
    if isinstance(exc, CliError):
        return exc.exit_code
    if isinstance(exc, ConfigError | UnknownPluginError | PluginConflictError):
        return EXIT_USAGE
    return 1


def one_line(exc: BaseException) -> str:
    """The user-facing message of an error, on one line."""
    if isinstance(exc, OSError) and exc.strerror:
        where = exc.filename if exc.filename is not None else ""
        text = f"{where}: {exc.strerror}" if where else exc.strerror
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def report(exc: BaseException, *, debug: bool) -> int:
    """Print the error (traceback first under ``--debug``); return the exit code."""
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    print(f"mqttq: {one_line(exc)}", file=sys.stderr, flush=True)
    return exit_code_for(exc)


class MqttqGroup(TyperGroup):
    """The root command: turns user mistakes raised anywhere below it into one line."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (MqttqError, OSError) as exc:
            raise typer.Exit(report(exc, debug=_debug_enabled(ctx))) from None


# -- running async work ---------------------------------------------------------------------------


_NOTHING: Any = object()


def run_app(
    state: State,
    work: Callable[[App], Awaitable[T]],
    app: App | None = None,
    *,
    create: bool = True,
    empty: T = _NOTHING,
) -> T:
    """Open the app (its queue driver), run ``work(app)`` and close it again.

    Commands that only look pass ``create=False``: a queue that does not exist yet is not
    created. With ``empty`` they show that instead (and the driver's line saying where it
    looked goes to stderr); without, that line is the command's error."""
    the_app = app or state.app(jobs=create)

    async def main() -> T:
        try:
            await the_app.open(create=create)
        except QueueNotFoundError as exc:
            if empty is _NOTHING:
                raise
            print(f"mqttq: {one_line(exc)}", file=sys.stderr, flush=True)
            return empty
        try:
            return await work(the_app)
        finally:
            await the_app.aclose()

    return asyncio.run(main())


# -- input ----------------------------------------------------------------------------------------


def parse_json(option: str, text: str, kind: type[T]) -> T:
    """A JSON command-line value of the given type (``dict`` or ``list``), or a usage error."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"{option} is not valid JSON: {exc.msg} (at character {exc.pos})") from None
    if not isinstance(value, kind):
        expected = "object ({...})" if kind is dict else "array ([...])"
        raise CliError(f"{option} must be a JSON {expected}, not {type(value).__name__}")
    return value


# -- output ---------------------------------------------------------------------------------------


def print_json(data: Any) -> None:
    """Stable, indented JSON on stdout (key order as built)."""
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
    sys.stdout.flush()


def console(*, stderr: bool = False) -> Console:
    """A rich console bound to the current stdout/stderr (so test runners capture it).

    Piped output gets a wide page, so ids are never cut and lines stay greppable.
    """
    file = sys.stderr if stderr else sys.stdout
    width = None if file.isatty() else PIPE_WIDTH
    return Console(file=file, highlight=False, width=width)


def iso(ts: float | None) -> str | None:
    """A UNIX timestamp as ISO-8601 UTC (``2026-05-01T12:00:00.123+00:00``)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


def age(ts: float | None, now: float) -> str:
    """``3.2s`` / ``5m`` / ``2h`` since ``ts``, for tables."""
    if ts is None:
        return "-"
    seconds = max(0.0, now - ts)
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def first_line(text: str | None, width: int = 60) -> str:
    lines = (text or "").strip().splitlines()
    line = lines[0] if lines else ""
    return line if len(line) <= width else line[: width - 1] + "…"


_owns_logging = False


def setup_logging(debug: bool) -> bool:
    """Log to stderr, unless the host program (or a test runner) already configured logging.

    Returns whether the CLI owns the logging configuration (then commands may tune levels).
    """
    global _owns_logging
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        _owns_logging = True
    if _owns_logging:
        root.setLevel(logging.DEBUG if debug else logging.WARNING)
    return _owns_logging
