"""``mqttq demo`` on a machine with no broker of its own: embedded broker, SQLite, workers."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

MQTTQ = str(Path(sys.executable).with_name("mqttq"))


def test_demo_processes_the_requested_messages_and_exits_0(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MQTTQ_")}
    result = subprocess.run(
        [MQTTQ, "demo", "--messages", "200", "--db", str(tmp_path / "demo.db")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "200 messages published, 200 received, 200 jobs queued" in out
    processed = re.search(r"(\d+) processed: (\d+) done, (\d+) failed", out)
    assert processed is not None, out
    total, done, failed = map(int, processed.groups())
    assert (total, done + failed) == (200, 200)
    assert failed == 4  # every 10th reading of the last of 5 heaters is a simulated fault
    assert "embedded amqtt" in out
    assert "Traceback" not in result.stderr

    failed_list = subprocess.run(
        [MQTTQ, "failed", "list", "--json"],
        cwd=tmp_path,
        env={**env, "MQTTQ_QUEUE_URL": f"sqlite:///{tmp_path / 'demo.db'}"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert failed_list.returncode == 0, failed_list.stderr
    assert failed_list.stdout.count("SensorFault") == 4
