"""Starting real ``mqttq`` processes for the cross-package tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TESTS = Path(__file__).parent


def mqttq_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MQTTQ_")}
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["MQTTQ_CONFIG"] = str(tmp_path / "mqttq.toml")
    env["MQTTQ_TEST_RECORD"] = str(tmp_path / "records.txt")
    env.update(extra)
    return env


def write_config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "mqttq.toml"
    path.write_text(body)
    return path


def mqttq_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "mqttq", *args]


def run_mqttq(
    tmp_path: Path, *args: str, timeout: float = 60, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        mqttq_cmd(*args),
        env=mqttq_env(tmp_path, **env),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@contextmanager
def worker_process(tmp_path: Path, *args: str, **env: str) -> Iterator[subprocess.Popen[str]]:
    """A ``mqttq worker`` process; killed at the end if still running."""
    log = open(tmp_path / f"worker-{time.monotonic_ns()}.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        mqttq_cmd("worker", *args),
        env=mqttq_env(tmp_path, **env),
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        log.close()


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll an observable condition until it holds, at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)
