"""End to end with real processes: mosquitto -> ``mqttq run`` (queue on Redis) -> job."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import orjson
import redis

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


async def test_mqttq_run_holds_messages_while_redis_is_out_of_memory(
    mosquitto: Mosquitto, own_redis: RedisServer, tmp_path: Path
) -> None:
    """Redis at maxmemory (noeviction) refuses every write: ``mqttq run`` keeps the messages
    unacked and says so once, nothing lands in the failed registry, and every message becomes
    one job once memory is raised."""
    env = WorkerEnv(tmp_path, own_redis.url, lease=10)
    env.write_config(
        extra=f"""
[mqtt]
url = "{mosquitto.url}"
client_id = "redis-oom-listener"

[[routes]]
topic = "e2e/{{device_id}}/reading"
job = "mqttq.testing.jobs:reading"
queue = "readings"
payload = "json"
"""
    )
    client = redis.Redis.from_url(own_redis.url)
    try:
        with env.start("run") as proc:
            log = proc.log_path  # type: ignore[attr-defined]
            await eventually(
                lambda: "listening: " in log.read_text(), timeout=30, what="the listener"
            )
            client.config_set("maxmemory-policy", "noeviction")
            client.config_set("maxmemory", int(client.info("memory")["used_memory"]) - 100_000)
            await publish(mosquitto.url, 100)
            await eventually(
                lambda: "out of memory" in log.read_text(), timeout=30, what="the refused push"
            )
            async with RedisQueueDriver.from_url(own_redis.url) as driver:
                assert await driver.failed_list() == []
                assert "readings" not in await driver.stats()
            assert proc.poll() is None, log.read_text()

            client.config_set("maxmemory", 0)
            await eventually(
                lambda: len(read_records(env.records)) >= 100, timeout=60, what="100 job runs"
            )
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0, log.read_text()
    finally:
        client.close()
    text = log.read_text()
    assert "Traceback" not in text, text
    assert " ERROR " not in text, text
    assert sorted(int(key) for _, key, _, _ in read_records(env.records)) == list(range(100))
    async with RedisQueueDriver.from_url(own_redis.url) as driver:
        assert await driver.failed_list() == []
