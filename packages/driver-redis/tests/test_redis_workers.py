"""Real ``mqttq worker`` processes on a private redis-server: kill -9 one mid-run."""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from mqttq_redis_testjobs import read_records
from redis_server_support import RedisServer

import mqttq

TESTS = Path(__file__).parent
LEASE = 3.0


def write_config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "mqttq.toml"
    path.write_text(
        f"""
[queue]
url = "{url}"

[worker]
concurrency = 4
lease = {LEASE}
shutdown_grace = 10

[jobs]
register = ["mqttq_redis_testjobs:work"]
"""
    )
    return path


@contextmanager
def worker_process(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MQTTQ_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(TESTS), env.get("PYTHONPATH")) if p)
    env["MQTTQ_CONFIG"] = str(tmp_path / "mqttq.toml")
    env["MQTTQ_TEST_RECORD"] = str(tmp_path / "records.txt")
    log = (tmp_path / f"worker-{time.monotonic_ns()}.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mqttq", "worker"],
        env=env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        log.close()


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll an observable condition until it holds, at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)
    return value


def ends(records: Path) -> collections.Counter[str]:
    return collections.Counter(k for e, k, _, _ in read_records(records) if e == "end")


async def _push(config: Path, calls: list[mqttq.Call]) -> list[str]:
    async with mqttq.App.from_config(config) as app:
        return await app.queue.bulk(calls)


async def _stats(config: Path) -> dict[str, mqttq.QueueStats]:
    async with mqttq.App.from_config(config) as app:
        return await app.queue.stats()


@pytest.mark.slow
def test_kill_9_a_worker_loses_nothing(
    redis_server: RedisServer, prefix: str, tmp_path: Path
) -> None:
    """2 workers x concurrency 4, 5,000 jobs of 10 ms; kill -9 one at ~1,200 done, restart it:
    none lost, at most 4 run twice, the victim's jobs recovered within lease + 5 s."""
    config = write_config(tmp_path, f"{redis_server.url}?prefix={prefix}")
    records = tmp_path / "records.txt"
    keys = [f"j{i}" for i in range(5000)]
    calls = [
        mqttq.Call("mqttq_redis_testjobs:work", kwargs={"key": k, "seconds": 0.01}) for k in keys
    ]
    asyncio.run(_push(config, calls))

    with worker_process(tmp_path) as victim, worker_process(tmp_path) as survivor:
        wait_for(lambda: sum(ends(records).values()) >= 1200, 120, "1,200 jobs done")
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        killed_at = time.time()
        with worker_process(tmp_path) as restarted:
            wait_for(lambda: set(ends(records)) >= set(keys), 120, "every job done")
            for proc in (survivor, restarted):
                proc.send_signal(signal.SIGTERM)
            assert survivor.wait(30) == 0
            assert restarted.wait(30) == 0

    done = ends(records)
    assert set(done) == set(keys)
    duplicates = sum(done.values()) - len(keys)
    assert duplicates <= 4, f"{duplicates} jobs ran twice; at most the victim's concurrency may"
    rows = read_records(records)
    started = {k for e, k, pid, _ in rows if e == "start" and pid == victim.pid}
    finished = {k for e, k, pid, _ in rows if e == "end" and pid == victim.pid}
    for key in started - finished:
        first_end = min(t for e, k, _, t in rows if e == "end" and k == key)
        late = first_end - killed_at
        assert late <= LEASE + 5, f"{key} recovered only {late:.1f}s after the kill"
    final = asyncio.run(_stats(config))["default"]
    assert (final.ready, final.delayed, final.reserved, final.failed) == (0, 0, 0, 0)
