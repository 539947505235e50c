"""``mqttq failed list|show|retry|forget|purge`` against the driver's real failed registry."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conftest import Cli

LIST_KEYS = {"id", "queue", "job", "error", "attempts", "failed_at", "kind"}


def failed_ids(cli: Cli, *args: str) -> list[str]:
    result = cli("failed", "list", "--json", "--limit", "10000", *args)
    assert result.exit_code == 0, result.stderr
    return [entry["id"] for entry in json.loads(result.stdout)]


def test_list_shape_newest_first_and_paging(cli: Cli) -> None:
    assert json.loads(cli("failed", "list", "--json").stdout) == []
    assert cli("failed", "list").stdout.strip() == "no failed jobs"

    ids = cli.seed_failed(3)
    entries = json.loads(cli("failed", "list", "--json").stdout)
    assert [e["id"] for e in entries] == ids[::-1]
    first = entries[0]
    assert set(first) == LIST_KEYS
    assert first["queue"] == "default"
    assert first["job"] == f"{cli.jobs}:boom"
    assert first["error"] == "RuntimeError: boom 2"
    assert first["attempts"] == 0
    failed_at = datetime.fromisoformat(first["failed_at"])
    assert failed_at.utcoffset() == timedelta(0)

    page = json.loads(cli("failed", "list", "--json", "--limit", "1", "--offset", "1").stdout)
    assert [e["id"] for e in page] == [ids[1]]

    table = cli("failed", "list").stdout
    assert ids[0] in table
    assert "RuntimeError: boom 0" in table


def test_list_by_queue(cli: Cli) -> None:
    (a,) = cli.seed_failed(1, queue="a")
    cli.seed_failed(2, queue="b")
    assert failed_ids(cli, "--queue", "a") == [a]
    assert len(failed_ids(cli, "--queue", "b")) == 2


def test_show_includes_traceback_and_arguments(cli: Cli) -> None:
    _, job_id = cli.seed_failed(2)
    result = cli("failed", "show", job_id, "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) >= LIST_KEYS
    assert data["id"] == job_id
    assert data["traceback"] == "File x\nboom 1\n"
    assert data["kwargs"] == {"i": 1}
    assert data["args"] == []

    text = cli("failed", "show", job_id).stdout
    assert "boom 1" in text
    assert "traceback:" in text


def test_retry_ids_requeues_them(cli: Cli) -> None:
    ids = cli.seed_failed(3)
    result = cli("failed", "retry", ids[0], ids[2], "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["requeued"] == 2
    assert failed_ids(cli) == [ids[1]]
    shown = json.loads(cli("jobs", "show", ids[0], "--json").stdout)
    assert shown["state"] == "ready"
    assert shown["attempts"] == 0


def test_retry_unknown_id_reports_it(cli: Cli) -> None:
    (known,) = cli.seed_failed(1)
    result = cli("failed", "retry", known, "0" * 32)
    assert result.exit_code == 1
    assert result.stdout == "requeued 1 job\n"
    assert result.stderr.startswith("mqttq: requeued 1 of 2 jobs")
    assert failed_ids(cli) == []


def test_retry_all_requeues_every_job_in_chunks(cli: Cli) -> None:
    """More than one chunk (500): every failed job goes back, once."""
    cli.seed_failed(1203)
    result = cli("failed", "retry", "--all")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "requeued 1203 jobs\n"
    assert result.stderr == ""  # no progress bar when stderr is not a terminal
    default = json.loads(cli("stats", "--json").stdout)["queues"]["default"]
    assert (default["ready"], default["failed"]) == (1203, 0)


def test_retry_all_of_one_queue(cli: Cli) -> None:
    cli.seed_failed(2, queue="a")
    (b,) = cli.seed_failed(1, queue="b")
    result = cli("failed", "retry", "--all", "--queue", "a", "--json")
    assert json.loads(result.stdout)["requeued"] == 2
    assert failed_ids(cli) == [b]


def test_retried_job_runs_again_in_a_worker(cli: Cli) -> None:
    job_id = cli("jobs", "enqueue", f"{cli.jobs}:boom").stdout.strip()
    assert cli("worker", "--burst").exit_code == 0
    (entry,) = json.loads(cli("failed", "list", "--json").stdout)
    assert entry["id"] == job_id
    assert entry["attempts"] == 1
    assert "RuntimeError" in json.loads(cli("failed", "show", job_id, "--json").stdout)["traceback"]

    assert cli("failed", "retry", "--all").stdout == "requeued 1 job\n"
    assert cli("worker", "--burst").exit_code == 0
    (again,) = json.loads(cli("failed", "list", "--json").stdout)
    assert again["id"] == job_id
    assert again["attempts"] == 1  # attempts were reset by the requeue, then one more run


def test_forget(cli: Cli) -> None:
    ids = cli.seed_failed(3)
    result = cli("failed", "forget", ids[0], ids[1], "--json")
    assert json.loads(result.stdout) == {"forgotten": 2}
    assert failed_ids(cli) == [ids[2]]
    again = cli("failed", "forget", ids[0])
    assert again.exit_code == 1
    assert again.stdout == "forgot 0 jobs\n"
    assert again.stderr == "mqttq: forgot 0 of 1 jobs; 1 is not in the failed registry\n"


def test_purge_without_a_terminal_does_not_ask(cli: Cli) -> None:
    cli.seed_failed(2, queue="a")
    (b,) = cli.seed_failed(1, queue="b")
    result = cli("failed", "purge", "--queue", "a")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "purged 2 jobs\n"
    assert failed_ids(cli) == [b]
    assert json.loads(cli("failed", "purge", "--yes", "--json").stdout) == {"purged": 1}
    assert failed_ids(cli) == []
