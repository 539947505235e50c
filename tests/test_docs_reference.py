"""The generated references (docs/configuration.md, docs/cli.md): up to date with the code, and
complete: every configuration key with its environment variable, every command and option."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs
import pytest
import typer

from mqttq import config

ROOT = Path(__file__).parent.parent


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_generate", ROOT / "tools/docs/generate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


generate = _load_generator()


@pytest.fixture(scope="module")
def configuration_md() -> str:
    text: str = generate.configuration_reference()
    return text


@pytest.fixture(scope="module")
def cli_md() -> str:
    text: str = generate.cli_reference()
    return text


@pytest.mark.parametrize("name", sorted(generate.OUTPUTS))
def test_generated_reference_is_up_to_date(name: str) -> None:
    committed = (ROOT / name).read_text(encoding="utf-8") if (ROOT / name).exists() else ""
    fresh = generate.OUTPUTS[name]()
    assert committed == fresh, (
        f"{name} is out of date with the code: run `{generate.REFRESH}` where every package is "
        "installed (for example `.nox/tests/bin/python tools/docs/generate.py`) and commit it"
    )


def test_check_mode_names_a_stale_file_and_the_refresh_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--check`` against a tree whose configuration.md is old: exit 1, naming the command."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs/configuration.md").write_text("# Configuration reference\n\nold\n")
    (tmp_path / "docs/cli.md").write_text(generate.cli_reference())
    assert generate.stale(tmp_path) == ["docs/configuration.md"]
    monkeypatch.setattr(generate, "ROOT", tmp_path)
    assert generate.main(["--check"]) == 1
    err = capsys.readouterr().err
    assert "docs/configuration.md is out of date" in err
    assert generate.REFRESH in err


# -- configuration.md: every key ------------------------------------------------------------------


def _config_keys() -> Iterator[tuple[str, str, str | None]]:
    """(table, key, env var) for every key, walked from the attrs classes directly."""
    for section, tp in config.sections().items():
        cls, many = _unwrap(tp)
        for field in attrs.fields(cls):
            nested, nested_many = _unwrap(field.type)
            if nested_many:
                for inner in attrs.fields(nested):
                    yield f"{section}.{field.name}", inner.name, None
                continue
            env = None if many else f"MQTTQ_{section.upper()}_{field.name.upper()}"
            yield section, field.name, env


def _unwrap(tp: Any) -> tuple[Any, bool]:
    if attrs.has(tp):
        return tp, False
    args = getattr(tp, "__args__", ())
    many = getattr(tp, "__origin__", None) is list
    found = [a for a in args if attrs.has(a)]
    return (found[0], many) if found else (None, False)


def _section(markdown: str, heading: str) -> str:
    start = markdown.index(f"\n## {heading} ")
    end = markdown.find("\n## ", start + 1)
    return markdown[start : end if end != -1 else None]


def test_every_config_key_is_in_its_table_with_its_env_var(configuration_md: str) -> None:
    keys = list(_config_keys())
    assert len(keys) > 50  # the walk found the tables
    for table, key, env in keys:
        many = table in ("routes", "schedules", "devices.items")
        section = _section(configuration_md, f"[[{table}]]" if many else f"[{table}]")
        rows = section.splitlines()
        row = next(
            (line for line in rows if line.startswith((f"| `{key}` |", f"| `{key}`<br>"))), ""
        )
        assert row, f"{table}.{key} is missing from configuration.md"
        if env is None:
            assert "MQTTQ_" not in row, row
        else:
            assert f"`{env}`" in row, f"{table}.{key}: no {env} in its row"


def test_config_defaults_and_required_keys_are_shown(configuration_md: str) -> None:
    worker = _section(configuration_md, "[worker]")
    assert "| `concurrency`<br>`MQTTQ_WORKER_CONCURRENCY` | `int` | `8` |" in worker
    routes = _section(configuration_md, "[[routes]]")
    assert "| `topic` | `str` | required |" in routes
    # text that Markdown would eat is escaped: <group> stays visible
    assert "$share/&lt;group&gt;/&lt;topic&gt;" in _section(configuration_md, "[mqtt]")


# -- cli.md: every command and option -------------------------------------------------------------


def _commands() -> Iterator[tuple[str, Any]]:
    """(command path, click command) for every command mqttq runs, plugins included."""
    from mqttq.cli import _add_plugin_commands, make_app
    from mqttq.plugins import make_plugin_manager

    host = make_plugin_manager(autoload=True, only=None)
    app = make_app(host)
    _add_plugin_commands(host, app)
    root = typer.main.get_command(app)

    def visit(cmd: Any, ctx: Any) -> Iterator[tuple[str, Any]]:
        yield ctx.command_path, cmd
        for name in getattr(cmd, "list_commands", lambda _: [])(ctx):
            sub = cmd.get_command(ctx, name)
            yield from visit(sub, sub.context_class(sub, info_name=name, parent=ctx))

    yield from visit(root, root.context_class(root, info_name="mqttq"))


def test_every_command_and_option_is_documented(
    cli_md: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MQTTQ_PLUGINS", raising=False)
    monkeypatch.delenv("MQTTQ_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    commands = list(_commands())
    paths = [path for path, _ in commands]
    assert {"mqttq failed retry", "mqttq worker", "mqttq config init"} <= set(paths)
    for path, cmd in commands:
        anchor = path.replace(" ", "-")
        heading = f" {path} {{ #{anchor} }}"
        assert heading in cli_md, f"`{path}` has no section in cli.md"
        section = cli_md.split(heading, 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
        for param in cmd.params:
            if param.hidden:
                continue
            for opt in param.opts if param.param_type_name == "option" else []:
                assert opt in section, f"`{path}`: option {opt} is not documented"
            if param.param_type_name == "argument":
                assert "| Argument |" in section, f"`{path}`: argument {param.name} missing"


def test_plugin_commands_are_marked_with_their_plugin(cli_md: str) -> None:
    from mqttq.plugins import make_plugin_manager

    host = make_plugin_manager(autoload=True, only=None)
    if "navien" not in host.plugins:
        pytest.fail("mqttq-navien is not installed: pip install -e packages/device-navien")
    section = cli_md.split("{ #mqttq-navien-status }", 1)[1].split("\n## ", 1)[0]
    assert "*Added by the `navien` plugin, installed with `mqttq-navien`.*" in section
    core = cli_md.split("{ #mqttq-worker }", 1)[1].split("\n## ", 1)[0]
    assert "Added by" not in core
