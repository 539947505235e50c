"""The README's first command, run as written in a fresh virtualenv on a copy of the checkout."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
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
    assert "processed:" in result.stdout
    assert "3 commands sent while the device client was cut off: 3 acknowledged" in result.stdout


def test_readme_test_command_is_what_ci_runs() -> None:
    command = readme_command("Run the tests")
    ci = (ROOT / ".ci" / "run").read_text()
    assert command.split("&&")[-1].strip() in ci.splitlines()


def test_readme_use_it_section_runs_as_written(tmp_path: Path) -> None:
    """The configuration, the job module and the script of "Use it", written to the files they
    name, then the script and a burst worker: every job it queued runs."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Use it", 1)[1].split("\n## ", 1)[0]
    toml = re.search(r"```toml\n(.*?)```", section, re.S)
    assert toml, "no ```toml block in Use it"
    (tmp_path / "mqttq.toml").write_text(toml[1])
    scripts = re.findall(r"```python\n# (\S+)\n(.*?)```", section, re.S)
    assert [name for name, _ in scripts] == ["myapp/jobs.py", "enqueue.py"]
    for name, body in scripts:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(body)
    (tmp_path / "myapp" / "__init__.py").write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MQTTQ_")}
    env["PYTHONPATH"] = str(tmp_path)
    python = Path(sys.executable)
    ran = subprocess.run(
        [python, "enqueue.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert ran.returncode == 0, ran.stderr
    worker = subprocess.run(
        [python.with_name("mqttq"), "worker", "--burst"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert worker.returncode == 0, worker.stderr
    assert sorted(worker.stdout.split()) == sorted(
        ["sending", "to", "a@b.c", "sending", "to", "e@f.g", "sending", "to", "h@i.j"]
    )  # the job delayed by 30 s is still waiting
