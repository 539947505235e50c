"""The README's first command, run as written in a fresh virtualenv on a copy of the checkout."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).parent.parent


def readme_command(section: str) -> str:
    text = (ROOT / "README.md").read_text()
    block = re.search(rf"## {section}.*?```sh\n(.*?)\n```", text, re.S)
    assert block, f"README has no ```sh block under '## {section}'"
    return block[1].strip()


def test_readme_try_it_command_runs_the_demo(tmp_path: Path) -> None:
    command = readme_command("Try it")
    assert "mqttq demo" in command
    shutil.copy(ROOT / "README.md", tmp_path)
    shutil.copytree(
        ROOT / "packages",
        tmp_path / "packages",
        ignore=shutil.ignore_patterns(".venv", "__pycache__", "*.egg-info", ".nox"),
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MQTTQ_", "VIRTUAL_ENV"))}
    result = subprocess.run(
        ["bash", "-c", command],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "200 processed" in result.stdout


def test_readme_test_command_is_what_ci_runs() -> None:
    command = readme_command("Run the tests")
    ci = (ROOT / ".ci" / "run").read_text()
    assert command.split("&&")[-1].strip() in ci.splitlines()
