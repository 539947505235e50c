"""Prefetch never starves slow jobs: a busy worker does not hold jobs an idle one could run.
Real ``mqttq worker`` processes on a real SQLite file."""

from __future__ import annotations

import collections
from pathlib import Path

from mqttq.testing import WorkerEnv
from mqttq.testing.jobs import read_records
from mqttq.testing.processes import work


def test_slow_jobs_spread_over_every_worker(tmp_path: Path) -> None:
    env = WorkerEnv(tmp_path, f"sqlite:///{tmp_path / 'q.db'}", lease=10)
    env.write_config(concurrency=1)  # prefetch stays at its default
    env.push([work("warm-up")])
    with env.worker() as first, env.worker() as second:
        env.wait(lambda: len(env.workers()) == 2, "both workers' heartbeats")
        env.wait(lambda: env.ends().get("warm-up") == 1, "the warm-up job")
        env.push([work(f"slow{i}", 0.5) for i in range(8)])
        env.wait(lambda: len(env.ends()) == 9, "every slow job")
        for proc in (first, second):
            proc.terminate()
            assert proc.wait(30) == 0
    per_worker = collections.Counter(
        pid
        for event, key, pid, _ in read_records(env.records)
        if event == "end" and key != "warm-up"
    )
    assert set(per_worker) == {first.pid, second.pid}, per_worker
    assert min(per_worker.values()) >= 3, f"one worker held the others' jobs: {per_worker}"
