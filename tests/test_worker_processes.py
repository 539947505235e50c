"""Real worker processes on a real SQLite file: crash recovery, retries, graceful stop, delays,
and jobs named by a payload that were never registered."""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import signal
import time
from pathlib import Path

import pytest
from proc_support import run_mqttq, wait_for, worker_process, write_config
from recjobs import read_records

import mqttq

LEASE = 3.0


def config(tmp_path: Path, concurrency: int = 4, grace: float = 10) -> Path:
    return write_config(
        tmp_path,
        f"""
[queue]
url = "sqlite:///{tmp_path / "q.db"}"

[worker]
concurrency = {concurrency}
lease = {LEASE}
shutdown_grace = {grace}

[jobs]
register = ["recjobs:work"]
modules = ["recjobs"]
""",
    )


def push(tmp_path: Path, calls: list[mqttq.Call]) -> list[str]:
    async def go() -> list[str]:
        async with mqttq.App.from_config(tmp_path / "mqttq.toml") as app:
            return await app.queue.bulk(calls)

    return asyncio.run(go())


def stats(tmp_path: Path) -> dict[str, mqttq.QueueStats]:
    async def go() -> dict[str, mqttq.QueueStats]:
        async with mqttq.App.from_config(tmp_path / "mqttq.toml") as app:
            return await app.queue.stats()

    return asyncio.run(go())


def live_workers(tmp_path: Path) -> list[mqttq.WorkerInfo]:
    async def go() -> list[mqttq.WorkerInfo]:
        async with mqttq.App.from_config(tmp_path / "mqttq.toml") as app:
            return await app.driver.workers()

    return asyncio.run(go())


def work(key: str, seconds: float = 0.0, delay: float | None = None) -> mqttq.Call:
    return mqttq.Call("recjobs:work", kwargs={"key": key, "seconds": seconds}, delay=delay)


def ends(records_file: Path) -> collections.Counter[str]:
    return collections.Counter(k for e, k, _, _ in read_records(records_file) if e == "end")


def test_kill_9_loses_nothing(tmp_path: Path) -> None:
    """2 workers, 2,000 jobs of 5 ms; kill -9 one mid-run and restart it."""
    config(tmp_path, concurrency=4)
    records = tmp_path / "records.txt"
    keys = [f"j{i}" for i in range(2000)]
    push(tmp_path, [work(k, 0.005) for k in keys])

    with worker_process(tmp_path) as victim, worker_process(tmp_path) as survivor:
        wait_for(lambda: sum(ends(records).values()) >= 500, 60, "500 jobs done")
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        killed_at = time.time()
        with worker_process(tmp_path) as restarted:
            wait_for(lambda: set(ends(records)) >= set(keys), 60, "every job done")
            for proc in (survivor, restarted):
                proc.send_signal(signal.SIGTERM)
            assert survivor.wait(30) == 0
            assert restarted.wait(30) == 0

    done = ends(records)
    assert set(done) == set(keys)
    duplicates = sum(done.values()) - len(keys)
    assert duplicates <= 4, f"{duplicates} jobs ran twice; at most the victim's concurrency may"
    # jobs the victim had started but not finished: run again by another worker within lease + 5 s
    rows = read_records(records)
    started = {k for e, k, pid, _ in rows if e == "start" and pid == victim.pid}
    finished = {k for e, k, pid, _ in rows if e == "end" and pid == victim.pid}
    for key in started - finished:
        first_end = min(t for e, k, _, t in rows if e == "end" and k == key)
        recovered_after = first_end - killed_at
        assert recovered_after <= LEASE + 5, f"{key} recovered only after {recovered_after:.1f}s"
    final = stats(tmp_path).get("default")
    assert final is not None
    assert (final.ready, final.delayed, final.reserved, final.failed) == (0, 0, 0, 0)


def test_retries_then_failed_registry_then_retry_all(tmp_path: Path) -> None:
    config(tmp_path)
    records = tmp_path / "records.txt"
    flag = tmp_path / "flag"
    [job_id] = push(tmp_path, [mqttq.Call("recjobs:flaky", kwargs={"key": "f", "flag": str(flag)})])

    def failed_list() -> list[dict[str, object]]:
        result = run_mqttq(tmp_path, "failed", "list", "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)  # type: ignore[no-any-return]

    with worker_process(tmp_path) as worker:
        entries = wait_for(failed_list, 60, "the job in the failed registry")
        starts = [t for e, k, _, t in read_records(records) if e == "start"]
        assert len(starts) == 3
        gaps = [b - a for a, b in itertools.pairwise(starts)]
        assert gaps[0] >= 0.3  # backoff base
        assert gaps[1] >= 0.6  # base * factor: the gaps grow
        [entry] = entries
        assert entry["id"] == job_id
        assert entry["attempts"] == 3
        assert "flag" in str(entry["error"])
        assert "missing" in str(entry["error"])
        shown = json.loads(run_mqttq(tmp_path, "failed", "show", job_id, "--json").stdout)
        assert "raise RuntimeError" in shown["traceback"]

        flag.touch()
        retried = run_mqttq(tmp_path, "failed", "retry", "--all")
        assert retried.returncode == 0, retried.stderr
        wait_for(lambda: ends(records)["f"] == 1, 30, "the retried job to run")
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0
    starts = [t for e, k, _, t in read_records(records) if e == "start"]
    assert len(starts) == 4  # three failures, then exactly one more run
    assert failed_list() == []


def test_sigterm_lets_the_running_job_finish_and_leaves_the_rest(tmp_path: Path) -> None:
    config(tmp_path, concurrency=1)
    records = tmp_path / "records.txt"
    push(tmp_path, [work("long", 2.0), work("next")])
    with worker_process(tmp_path) as worker:
        wait_for(lambda: any(e == "start" for e, *_ in read_records(records)), 30, "job start")
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0
    assert ends(records) == {"long": 1}
    left = stats(tmp_path)["default"]
    assert (left.ready, left.reserved) == (1, 0)


def test_delayed_jobs_survive_a_restart_and_never_run_early(tmp_path: Path) -> None:
    config(tmp_path)
    records = tmp_path / "records.txt"
    pushed_at = time.time()
    push(tmp_path, [work("later", delay=2.0)])
    with worker_process(tmp_path) as worker:
        # the worker is up (signal handlers installed) once its heartbeat is visible
        wait_for(lambda: live_workers(tmp_path), 30, "the worker's heartbeat")
        assert stats(tmp_path)["default"].delayed == 1
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0
    assert ends(records) == {}
    with worker_process(tmp_path) as worker:
        wait_for(lambda: ends(records)["later"] == 1, 30, "the delayed job to run")
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0
    [ran_at] = [t for e, _, _, t in read_records(records) if e == "start"]
    assert ran_at >= pushed_at + 2.0


@pytest.mark.parametrize("name", ["os:system", "builtins:eval", "subprocess:call"])
def test_payload_naming_unregistered_code_is_failed_not_run(tmp_path: Path, name: str) -> None:
    config(tmp_path)
    canary = tmp_path / "pwned"

    async def smuggle() -> None:
        async with mqttq.App.from_config(tmp_path / "mqttq.toml") as app:
            await app.driver.push([mqttq.Job(name=name, args=[f"touch {canary}"])])

    asyncio.run(smuggle())
    result = run_mqttq(tmp_path, "worker", "--burst")
    assert result.returncode == 0, result.stderr
    entries = json.loads(run_mqttq(tmp_path, "failed", "list", "--json").stdout)
    assert [e["job"] for e in entries] == [name]
    assert str(entries[0]["error"]).startswith("unknown job")
    assert not canary.exists()
