"""``mqttq workers``, ``mqttq plugins`` and plugin commands, with real plugin distributions.

The plugins are real: a ``*.dist-info`` folder with an ``entry_points.txt`` in a directory on
``sys.path`` (in-process) or ``PYTHONPATH`` (subprocesses), found by ``importlib.metadata``.
"""

from __future__ import annotations

import json
import signal
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from typer.testing import CliRunner

from mqttq.cli import make_app

if TYPE_CHECKING:
    from conftest import Cli

PLUGIN_KEYS = {"name", "distribution", "version", "module", "provides", "status", "error"}

HELLO_PLUGIN = """\
import typer

import mqttq
from mqttq.cli import get_state


@mqttq.hookimpl
def mqttq_register_commands(cli):
    hello = typer.Typer()

    @hello.command("greet")
    def greet(ctx: typer.Context, name: str = "world") -> None:
        typer.echo(f"hello {name} on {get_state(ctx).config().queue.url}")

    @hello.command("fail")
    def fail() -> None:
        raise mqttq.UnknownJobError("plugin command failed politely")

    cli.add_typer(hello, name="hello")
"""

BAD_COMMANDS_PLUGIN = """\
import mqttq


@mqttq.hookimpl
def mqttq_register_commands(cli):
    raise RuntimeError("no commands today")
"""


def add_distribution(site: Path, dist: str, entry_points: dict[str, str]) -> None:
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[mqttq.plugins]\n{lines}")


@pytest.fixture
def plugin_site(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Three installed plugins: one fine, one whose module is missing, one whose hook raises."""
    site = cli.tmp_path / "site"
    site.mkdir()
    (site / "mqttq_cli_hello_plugin.py").write_text(HELLO_PLUGIN)
    (site / "mqttq_cli_badcmd_plugin.py").write_text(BAD_COMMANDS_PLUGIN)
    add_distribution(site, "mqttq-cli-hello", {"hello": "mqttq_cli_hello_plugin"})
    add_distribution(site, "mqttq-cli-broken", {"broken": "mqttq_cli_no_such_module"})
    add_distribution(site, "mqttq-cli-badcmd", {"badcmd": "mqttq_cli_badcmd_plugin"})
    monkeypatch.syspath_prepend(str(site))
    return site


def by_name(plugins: list[dict[str, object]]) -> dict[str, dict[str, object]]:
    return {str(p["name"]): p for p in plugins}


def test_plugins_json_shape(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MQTTQ_PLUGINS", "sqlite")
    result = cli("plugins", "--json")
    assert result.exit_code == 0, result.stderr
    plugins = by_name(json.loads(result.stdout))
    assert all(set(p) == PLUGIN_KEYS for p in plugins.values())
    builtin = plugins["builtin"]
    assert builtin["distribution"] == "mqttq"
    assert builtin["status"] == "loaded"
    provides = builtin["provides"]
    assert isinstance(provides, dict)
    assert {"asyncio", "process"} <= set(provides["job_runners"])
    assert "memory" in provides["queue_drivers"]
    sqlite = plugins["sqlite"]
    assert sqlite["distribution"] == "mqttq-sqlite"
    assert sqlite["status"] == "loaded"
    assert "sqlite" in sqlite["provides"]["queue_drivers"]  # type: ignore[index,operator]
    assert all(p["status"] in {"loaded", "blocked"} for p in plugins.values())

    check = cli("plugins", "--check")
    assert check.exit_code == 0, check.stderr
    assert "builtin" in check.stdout
    assert "loaded" in check.stdout


def test_plugins_reports_broken_plugins_and_check_fails(cli: Cli, plugin_site: Path) -> None:
    result = cli("plugins", "--json")
    assert result.exit_code == 0, result.stderr  # listing is not checking
    plugins = by_name(json.loads(result.stdout))
    broken = plugins["broken"]
    assert broken["status"] == "error"
    assert broken["distribution"] == "mqttq-cli-broken"
    assert broken["version"] == "0.1"
    assert "mqttq_cli_no_such_module" in str(broken["error"])
    assert plugins["hello"]["status"] == "loaded"

    check = cli("plugins", "--check")
    assert check.exit_code == 1
    assert "mqttq: plugin 'broken' failed" in check.stderr
    assert "Traceback" not in check.stderr

    # a broken plugin never breaks the other commands
    assert cli("stats", "--json").exit_code == 0


def test_plugin_commands_through_the_console_script(cli: Cli, plugin_site: Path) -> None:
    env = {"PYTHONPATH": f"{plugin_site}:{cli.jobs_dir}"}
    greet = cli.run("hello", "greet", "--name", "bob", **env)
    assert greet.returncode == 0, greet.stderr
    assert greet.stdout == f"hello bob on {cli.queue_url}\n"

    # a plugin command's MqttqError is one line, like the built-in commands'
    failed = cli.run("hello", "fail", **env)
    assert failed.returncode == 1
    assert failed.stderr.splitlines()[-1] == "mqttq: plugin command failed politely"
    assert "Traceback" not in failed.stderr

    listed = cli.run("plugins", "--json", "--check", **env)
    assert listed.returncode == 1
    plugins = by_name(json.loads(listed.stdout))
    assert plugins["badcmd"]["status"] == "error"
    assert "mqttq_register_commands: no commands today" in str(plugins["badcmd"]["error"])
    assert plugins["broken"]["status"] == "error"
    assert plugins["hello"]["status"] == "loaded"


def test_workers_lists_a_live_worker_until_it_stops(sqlite_cli: Cli) -> None:
    cli = sqlite_cli
    assert json.loads(cli("workers", "--json").stdout) == []
    assert cli("workers").stdout == "no live workers\n"

    with cli.start("worker", "--queue", "w1", "--queue", "w2", "--concurrency", "3") as proc:
        deadline = time.monotonic() + 30
        while not (found := json.loads(cli("workers", "--json").stdout)):
            assert proc.poll() is None, (cli.tmp_path / "mqttq-0.log").read_text()
            assert time.monotonic() < deadline, "the worker never showed up in `mqttq workers`"
            time.sleep(0.05)
        (worker,) = found
        assert worker["pid"] == proc.pid
        assert worker["queues"] == ["w1", "w2"]
        assert worker["concurrency"] == 3
        assert worker["running"] == 0
        assert datetime.fromisoformat(worker["heartbeat_at"]).utcoffset() is not None
        assert str(proc.pid) in cli("workers").stdout

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    assert json.loads(cli("workers", "--json").stdout) == []


def test_version_and_help(cli: Cli) -> None:
    version = cli("--version")
    assert version.exit_code == 0
    assert version.stdout.startswith("mqttq ")
    helped = cli("--help")
    assert helped.exit_code == 0
    for command in ("worker", "jobs", "failed", "stats", "workers", "plugins", "config"):
        assert command in helped.stdout


def test_make_app_without_a_host_builds_one_on_first_use(cli: Cli) -> None:
    result = CliRunner().invoke(make_app(), ["plugins", "--json"])
    assert result.exit_code == 0, result.stderr
    assert "builtin" in by_name(json.loads(result.stdout))
