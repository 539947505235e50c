"""Real plugin distributions for the plugin tests: a project written to a directory, built into
a wheel and installed by uv, then found by ``importlib.metadata`` like any installed plugin."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path

import pytest

#: the checkout this test runs from
ROOT = Path(__file__).resolve().parents[1]
#: the ``mqttq`` console script of the environment running the tests
MQTTQ = str(Path(sys.executable).with_name("mqttq"))


def uv_binary() -> str:
    found = shutil.which("uv")
    if found is None:
        pytest.fail("these tests need uv on PATH: python3 -m pip install uv")
    return found


def run(
    *args: str, cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion; its output comes back, whatever its exit code."""
    return subprocess.run(
        args,
        cwd=cwd,
        env=dict(env) if env is not None else None,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def uv(*args: str, cwd: Path) -> None:
    """``uv <args>``, failing the test with uv's output when it fails."""
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    proc = run(uv_binary(), *args, cwd=cwd, env=env, timeout=600)
    if proc.returncode != 0:
        pytest.fail(f"uv {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")


def write_project(
    root: Path,
    distribution: str,
    package: str,
    modules: Mapping[str, str],
    entry_points: Mapping[str, str],
) -> Path:
    """A plugin project under ``root/<distribution>``: ``src/<package>/<module>.py`` for each of
    ``modules`` (name -> source) and ``entry_points`` (name -> module) in ``mqttq.plugins``."""
    project = root / distribution
    source = project / "src" / package
    source.mkdir(parents=True)
    (source / "__init__.py").write_text("")
    for name, text in modules.items():
        (source / f"{name}.py").write_text(textwrap.dedent(text))
    points = "\n".join(f'{name} = "{target}"' for name, target in entry_points.items())
    (project / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""\
            [project]
            name = "{distribution}"
            version = "0.1.0"
            requires-python = ">=3.11"

            [project.entry-points."mqttq.plugins"]
            {{points}}

            [build-system]
            requires = ["hatchling>=1.24"]
            build-backend = "hatchling.build"

            [tool.hatch.build.targets.wheel]
            packages = ["src/{package}"]
            """
        ).format(points=points)
    )
    return project


def install_into(target: Path, *projects: Path) -> None:
    """Build ``projects`` and install them (without dependencies) into the directory
    ``target``, as a site directory to put on ``PYTHONPATH``."""
    uv(
        "pip",
        "install",
        "--quiet",
        "--no-deps",
        "--target",
        str(target),
        *map(str, projects),
        cwd=target.parent,
    )
