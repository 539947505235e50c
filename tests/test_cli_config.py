"""``mqttq config check|init``."""

from __future__ import annotations

import json
import tomllib
from typing import TYPE_CHECKING

import pytest

from mqttq.config import template

if TYPE_CHECKING:
    from conftest import Cli


def test_check_ok(cli: Cli) -> None:
    result = cli("config", "check")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "ok: mqttq.toml\n"
    data = json.loads(cli("config", "check", "--json").stdout)
    assert data == {"ok": True, "file": "mqttq.toml", "problems": []}


def test_check_without_a_file_uses_the_defaults(cli: Cli) -> None:
    cli.config_path.unlink()
    result = cli("config", "check")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("ok: (no config file")


def test_check_lists_every_structural_problem_with_its_key_path(cli: Cli) -> None:
    cli.write_config(
        """
[worker]
concurrency = 0

[queue]
default = ""

[[routes]]
topic = "a/b"
job = "x:y"
qos = 5

[[routes]]
topic = "a/c"
job = "x:y"
mode = "often"
"""
    )
    result = cli("config", "check")
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    keys = [line.split(": ", 1)[0] for line in lines]
    assert set(keys) == {"worker.concurrency", "queue.default", "routes[0].qos", "routes[1].mode"}
    assert "Traceback" not in result.stderr


def test_a_structural_problem_does_not_hide_the_other_sections_problems(cli: Cli) -> None:
    cli.write_config(
        """
[queue]
url = "sqlite:///q.db"
colour = "red"

[worker]
timeout = 100
lease = 10

[mqtt]
url = "http://broker"

[[routes]]
topic = "a/#"
job = "not_registered"
"""
    )
    result = cli("config", "check", "--json")
    assert result.exit_code == 2
    problems = {p["key"]: p["message"] for p in json.loads(result.stdout)["problems"]}
    assert problems.keys() == {"queue", "worker.timeout", "mqtt.url", "routes[0].job"}
    assert "no transport named 'http'" in problems["mqtt.url"]
    assert not (cli.tmp_path / "q.db").exists()


def test_check_lists_driver_runner_and_job_problems(cli: Cli) -> None:
    cli.write_config(
        f"""
[queue]
url = "nosuch://somewhere"

[worker]
runner = "warp"

[jobs]
register = ["{cli.jobs}:add", "{cli.jobs}:missing", "no_such_module_xyz:f"]
modules = ["no_such_module_abc"]

[[routes]]
topic = "t/{{device}}"
job = "not_registered"

[[routes]]
topic = "u/#/v"
job = "{cli.jobs}:noop"

[[routes]]
topic = "sensors/{{id}}/+/temperature/#"
job = "{cli.jobs}:noop"
"""
    )
    result = cli("config", "check", "--json")
    assert result.exit_code == 2
    data = json.loads(result.stdout)
    assert data["ok"] is False
    problems = {p["key"]: p["message"] for p in data["problems"]}
    assert set(problems) == {
        "queue.url",
        "worker.runner",
        "jobs.register[1]",
        "jobs.register[2]",
        "jobs.modules[0]",
        "routes[0].job",
        "routes[1].topic",
    }
    assert "nosuch" in problems["queue.url"]
    assert "'warp'" in problems["worker.runner"]
    assert "missing" in problems["jobs.register[1]"]
    assert "no_such_module_xyz" in problems["jobs.register[2]"]
    assert "unknown job 'not_registered'" in problems["routes[0].job"]
    assert problems["routes[1].topic"] == "'#' must be the last level"

    text = cli("config", "check")
    assert text.exit_code == 2
    assert [line.split(": ", 1)[0] for line in text.stderr.splitlines()] == list(problems)


@pytest.mark.parametrize("url", ["http://broker:1883", "carrier-pigeon://loft"])
def test_check_refuses_an_mqtt_url_no_transport_serves(cli: Cli, url: str) -> None:
    cli.write_config(f'[queue]\nurl = "memory://"\n[mqtt]\nurl = "{url}"\n')
    result = cli("config", "check")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"mqtt.url: no transport named '{url.split(':')[0]}'")


def test_check_needs_a_known_mqtt_scheme(cli: Cli) -> None:
    cli.write_config(
        '[queue]\nurl = "memory://"\n[mqtt]\nurl = "carrier-pigeon://loft"\n'
        f'[[routes]]\ntopic = "a/b"\njob = "{cli.jobs}:noop"\n'
    )
    result = cli("config", "check")
    assert result.exit_code == 2
    assert result.stderr.startswith("mqtt.url: no transport named 'carrier-pigeon'")
    assert len(result.stderr.splitlines()) == 1
    cli.write_config(
        '[queue]\nurl = "memory://"\n[mqtt]\nurl = "mqtts://broker:8883"\n'
        f'[[routes]]\ntopic = "a/{{device}}/#"\njob = "{cli.jobs}:noop"\n'
    )
    ok = cli("config", "check")
    assert (ok.exit_code, ok.stdout) == (0, "ok: mqttq.toml\n"), ok.stderr


def test_check_catches_a_malformed_driver_url(cli: Cli) -> None:
    cli.write_config('[queue]\nurl = "no-scheme-here"\n')
    result = cli("config", "check")
    assert result.exit_code == 2
    assert result.stderr.startswith("queue.url: ")


def test_check_reports_a_job_module_that_crashes_on_import(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(cli.tmp_path))
    (cli.tmp_path / "crashy_jobs_mod.py").write_text("raise ZeroDivisionError('at import')\n")
    cli.write_config('[queue]\nurl = "memory://"\n[jobs]\nmodules = ["crashy_jobs_mod"]\n')
    result = cli("config", "check")
    assert result.exit_code == 2
    assert result.stderr == (
        "jobs.modules[0]: cannot import job module 'crashy_jobs_mod': "
        "ZeroDivisionError: at import\n"
    )


def test_check_bad_toml_is_one_line(cli: Cli) -> None:
    cli.write_config("[queue\n")
    cli.error(cli("config", "check"), 2, "not valid TOML")


def test_init_writes_the_template_that_checks_ok(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    cli.config_path.unlink()
    result = cli("config", "init")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "wrote mqttq.toml\n"
    assert cli.config_path.read_text() == template()
    assert tomllib.loads(template())["queue"]["url"] == "sqlite:///mqttq.db"
    check = cli("config", "check")
    assert check.stdout == "ok: mqttq.toml\n", check.stderr


def test_init_refuses_to_overwrite_without_force(cli: Cli) -> None:
    before = cli.config_path.read_text()
    cli.error(cli("config", "init"), 1, "already exists", "--force")
    assert cli.config_path.read_text() == before

    forced = cli("config", "init", "--force")
    assert forced.exit_code == 0
    assert cli.config_path.read_text() == template()


def test_init_to_a_path_or_to_the_config_option(cli: Cli) -> None:
    assert cli("config", "init", "a.toml").stdout == "wrote a.toml\n"
    assert (cli.tmp_path / "a.toml").read_text() == template()
    assert cli("--config", "b.toml", "config", "init").stdout == "wrote b.toml\n"
    assert (cli.tmp_path / "b.toml").read_text() == template()


def test_subprocess_finds_job_modules_in_the_working_directory(cli: Cli) -> None:
    """Like ``python -m``, the ``mqttq`` command imports the project's modules from the cwd."""
    (cli.tmp_path / "cwd_jobs_mod.py").write_text("def hello():\n    return 'hi'\n")
    cli.write_config('[queue]\nurl = "memory://"\n[jobs]\nregister = ["cwd_jobs_mod:hello"]\n')
    result = cli.run("config", "check")
    assert (result.returncode, result.stdout, result.stderr) == (0, "ok: mqttq.toml\n", "")
