"""Real ``mqttq worker`` processes on a private redis-server: the kit's process scenarios, and
entries no worker can decode."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import redis
from redis_raw_entries import queue_raw_job

from mqttq.testing import WorkerEnv, WorkerProcessSuite
from mqttq.testing.processes import work
from mqttq.testing.services import RedisServer


@pytest.mark.slow
class TestRedisWorkerProcesses(WorkerProcessSuite):
    kill_jobs = 5000
    kill_job_seconds = 0.01

    @pytest.fixture
    def queue_url(self, redis_url: str) -> str:
        return redis_url


def test_undecodable_entries_are_failed_and_the_worker_goes_on(
    redis_server: RedisServer, redis_url: str, prefix: str, tmp_path: Path
) -> None:
    """Corrupt entries written straight into Redis between good jobs: a real worker keeps
    running, runs every good job, parks the corrupt ones as failed and exits 0 on SIGTERM."""
    workers = WorkerEnv(tmp_path, redis_url, lease=5.0)
    bad = {
        "bad-utf8": b"\xff\xfe\x00garbage",
        "bad-pickle": b"\x80\x04\x95\x15\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x94\x8c\x06system"
        b"\x94\x93\x94.",
        "bad-truncated": b'{"id": "bad-truncated", "name": "mqttq.testing.jobs:work", "kwa',
        "bad-array": b'["not", "an", "envelope"]',
        "bad-newer": b'{"id": "bad-newer", "name": "mqttq.testing.jobs:work", "v": 999}',
    }
    good = [f"good{i}" for i in range(len(bad) + 1)]
    client = redis.Redis.from_url(redis_server.url)
    try:
        for key, (job_id, raw) in zip(good, [*bad.items(), ("", b"")], strict=True):
            workers.push([work(key)])
            if job_id:
                with client.pipeline(transaction=True) as pipe:
                    queue_raw_job(pipe, prefix, "default", job_id, raw)
                    pipe.execute()
    finally:
        client.close()
    with workers.worker() as worker:
        workers.wait(
            lambda: worker.poll() is not None or set(workers.ends()) >= set(good),
            "every good job to run",
        )
        log = worker.log_path.read_text()  # type: ignore[attr-defined]
        assert worker.poll() is None, f"the worker stopped:\n{log}"
        entries = workers.json("failed", "list")
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0, worker.log_path.read_text()  # type: ignore[attr-defined]
    assert workers.ends() == {key: 1 for key in good}
    assert sorted(e["id"] for e in entries) == sorted(bad)
    assert all(str(e["error"]).startswith("cannot decode") for e in entries), entries
    assert all(e["queue"] == "default" for e in entries), entries
    shown = workers.json("failed", "show", "bad-newer")
    assert (shown["id"], shown["job"]) == ("bad-newer", "mqttq.testing.jobs:work")
    left = workers.stats()["default"]
    assert (left.ready, left.delayed, left.reserved, left.failed) == (0, 0, 0, len(bad))
