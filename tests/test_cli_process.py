"""The installed ``mqttq`` console script, one real process per command, on one SQLite file."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conftest import Cli


def stats(cli: Cli) -> dict[str, int]:
    result = cli.run("stats", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["queues"]["default"]  # type: ignore[no-any-return]


def test_enqueue_work_inspect_and_retry_across_processes(sqlite_cli: Cli) -> None:
    cli = sqlite_cli
    for i in range(3):
        result = cli.run("jobs", "enqueue", f"{cli.jobs}:add", "--kwargs", f'{{"a": {i}, "b": 1}}')
        assert result.returncode == 0, result.stderr
    enqueued = cli.run("jobs", "enqueue", f"{cli.jobs}:boom", "--json")
    bad = json.loads(enqueued.stdout)["id"]
    assert json.loads(cli.run("jobs", "show", bad, "--json").stdout)["state"] == "ready"
    assert stats(cli)["ready"] == 4

    worker = cli.run("worker", "--burst", "--concurrency", "2")
    assert worker.returncode == 0, worker.stderr
    after = stats(cli)
    assert (after["ready"], after["reserved"], after["failed"]) == (0, 0, 1)

    (entry,) = json.loads(cli.run("failed", "list", "--json").stdout)
    assert entry["id"] == bad
    assert "boom" in entry["error"]
    shown = json.loads(cli.run("failed", "show", bad, "--json").stdout)
    assert "RuntimeError" in shown["traceback"]

    retried = cli.run("failed", "retry", "--all")
    assert (retried.returncode, retried.stdout) == (0, "requeued 1 job\n")
    assert (stats(cli)["ready"], stats(cli)["failed"]) == (1, 0)


def test_worker_exit_code_is_the_process_exit_code(sqlite_cli: Cli) -> None:
    cli = sqlite_cli
    result = cli.run("worker", "--burst", "--max-time", "5")
    assert result.returncode == 0, result.stderr
    cli.error(cli.run("worker", "--burst", "--runner", "nope"), 2, "no job runner named 'nope'")


def run_on_a_terminal(
    cli: Cli, *args: str, answer: bytes = b"", timeout: float = 60
) -> tuple[int, str, str]:
    """Run ``mqttq`` with stdin and stderr on a pseudo-terminal (stdout piped).

    Returns the exit code, stdout, and everything written to the terminal.
    """
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [cli.mqttq, *args],
        cwd=cli.tmp_path,
        env=cli.env(COLUMNS="100"),
        stdin=slave,
        stdout=subprocess.PIPE,
        stderr=slave,
    )
    os.close(slave)
    if answer:
        os.write(master, answer)
    seen = b""
    deadline = time.monotonic() + timeout
    while True:  # read the terminal until the process closes it (EIO), within the deadline
        assert time.monotonic() < deadline, f"mqttq {args} did not finish: {seen!r}"
        ready, _, _ = select.select([master], [], [], 0.5)
        if not ready:
            continue
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    assert proc.stdout is not None
    out = proc.stdout.read().decode()
    proc.stdout.close()
    return proc.wait(timeout), out, seen.decode(errors="replace")


def test_retry_all_shows_progress_on_a_terminal(sqlite_cli: Cli) -> None:
    cli = sqlite_cli
    cli.seed_failed(600)
    code, out, terminal = run_on_a_terminal(cli, "failed", "retry", "--all")
    assert (code, out) == (0, "requeued 600 jobs\n")
    assert "requeueing" in terminal
    assert "600/600" in terminal
    assert stats(cli)["ready"] == 600


def test_purge_asks_on_a_terminal(sqlite_cli: Cli) -> None:
    cli = sqlite_cli
    cli.seed_failed(2)
    code, out, _ = run_on_a_terminal(cli, "failed", "purge", answer=b"n\n")
    assert code == 1
    assert "Delete every failed job?" in out
    assert stats(cli)["failed"] == 2

    code, out, _ = run_on_a_terminal(cli, "failed", "purge", answer=b"y\n")
    assert code == 0
    assert out.endswith("purged 2 jobs\n")
    assert stats(cli)["failed"] == 0
