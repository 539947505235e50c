"""The plugin author's documentation (``docs/plugins/``), checked against the code.

``writing-a-driver.md`` is run as written. Its code blocks follow one convention: a block whose
first line is a comment naming a relative path (``# mqttq-tinyq/pyproject.toml``) is that file,
whole; a block whose first line is ``# <path> (continued)`` goes on with the file of that path
(its first line is dropped, and it is joined to what came before with one empty line). Every
other block is an illustration or a command. The test writes the files into a temporary
directory, installs the tutorial's package with uv into a fresh virtual environment (the
checkout's ``packages/core`` with its ``testing`` extra, from its path), checks that
``mqttq plugins`` lists it, runs the tutorial's conformance tests (they must pass) and the
commands of its "Using it" section.

``writing-a-device.md`` and ``writing-a-transport.md`` follow the same convention; their packages
are not installed: their own tests run against a real Mosquitto, the plugin given to the App by
hand.

Meta-tests: every hook in ``mqttq/hookspecs.py`` appears in ``hooks.md`` with its exact
signature, every test of the kit's suites is named in ``conformance.md``, and every Python block
of the plugin docs compiles.
"""

from __future__ import annotations

import ast
import inspect
import json
import os
import re
import shlex
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from plugin_dists import ROOT, run, uv

from mqttq import hookspecs
from mqttq.testing import PluginPackageSuite, QueueDriverSuite, WorkerProcessSuite

DOCS = ROOT / "docs" / "plugins"
TUTORIAL = DOCS / "writing-a-driver.md"
PROJECT = "mqttq-tinyq"
#: what the tutorial must define, at least
TUTORIAL_FILES = {
    f"{PROJECT}/pyproject.toml",
    f"{PROJECT}/src/mqttq_tinyq/__init__.py",
    f"{PROJECT}/src/mqttq_tinyq/plugin.py",
    f"{PROJECT}/src/mqttq_tinyq/driver.py",
    f"{PROJECT}/tests/test_conformance.py",
    "mqttq.toml",
    "hello.py",
}
#: the capabilities tinyq leaves out: the only reasons a kit test may be skipped for it
UNDECLARED = {"UNIQUE", "WORKERS", "CANCEL", "SCHEDULES"}

FENCE = re.compile(r"^```(?P<lang>[\w+-]*)\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)
HEADER = re.compile(r"^# (?P<path>[\w.-]+(?:/[\w.-]+)*\.\w+)(?P<cont> \(continued\))?$")


def blocks(markdown: str) -> list[tuple[str, str]]:
    """``(language, body)`` of every fenced code block, in order."""
    return [(m["lang"], m["body"]) for m in FENCE.finditer(markdown)]


def files_of(markdown: str) -> dict[str, str]:
    """The files a document defines, by the convention above."""
    files: dict[str, str] = {}
    for _, body in blocks(markdown):
        first, _, rest = body.partition("\n")
        header = HEADER.match(first)
        if header is None:
            continue
        path = header["path"]
        if header["cont"]:
            assert path in files, f"{path} is continued before it starts"
            files[path] = files[path] + "\n" + rest
        else:
            assert path not in files, f"{path} is defined twice"
            files[path] = body
    return files


def section(markdown: str, heading: str) -> str:
    """The text of the ``## `` section whose title starts with ``heading``."""
    match = re.search(rf"^## {re.escape(heading)}.*?(?=^## |\Z)", markdown, re.M | re.S)
    assert match is not None, f"no section {heading!r}"
    return match.group(0)


# -- the tutorial, run as written -----------------------------------------------------------


def test_the_tutorial_defines_its_files() -> None:
    files = files_of(TUTORIAL.read_text())
    assert set(files) >= TUTORIAL_FILES
    for path, text in files.items():
        if path.endswith(".py"):
            compile(text, path, "exec")


class Tutorial:
    """The tutorial's files written out, and a virtual environment with its package."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.venv = root / "venv"
        self.bin = self.venv / "bin"
        self.env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "VIRTUAL_ENV") and not k.startswith("MQTTQ_")
        }
        self.env["PATH"] = f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}"

    def run(self, *args: str, cwd: Path | None = None) -> Any:
        return run(*args, cwd=cwd or self.root / "work", env=self.env, timeout=600)


@pytest.fixture(scope="module")
def tutorial(tmp_path_factory: pytest.TempPathFactory) -> Tutorial:
    root = tmp_path_factory.mktemp("tutorial")
    work = root / "work"
    for path, text in files_of(TUTORIAL.read_text()).items():
        target = work / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    made = Tutorial(root)
    uv("venv", "--quiet", "--python", sys.executable, str(made.venv), cwd=root)
    python = str(made.bin / "python")
    core = f"{ROOT / 'packages' / 'core'}[testing]"
    project = str(work / PROJECT)
    uv(
        "pip",
        "install",
        "--quiet",
        "--python",
        python,
        "--refresh-package",
        "mqttq",
        core,
        "-e",
        project,
        cwd=root,
    )
    return made


def test_mqttq_plugins_lists_the_tutorial_plugin(tutorial: Tutorial) -> None:
    listed = tutorial.run("mqttq", "plugins", "--json", "--check")
    assert listed.returncode == 0, listed.stderr
    plugins = {p["name"]: p for p in json.loads(listed.stdout)}
    assert set(plugins) == {"builtin", "tinyq"}
    tinyq = plugins["tinyq"]
    assert (tinyq["distribution"], tinyq["status"]) == ("mqttq-tinyq", "loaded")
    assert tinyq["provides"] == {"queue_drivers": ["tinyq"]}

    table = tutorial.run("mqttq", "plugins")
    assert table.returncode == 0, table.stderr
    shown = section(TUTORIAL.read_text(), "6.")
    [row] = [line.split() for line in shown.splitlines() if line.startswith(" tinyq ")]
    assert row in [line.split() for line in table.stdout.splitlines()]


def test_the_tutorial_conformance_tests_pass(tutorial: Tutorial) -> None:
    project = tutorial.root / "work" / PROJECT
    result = tutorial.run("pytest", "-q", "-rs", "-p", "no:cacheprovider", cwd=project)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = result.stdout.strip().splitlines()[-1]
    assert re.search(r"\d+ passed", summary), summary
    assert "failed" not in summary, summary
    assert "error" not in summary, summary
    reasons = re.findall(r"does not declare ((?:Capability\.\w+(?:, )?)+)", result.stdout)
    skipped = re.search(r"(\d+) skipped", summary)
    if skipped:
        assert reasons, "tests were skipped for another reason than a capability"
    for listed in reasons:
        assert set(re.findall(r"Capability\.(\w+)", listed)) <= UNDECLARED, listed
    assert "TestTinyqPackage" not in "".join(re.findall(r"SKIPPED.*", result.stdout))


def test_the_tutorial_usage_commands_work(tutorial: Tutorial) -> None:
    work = tutorial.root / "work"
    [(_, commands)] = [b for b in blocks(section(TUTORIAL.read_text(), "8.")) if b[0] == "sh"]
    outputs = []
    for line in commands.splitlines():
        command = line.split(" #", 1)[0].strip()
        if not command:
            continue
        result = tutorial.run(*shlex.split(command), cwd=work)
        assert result.returncode == 0, f"{command}: {result.stderr}"
        outputs.append(result)
        if len(outputs) == 1:  # stats before anything was queued creates nothing
            assert "no queues yet" in result.stdout
            assert not (work / "queue.db").exists()
    stats, worker = outputs[2], outputs[3]
    assert re.search(r"^\s*default\s+1\s+0\s+0\s+0\s", stats.stdout, re.M), stats.stdout
    assert "hello tinyq" in worker.stdout


# -- the device family and transport guides: their tests run as written ----------------------

#: guide -> (project directory, files it must define)
GUIDES = {
    "writing-a-device.md": (
        "mqttq-acme-blinds",
        {"pyproject.toml", "src/mqttq_acme_blinds/plugin.py", "src/mqttq_acme_blinds/adapter.py"},
    ),
    "writing-a-transport.md": (
        "mqttq-namespace",
        {"pyproject.toml", "src/mqttq_namespace/plugin.py", "src/mqttq_namespace/transport.py"},
    ),
}


@pytest.mark.parametrize("guide", sorted(GUIDES))
def test_the_guide_tests_pass(guide: str, tmp_path: Path) -> None:
    """The guide's package is not installed: its tests give the plugin to the App by hand, and
    run against a real Mosquitto (the kit's fixture)."""
    project_name, expected = GUIDES[guide]
    files = files_of((DOCS / guide).read_text())
    assert {f"{project_name}/{f}" for f in expected} <= set(files)
    assert any(f.startswith(f"{project_name}/tests/test_") for f in files)
    for path, text in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    project = tmp_path / project_name
    env = {k: v for k, v in os.environ.items() if not k.startswith("MQTTQ_")}
    env["PYTHONPATH"] = str(project / "src")
    result = run(
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=project, env=env
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"^\d+ passed in ", result.stdout.strip().splitlines()[-1]), result.stdout


# -- meta-tests -------------------------------------------------------------------------------


def hook_specs() -> dict[str, Callable[..., Any]]:
    return {
        name: func
        for name, func in vars(hookspecs).items()
        if callable(func) and getattr(func, "mqttq_spec", None) is not None
    }


def signature(name: str, func: Callable[..., Any]) -> str:
    """``def name(param: Type) -> None`` from ``inspect.signature`` (annotations as written)."""
    sig = inspect.signature(func)
    params = ", ".join(f"{p.name}: {p.annotation}" for p in sig.parameters.values())
    return f"def {name}({params}) -> {sig.return_annotation}"


def test_every_hook_is_documented_with_its_exact_signature() -> None:
    text = (DOCS / "hooks.md").read_text()
    specs = hook_specs()
    assert len(specs) >= 8
    missing = [signature(n, f) for n, f in specs.items() if signature(n, f) not in text]
    assert missing == [], f"hooks.md lacks these signatures: {missing}"
    unknown = set(re.findall(r"\bmqttq_(?:register|job)_\w+", text)) - set(specs)
    assert unknown == set(), f"hooks.md names hooks mqttq does not define: {unknown}"


def test_every_kit_test_is_described_in_the_conformance_page() -> None:
    text = (DOCS / "conformance.md").read_text()
    for suite in (QueueDriverSuite, WorkerProcessSuite, PluginPackageSuite):
        names = sorted(n for n in dir(suite) if n.startswith("test_"))
        missing = [n for n in names if f"`{n}`" not in text]
        assert missing == [], f"conformance.md does not describe {suite.__name__}.{missing}"


@pytest.mark.parametrize("page", sorted(p.name for p in DOCS.glob("*.md")))
def test_every_python_block_compiles(page: str) -> None:
    for lang, body in blocks((DOCS / page).read_text()):
        first = body.partition("\n")[0]
        header = HEADER.match(first)
        if lang != "python" or (header is not None and header["cont"]):
            continue  # a continued file is compiled whole by test_the_tutorial_defines_its_files
        # snippets may await at the top level, as in an asyncio REPL
        compile(
            textwrap.dedent(body), page, "exec", ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
        )


def test_the_bundled_plugins_use_only_public_modules_of_mqttq() -> None:
    """What the bundled plugins need, a third-party plugin can reach: none imports a private
    module of the core (a name part starting with ``_``)."""
    private = []
    for path in sorted((ROOT / "packages").glob("*/src/**/*.py")):
        if path.is_relative_to(ROOT / "packages" / "core"):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            for name in names:
                parts = name.split(".")
                if parts[0] == "mqttq" and any(p.startswith("_") for p in parts[1:]):
                    private.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}")
    assert private == []
