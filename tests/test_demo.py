"""``mqttq demo`` on a machine with no broker of its own: embedded broker, SQLite, workers."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from mqttq.testing.services import Mosquitto

MQTTQ = str(Path(sys.executable).with_name("mqttq"))


def run_demo(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MQTTQ_")}
    return subprocess.run(
        [MQTTQ, "demo", *args, "--db", str(tmp_path / "demo.db")],
        cwd=tmp_path,
        env={**env, "COLUMNS": "200"},  # the live view's tables on one line each
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def check_summary(out: str, requests: int) -> None:
    """Every reply the heaters published became a job; the faulty heater's replies failed; the
    commands sent while the device client was cut off were all acknowledged."""
    flow = re.search(r"(\d+) replies published, (\d+) received, (\d+) jobs queued", out)
    assert flow is not None, out
    published, received, queued = map(int, flow.groups())
    # each request is answered (a request in flight when the connection was cut may be sent
    # again: at least once), and so is each of the 3 commands
    assert published >= requests + 3
    assert received == queued == published
    processed = re.search(r"(\d+) processed: (\d+) done, (\d+) failed", out)
    assert processed is not None, out
    total, done, failed = map(int, processed.groups())
    assert total == done + failed == published
    assert failed == requests // 5 // 10  # every 10th status reply of the last of 5 heaters
    assert f"{requests} status requests" in out
    assert "3 commands sent while the device client was cut off: 3 acknowledged" in out


def test_demo_processes_the_requested_messages_and_exits_0(tmp_path: Path) -> None:
    result = run_demo(tmp_path, "--messages", "200")
    assert result.returncode == 0, result.stdout + result.stderr
    check_summary(result.stdout, 200)
    assert "embedded amqtt" in result.stdout
    assert "queued -> sent -> acknowledged" in result.stdout
    assert "Traceback" not in result.stderr

    env = {k: v for k, v in os.environ.items() if not k.startswith("MQTTQ_")}
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
    assert failed_list.stdout.count("HeaterFault") == 4


def test_demo_on_a_broker_of_ones_own(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """``--broker``: the same tour over MQTT 5 on Mosquitto."""
    result = run_demo(tmp_path, "--messages", "100", "--broker", mosquitto.url)
    assert result.returncode == 0, result.stdout + result.stderr
    check_summary(result.stdout, 100)
    assert f"{mosquitto.url} (external)" in result.stdout


def test_an_unreachable_broker_is_one_line_within_a_bounded_time(tmp_path: Path) -> None:
    from mqttq.testing.services import free_port

    env = {k: v for k, v in os.environ.items() if not k.startswith("MQTTQ_")}
    url = f"mqtt://127.0.0.1:{free_port()}"  # nothing listens there
    result = subprocess.run(
        [MQTTQ, "demo", "--broker", url, "--db", str(tmp_path / "demo.db")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.splitlines() == [
        f"mqttq: cannot connect to the MQTT broker at {url} within 10s: is it running? "
        "(leave out --broker to use the embedded one)"
    ]
    assert f"connecting to the MQTT broker at {url}" in result.stdout


def test_ctrl_c_while_connecting_stops_the_demo(tmp_path: Path) -> None:
    """On a terminal the demo shows what it waits for, and Ctrl-C ends the wait at once."""
    import pty
    import select
    import signal
    import time

    from mqttq.testing.services import free_port

    env = {k: v for k, v in os.environ.items() if not k.startswith("MQTTQ_")}
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [MQTTQ, "demo", "--broker", f"mqtt://127.0.0.1:{free_port()}"],
        cwd=tmp_path,
        env={**env, "COLUMNS": "200"},
        stdin=slave,
        stdout=slave,
        stderr=slave,
    )
    os.close(slave)
    seen = b""
    try:
        deadline = time.monotonic() + 30
        while b"connecting to the MQTT broker" not in seen:  # the live view on the terminal
            assert time.monotonic() < deadline, seen
            if select.select([master], [], [], 0.5)[0]:
                seen += os.read(master, 65536)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        os.close(master)
    assert b"Traceback" not in seen
