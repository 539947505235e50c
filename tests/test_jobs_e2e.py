"""Class jobs, dispatch chains, schedules and cancellation through real ``mqttq worker``
processes, on real SQLite files and a real redis-server."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import signal
import socket
import subprocess
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import routemq_jobs as rj

from mqttq import App, PayloadError
from mqttq.testing import WorkerEnv, eventually_sync
from mqttq.testing.fixtures import redis_server  # noqa: F401
from mqttq.testing.jobs import read_records
from mqttq.testing.services import RedisServer


def configure(
    env: WorkerEnv,
    *,
    lease: float = 90,
    runner: str = "asyncio",
    jobs: str = 'modules = ["routemq_jobs"]',
    extra: str = "",
) -> None:
    env.config.write_text(
        f"""\
[queue]
url = "{env.queue_url}"

[worker]
concurrency = 4
lease = {lease}
shutdown_grace = 5
runner = "{runner}"

[jobs]
{jobs}
{extra}"""
    )


def on_app(env: WorkerEnv, fn: Callable[[App], Any]) -> Any:
    async def go() -> Any:
        async with App.from_config(env.config) as app:
            return await fn(app)

    return asyncio.run(go())


def records(env: WorkerEnv, event: str) -> list[tuple[str, int, float]]:
    return [(k, pid, t) for e, k, pid, t in read_records(env.records) if e == event]


def stop(*procs: subprocess.Popen[str]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        assert proc.wait(30) in (0, -signal.SIGKILL)


@pytest.fixture
def sqlite_env(tmp_path: Path) -> WorkerEnv:
    env = WorkerEnv(tmp_path, f"sqlite:///{tmp_path / 'q.db'}", lease=90)
    configure(env)
    return env


@pytest.fixture(params=["sqlite", "redis"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> WorkerEnv:
    return make_env(request, tmp_path)


def make_env(request: pytest.FixtureRequest, tmp_path: Path) -> WorkerEnv:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'q.db'}"
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        url = f"{server.url}?prefix=e2e-{tmp_path.name}:"
    env = WorkerEnv(tmp_path, url, lease=90)
    configure(env)
    return env


# -- RouteMQ's examples -----------------------------------------------------------------------


def test_routemq_examples_run_as_its_documentation_says(sqlite_env: WorkerEnv) -> None:
    env = sqlite_env
    flag = env.dir / "smtp-up"

    async def dispatch(app: App) -> dict[str, str]:
        note = rj.SendNotificationJob()
        note.user_id, note.message = 123, "Your order has been shipped!"
        order = rj.ProcessOrderJob()
        order.order_id, order.customer_email = "A-17", "ann@example.com"
        order.items = [{"sku": "kb-1", "qty": 2}, {"sku": "mouse", "qty": 1}]
        order.metadata = {"gift": True, "notes": {"wrap": "blue"}}
        email = rj.SendEmailJob()
        email.to, email.flag = "bob@example.com", str(flag)
        later = rj.SendNotificationJob()
        later.user_id, later.message = 9, "tomorrow"
        bulk = []
        for user in (1, 2, 3):
            job = rj.SendNotificationJob()
            job.user_id, job.message = user, "maintenance"
            bulk.append(job)
        return {
            "note": await app.queue.push(note),
            "order": await app.queue.push(order, queue="orders"),
            "email": await app.queue.push(email),
            "later": await app.queue.later(3600, later),
            **{f"bulk{i}": job_id for i, job_id in enumerate(await app.queue.bulk(bulk))},
        }

    ids = on_app(env, dispatch)
    later = env.json("jobs", "show", ids["later"])
    assert (later["state"], later["envelope"]["kwargs"]) == (
        "delayed",
        {"user_id": 9, "message": "tomorrow"},
    )
    with env.worker("--queue", "default", "--queue", "orders", "--queue", "emails") as worker:
        env.wait(lambda: records(env, "email-failed"), "SendEmailJob's failed()")
        env.wait(lambda: len(records(env, "notify")) == 4, "the notifications")
        stop(worker)
    notes = sorted(k for k, _, _ in records(env, "notify"))
    assert notes == sorted(
        ["123:Your_order_has_been_shipped!:1", *(f"{n}:maintenance:1" for n in (1, 2, 3))]
    )
    [(order, _, _)] = records(env, "order")
    assert order == (
        'A-17:{"email":"ann@example.com","items":[{"qty":2,"sku":"kb-1"},{"qty":1,"sku":"mouse"}],'
        '"metadata":{"gift":true,"notes":{"wrap":"blue"}}}'
    )
    emails = records(env, "email")
    assert [k for k, _, _ in emails] == [
        "bob@example.com:1",
        "bob@example.com:2",
        "bob@example.com:3",
    ]
    gaps = [b[2] - a[2] for a, b in itertools.pairwise(emails)]
    assert all(gap >= 1.0 for gap in gaps), f"retried before retry_after: {gaps}"
    assert [k for k, _, _ in records(env, "email-failed")] == [
        "bob@example.com:ConnectionError:SMTP_down_for_bob@example.com"
    ]
    [entry] = env.json("failed", "list")
    assert (entry["id"], entry["attempts"]) == (ids["email"], 3)
    assert env.json("jobs", "show", ids["later"])["state"] == "delayed"


def test_worker_flags_override_every_jobs_defaults(sqlite_env: WorkerEnv) -> None:
    env = sqlite_env

    async def push(app: App) -> str:
        email = rj.SendEmailJob()
        email.to, email.flag = "x@example.com", str(env.dir / "never")
        return await app.queue.push(email)

    job_id = on_app(env, push)
    too_long = env.run("worker", "--queue", "emails", "--timeout", "90", "--burst")
    assert too_long.returncode == 2, too_long.stderr
    assert "--timeout 90s must be above 0 and below worker.lease (90s)" in too_long.stderr
    args = ("--queue", "emails", "--max-tries", "2", "--timeout", "5")
    with env.worker(*args, "--max-jobs", "2", "--max-time", "60") as worker:
        env.wait(lambda: env.json("failed", "list"), "the job to fail")
        assert worker.wait(30) == 0  # --max-jobs 2: two tries, then it exits
    assert [k for k, _, _ in records(env, "email")] == ["x@example.com:1", "x@example.com:2"]
    assert env.json("failed", "show", job_id)["attempts"] == 2


def test_a_non_json_attribute_fails_at_dispatch_and_queues_nothing(sqlite_env: WorkerEnv) -> None:
    env = sqlite_env

    async def dispatch(app: App) -> None:
        good = rj.SendNotificationJob()
        bad = rj.ProcessOrderJob()
        with socket.socket() as sock:
            bad.customer_email = sock  # type: ignore[assignment]
            with pytest.raises(PayloadError, match=r"ProcessOrderJob\.customer_email is a socket"):
                await app.queue.bulk([good, bad])
        bad.customer_email = None
        bad.metadata = {"tags": {"a", "b"}}
        with pytest.raises(PayloadError, match=r"ProcessOrderJob\.metadata\['tags'\] is a set"):
            await app.queue.push(bad)

    on_app(env, dispatch)
    assert env.json("stats") == {"queues": {}}


# -- dispatch chains ----------------------------------------------------------------------------


@pytest.mark.parametrize("runner", ["asyncio", "process"])
def test_a_chain_of_jobs_dispatching_jobs(env: WorkerEnv, runner: str) -> None:
    configure(env, runner=runner)

    async def start(app: App) -> str:
        first = rj.ChainA()
        first.tag = runner
        return await app.queue.push(first)

    on_app(env, start)
    with env.worker() as worker:
        env.wait(lambda: any(k.startswith("C:") for k, _, _ in records(env, "chain")), "C")
        stop(worker)
    chain = records(env, "chain")
    assert [k for k, _, _ in chain] == [
        f"A:{runner}",
        f"B:{runner}",
        f"B-done:{runner}",
        f"C:{runner}",
    ]
    b_done, c = chain[2][2], chain[3][2]
    assert c - b_done >= 1.0, "C ran before its delay"
    if runner == "process":
        assert len({pid for _, pid, _ in chain}) >= 1
        assert all(pid != worker.pid for _, pid, _ in chain), "ran in the worker, not a child"


# -- schedules ----------------------------------------------------------------------------------

FIRED = re.compile(r"schedule '(?P<name>[^']+)' fired slot (?P<slot>\S+): job (?P<id>\w+)")


def fired(log: Path) -> list[tuple[float, str]]:
    return [
        (datetime.fromisoformat(m["slot"]).timestamp(), m["id"])
        for m in FIRED.finditer(log.read_text())
    ]


def check_ticks(env: WorkerEnv, span: float) -> list[float]:
    """Every slot between the first and the last fired once: one job id per slot."""
    per_slot: dict[float, set[str]] = defaultdict(set)
    for key, _, _ in records(env, "tick"):
        slot, job_id = key.rsplit(":", 1)
        per_slot[float(slot)].add(job_id)
    doubled = {s: ids for s, ids in per_slot.items() if len(ids) > 1}
    assert not doubled, f"slots fired twice: {doubled}"
    slots = sorted(per_slot)
    assert slots[-1] - slots[0] >= span, slots
    gaps = [s for s in range(int(slots[0]), int(slots[-1]) + 1) if float(s) not in per_slot]
    assert not gaps, f"slots never fired: {gaps}"
    return slots


def drain(env: WorkerEnv) -> None:
    """Run what was fired but not run (a killed worker's jobs, once their leases ran out)."""
    env.wait(lambda: env.stats()["default"].reserved == 0, "the killed worker's leases", 60)
    result = env.run("worker", "--burst", "--no-schedules")
    assert result.returncode == 0, result.stderr


def every_second(env: WorkerEnv) -> None:
    schedule = '[[schedules]]\nname = "tick"\njob = "routemq_jobs:tick"\nevery = 1\n'
    configure(env, lease=3, jobs='register = ["routemq_jobs:tick"]', extra=schedule)


def test_an_every_schedule_fires_each_slot_once_across_workers_and_a_kill_9(
    sqlite_env: WorkerEnv,
) -> None:
    env = sqlite_env
    every_second(env)
    with env.worker() as a, env.worker() as b, env.worker() as c:
        procs = {p.log_path: p for p in (a, b, c)}  # type: ignore[attr-defined]
        env.wait(lambda: len(records(env, "tick")) >= 4, "the first ticks")
        last = max(procs, key=lambda log: max(fired(log), default=(0.0, ""))[0])
        victim = procs.pop(last)
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        env.wait(lambda: len({k for k, _, _ in records(env, "tick")}) >= 12, "10 s of ticks", 60)
        stop(*procs.values())
    drain(env)
    check_ticks(env, span=10)


def test_two_hosts_on_redis_fire_each_slot_once_and_a_host_may_die(
    redis_server: RedisServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    env = WorkerEnv(tmp_path, f"{redis_server.url}?prefix=hosts-{tmp_path.name}:", lease=3)
    every_second(env)
    logs: dict[int, Path] = {}
    procs: list[tuple[str, subprocess.Popen[str]]] = []  # two "hosts": a process group each
    try:
        for name in ("host-a", "host-b"):
            group = None
            for i in range(2):
                log = tmp_path / f"{name}-{i}.log"
                proc = subprocess.Popen(
                    env.command("worker"),
                    env=env.env(),
                    cwd=env.dir,
                    stdout=log.open("w"),
                    stderr=subprocess.STDOUT,
                    text=True,
                    process_group=0 if group is None else group,  # one group per host
                )
                group = os.getpgid(proc.pid) if group is None else group
                logs[proc.pid] = log
                procs.append((name, proc))
        env.wait(lambda: len(records(env, "tick")) >= 4, "the first ticks")
        last = max(logs, key=lambda pid: max(fired(logs[pid]), default=(0.0, ""))[0])
        dying = next(name for name, p in procs if p.pid == last)
        os.killpg(os.getpgid(last), signal.SIGKILL)  # the whole host of the last firer
        alive = [p for name, p in procs if name != dying]
        for _, p in procs:
            if p not in alive:
                p.wait(10)
        env.wait(lambda: len({k for k, _, _ in records(env, "tick")}) >= 12, "10 s of ticks", 60)
        stop(*alive)
    finally:
        for _, p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
    drain(env)
    check_ticks(env, span=10)


def test_a_cron_schedule_fires_at_its_wall_clock_time_in_its_time_zone(
    sqlite_env: WorkerEnv,
) -> None:
    env = sqlite_env
    zone = ZoneInfo("Asia/Kathmandu")  # UTC+05:45: a wrong zone fires hours away
    target = float(int(time.time()) + 6)
    wall = datetime.fromtimestamp(target, zone)
    cron = f"{wall.minute} {wall.hour} {wall.day} {wall.month} * {wall.second}"
    schedule = (
        f'[[schedules]]\njob = "routemq_jobs:tick"\ncron = "{cron}"\ntimezone = "Asia/Kathmandu"\n'
    )
    configure(env, extra=schedule)
    listed = env.json("schedules", "list")
    assert [datetime.fromisoformat(s["next"]).timestamp() for s in listed] == [target]
    with env.worker() as worker:
        env.wait(lambda: records(env, "tick"), "the cron slot")
        stop(worker)
    [(key, _, ran_at)] = records(env, "tick")
    assert float(key.rsplit(":", 1)[0]) == target
    assert ran_at >= target
    [shown] = env.json("schedules", "list")
    assert datetime.fromisoformat(shown["last"]).timestamp() == target


# -- cancellation -------------------------------------------------------------------------------


def started(env: WorkerEnv, key: str) -> tuple[str, int, float] | None:
    return next((r for r in records(env, "start") if r[0] == key), None)


@pytest.mark.parametrize("runner", ["asyncio", "process"])
def test_cancel_queued_delayed_and_running_jobs(env: WorkerEnv, runner: str) -> None:
    configure(env, runner=runner)
    job = "routemq_jobs:long_async" if runner == "asyncio" else "routemq_jobs:long_sync"

    def enqueue(key: str, *extra: str) -> str:
        result = env.run("jobs", "enqueue", job, "--kwargs", json.dumps({"key": key}), *extra)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    queued, delayed = enqueue("queued"), enqueue("delayed", "--delay", "3600")
    for job_id in (queued, delayed):
        assert env.json("jobs", "cancel", job_id) == {
            "id": job_id,
            "state": "cancelled",
            "was": "waiting",
        }
        assert env.json("jobs", "show", job_id)["state"] == "cancelled"
    running = enqueue("running")
    with env.worker() as worker:
        [(_, pid, _)] = [env.wait(lambda: started(env, "running"), "the 10 s job to start")]
        asked = time.monotonic()
        result = env.run("jobs", "cancel", running)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == f"cancelled {running} (it was running: its worker stops it)"
        if runner == "asyncio":
            eventually_sync(lambda: records(env, "stopped"), timeout=2.0, what="CancelledError")
        else:
            eventually_sync(lambda: not rj.pid_alive(pid), timeout=2.0, what="the child killed")
        took = time.monotonic() - asked
        env.wait(lambda: "it was cancelled" in worker.log_path.read_text(), "the worker's log")  # type: ignore[attr-defined]
        stop(worker)
    print(f"the running job stopped {took:.2f}s after `mqttq jobs cancel` returned")
    assert not records(env, "end")
    assert [k for k, _, _ in records(env, "start")] == ["running"], "cancelled jobs ran or retried"
    shown = env.run("jobs", "show", running)
    assert "state:        cancelled" in shown.stdout
    assert env.json("failed", "list") == []
    again = env.run("jobs", "cancel", running)
    assert again.returncode == 1
    assert again.stderr.strip() == f"mqttq: job {running} was cancelled already"
    stats = env.json("stats")["queues"]["default"]
    assert (stats["ready"], stats["delayed"], stats["reserved"], stats["failed"]) == (0, 0, 0, 0)
