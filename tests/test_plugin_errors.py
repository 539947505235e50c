"""Broken third-party plugins, really installed: ``mqttq plugins`` reports each with its error,
``mqttq plugins --check`` fails with one line per broken plugin, and every other command works.

The distributions are built and installed by uv into a site directory of their own, which the
``mqttq`` processes find on ``PYTHONPATH`` (beside the packages of the test environment).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from plugin_dists import MQTTQ, install_into, run, write_project

#: plugin name -> a piece of the error ``mqttq plugins`` must show for it
BROKEN = {
    "broken-import": "RuntimeError: the frobnicator is missing",
    "broken-hook": "mqttq_register_queue_drivers: no drivers today",
    "misspelt-hook": "mqttq_register_queue_driver: not an mqttq hook",
}
#: broken only when what it registers is imported (``--check``, or a command that uses it)
BROKEN_TARGET = "broken-target"

PLUGINS: dict[str, tuple[str, dict[str, str], dict[str, str]]] = {
    # distribution: (package, modules, entry points)
    "mqttq-broken-import": (
        "broken_import",
        {"plugin": 'raise RuntimeError("the frobnicator is missing")\n'},
        {"broken-import": "broken_import.plugin"},
    ),
    "mqttq-broken-hook": (
        "broken_hook",
        {
            "plugin": """\
            from mqttq.plugin import hookimpl

            @hookimpl
            def mqttq_register_queue_drivers(register):
                raise ValueError("no drivers today")
            """
        },
        {"broken-hook": "broken_hook.plugin"},
    ),
    "mqttq-misspelt-hook": (
        "misspelt_hook",
        {
            "plugin": """\
            from mqttq.plugin import hookimpl

            @hookimpl
            def mqttq_register_queue_driver(register):  # the spec's name ends in "drivers"
                register("misspelt", "misspelt_hook.plugin:Nothing")
            """
        },
        {"misspelt-hook": "misspelt_hook.plugin"},
    ),
    "mqttq-broken-target": (
        "broken_target",
        {
            "plugin": """\
            from mqttq.plugin import hookimpl

            @hookimpl
            def mqttq_register_queue_drivers(register):
                register("brokendb", "broken_target.driver:BrokenQueueDriver")
            """,
            "driver": 'raise ImportError("brokendb needs libbroken.so")\n',
        },
        {BROKEN_TARGET: "broken_target.plugin"},
    ),
    "mqttq-clash": (
        "clash",
        {
            name: """\
            from mqttq.plugin import hookimpl

            @hookimpl
            def mqttq_register_queue_drivers(register):
                register("clash", "mqttq.builtin.memory:MemoryQueueDriver")
            """
            for name in ("a", "b")
        },
        {"clash-a": "clash.a", "clash-b": "clash.b"},
    ),
}

JOBS = "def add(a, b):\n    return a + b\n"
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ WARNING mqttq\.plugins: ")


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The broken distributions installed into one site directory, ``mqttq-clash`` (two plugins
    registering one name) into another: a clash stops every command that needs a queue driver,
    by design, so the tests of other commands leave it out."""
    root = tmp_path_factory.mktemp("broken-plugins")
    projects = {
        dist: write_project(root / "src", dist, package, modules, entry_points)
        for dist, (package, modules, entry_points) in PLUGINS.items()
    }
    out = {}
    for name, dists in (
        ("broken", [d for d in PLUGINS if d != "mqttq-clash"]),
        ("clash", ["mqttq-clash"]),
    ):
        out[name] = target = root / name
        target.mkdir()
        install_into(target, *(projects[d] for d in dists))
    return out


class Mqttq:
    """``mqttq`` run as a process in a working directory of its own, with installed plugins."""

    def __init__(self, cwd: Path, *sites: Path) -> None:
        self.cwd = cwd
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("MQTTQ_")}
        self.env["PYTHONPATH"] = os.pathsep.join(map(str, sites))

    def __call__(self, *args: str, **env: str) -> Any:
        return run(MQTTQ, *args, cwd=self.cwd, env={**self.env, **env}, timeout=120)

    def config(self, queue_url: str) -> None:
        (self.cwd / "jobs_for_plugin_errors.py").write_text(JOBS)
        (self.cwd / "mqttq.toml").write_text(
            f'[queue]\nurl = "{queue_url}"\n\n[jobs]\nregister = ["jobs_for_plugin_errors:add"]\n'
        )


@pytest.fixture
def mqttq(sites: dict[str, Path], tmp_path: Path) -> Mqttq:
    """With the broken plugins (no clash)."""
    cli = Mqttq(tmp_path, sites["broken"])
    cli.config(f"sqlite:///{tmp_path / 'queue.db'}")
    return cli


@pytest.fixture
def mqttq_all(sites: dict[str, Path], tmp_path: Path) -> Mqttq:
    """With the broken plugins and the clash."""
    cli = Mqttq(tmp_path, sites["broken"], sites["clash"])
    cli.config(f"sqlite:///{tmp_path / 'queue.db'}")
    return cli


def by_name(stdout: str) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in json.loads(stdout)}


def assert_one_line_each(stderr: str) -> list[str]:
    """Every line of ``stderr`` is a log warning or an ``mqttq:`` error (no traceback, no
    continuation lines); returns the ``mqttq:`` ones."""
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    strays = [line for line in lines if not (LOG_LINE.match(line) or line.startswith("mqttq: "))]
    assert strays == [], f"stderr lines that are neither a warning nor an error: {strays}"
    return [line for line in lines if line.startswith("mqttq: ")]


def test_plugins_json_shows_each_broken_plugin_with_its_error(mqttq_all: Mqttq) -> None:
    listed = mqttq_all("plugins", "--json")
    assert listed.returncode == 0, listed.stderr
    plugins = by_name(listed.stdout)
    for name, message in BROKEN.items():
        assert plugins[name]["status"] == "error", name
        assert message in plugins[name]["error"], name
    assert all("\n" not in (p["error"] or "") for p in plugins.values())
    assert plugins["broken-import"]["distribution"] == "mqttq-broken-import"
    assert plugins["broken-import"]["version"] == "0.1.0"
    assert plugins["broken-hook"]["provides"] == {}
    assert plugins["misspelt-hook"]["provides"] == {}
    # of the two registering "clash", one has it and the other has the error, naming both
    clash = sorted((plugins[n]["status"], plugins[n]["error"]) for n in ("clash-a", "clash-b"))
    assert [status for status, _ in clash] == ["error", "loaded"]
    assert re.search(r"queue driver 'clash' is registered by both 'clash-[ab]' and", clash[0][1])
    # what a plugin registers is not imported to list it
    assert plugins[BROKEN_TARGET]["status"] == "loaded"
    assert plugins[BROKEN_TARGET]["provides"] == {"queue_drivers": ["brokendb"]}
    assert plugins["builtin"]["status"] == "loaded"
    assert "memory" in plugins["builtin"]["provides"]["queue_drivers"]
    assert_one_line_each(listed.stderr)


def test_plugins_check_fails_with_one_line_per_broken_plugin(mqttq_all: Mqttq) -> None:
    checked = mqttq_all("plugins", "--check")
    assert checked.returncode == 1
    errors = assert_one_line_each(checked.stderr)
    failed = [re.sub(r"^mqttq: plugin '([^']+)' failed: .*$", r"\1", line) for line in errors]
    assert len(failed) == len(BROKEN) + 2, errors
    assert set(failed) - {"clash-a", "clash-b"} == {*BROKEN, BROKEN_TARGET}
    [target_error] = [line for line in errors if f"'{BROKEN_TARGET}'" in line]
    assert "queue driver 'brokendb'" in target_error
    assert "brokendb needs libbroken.so" in target_error
    assert "broken-import" in checked.stdout  # the table is printed too

    as_json = mqttq_all("plugins", "--check", "--json")
    assert as_json.returncode == 1
    target = by_name(as_json.stdout)[BROKEN_TARGET]
    assert target["status"] == "error"
    assert "brokendb needs libbroken.so" in target["error"]


def test_other_commands_still_work(mqttq: Mqttq) -> None:
    helped = mqttq("--help")
    assert helped.returncode == 0, helped.stderr
    assert "plugins" in helped.stdout

    queued = mqttq("jobs", "enqueue", "jobs_for_plugin_errors:add", "-k", '{"a": 1, "b": 2}')
    assert queued.returncode == 0, queued.stderr
    assert_one_line_each(queued.stderr)
    stats = mqttq("stats", "--json")
    assert stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout)["queues"]["default"]["ready"] == 1

    checked = mqttq("config", "check")
    assert checked.returncode == 0, checked.stderr


def test_a_driver_that_fails_to_import_is_one_line_where_it_is_used(mqttq: Mqttq) -> None:
    mqttq.config("brokendb://somewhere")
    stats = mqttq("stats")
    assert stats.returncode == 1
    [error] = assert_one_line_each(stats.stderr)
    assert error == (
        "mqttq: queue driver 'brokendb' from plugin 'broken-target' failed to load: "
        "brokendb needs libbroken.so"
    )


def test_a_clash_is_one_line_naming_both_plugins(mqttq_all: Mqttq) -> None:
    stats = mqttq_all("stats")
    assert stats.returncode == 2
    [error] = assert_one_line_each(stats.stderr)
    assert re.fullmatch(
        r"mqttq: queue driver 'clash' is registered by both 'clash-[ab]' and 'clash-[ab]'; "
        r"block one with MQTTQ_PLUGINS or uninstall it",
        error,
    )
    blocked = mqttq_all("stats", "--json", MQTTQ_PLUGINS="clash-a,sqlite")
    assert blocked.returncode == 0, blocked.stderr  # the way out the message names


@pytest.mark.parametrize(
    ("only", "message"),
    [
        ("", "plugin 'broken-import' failed to load: the frobnicator is missing"),
        (
            "broken-hook,sqlite",
            "plugin 'broken-hook' failed in mqttq_register_queue_drivers: no drivers today",
        ),
    ],
)
def test_strict_plugins_turn_a_broken_plugin_into_a_one_line_error(
    mqttq: Mqttq, only: str, message: str
) -> None:
    env = {"MQTTQ_STRICT_PLUGINS": "1", **({"MQTTQ_PLUGINS": only} if only else {})}
    strict = mqttq("stats", **env)
    assert strict.returncode == 1
    [error] = assert_one_line_each(strict.stderr)
    assert error == f"mqttq: {message}"
