"""``mqttq jobs enqueue|show``, ``mqttq stats`` and ``mqttq worker`` on a real queue."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conftest import Cli

STATS_KEYS = {"ready", "delayed", "reserved", "failed", "oldest_ready_age"}


def test_enqueue_prints_the_id_and_show_finds_it(cli: Cli) -> None:
    result = cli("jobs", "enqueue", f"{cli.jobs}:add", "--kwargs", '{"a": 1, "b": 2}')
    assert result.exit_code == 0, result.stderr
    job_id = result.stdout.strip()
    assert len(job_id) >= 16
    assert "\n" not in job_id

    shown = cli("jobs", "show", job_id, "--json")
    assert shown.exit_code == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["id"] == job_id
    assert data["state"] == "ready"
    assert data["queue"] == "default"
    assert data["job"] == f"{cli.jobs}:add"
    assert data["attempts"] == 0
    assert data["error"] is None
    assert data["envelope"]["kwargs"] == {"a": 1, "b": 2}
    assert data["envelope"]["v"] == 1
    assert datetime.fromisoformat(data["enqueued_at"]).utcoffset() is not None

    text = cli("jobs", "show", job_id)
    assert text.exit_code == 0
    assert f"id:           {job_id}" in text.stdout
    assert "state:        ready" in text.stdout


def test_enqueue_json_queue_delay_and_args(cli: Cli) -> None:
    result = cli(
        "jobs", "enqueue", f"{cli.jobs}:add", "--args", "[1, 2]",
        "--queue", "later", "--delay", "3600", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    (job_id,) = json.loads(result.stdout).values()
    assert json.loads(result.stdout) == {"id": job_id}

    data = json.loads(cli("jobs", "show", job_id, "--json").stdout)
    assert data["state"] == "delayed"
    assert data["queue"] == "later"
    assert data["envelope"]["args"] == [1, 2]
    available = datetime.fromisoformat(data["available_at"])
    enqueued = datetime.fromisoformat(data["enqueued_at"])
    assert (available - enqueued).total_seconds() >= 3599

    stats = json.loads(cli("stats", "--json").stdout)
    assert stats["queues"]["later"]["delayed"] == 1
    assert stats["queues"]["later"]["ready"] == 0


def test_unique_key_returns_the_live_job(cli: Cli) -> None:
    args = ("jobs", "enqueue", f"{cli.jobs}:noop", "--unique-key", "k1")
    first, second = cli(*args), cli(*args)
    assert first.exit_code == second.exit_code == 0
    assert first.stdout == second.stdout
    assert json.loads(cli("stats", "--json").stdout)["queues"]["default"]["ready"] == 1


def test_stats_shape_and_table(cli: Cli) -> None:
    empty = cli("stats", "--json")
    assert empty.exit_code == 0, empty.stderr
    assert json.loads(empty.stdout) == {"queues": {}}
    assert cli("stats").stdout.strip() == "no queues yet"

    for _ in range(3):
        assert cli("jobs", "enqueue", f"{cli.jobs}:noop").exit_code == 0
    cli.seed_failed(2)
    data = json.loads(cli("stats", "--json").stdout)
    default = data["queues"]["default"]
    assert set(default) == STATS_KEYS
    assert (default["ready"], default["delayed"], default["reserved"], default["failed"]) == (
        3, 0, 0, 2,
    )  # fmt: skip
    assert default["oldest_ready_age"] >= 0

    table = cli("stats").stdout
    assert "default" in table
    assert "ready" in table.splitlines()[0]


def test_worker_burst_runs_jobs_and_fails_the_broken_one(cli: Cli) -> None:
    for i in range(5):
        assert cli("jobs", "enqueue", f"{cli.jobs}:add", "--args", f"[{i}, 1]").exit_code == 0
    bad = cli("jobs", "enqueue", f"{cli.jobs}:boom", "--kwargs", '{"x": 1}').stdout.strip()

    result = cli("worker", "--burst", "--concurrency", "2")
    assert result.exit_code == 0, result.stderr

    default = json.loads(cli("stats", "--json").stdout)["queues"]["default"]
    assert (default["ready"], default["reserved"], default["failed"]) == (0, 0, 1)
    failed = json.loads(cli("failed", "list", "--json").stdout)
    assert [f["id"] for f in failed] == [bad]
    assert "boom" in failed[0]["error"]


def test_worker_max_jobs_stops_early(cli: Cli) -> None:
    for _ in range(4):
        assert cli("jobs", "enqueue", f"{cli.jobs}:noop").exit_code == 0
    result = cli("worker", "--burst", "--max-jobs", "1", "--concurrency", "1")
    assert result.exit_code == 0, result.stderr
    assert json.loads(cli("stats", "--json").stdout)["queues"]["default"]["ready"] == 3


def test_worker_only_claims_its_queues(cli: Cli) -> None:
    cli("jobs", "enqueue", f"{cli.jobs}:noop", "--queue", "a")
    cli("jobs", "enqueue", f"{cli.jobs}:noop", "--queue", "b")
    assert cli("worker", "--burst", "--queue", "b").exit_code == 0
    queues = json.loads(cli("stats", "--json").stdout)["queues"]
    assert queues["a"]["ready"] == 1
    assert queues["b"]["ready"] == 0


def test_worker_unknown_runner_is_one_line(cli: Cli) -> None:
    cli.error(cli("worker", "--burst", "--runner", "warp"), 2, "no job runner named 'warp'")
