"""End to end with real processes: mosquitto -> ``mqttq run`` (queue on Redis) -> job."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import orjson

from mqttq.config import MqttConfig
from mqttq.testing import WorkerEnv, eventually
from mqttq.testing.jobs import read_records
from mqttq.testing.services import Mosquitto, RedisServer
from mqttq.transports.mqtt import MqttTransport
from mqttq_redis.driver import RedisQueueDriver


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
    mosquitto: Mosquitto, redis_server: RedisServer, prefix: str, tmp_path: Path
) -> None:
    queue_url = f"{redis_server.url}?prefix={prefix}"
    env = WorkerEnv(tmp_path, queue_url, lease=10)
    env.write_config(
        extra=f"""
[mqtt]
url = "{mosquitto.url}"
client_id = "redis-e2e-listener"

[[routes]]
topic = "e2e/{{device_id}}/reading"
job = "mqttq.testing.jobs:reading"
queue = "readings"
payload = "json"
"""
    )
    with env.start("run") as proc:
        log = proc.log_path  # type: ignore[attr-defined]
        await eventually(
            lambda: "listening: " in log.read_text(), timeout=30, what="the listener to subscribe"
        )
        await publish(mosquitto.url, 300)
        await eventually(
            lambda: len(read_records(env.records)) >= 300, timeout=60, what="300 job runs"
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()
    assert "Traceback" not in log.read_text()
    assert sorted(int(key) for _, key, _, _ in read_records(env.records)) == list(range(300))
    async with RedisQueueDriver.from_url(queue_url) as driver:
        s = (await driver.stats())["readings"]  # the jobs went through Redis
        assert (s.ready, s.reserved, s.delayed, s.failed) == (0, 0, 0, 0)
