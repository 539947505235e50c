"""Real RQ workers on a redis-server of each test's own: retries with mqttq's backoff, the failed
registry through the CLI, delayed jobs across a restart, job hashes mqttq-rq must refuse,
kill -9, SIGTERM, and a plain ``rq worker`` given the documented options."""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import os
import pickle
import signal
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from rq_helpers import alive, rq_url
from rq_testjobs import records

from mqttq import App, Call
from mqttq.testing import WorkerEnv
from mqttq.testing.services import RedisServer, free_port

JOBS = [
    "sleepy",
    "twice_then_ok",
    "always_fails",
    "slow_with_retries",
    "fails_with_callback",
    "fan_out",
]


class Env(WorkerEnv):
    """The kit's ``WorkerEnv`` with this package's jobs and their record file."""

    def __init__(self, directory: Path, server: RedisServer) -> None:
        self.server = server
        self.record = directory / "runs.jsonl"
        register = ", ".join(f'"rq_testjobs:{name}"' for name in JOBS)
        super().__init__(directory, rq_url(server), lease=10, extra=f"register = [{register}]\n")

    def env(self, **extra: str) -> dict[str, str]:
        return super().env(RQ_TEST_RECORD=str(self.record), **extra)

    def runs(self, event: str | None = None, key: str | None = None) -> list[dict[str, Any]]:
        return [
            r
            for r in records(self.record)
            if (event is None or r["event"] == event) and (key is None or r.get("key") == key)
        ]

    def app_call(self, fn: Callable[[App], Any]) -> Any:
        async def go() -> Any:
            async with App.from_config(self.config) as app:
                return await fn(app)

        return asyncio.run(go())

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.server.url)


@pytest.fixture
def env(tmp_path: Path, own_redis: RedisServer) -> Env:
    return Env(tmp_path, own_redis)


def sleepy(key: str, seconds: float = 0.0, **options: Any) -> Call:
    return Call("rq_testjobs:sleepy", kwargs={"key": key, "seconds": seconds}, **options)


def log_of(proc: subprocess.Popen[str]) -> str:
    return proc.log_path.read_text()  # type: ignore[attr-defined]


def stop(proc: subprocess.Popen[str]) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(60)


# -- retries and the failed registry ----------------------------------------------------------


def test_retries_follow_mqttqs_backoff_and_failures_reach_the_cli(env: Env) -> None:
    """A job failing twice then succeeding is retried by RQ with mqttq's backoff intervals (1 s,
    then 2 s: never sooner); one that always fails ends in ``mqttq failed list`` with its
    traceback, and ``mqttq failed retry --all`` runs it again."""
    ok_id, bad_id = env.push(
        [
            Call("rq_testjobs:twice_then_ok", kwargs={"key": "r"}),
            Call("rq_testjobs:always_fails", kwargs={"key": "f"}),
        ]
    )
    with env.worker() as worker:
        env.wait(lambda: env.runs("end", "r"), "the third run of r", 60)
        entries = env.wait(lambda: env.json("failed", "list"), "f in the failed registry", 60)
        starts = [r["at"] for r in env.runs("start", "r")]
        assert len(starts) == 3
        gaps = [b - a for a, b in itertools.pairwise(starts)]
        assert gaps[0] >= 1.0, gaps
        assert gaps[1] >= 2.0, gaps
        client = env.redis()
        try:
            stored = client.hget(f"rq:job:{ok_id}", "retry_intervals")
        finally:
            client.close()
        assert stored is not None
        assert json.loads(stored) == [1.0, 2.0], "not rq.Retry(max=2, interval=[1, 2])"
        [entry] = entries
        assert (entry["id"], entry["job"], entry["attempts"]) == (
            bad_id,
            "rq_testjobs:always_fails",
            2,
        )
        assert entry["error"] == "ValueError: f always fails"
        assert entry["kind"] == "job"
        shown = env.json("failed", "show", bad_id)
        assert "raise ValueError" in shown["traceback"], shown
        assert shown["kwargs"] == {"key": "f"}
        before = len(env.runs("start", "f"))
        assert before == 2
        retried = env.run("failed", "retry", "--all")
        assert retried.returncode == 0, retried.stderr
        assert "requeued 1 job" in retried.stdout
        env.wait(lambda: len(env.runs("start", "f")) > before, "f to run again", 60)
        env.wait(lambda: env.json("failed", "list"), "f to fail again", 60)
        assert stop(worker) == 0, log_of(worker)
    assert len(env.runs("start", "r")) == 3, "r ran again after it succeeded"


def test_on_failure_runs_once_when_the_job_fails_for_good(env: Env) -> None:
    env.push([Call("rq_testjobs:fails_with_callback", kwargs={"key": "c"})])
    with env.worker() as worker:
        env.wait(lambda: env.json("failed", "list"), "the failed entry", 60)
        env.wait(lambda: env.runs("on_failure"), "on_failure", 30)
        assert stop(worker) == 0, log_of(worker)
    assert len(env.runs("start", "c")) == 2
    [called] = env.runs("on_failure")
    assert (called["key"], called["error"], called["attempts"]) == ("c", "RuntimeError: nope", 2)


def test_a_job_dispatches_follow_up_jobs(env: Env) -> None:
    """``mqttq.dispatch`` and ``mqttq.current_job`` work inside a job run by an RQ worker."""
    [job_id] = env.push([Call("rq_testjobs:fan_out", kwargs={"key": "fan", "n": 3})])
    with env.worker() as worker:
        env.wait(lambda: len(env.runs("end")) == 3, "the dispatched jobs", 60)
        assert stop(worker) == 0, log_of(worker)
    [ran] = env.runs("fan_out")
    assert ran["job_id"] == job_id
    assert sorted(r["key"] for r in env.runs("end")) == ["fan-0", "fan-1", "fan-2"]


# -- delayed jobs -----------------------------------------------------------------------------


def test_delayed_and_at_jobs_survive_a_restart_and_never_run_early(env: Env) -> None:
    """``later`` and ``at`` jobs wait in RQ's scheduled registry through a worker restart and
    run at their time, never before it."""
    # due just before a whole second: RQ, which keeps whole seconds, would run them up to 0.95 s
    # early if the driver rounded their times down as RQ does
    second = math.ceil(time.time()) + 5
    due_later, due_at = second + 0.95, datetime.fromtimestamp(second + 1.9)

    async def push(app: App) -> None:
        delay = due_later - time.time()
        await app.queue.later(delay, "rq_testjobs:sleepy", kwargs={"key": "later"})
        await app.queue.at(due_at, "rq_testjobs:sleepy", kwargs={"key": "at"})

    env.app_call(push)
    with env.worker() as worker:
        env.wait(env.workers, "the RQ worker")
        assert env.stats()["default"].delayed == 2
        assert stop(worker) == 0, log_of(worker)
    assert env.runs() == [], "a delayed job ran before its time"
    with env.worker() as worker:
        env.wait(lambda: len(env.runs("end")) == 2, "both delayed jobs", 60)
        assert stop(worker) == 0, log_of(worker)
    [later] = env.runs("start", "later")
    [at] = env.runs("start", "at")
    assert later["at"] >= due_later, later["at"] - due_later
    assert at["at"] >= due_at.timestamp(), at["at"] - due_at.timestamp()


# -- job hashes mqttq-rq must refuse ----------------------------------------------------------


class Boom:
    """Unpickling this runs ``touch <path>``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.path}",))


def write_raw_job(client: redis.Redis, job_id: str, data: bytes, meta: bytes = b"") -> None:
    """An RQ job hash written straight into Redis, queued on ``default``."""
    fields = {
        "data": zlib.compress(data),
        "origin": "default",
        "status": "queued",
        "description": "foreign",
        "created_at": "2026-01-01T00:00:00.000000Z",
        "enqueued_at": "2026-01-01T00:00:00.000000Z",
        "timeout": 180,
    }
    if meta:
        fields["meta"] = meta
    client.hset(f"rq:job:{job_id}", mapping=fields)
    client.sadd("rq:queues", "rq:queue:default")
    client.rpush("rq:queue:default", job_id)


@pytest.fixture
def evil(env: Env, tmp_path: Path) -> Iterator[dict[str, Path]]:
    """Two hostile job hashes queued before a good job: one naming ``os.system`` in RQ's JSON,
    one whose data and meta are pickles that run ``touch`` when unpickled."""
    canaries = {"evil-json": tmp_path / "ran-json", "evil-pickle": tmp_path / "ran-pickle"}
    client = env.redis()
    try:
        call = ["os.system", None, [f"touch {canaries['evil-json']}"], {}]
        write_raw_job(client, "evil-json", json.dumps(call).encode())
        bomb = pickle.dumps(Boom(canaries["evil-pickle"]))
        write_raw_job(client, "evil-pickle", bomb, meta=bomb)
    finally:
        client.close()
    env.push([sleepy("good")])
    yield canaries
    for path in canaries.values():
        assert not path.exists(), f"{path.name}: a refused job ran"


def check_refused(env: Env) -> None:
    entries = {e["id"]: e for e in env.json("failed", "list")}
    assert set(entries) == {"evil-json", "evil-pickle"}
    assert entries["evil-json"]["kind"] == "undecodable"
    assert entries["evil-json"]["job"] == "os.system"
    assert "refused" in entries["evil-json"]["error"], entries
    assert "not JSON" in entries["evil-pickle"]["error"], entries
    shown = env.json("failed", "show", "evil-json")
    assert "os.system" in shown["raw"]
    retried = env.run("failed", "retry", "evil-json", "evil-pickle")
    assert "cannot be requeued" in retried.stderr


def test_hashes_naming_other_code_or_holding_a_pickle_are_refused(
    env: Env, evil: dict[str, Path]
) -> None:
    """Nothing of a refused job runs (no import, no unpickling); the worker goes on."""
    with env.worker() as worker:
        env.wait(lambda: env.runs("end", "good"), "the good job", 60)
        assert worker.poll() is None, log_of(worker)
        check_refused(env)
        env.push([sleepy("after")])
        env.wait(lambda: env.runs("end", "after"), "a job after the refused ones", 60)
        assert stop(worker) == 0, log_of(worker)


def test_a_plain_rq_worker_with_the_documented_options(env: Env, evil: dict[str, Path]) -> None:
    """``rq worker --worker-class mqttq_rq.worker.Worker --serializer ...JSONSerializer`` runs
    mqttq jobs and refuses the hostile hashes too."""
    env.push([Call("rq_testjobs:twice_then_ok", kwargs={"key": "r"})])
    rq_args = ["-m", "rq.cli", "worker", "--url", env.server.url, "--with-scheduler"]
    rq_args += [
        "--worker-class",
        "mqttq_rq.worker.Worker",
        "--serializer",
        "rq.serializers.JSONSerializer",
    ]
    proc = subprocess.Popen(
        [sys.executable, *rq_args, "default"],
        env=env.env(),
        cwd=env.dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        env.wait(lambda: env.runs("end", "r"), "the retried job under rq worker", 60)
        env.wait(lambda: env.runs("end", "good"), "the good job", 60)
        check_refused(env)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out


# -- crashes and signals ----------------------------------------------------------------------


def test_kill_9_of_an_rq_worker_and_its_work_horse(env: Env) -> None:
    """kill -9 of one RQ worker and its work-horse mid-job: the job (it has tries left) runs
    again at once, and the pool starts a replacement worker."""
    [job_id] = env.push(
        [Call("rq_testjobs:slow_with_retries", kwargs={"key": "k", "seconds": 3.0})]
    )
    with env.worker("--count", "2") as pool:
        before = {
            w.id for w in env.wait(lambda: len(env.workers()) == 2 and env.workers(), "2 workers")
        }
        [started] = env.wait(lambda: env.runs("start", "k"), "the job to start")
        horse, rq_worker = started["pid"], started["ppid"]
        os.kill(rq_worker, signal.SIGKILL)
        os.kill(horse, signal.SIGKILL)
        env.wait(lambda: env.runs("end", "k"), "the job to run again", 60)
        after = env.wait(
            lambda: {w.id for w in env.workers()} - before and {w.id for w in env.workers()},
            "a replacement worker",
            60,
        )
        assert len(after) == 2, (before, after)
        assert len(after - before) == 1, (before, after)
        assert pool.poll() is None
        assert stop(pool) == 0, log_of(pool)
    assert len(env.runs("start", "k")) == 2
    assert "died" in log_of(pool)
    final = env.stats()["default"]
    assert (final.ready, final.delayed, final.reserved, final.failed) == (0, 0, 0, 0)
    assert env.run("jobs", "show", job_id).returncode == 1  # done: RQ keeps it, mqttq shows none


@pytest.mark.parametrize("simple", [False, True], ids=["fork", "simple"])
def test_sigterm_lets_running_jobs_finish(env: Env, simple: bool) -> None:
    """SIGTERM to ``mqttq worker --count 2`` during two 2 s jobs: both finish, exit code 0."""
    env.push([sleepy("a", 2.0), sleepy("b", 2.0), sleepy("c")])
    with env.worker("--count", "2", *(["--simple"] if simple else [])) as pool:
        env.wait(lambda: len(env.runs("start")) == 2, "both long jobs to start", 60)
        assert stop(pool) == 0, log_of(pool)
    assert {r["key"] for r in env.runs("end")} == {"a", "b"}
    left = env.stats()["default"]
    assert (left.ready, left.reserved, left.failed) == (1, 0, 0)
    assert "Traceback" not in log_of(pool)


def test_a_second_signal_stops_at_once_and_gives_the_job_back(env: Env) -> None:
    [job_id] = env.push([sleepy("long", 60.0)])
    with env.worker() as pool:
        env.wait(lambda: env.runs("start"), "the job to start")
        pool.send_signal(signal.SIGTERM)
        env.wait(lambda: "finish their current job" in log_of(pool), "the first signal")
        assert stop(pool) == 0, log_of(pool)  # the second: at once
    assert env.runs("end") == []
    shown = env.json("jobs", "show", job_id)
    assert (shown["state"], shown["attempts"]) == ("ready", 0)


def test_a_worker_that_keeps_dying_is_restarted_with_backoff_and_said_so(tmp_path: Path) -> None:
    """Workers that die at once (Redis is not there) are started again with growing pauses,
    and one line says they keep dying; SIGTERM still stops ``mqttq worker`` with exit code 0."""
    env = WorkerEnv(tmp_path, f"rq+redis://127.0.0.1:{free_port()}/0", lease=10)
    with env.worker() as pool:
        env.wait(lambda: "keeps dying" in log_of(pool), "the keeps-dying line", 60)
        assert stop(pool) == 0, log_of(pool)
    log = log_of(pool)
    line = next(x for x in log.splitlines() if "keeps dying" in x)
    assert "3 times in a row" in line, line
    assert "exit code 3" in line, line
    assert "next start in 2.0 s" in line, line
    assert log.count("cannot reach Redis at rq+redis://127.0.0.1:") >= 3


def test_workers_stop_warm_when_mqttq_worker_is_killed(env: Env) -> None:
    """kill -9 of ``mqttq worker``: its RQ workers finish their current job and leave."""
    env.push([sleepy("last", 2.0)])
    with env.worker() as pool:
        [started] = env.wait(lambda: env.runs("start"), "the job to start")
        pool.send_signal(signal.SIGKILL)
        pool.wait(10)
        env.wait(lambda: env.runs("end"), "the running job to finish", 60)
        env.wait(lambda: not env.workers(), "the RQ worker to leave", 60)
        # it leaves RQ's registry, then exits
        env.wait(lambda: not alive(started["ppid"]), "the RQ worker to exit", 30)
