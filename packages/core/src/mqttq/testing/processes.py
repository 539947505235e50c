"""Real ``mqttq worker`` processes against a queue URL: what every driver must survive.

Usage, in a driver package's tests::

    from mqttq.testing import WorkerProcessSuite

    class TestMyWorkerProcesses(WorkerProcessSuite):
        @pytest.fixture
        def queue_url(self, tmp_path):
            return f"my://{tmp_path}/q"

:class:`WorkerEnv` (the ``workers`` fixture) is the toolbox the scenarios use: a directory with an
``mqttq.toml``, the environment for child processes, and helpers to push jobs, read stats and
start workers. Jobs come from :mod:`mqttq.testing.jobs` and record what ran in a file.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import pytest

from mqttq.app import App
from mqttq.models import Call, Envelope, QueueStats, WorkerInfo
from mqttq.testing.jobs import RECORD, ends, read_records
from mqttq.testing.waiting import eventually_sync

JOBS = "mqttq.testing.jobs"
WORK = f"{JOBS}:work"
FLAKY = f"{JOBS}:flaky"


class WorkerEnv:
    """A working directory for real ``mqttq`` processes on ``queue_url``."""

    def __init__(self, directory: Path, queue_url: str, *, lease: float, extra: str = "") -> None:
        self.dir = directory
        self.queue_url = queue_url
        self.lease = lease
        self.config = directory / "mqttq.toml"
        self.records = directory / "records.txt"
        self.write_config(extra=extra)

    def write_config(self, *, concurrency: int = 4, grace: float = 10, extra: str = "") -> Path:
        self.config.write_text(
            f"""\
[queue]
url = "{self.queue_url}"

[worker]
concurrency = {concurrency}
lease = {self.lease}
shutdown_grace = {grace}

[jobs]
modules = ["{JOBS}"]
{extra}"""
        )
        return self.config

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MQTTQ_")}
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        env["MQTTQ_CONFIG"] = str(self.config)
        env[RECORD] = str(self.records)
        env.update(extra)
        return env

    @staticmethod
    def command(*args: str) -> list[str]:
        return [sys.executable, "-m", "mqttq", *args]

    def run(self, *args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
        """``mqttq ARGS`` to completion."""
        return subprocess.run(
            self.command(*args),
            env=self.env(**env),
            cwd=self.dir,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def json(self, *args: str) -> Any:
        """``mqttq ARGS --json``, parsed; the command must succeed."""
        result = self.run(*args, "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    @contextmanager
    def start(self, *args: str, **env: str) -> Iterator[subprocess.Popen[str]]:
        """A long-running ``mqttq ARGS`` process (output in a log file); killed at the end."""
        log_path = self.dir / f"mqttq-{time.monotonic_ns()}.log"
        with log_path.open("w") as log:
            proc = subprocess.Popen(
                self.command(*args),
                env=self.env(**env),
                cwd=self.dir,
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
            )
            proc.log_path = log_path  # type: ignore[attr-defined]
            try:
                yield proc
            finally:
                if proc.poll() is None:
                    proc.kill()
                proc.wait(10)

    def worker(self, *args: str, **env: str) -> Any:
        """A ``mqttq worker ARGS`` process (a context manager, see :meth:`start`)."""
        return self.start("worker", *args, **env)

    def _app(self, fn: Any) -> Any:
        async def go() -> Any:
            async with App.from_config(self.config) as app:
                return await fn(app)

        return asyncio.run(go())

    def push(self, calls: Sequence[Call]) -> list[str]:
        return self._app(lambda app: app.queue.bulk(calls))  # type: ignore[no-any-return]

    def push_envelopes(self, jobs: Sequence[Envelope]) -> list[str]:
        """Straight to the driver, past the job registry (as a foreign producer would)."""
        return self._app(lambda app: app.driver.push(jobs))  # type: ignore[no-any-return]

    def stats(self) -> dict[str, QueueStats]:
        return self._app(lambda app: app.queue.stats())  # type: ignore[no-any-return]

    def workers(self) -> list[WorkerInfo]:
        return self._app(lambda app: app.driver.workers())  # type: ignore[no-any-return]

    def ends(self) -> dict[str, int]:
        return ends(self.records)

    def wait(self, check: Any, what: str, timeout: float = 60) -> Any:
        return eventually_sync(check, timeout=timeout, what=what)


def work(key: str, seconds: float = 0.0, delay: float | None = None) -> Call:
    kwargs: dict[str, Any] = {"key": key, "seconds": seconds}
    return Call(WORK, kwargs=kwargs, delay=delay)


class WorkerProcessSuite:
    """Subclass me and override ``queue_url``. Needs ``Capability.CLAIM`` and a driver several
    processes can share (``MULTI_PROCESS``, ``DURABLE``)."""

    #: the lease the workers use (seconds): the kill -9 test waits for it to run out
    lease: ClassVar[float] = 3.0
    #: jobs and the length of each in the kill -9 test
    kill_jobs: ClassVar[int] = 2000
    kill_job_seconds: ClassVar[float] = 0.005
    #: seconds between the push of the delayed job and its available_at in the restart test
    #: (the first worker must take its SIGTERM within that time)
    restart_delay: ClassVar[float] = 5.0

    @pytest.fixture
    def queue_url(self) -> str:
        pytest.fail(f"{type(self).__name__}: override the `queue_url` fixture")

    @pytest.fixture
    def workers(self, tmp_path: Path, queue_url: str) -> WorkerEnv:
        return WorkerEnv(tmp_path, queue_url, lease=self.lease)

    def test_kill_9_loses_nothing(self, workers: WorkerEnv) -> None:
        """Two workers; kill -9 one mid-run and start another: no job is lost, at most the
        victim's running jobs run twice, and those are run again within lease + 5 s.

        Troubleshooting: expired leases must come back to ready (reaper or on claim), and
        claims must be exclusive across processes.
        """
        workers.write_config(concurrency=4)
        keys = [f"j{i}" for i in range(self.kill_jobs)]
        workers.push([work(k, self.kill_job_seconds) for k in keys])
        quarter = self.kill_jobs // 4
        with workers.worker() as victim, workers.worker() as survivor:
            workers.wait(lambda: sum(workers.ends().values()) >= quarter, f"{quarter} jobs done")
            victim.send_signal(signal.SIGKILL)
            victim.wait(10)
            killed_at = time.time()
            with workers.worker() as restarted:
                workers.wait(lambda: set(workers.ends()) >= set(keys), "every job done", 120)
                for proc in (survivor, restarted):
                    proc.send_signal(signal.SIGTERM)
                assert survivor.wait(30) == 0
                assert restarted.wait(30) == 0
        done = workers.ends()
        assert set(done) == set(keys)
        duplicates = sum(done.values()) - len(keys)
        assert duplicates <= 4, f"{duplicates} jobs ran twice; at most the victim's 4 may"
        rows = read_records(workers.records)
        started = {k for e, k, pid, _ in rows if e == "start" and pid == victim.pid}
        finished = {k for e, k, pid, _ in rows if e == "end" and pid == victim.pid}
        for key in started - finished:
            first_end = min(t for e, k, _, t in rows if e == "end" and k == key)
            late = first_end - killed_at
            assert late <= self.lease + 5, f"{key} recovered only {late:.1f}s after the kill"
        final = workers.stats()["default"]
        assert (final.ready, final.delayed, final.reserved, final.failed) == (0, 0, 0, 0)

    def test_retries_then_failed_registry_then_retry_all(self, workers: WorkerEnv) -> None:
        """A job failing 3 times is retried with growing gaps, lands in the failed registry
        with its traceback, and ``mqttq failed retry --all`` runs it once more.

        Troubleshooting: ``retry`` must honour its delay; ``fail`` must keep the traceback.
        """
        flag = workers.dir / "flag"
        kwargs: dict[str, Any] = {"key": "f", "flag": str(flag)}
        [job_id] = workers.push([Call(FLAKY, kwargs=kwargs)])
        with workers.worker() as worker:
            entries = workers.wait(lambda: workers.json("failed", "list"), "the failed entry")
            starts = [t for e, _, _, t in read_records(workers.records) if e == "start"]
            assert len(starts) == 3
            gaps = [b - a for a, b in itertools.pairwise(starts)]
            assert gaps[0] >= 0.3  # backoff base
            assert gaps[1] >= 0.6  # base * factor: the gaps grow
            [entry] = entries
            assert (entry["id"], entry["attempts"]) == (job_id, 3)
            assert "flag" in str(entry["error"])
            shown = workers.json("failed", "show", job_id)
            assert "raise RuntimeError" in shown["traceback"]
            flag.touch()
            retried = workers.run("failed", "retry", "--all")
            assert retried.returncode == 0, retried.stderr
            workers.wait(lambda: workers.ends().get("f") == 1, "the retried job to run")
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(30) == 0
        starts = [t for e, _, _, t in read_records(workers.records) if e == "start"]
        assert len(starts) == 4  # three failures, then exactly one more run
        assert workers.json("failed", "list") == []

    def test_sigterm_lets_the_running_job_finish_and_leaves_the_rest(
        self, workers: WorkerEnv
    ) -> None:
        """SIGTERM: the running job finishes, the next stays queued, exit code 0.

        Troubleshooting: ``release`` must give jobs back to ready.
        """
        workers.write_config(concurrency=1)
        workers.push([work("long", 2.0), work("next")])
        with workers.worker() as worker:
            started = lambda: any(e == "start" for e, *_ in read_records(workers.records))  # noqa: E731
            workers.wait(started, "the first job to start")
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(30) == 0
        assert workers.ends() == {"long": 1}
        left = workers.stats()["default"]
        assert (left.ready, left.reserved) == (1, 0)

    def test_delayed_jobs_survive_a_restart_and_never_run_early(self, workers: WorkerEnv) -> None:
        """A delayed job pushed while a worker runs waits through that worker's stop and runs
        in the next worker, never before its available_at.

        The delay (``restart_delay``) counts from when the first worker is known up (its
        heartbeat), not from before it starts: however slowly it starts, the job is not due
        while it runs, as only the push and the SIGTERM right after it come in between. The
        next worker may take as long as it likes to start, since "never early" compares the
        recorded start with the job's own available_at (the envelope is built here) and the
        run is waited for on its record, with a bound: no step depends on how fast processes
        start.

        Troubleshooting: delayed jobs must be stored durably, not in a timer of the process.
        """
        with workers.worker() as first:
            workers.wait(workers.workers, "the first worker's heartbeat")
            due = time.time() + self.restart_delay
            later = Envelope(name=WORK, kwargs={"key": "later", "seconds": 0.0}, available_at=due)
            workers.push_envelopes([later])
            first.send_signal(signal.SIGTERM)
            assert first.wait(30) == 0
        assert workers.ends() == {}, "the first worker ran the delayed job"
        waiting = workers.stats()["default"]
        assert (waiting.ready + waiting.delayed, waiting.reserved) == (1, 0)
        with workers.worker() as second:
            workers.wait(lambda: workers.ends().get("later") == 1, "the delayed job to run")
            second.send_signal(signal.SIGTERM)
            assert second.wait(30) == 0
        [ran_at] = [t for e, _, _, t in read_records(workers.records) if e == "start"]
        assert ran_at >= later.available_at, "the delayed job ran before its available_at"

    @pytest.mark.parametrize("name", ["os:system", "builtins:eval", "subprocess:call"])
    def test_payload_naming_unregistered_code_is_failed_not_run(
        self, workers: WorkerEnv, name: str
    ) -> None:
        """A queued job naming code that is not registered is failed as "unknown job"; nothing
        is imported or run, and the worker goes on.

        Troubleshooting: this is the worker's job, not the driver's; a driver must only store
        and return the envelope as it was pushed.
        """
        canary = workers.dir / "pwned"
        workers.push_envelopes([Envelope(name=name, args=[f"touch {canary}"])])
        result = workers.run("worker", "--burst")
        assert result.returncode == 0, result.stderr
        entries = workers.json("failed", "list")
        assert [e["job"] for e in entries] == [name]
        assert str(entries[0]["error"]).startswith("unknown job")
        assert not canary.exists()
