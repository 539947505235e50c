"""User mistakes: one ``mqttq: ...`` line on stderr, a non-zero exit, never a traceback."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import Cli


def test_bad_toml_is_one_line_exit_2(cli: Cli) -> None:
    cli.write_config('[queue]\nurl = "memory://"\nbroken = [\n')
    cli.error(cli("stats"), 2, "mqttq.toml is not valid TOML")


def test_unknown_key_names_its_key_path(cli: Cli) -> None:
    cli.write_config("[worker]\nconcurency = 3\n")
    cli.error(cli("stats"), 2, "worker", "unknown key", "concurency")


def test_wrong_type_names_its_key_path(cli: Cli) -> None:
    cli.write_config('[worker]\nconcurrency = "lots"\n')
    cli.error(cli("stats", "--json"), 2, "worker.concurrency")


def test_missing_config_file_given_with_option(cli: Cli) -> None:
    cli.error(cli("--config", "nowhere.toml", "stats"), 2, "nowhere.toml", "not found")


def test_config_from_environment_variable(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MQTTQ_CONFIG", "elsewhere.toml")
    cli.error(cli("stats"), 2, "elsewhere.toml")


def test_unknown_environment_override(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MQTTQ_QUEUE_URLL", "memory://")
    cli.error(cli("stats"), 2, "MQTTQ_QUEUE_URLL", "queue.urll")


def test_unknown_queue_scheme_hints_the_package_to_install(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    # with no plugins loaded, sqlite:// is a first-party scheme nobody provides
    monkeypatch.setenv("MQTTQ_DISABLE_PLUGIN_AUTOLOAD", "1")
    cli.write_config('[queue]\nurl = "sqlite:///q.db"\n')
    cli.error(cli("stats"), 2, "no queue driver named 'sqlite'", "install mqttq-sqlite")


def test_scheme_nobody_knows_lists_the_known_ones(cli: Cli) -> None:
    cli.write_config('[queue]\nurl = "nosuch://host/0"\n')
    cli.error(cli("stats"), 2, "'nosuch'", "known:", "memory")


def test_unknown_job_name_exits_1(cli: Cli) -> None:
    line = cli.error(cli("jobs", "enqueue", "os:system", "--kwargs", "{}"), 1, "unknown job")
    assert "'os:system'" in line


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--kwargs", "{not json"], "--kwargs is not valid JSON"),
        (["--kwargs", "[1, 2]"], "--kwargs must be a JSON object"),
        (["--args", '{"a": 1}'], "--args must be a JSON array"),
        (["--args", "[1,"], "--args is not valid JSON"),
    ],
)
def test_bad_json_arguments_exit_2(cli: Cli, args: list[str], fragment: str) -> None:
    cli.error(cli("jobs", "enqueue", f"{cli.jobs}:add", *args), 2, fragment)


def test_unknown_job_id(cli: Cli) -> None:
    cli.error(cli("jobs", "show", "0" * 32), 1, "no job '00000000")


def test_unknown_failed_job_id(cli: Cli) -> None:
    cli.error(cli("failed", "show", "f" * 32), 1, "no failed job")


def test_unreachable_driver_exits_1(cli: Cli, sqlite_url: str) -> None:
    # a database file in a directory that does not exist cannot be opened
    missing = cli.tmp_path / "no" / "such" / "dir" / "q.db"
    cli.queue_url = f"sqlite:///{missing}"
    cli.write_config()
    line = cli.error(cli("jobs", "enqueue", f"{cli.jobs}:noop"), 1)
    assert str(missing.parent) in line or "q.db" in line


@pytest.mark.parametrize(
    "command", [["stats"], ["workers"], ["failed", "list"], ["stats", "--json"]]
)
def test_looking_never_creates_a_queue(cli: Cli, sqlite_url: str, command: list[str]) -> None:
    db = cli.tmp_path / "fresh.db"
    cli.write_config(f'[queue]\nurl = "sqlite:///{db}"\n')
    result = cli(*command)
    assert result.exit_code == 0, result.stderr
    assert (
        "no queues yet" in result.stdout
        or "no live workers" in result.stdout
        or ("no failed jobs" in result.stdout or result.stdout.startswith("{"))
    )
    assert result.stderr.startswith("mqttq: no SQLite queue database at")
    assert list(cli.tmp_path.glob("fresh.db*")) == []


def test_looking_up_one_job_in_a_missing_queue_is_one_line(cli: Cli, sqlite_url: str) -> None:
    cli.write_config(f'[queue]\nurl = "sqlite:///{cli.tmp_path / "fresh.db"}"\n')
    cli.error(cli("jobs", "show", "0" * 32), 1, "no job '000", "no SQLite queue database")
    assert list(cli.tmp_path.glob("fresh.db*")) == []


def test_debug_shows_the_traceback(cli: Cli) -> None:
    cli.write_config("[worker]\nconcurency = 3\n")
    result = cli("--debug", "stats")
    assert result.exit_code == 2
    assert "Traceback (most recent call last)" in result.stderr
    assert "ConfigError" in result.stderr
    assert result.stderr.splitlines()[-1].startswith("mqttq: invalid configuration")


def test_debug_from_the_environment(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MQTTQ_DEBUG", "1")
    result = cli("jobs", "show", "nope")
    assert result.exit_code == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "JobNotFoundError" in result.stderr


def test_os_error_is_one_line(cli: Cli) -> None:
    target = cli.tmp_path / "missing-dir" / "mqttq.toml"
    cli.error(cli("config", "init", str(target)), 1, "No such file or directory")


def test_retry_needs_ids_or_all(cli: Cli) -> None:
    cli.error(cli("failed", "retry"), 2, "give failed job ids or --all")
    cli.error(cli("failed", "retry", "abc", "--all"), 2, "not both")


def test_subprocess_bad_config_is_one_line(cli: Cli) -> None:
    """The installed console script: same single line, real exit status."""
    Path(cli.tmp_path / "bad.toml").write_text("[queue\n")
    result = cli.run("--config", "bad.toml", "stats", "--json")
    cli.error(result, 2, "bad.toml is not valid TOML")


def test_subprocess_unknown_job(cli: Cli) -> None:
    cli.error(cli.run("jobs", "enqueue", "builtins:eval", "--args", '["1"]'), 1, "unknown job")


def test_commands_that_only_look_never_import_the_jobs(cli: Cli) -> None:
    """An operator's ``stats``/``workers``/``failed list`` work where the application's code
    cannot be imported; the commands that run jobs still refuse to start, in one line."""
    cli.write_config(
        f'[queue]\nurl = "{cli.queue_url}"\n\n[jobs]\nregister = ["nowhere_to_be_found:job"]\n'
    )
    for command in (["stats"], ["workers"], ["failed", "list"], ["devices", "queue"]):
        result = cli(*command)
        assert result.exit_code == 0, (command, result.output)
    cli.error(cli("worker", "--burst"), 2, "nowhere_to_be_found")
