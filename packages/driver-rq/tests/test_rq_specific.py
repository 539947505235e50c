"""What is particular to the RQ driver: its URLs and options (checked without I/O), the RQ data it
writes (queue, serializer, function, retries), ``mqttq`` commands on an RQ queue, an unreachable
Redis in one line."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest
import redis
from rq.serializers import JSONSerializer

from mqttq.plugin import ConfigError, DriverUnavailable, Envelope
from mqttq.testing import PluginPackageSuite, make_job, unique_name
from mqttq.testing.services import RedisServer
from mqttq_rq import ENTRY
from mqttq_rq.driver import RqQueueDriver, unique_id
from mqttq_rq.job import Job


class TestPluginPackage(PluginPackageSuite):
    distribution = "mqttq-rq"
    plugin_name = "rq"
    provides = {
        "queue_drivers": {"rq+redis", "rq+rediss", "rq+unix"},
        "worker_pools": {"rq+redis", "rq+rediss", "rq+unix"},
    }
    heavy_imports = {"rq", "redis"}


# -- URLs: every mistake is one ConfigError line, before any connection -----------------------


@pytest.mark.parametrize(
    ("url", "options", "message"),
    [
        ("redis://h/0", {}, "not an RQ queue URL"),
        ("rq+redis://h/0?retry_for=3", {}, "unknown Redis URL option"),
        ("rq+redis://h/0", {"prefix": "x"}, "unknown rq option(s) prefix"),
        ("rq+redis://h/0?failed_ttl=soon", {}, "'failed_ttl' must be a number"),
        ("rq+redis://h/0?result_ttl=1.5", {}, "'result_ttl' must be a whole number"),
        ("rq+redis://h/0?maintenance_interval=0", {}, "'maintenance_interval' must be >= 1"),
        ("rq+redis://h:port/0", {}, "bad port"),
        ("rq+redis://h/zero", {}, "database must be a number"),
        ("rq+redis://h/0?socket_timeout=soon", {}, "bad Redis URL"),
        ("rq+redis://h/0?decode_responses=1", {}, "not supported"),
        ("rq+unix://", {}, "needs a socket path"),
    ],
)
def test_bad_urls_and_options_are_one_config_error(
    url: str, options: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        RqQueueDriver.from_url(url, **options)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_good_urls_and_the_options_mqttq_passes() -> None:
    for url in (
        "rq+redis://127.0.0.1:1/0",
        "rq+redis://:pw@host:6379/2?socket_timeout=3&result_ttl=0",
        "rq+rediss://host:6380/0?ssl_cert_reqs=none",
        "rq+unix:///run/redis.sock?db=1",
    ):
        driver = RqQueueDriver.from_url(url, failed_ttl=60, create=False)
        assert driver.settings.failed_ttl == 60
        assert driver.settings.redis_url.startswith(url.removeprefix("rq+").partition("?")[0])
    shown = RqQueueDriver.from_url("rq+redis://u:secret@host:6379/0").url
    assert shown == "rq+redis://u:***@host:6379/0"


def test_config_check_reports_a_bad_rq_option(tmp_path: Path) -> None:
    config = tmp_path / "mqttq.toml"
    config.write_text('[queue]\nurl = "rq+redis://127.0.0.1:1/0?failed_tll=5"\n')
    result = subprocess.run(
        [sys.executable, "-m", "mqttq", "--config", str(config), "config", "check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "queue.url: unknown Redis URL option 'failed_tll' in 'rq+redis://127.0.0.1:1/0' "
        "(mqttq-rq's own: failed_ttl, maintenance_interval, result_ttl)"
    ]


# -- what is stored in Redis ------------------------------------------------------------------


async def test_jobs_are_json_rq_jobs_of_the_entry_point_in_their_queue(
    redis_server: RedisServer,
) -> None:
    q = unique_name()
    job = make_job(q, kwargs={"raw": b"\x00\xff", "n": 1}, timeout=2.5)
    client = redis.Redis.from_url(redis_server.url)
    async with RqQueueDriver.from_url("rq+" + redis_server.url) as driver:
        await driver.push([job])
    try:
        assert client.lrange(f"rq:queue:{q}", 0, -1) == [job.id.encode()]
        stored = client.hgetall(f"rq:job:{job.id}")
        func, instance, args, kwargs = JSONSerializer.loads(zlib.decompress(stored[b"data"]))
        assert (func, instance, kwargs) == (ENTRY, None, {})
        assert args[0]["kwargs"] == {"raw": {"$bytes": "AP8="}, "n": 1}
        assert stored[b"timeout"] == b"3", "RQ timeouts are whole seconds, rounded up"
        assert stored[b"origin"] == q.encode()
        fetched = Job.fetch(job.id, connection=client)
        assert fetched.func_name == ENTRY
    finally:
        client.close()


async def test_a_unique_key_is_a_deterministic_rq_job_id(redis_server: RedisServer) -> None:
    q, key = unique_name(), unique_name("key")
    async with (
        RqQueueDriver.from_url("rq+" + redis_server.url) as a,
        RqQueueDriver.from_url("rq+" + redis_server.url) as b,
    ):
        first = await a.push([make_job(q, unique_key=key)])
        again = await b.push([make_job(q, unique_key=key), make_job(q, unique_key=key)])
        assert first == [unique_id(key)]
        assert again == first * 2
        assert (await a.stats())[q].ready == 1
        record = await a.get_job(first[0])
        assert record is not None
        assert record.job.unique_key == key


async def test_delayed_jobs_are_rq_scheduled_jobs_due_no_sooner(redis_server: RedisServer) -> None:
    q = unique_name()
    job = make_job(q, available_at=time.time() + 30.4)
    client = redis.Redis.from_url(redis_server.url)
    async with RqQueueDriver.from_url("rq+" + redis_server.url) as driver:
        await driver.push([job])
        record = await driver.get_job(job.id)
    try:
        score = client.zscore(f"rq:scheduled:{q}", job.id)
        assert score is not None
        assert score >= job.available_at, "RQ would move the job before its time"
        assert score - job.available_at < 1
    finally:
        client.close()
    assert record is not None
    assert record.state == "delayed"


async def test_jobs_show_and_stats_on_an_rq_queue(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    q = unique_name()
    url = "rq+" + redis_server.url
    ready, later = make_job(q, kwargs={"a": 1}), make_job(q, available_at=time.time() + 60)
    failed = make_job(q, kwargs={"b": 2})
    async with RqQueueDriver.from_url(url) as driver:
        await driver.push([ready, later])
        await driver.fail(failed, error="ValueError: no", traceback="Traceback: ...")
    config = tmp_path / "mqttq.toml"
    config.write_text(f'[queue]\nurl = "{url}"\n')

    def mqttq(*args: str) -> object:
        result = subprocess.run(
            [sys.executable, "-m", "mqttq", "--config", str(config), *args, "--json"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    shown = {i: mqttq("jobs", "show", i) for i in (ready.id, later.id, failed.id)}
    assert [shown[i]["state"] for i in (ready.id, later.id, failed.id)] == [  # type: ignore[index]
        "ready",
        "delayed",
        "failed",
    ]
    assert shown[failed.id]["traceback"] == "Traceback: ..."  # type: ignore[index]
    stats = mqttq("stats")["queues"][q]  # type: ignore[index]
    assert (stats["ready"], stats["delayed"], stats["failed"]) == (1, 1, 1)


# -- no redis-py exception escapes --------------------------------------------------------------


async def test_an_unreachable_redis_is_driver_unavailable_in_one_line() -> None:
    async with RqQueueDriver.from_url("rq+redis://127.0.0.1:1/0") as driver:
        for _ in range(2):  # the thread pool's push, then the loop's own asyncio client's
            with pytest.raises(DriverUnavailable, match=r"^cannot reach Redis at rq\+redis://"):
                await driver.push([Envelope(name="x")])
        with pytest.raises(DriverUnavailable):
            await driver.stats()


async def test_out_of_memory_is_driver_unavailable_and_writes_nothing(
    own_redis: RedisServer,
) -> None:
    """At maxmemory (noeviction) a push is refused whole: DriverUnavailable (the listener keeps
    the messages and retries) with what to do; once memory is freed the same push goes in."""
    client = redis.Redis.from_url(own_redis.url)
    try:
        client.config_set("maxmemory-policy", "noeviction")
        async with RqQueueDriver.from_url(f"rq+{own_redis.url}") as driver:
            q = unique_name()
            await driver.push([make_job(q, kwargs={"pad": "x" * 1000}) for _ in range(100)])
            client.config_set("maxmemory", int(client.info("memory")["used_memory"]) - 100_000)
            for _ in range(2):  # the thread pool's push, then the loop's own asyncio client's
                late = make_job(q)
                with pytest.raises(DriverUnavailable, match=r"out of memory .* raise maxmemory"):
                    await driver.push([late])
                assert not client.exists(f"rq:job:{late.id}")
            assert client.llen(f"rq:queue:{q}") == 100
            client.config_set("maxmemory", 0)
            assert await driver.push([late]) == [late.id]
            assert client.llen(f"rq:queue:{q}") == 101
    finally:
        client.close()


def test_mqttq_stats_on_an_unreachable_redis(tmp_path: Path) -> None:
    config = tmp_path / "mqttq.toml"
    config.write_text('[queue]\nurl = "rq+redis://127.0.0.1:1/0"\n')
    result = subprocess.run(
        [sys.executable, "-m", "mqttq", "--config", str(config), "stats"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "mqttq: cannot reach Redis at rq+redis://127.0.0.1:1/0 (connection refused): is it running?"
    ]
