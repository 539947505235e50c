"""End to end with real processes: mosquitto -> ``mqttq run`` (queue on Redis) -> job."""

from __future__ import annotations

import asyncio
import getpass
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
from mqttq_redis_testjobs import read_records
from redis_server_support import RedisServer, free_port

from mqttq.config import MqttConfig
from mqttq.transports.mqtt import MqttTransport
from mqttq_redis.driver import RedisQueueDriver

TESTS = Path(__file__).parent


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[str]:
    """A private mosquitto on a free port (never the one on 1883); its URL."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not os.path.exists(binary):
        pytest.fail("mosquitto is not installed: apt-get install -y mosquitto")
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\nuser {getpass.getuser()}\n"
        f"persistence false\nlog_dest file {tmp_path / 'mosquitto.log'}\n"
    )
    proc = subprocess.Popen([binary, "-c", str(conf)], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while True:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else "mosquitto exited"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "mosquitto did not listen within 10 s"
            time.sleep(0.02)  # polling a condition with a deadline
    yield f"mqtt://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)


async def until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        await asyncio.sleep(0.02)


async def publish(url: str, n: int) -> None:
    async with MqttTransport(MqttConfig(url=url, client_id="redis-e2e-publisher")) as pub:
        for start in range(0, n, 100):
            await asyncio.gather(
                *(
                    pub.publish(f"e2e/d{i % 4}/reading", orjson.dumps({"i": i}), qos=1)
                    for i in range(start, min(start + 100, n))
                )
            )


async def test_mqttq_run_with_a_redis_queue(
    mosquitto: str, redis_server: RedisServer, prefix: str, tmp_path: Path
) -> None:
    queue_url = f"{redis_server.url}?prefix={prefix}"
    (tmp_path / "mqttq.toml").write_text(
        f"""
[mqtt]
url = "{mosquitto}"
client_id = "redis-e2e-listener"

[queue]
url = "{queue_url}"

[worker]
concurrency = 4
lease = 10

[[routes]]
topic = "e2e/{{device_id}}/reading"
job = "mqttq_redis_testjobs:reading"
queue = "readings"
payload = "json"
"""
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MQTTQ_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(TESTS), env.get("PYTHONPATH")) if p)
    env["MQTTQ_CONFIG"] = str(tmp_path / "mqttq.toml")
    records = tmp_path / "records.txt"
    env["MQTTQ_TEST_RECORD"] = str(records)
    log = tmp_path / "run.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mqttq", "run"], env=env, cwd=tmp_path, stdout=out, stderr=out
        )
    try:
        await until(lambda: "listening: " in log.read_text(), 30, "the listener to subscribe")
        await publish(mosquitto, 300)
        await until(lambda: len(read_records(records)) >= 300, 60, "300 job runs")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert "Traceback" not in log.read_text()
    assert sorted(int(key) for _, key, _, _ in read_records(records)) == list(range(300))
    async with RedisQueueDriver.from_url(queue_url) as driver:
        s = (await driver.stats())["readings"]  # the jobs went through Redis
        assert (s.ready, s.reserved, s.delayed, s.failed) == (0, 0, 0, 0)
