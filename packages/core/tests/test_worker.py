"""Worker logic against the in-memory driver (real-process tests live in the root tests/)."""

from __future__ import annotations

import asyncio
import itertools
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

import mqttq
from mqttq.builtin.memory import MemoryQueueDriver
from mqttq.config import structure
from mqttq.testing import eventually
from mqttq.worker import Worker


def make_app(**worker: Any) -> mqttq.App:
    config = structure({"queue": {"url": f"memory://{uuid.uuid4().hex}"}, "worker": worker})
    return mqttq.App(config, host=mqttq.make_plugin_manager(autoload=False))


@pytest.fixture
async def app() -> AsyncIterator[mqttq.App]:
    app = make_app(max_tries=1)
    async with app:
        yield app


async def wait_until(predicate: Any, timeout: float = 10.0) -> None:
    await eventually(predicate, timeout=timeout, what="the worker")


async def test_runs_sync_and_async_jobs_with_their_arguments(app: mqttq.App) -> None:
    seen: list[tuple[str, Any]] = []

    @app.job
    async def coro(x: int) -> None:
        seen.append(("async", x))

    @app.job
    def plain(x: int, *, y: str) -> None:
        seen.append(("sync", (x, y)))

    await app.queue.push(coro, kwargs={"x": 1})
    await app.queue.push(plain, args=[2], kwargs={"y": "z"})
    assert await Worker(app, burst=True).run() == 0
    assert sorted(seen) == [("async", 1), ("sync", (2, "z"))]
    assert (await app.queue.stats())["default"].ready == 0


async def test_sync_jobs_do_not_block_the_event_loop(app: mqttq.App) -> None:
    release = threading.Event()
    order: list[str] = []

    @app.job
    def blocking() -> None:
        assert release.wait(10), "the async job never ran while the sync job was blocked"
        order.append("sync")

    @app.job
    async def quick() -> None:
        order.append("async")
        release.set()

    await app.queue.push(blocking)
    await app.queue.push(quick)
    await Worker(app, burst=True, concurrency=2).run()
    assert order == ["async", "sync"]


async def test_failing_job_runs_max_tries_times_with_growing_gaps() -> None:
    app = make_app()
    runs: list[float] = []
    backoff = mqttq.Backoff(base=0.1, factor=2, jitter=0)

    @app.job(max_tries=3, backoff=backoff)
    def always_fails() -> None:
        runs.append(time.time())
        raise RuntimeError("boom")

    async with app:
        job_id = await app.queue.push(always_fails)
        worker = Worker(app)
        task = asyncio.create_task(worker.run())
        await wait_until(lambda: len(runs) == 3 and worker.executor and worker.executor.failed)
        worker.stop()
        assert await task == 0
        failed = await app.driver.failed_get(job_id)
    assert failed is not None
    assert failed.error == "RuntimeError: boom"
    assert "raise RuntimeError" in failed.traceback
    assert failed.job.attempts == 3
    gaps = [b - a for a, b in itertools.pairwise(runs)]
    assert gaps[0] >= 0.1  # never earlier than the backoff allows
    assert gaps[1] >= 0.2


async def test_unknown_job_is_failed_without_importing_anything(app: mqttq.App) -> None:
    module = f"mqttq_never_imported_{uuid.uuid4().hex}"
    jobs = [
        mqttq.Envelope(name="os:system", args=["echo pwned"]),
        mqttq.Envelope(name="builtins:eval", args=["1+1"]),
        mqttq.Envelope(name=f"{module}:run"),
    ]
    await app.driver.push(jobs)
    await Worker(app, burst=True).run()
    failed = {f.job.name: f.error for f in await app.driver.failed_list()}
    assert set(failed) == {"os:system", "builtins:eval", f"{module}:run"}
    assert all(error.startswith("unknown job") for error in failed.values())
    assert module not in sys.modules


async def test_push_refuses_unregistered_names(app: mqttq.App) -> None:
    with pytest.raises(mqttq.UnknownJobError, match="unknown job 'os:system'"):
        await app.queue.push("os:system", args=["ls"])


async def test_async_job_timeout_fails_the_job(app: mqttq.App) -> None:
    never = asyncio.Event()

    @app.job(timeout=0.2)
    async def hangs() -> None:
        await never.wait()

    job_id = await app.queue.push(hangs)
    await Worker(app, burst=True).run()
    failed = await app.driver.failed_get(job_id)
    assert failed is not None
    assert failed.error.startswith("JobTimeoutError")


async def test_timeout_not_below_lease_is_refused_at_start_up() -> None:
    app = make_app(lease=5)

    @app.job(timeout=5)
    async def slow() -> None: ...

    with pytest.raises(mqttq.ConfigError, match=r"must be below worker\.lease"):
        await Worker(app, burst=True).run()


async def test_graceful_stop_finishes_running_job_and_leaves_the_rest() -> None:
    app = make_app(shutdown_grace=10)
    started, finish = asyncio.Event(), asyncio.Event()
    done: list[int] = []

    @app.job
    async def step(i: int) -> None:
        started.set()
        await finish.wait()
        done.append(i)

    async with app:
        await app.queue.bulk(
            [mqttq.Call(name=app.jobs.name_for(step), kwargs={"i": i}) for i in range(3)]
        )
        worker = Worker(app, concurrency=1)
        task = asyncio.create_task(worker.run())
        await asyncio.wait_for(started.wait(), 10)
        worker.stop()
        finish.set()
        assert await asyncio.wait_for(task, 10) == 0
        stats = (await app.queue.stats())["default"]
    assert done == [0]
    assert (stats.ready, stats.reserved) == (2, 0)


async def test_second_stop_releases_running_jobs_with_their_attempt_back() -> None:
    app = make_app(shutdown_grace=60)
    started = asyncio.Event()

    @app.job
    async def forever() -> None:
        started.set()
        await asyncio.Event().wait()

    async with app:
        job_id = await app.queue.push(forever)
        worker = Worker(app)
        task = asyncio.create_task(worker.run())
        await asyncio.wait_for(started.wait(), 10)
        worker.stop()
        worker.stop()
        assert await asyncio.wait_for(task, 10) == 0
        record = await app.driver.get_job(job_id)
    assert record is not None
    assert (record.state, record.job.attempts) == ("ready", 0)


async def test_leases_are_renewed_while_a_job_runs() -> None:
    """A job running for several leases is never handed to a second worker."""
    app = make_app(lease=0.3)
    runs: list[int] = []
    finish = asyncio.Event()

    @app.job
    async def long() -> None:
        runs.append(1)
        await finish.wait()

    async with app:
        await app.queue.push(long)
        first, second = Worker(app), Worker(app)
        tasks = [asyncio.create_task(w.run()) for w in (first, second)]
        await wait_until(lambda: runs)
        # three lease periods pass; the heartbeat must keep the job reserved
        deadline = time.monotonic() + 1.0
        await wait_until(lambda: time.monotonic() > deadline)
        finish.set()
        await wait_until(
            lambda: (
                first.executor
                and second.executor
                and first.executor.processed + second.executor.processed == 1
            )
        )
        first.stop()
        second.stop()
        await asyncio.gather(*tasks)
    assert runs == [1]


async def test_max_jobs_stops_after_that_many(app: mqttq.App) -> None:
    seen: list[int] = []

    @app.job
    async def count(i: int) -> None:
        seen.append(i)

    await app.queue.bulk(
        [mqttq.Call(name=app.jobs.name_for(count), kwargs={"i": i}) for i in range(10)]
    )
    await Worker(app, max_jobs=4, concurrency=2).run()
    assert len(seen) == 4
    assert await app.queue.size() == 6


async def test_max_time_stops_an_idle_worker(app: mqttq.App) -> None:
    assert await asyncio.wait_for(Worker(app, max_time=0.2).run(), 10) == 0


async def test_queues_are_claimed_in_priority_order(app: mqttq.App) -> None:
    seen: list[str] = []

    @app.job
    async def mark(q: str) -> None:
        seen.append(q)

    name = app.jobs.name_for(mark)
    await app.queue.bulk([mqttq.Call(name=name, kwargs={"q": "low"}, queue="low")] * 3)
    await app.queue.bulk([mqttq.Call(name=name, kwargs={"q": "high"}, queue="high")] * 3)
    await Worker(app, queues=["high", "low"], concurrency=1, burst=True).run()
    assert seen == ["high"] * 3 + ["low"] * 3


async def test_on_failure_and_job_events() -> None:
    events: list[tuple[str, str]] = []

    class Observer:
        @mqttq.hookimpl
        def mqttq_job_event(self, event: mqttq.JobEvent) -> None:
            events.append((event.kind, event.job.name))

    config = structure({"queue": {"url": f"memory://{uuid.uuid4().hex}"}})
    host = mqttq.make_plugin_manager(autoload=False, extra=[("observer", Observer())])
    app = mqttq.App(config, host=host)
    failures: list[tuple[str, str]] = []

    async def on_failure(job: mqttq.Envelope, error: str) -> None:
        failures.append((job.id, error))

    @app.job(max_tries=1, on_failure=on_failure)
    def bad() -> None:
        raise ValueError("no")

    @app.job
    def good() -> None: ...

    async with app:
        bad_id = await app.queue.push(bad)
        await app.queue.push(good)
        await Worker(app, burst=True, concurrency=1).run()
    assert failures == [(bad_id, "ValueError: no")]
    kinds = [kind for kind, _ in events]
    assert kinds.count("enqueued") == 2
    assert kinds.count("started") == 2
    assert ("failed", app.jobs.name_for(bad)) in events
    assert ("succeeded", app.jobs.name_for(good)) in events


class FlakyDriver(MemoryQueueDriver):
    """Unavailable for the first few claims, like a backend that is restarting."""

    outages = 3

    async def claim(self, *args: Any, **kwargs: Any) -> list[mqttq.Envelope]:
        if self.outages:
            self.outages -= 1
            raise mqttq.DriverUnavailable("backend restarting")
        return await super().claim(*args, **kwargs)


async def test_worker_waits_out_an_unavailable_backend(app: mqttq.App) -> None:
    seen: list[int] = []

    @app.job
    async def one() -> None:
        seen.append(1)

    await app.queue.push(one)
    flaky = FlakyDriver(app.driver.name)  # type: ignore[attr-defined]
    app._driver = flaky
    assert await Worker(app, burst=True).run() == 0
    assert (seen, flaky.outages) == ([1], 0)


class DeafHeartbeatDriver(MemoryQueueDriver):
    """A heartbeat that loses the first cancellation it gets, as a library can: Python 3.11's
    ``asyncio.wait_for`` drops one that races its operation's end (redis-py writes through it)."""

    swallowed = 0

    async def worker_heartbeat(self, info: Any, *, ttl: float) -> None:
        try:
            await asyncio.Event().wait()  # until cancelled
        except asyncio.CancelledError:
            if self.swallowed:
                raise
            self.swallowed += 1


async def test_a_lost_cancellation_does_not_hold_the_workers_stop(app: mqttq.App) -> None:
    seen: list[int] = []

    @app.job
    async def one() -> None:
        seen.append(1)

    await app.queue.push(one)
    deaf = DeafHeartbeatDriver(app.driver.name)  # type: ignore[attr-defined]
    app._driver = deaf
    assert await asyncio.wait_for(Worker(app, burst=True).run(), 10) == 0
    assert (seen, deaf.swallowed) == ([1], 1)


async def test_process_runner_timeout_kills_the_job(app: mqttq.App, tmp_path: Any) -> None:
    import os

    pidfile = tmp_path / "pid"
    app.jobs.add_target("mqttq_testjobs:write_pid_and_hang")
    app.jobs.add_target("mqttq_testjobs:add")
    name = "mqttq_testjobs:write_pid_and_hang"
    # 3 s: room for a slow fork on a busy machine before the child writes its pid
    hang_id = await app.queue.push(name, kwargs={"path": str(pidfile)}, timeout=3.0)
    ok_id = await app.queue.push("mqttq_testjobs:add", args=[1, 2])
    await Worker(app, burst=True, runner="process", concurrency=2).run()
    failed = await app.driver.failed_get(hang_id)
    assert failed is not None
    assert failed.error.startswith("JobTimeoutError")
    assert await app.driver.failed_get(ok_id) is None
    pid = int(pidfile.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


SCRIPT = """
import asyncio, sys
import mqttq
from mqttq.config import structure
from mqttq.worker import Worker

app = mqttq.App(structure({"queue": {"url": "memory://"}, "worker": {"runner": "process"}}))

@app.job
def here() -> None: ...

try:
    asyncio.run(Worker(app, burst=True, install_signals=False).run())
except mqttq.ConfigError as exc:
    print(exc)
    sys.exit(2)
"""


def test_process_runner_refuses_a_job_of_the_main_script_at_start_up(tmp_path: Any) -> None:
    import subprocess
    import sys

    script = tmp_path / "app.py"
    script.write_text(SCRIPT)
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2, result.stderr
    assert "job __main__:here is defined in the __main__ script" in result.stdout
    assert "move it to a module of its own" in result.stdout


def test_process_runner_refuses_nested_functions_and_lambdas() -> None:
    from mqttq.jobs import make_spec
    from mqttq.worker.process import ProcessJobRunner

    def nested() -> None: ...

    with pytest.raises(mqttq.ConfigError, match="inside a function"):
        ProcessJobRunner.check_job(make_spec(nested))
    with pytest.raises(mqttq.ConfigError, match="inside a function"):
        ProcessJobRunner.check_job(make_spec(lambda: None, name="anon"))
    ProcessJobRunner.check_job(make_spec(mqttq.job))  # a module-level function is fine
