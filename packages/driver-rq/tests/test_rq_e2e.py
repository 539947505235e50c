"""End to end with real processes: mosquitto -> ``mqttq listen`` -> RQ queue -> ``mqttq worker``
running supervised RQ workers, each test on a redis-server and a broker of its own."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from rq_helpers import alive, parent_of, rq_url
from rq_testjobs import records

import mqttq
from mqttq.plugin import App, MqttConfig
from mqttq.testing import WorkerEnv, eventually
from mqttq.testing.services import Mosquitto, RedisServer


async def publish(url: str, n: int) -> None:
    config = mqttq.Config(mqtt=MqttConfig(url=url, client_id="rq-e2e-publisher"))
    async with App(config).make_transport() as pub:
        for start in range(0, n, 100):
            await asyncio.gather(
                *(
                    pub.publish(f"e2e/d{i % 4}/reading", orjson.dumps({"i": i, "b": "x"}), qos=1)
                    for i in range(start, min(start + 100, n))
                )
            )


def ingest_env(
    tmp_path: Path, redis_server: RedisServer, mosquitto: Mosquitto, job: str = "reading"
) -> WorkerEnv:
    env = WorkerEnv(tmp_path, rq_url(redis_server), lease=10)
    env.write_config(
        extra=f"""register = ["rq_testjobs:{job}"]

[mqtt]
url = "{mosquitto.url}"
client_id = "rq-e2e-listener"

[[routes]]
topic = "e2e/{{device_id}}/reading"
job = "rq_testjobs:{job}"
queue = "readings"
payload = "json"
"""
    )
    return env


def rq_info(redis_server: RedisServer) -> str:
    """RQ's own monitor, once."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "rq.cli",
            "info",
            "--url",
            redis_server.url,
            "--serializer",
            "rq.serializers.JSONSerializer",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _log(proc: subprocess.Popen[str]) -> str:
    return proc.log_path.read_text()  # type: ignore[attr-defined]


async def test_mqtt_to_rq_workers_in_the_route_queue(
    mosquitto: Mosquitto, own_redis: RedisServer, tmp_path: Path
) -> None:
    """Messages published to the broker run as RQ jobs of the route's queue (not a default one)
    in ``mqttq worker --count 2``, each job with its named segment and its decoded payload."""
    env = ingest_env(tmp_path, own_redis, mosquitto)
    record = str(tmp_path / "runs.jsonl")
    pool = ("--count", "2", "--queue", "readings")
    with env.start("listen") as listener, env.worker(*pool, RQ_TEST_RECORD=record) as worker:
        await eventually(
            lambda: "listening: " in _log(listener), timeout=30, what="the listener to subscribe"
        )
        await publish(mosquitto.url, 200)
        await eventually(
            lambda: len(records(Path(record))) >= 200, timeout=120, what="200 job runs"
        )
        for proc in (listener, worker):
            proc.send_signal(signal.SIGTERM)
        assert listener.wait(30) == 0, _log(listener)
        assert worker.wait(30) == 0, _log(worker)
    runs = records(Path(record))
    assert sorted(r["payload"]["i"] for r in runs) == list(range(200))
    for r in runs:
        assert r["is_message"], r
        assert r["rq_queue"] == "readings", r
        assert r["device_id"] == f"d{r['payload']['i'] % 4}", r
        assert r["payload"]["b"] == "x"
        assert r["topic"] == f"e2e/{r['device_id']}/reading"
    assert len({r["ppid"] for r in runs}) == 2, "the jobs did not spread over both RQ workers"
    client = redis.Redis.from_url(own_redis.url)
    try:
        assert client.smembers("rq:queues") == {b"rq:queue:readings"}
    finally:
        client.close()
    assert "Traceback" not in _log(worker)


@pytest.mark.slow
async def test_a_thousand_messages_each_processed_once_while_rq_info_shows_them(
    mosquitto: Mosquitto, own_redis: RedisServer, tmp_path: Path
) -> None:
    """1,000 messages through ``mqttq listen`` and ``mqttq worker --count 2``: every one
    processed exactly once; meanwhile RQ's own ``rq info`` shows the queue and both workers."""
    env = ingest_env(tmp_path, own_redis, mosquitto)
    record = Path(tmp_path / "runs.jsonl")
    pool = ("--count", "2", "--queue", "readings")
    with env.start("listen") as listener, env.worker(*pool, RQ_TEST_RECORD=str(record)) as worker:
        await eventually(
            lambda: "listening: " in _log(listener), timeout=30, what="the listener to subscribe"
        )
        await eventually(
            lambda: _log(worker).count("Listening on readings") >= 2,
            timeout=30,
            what="two RQ workers",
        )
        shown = await asyncio.to_thread(rq_info, own_redis)
        names = {w.id for w in await asyncio.to_thread(env.workers)}
        assert len(names) == 2
        publishing = asyncio.create_task(publish(mosquitto.url, 1000))
        await eventually(lambda: len(records(record)) >= 50, timeout=60, what="the first runs")
        during = await asyncio.to_thread(rq_info, own_redis)
        await publishing
        await eventually(lambda: len(records(record)) >= 1000, timeout=240, what="1,000 runs")
        for proc in (listener, worker):
            proc.send_signal(signal.SIGTERM)
        assert listener.wait(30) == 0, _log(listener)
        assert worker.wait(30) == 0, _log(worker)
    for output in (shown, during):
        assert "readings" in output, output
        assert all(name in output for name in names), output
        assert "2 workers" in output, output
    runs = records(record)
    assert sorted(r["payload"]["i"] for r in runs) == list(range(1000)), "lost or repeated"
    final = (await asyncio.to_thread(env.stats))["readings"]
    assert (final.ready, final.delayed, final.reserved, final.failed) == (0, 0, 0, 0)


@pytest.mark.slow
async def test_mqttq_run_processes_a_thousand_messages_once_while_rq_info_shows_them(
    mosquitto: Mosquitto, own_redis: RedisServer, tmp_path: Path
) -> None:
    """``mqttq run`` on an RQ queue: the listener and ``[worker] count`` (2) supervised RQ
    workers on the route's queue, in one process tree. 1,000 messages: every one processed
    exactly once; meanwhile ``rq info`` shows the queue and both workers. SIGTERM: exit 0, the
    workers gone."""
    env = ingest_env(tmp_path, own_redis, mosquitto)
    record = Path(tmp_path / "runs.jsonl")
    with env.start("run", RQ_TEST_RECORD=str(record), MQTTQ_WORKER_COUNT="2") as proc:
        await eventually(
            lambda: "listening: " in _log(proc) or proc.poll() is not None,
            timeout=30,
            what="the listener to subscribe",
        )
        await eventually(
            lambda: _log(proc).count("*** Listening on") >= 2 or proc.poll() is not None,
            timeout=30,
            what="two RQ workers",
        )
        assert proc.poll() is None, _log(proc)
        names = {w.id for w in await asyncio.to_thread(env.workers)}
        assert len(names) == 2
        publishing = asyncio.create_task(publish(mosquitto.url, 1000))
        await eventually(lambda: len(records(record)) >= 50, timeout=60, what="the first runs")
        during = await asyncio.to_thread(rq_info, own_redis)
        await publishing
        await eventually(lambda: len(records(record)) >= 1000, timeout=240, what="1,000 runs")
        rq_workers = {r["ppid"] for r in records(record)}  # each job's work-horse's parent
        assert len(rq_workers) == 2, rq_workers
        [pool] = {parent_of(pid) for pid in rq_workers}
        assert parent_of(pool) == proc.pid, "not one process tree"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, _log(proc)
    assert "readings" in during, during
    assert all(name in during for name in names), during
    assert "2 workers" in during, during
    runs = records(record)
    assert sorted(r["payload"]["i"] for r in runs) == list(range(1000)), "lost or repeated"
    final = (await asyncio.to_thread(env.stats))["readings"]
    assert (final.ready, final.delayed, final.reserved, final.failed) == (0, 0, 0, 0)
    assert await asyncio.to_thread(env.workers) == []
    assert not any(alive(pid) for pid in rq_workers), "an RQ worker outlived mqttq run"
    assert "Traceback" not in _log(proc)


async def start_run(env: WorkerEnv, stack: contextlib.ExitStack, **extra: str) -> Any:
    """``mqttq run`` on ``env``, once its listener subscribed and its RQ workers listen."""
    proc = stack.enter_context(env.start("run", **extra))
    await eventually(
        lambda: (
            ("listening: " in _log(proc) and "*** Listening on" in _log(proc))
            or proc.poll() is not None
        ),
        timeout=30,
        what="the listener and the RQ worker",
    )
    assert proc.poll() is None, _log(proc)
    return proc


@pytest.mark.parametrize("signals", [1, 2], ids=["warm", "cold"])
async def test_mqttq_run_stops_the_listener_then_the_rq_workers(
    mosquitto: Mosquitto, own_redis: RedisServer, tmp_path: Path, signals: int
) -> None:
    """SIGTERM to ``mqttq run`` during a 2 s job: the listener stops first, then the RQ worker
    finishes the job (warm stop), exit 0. A second SIGTERM stops the worker at once: the job goes
    back to its queue with its attempt given back, exit 0."""
    env = ingest_env(tmp_path, own_redis, mosquitto, job="slow_reading")
    record = Path(tmp_path / "runs.jsonl")
    with contextlib.ExitStack() as stack:
        proc = await start_run(env, stack, RQ_TEST_RECORD=str(record))
        await publish(mosquitto.url, 1)
        [started] = await eventually(lambda: records(record), timeout=60, what="the job to start")
        proc.send_signal(signal.SIGTERM)
        await eventually(
            lambda: "rq workers finish their current job" in _log(proc),
            timeout=30,
            what="the warm stop",
        )
        if signals == 2:
            proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, _log(proc)
    log = _log(proc)
    assert log.index("listener stopped") < log.index("rq workers finish their current job")
    ended = [r for r in records(record) if r["event"] == "end"]
    if signals == 1:
        assert len(ended) == 1, log
        assert "Traceback" not in log
    else:
        assert ended == [], log
        shown = env.json("jobs", "show", started["rq_id"])
        assert (shown["state"], shown["attempts"]) == ("ready", 0)


@pytest.mark.parametrize("option", ["--concurrency=2", "--runner=asyncio"])
def test_mqttq_run_refuses_the_options_of_mqttqs_own_worker(
    own_redis: RedisServer, mosquitto: Mosquitto, tmp_path: Path, option: str
) -> None:
    env = ingest_env(tmp_path, own_redis, mosquitto)
    result = env.run("run", option)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "mqttq: concurrency and runner are for mqttq's own worker; this queue's jobs run in its "
        "driver's workers, one job at a time each: set [worker] count instead"
    ]
