"""A worker whose background work fails never goes on silently: real ``mqttq worker`` processes
on real SQLite files with faults injected into the database."""

from __future__ import annotations

import logging
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import mqttq
from mqttq.config import structure
from mqttq.testing import WorkerEnv
from mqttq.testing.jobs import read_records
from mqttq.testing.processes import work
from mqttq.worker import Worker


@pytest.fixture
def workers(tmp_path: Path) -> WorkerEnv:
    return WorkerEnv(tmp_path, f"sqlite:///{tmp_path / 'q.db'}", lease=2)


def runs(env: WorkerEnv) -> dict[str, int]:
    counts: dict[str, int] = {}
    for event, key, _, _ in read_records(env.records):
        if event == "start":
            counts[key] = counts.get(key, 0) + 1
    return counts


def test_a_worker_that_cannot_ack_stops_with_its_traceback(workers: WorkerEnv) -> None:
    """Acks fail for good (the database refuses deletes): the worker logs why with the
    traceback and exits 1, instead of running every job again after each lease."""
    keys = [f"j{i}" for i in range(30)]
    workers.push([work(k, 0.01) for k in keys])
    with sqlite3.connect(workers.dir / "q.db") as conn:
        conn.execute(
            "CREATE TRIGGER refuse_acks BEFORE DELETE ON mqttq_jobs "
            "BEGIN SELECT RAISE(ABORT, 'refusing deletes'); END"
        )
    with workers.worker() as proc:
        assert proc.wait(60) == 1
        log = proc.log_path.read_text()  # type: ignore[attr-defined]
    assert "stops: its acker failed" in log, log
    assert "Traceback" in log
    assert "refusing deletes" in log
    assert max(runs(workers).values()) == 1, "a job ran twice: the worker went on after it failed"
    assert workers.workers() == []  # its heartbeat is gone with it
    left = workers.stats()["default"]
    # none could be acked, none is lost: what was done waits for its lease, the rest went back
    assert left.ready + left.reserved == len(keys)


def test_acks_wait_out_a_locked_database_and_none_is_lost(workers: WorkerEnv) -> None:
    """Another program holds the write lock for a while: acks are kept and retried, every job
    runs exactly once, and the outage is logged once when it starts and once when it ends."""
    db = workers.dir / "q.db"
    workers.queue_url = f"sqlite:///{db}?busy_timeout=0.2"
    workers.write_config()
    keys = [f"j{i}" for i in range(40)]
    workers.push([work(k, 0.02) for k in keys])
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sqlite3, sys
                conn = sqlite3.connect({str(db)!r}, isolation_level=None)
                sys.stdin.readline()
                conn.execute("BEGIN IMMEDIATE")
                print("locked", flush=True)
                sys.stdin.readline()
                conn.execute("ROLLBACK")
                """
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    with workers.worker() as proc:
        workers.wait(lambda: sum(runs(workers).values()) >= 5, "some jobs to run")
        assert holder.stdin is not None
        assert holder.stdout is not None
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.stdout.readline() == "locked\n"
        log_path = proc.log_path  # type: ignore[attr-defined]
        workers.wait(lambda: "queue unavailable:" in log_path.read_text(), "the outage warning")
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.wait(10) == 0
        workers.wait(lambda: set(workers.ends()) >= set(keys), "every job done")
        workers.wait(lambda: workers.stats()["default"].reserved == 0, "every job acked")
        proc.terminate()
        assert proc.wait(30) == 0
    log = log_path.read_text()
    assert log.count("queue unavailable:") == 2, log  # the start and the end of the outage
    assert "back after" in log
    assert runs(workers) == dict.fromkeys(keys, 1)


async def test_one_failing_observer_never_silences_the_others(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []

    class Broken:
        @mqttq.hookimpl
        def mqttq_job_event(self, event: mqttq.JobEvent) -> None:
            raise RuntimeError("observer bug")

    class Counting:
        @mqttq.hookimpl
        def mqttq_job_event(self, event: mqttq.JobEvent) -> None:
            seen.append(event.kind)

    host = mqttq.make_plugin_manager(
        only=["sqlite"], extra=[("counting", Counting()), ("broken", Broken())]
    )
    config = structure({"queue": {"url": f"sqlite:///{tmp_path / 'q.db'}"}})
    app = mqttq.App(config, host=host)

    @app.job
    async def noop(i: int) -> None: ...

    calls = [mqttq.Call(app.jobs.name_for(noop), kwargs={"i": i}) for i in range(3)]
    with caplog.at_level(logging.ERROR, logger="mqttq"):
        async with app:
            await app.queue.bulk(calls)
            assert await Worker(app, burst=True, install_signals=False).run() == 0
    assert seen.count("enqueued") == 3
    assert seen.count("started") == 3
    assert seen.count("succeeded") == 3
    logged = [r for r in caplog.records if "observer broken failed" in r.getMessage()]
    assert len(logged) == 1, "logged once per observer and kind of error, not once per event"
    assert logged[0].exc_info is not None
    assert isinstance(logged[0].exc_info[1], RuntimeError)
