"""mqttq-redis vs arq, RQ, saq, taskiq-redis, huey (RedisHuey), dramatiq and raw redis-py, one run.

    python benchmarks/bench_redis.py                       # full run (a few minutes)
    python benchmarks/bench_redis.py --quick               # smaller counts: a smoke run
    python benchmarks/bench_redis.py --systems mqttq,huey  # a subset (raw is always measured)

Every system uses the same private redis-server (started here on a free port, no persistence,
flushed between cases) and the same no-op job ``(i, sent)`` that appends one line to a file.

Figures, per system: (a) enqueue N jobs one call at a time; (b) enqueue N jobs in one bulk call
(only mqttq and RQ have a bulk API); (c) claim + ack N jobs in batches of 100 in-process (mqttq
only; raw redis-py LMOVE / BLMOVE pipelined as the ceiling); (d) processing throughput of 1 and
2 worker processes draining N pre-filled jobs (first to last job start); (e) enqueue-to-start
latency p50/p99 with one idle worker process while a producer pushes at a steady rate.

A peer whose library is not installed shows ``n/a``. arq and taskiq-redis need redis-py < 6, so
the peers are best installed in a venv of their own::

    python -m venv /tmp/mqttq-bench && /tmp/mqttq-bench/bin/pip install -e packages/core \\
        -e packages/driver-redis arq rq saq taskiq-redis "taskiq<0.12" huey "dramatiq[redis]"
    /tmp/mqttq-bench/bin/python benchmarks/bench_redis.py
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import os
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _common as c
import _redis_peers as peers

NAME = "redis"
MQTTQ, RAW, RAW_ASYNC = "mqttq", "raw", "raw-async"
#: key, heading, module that must be importable
SYSTEMS = [
    (MQTTQ, "mqttq-redis", "mqttq_redis"),
    ("huey", "huey", "huey"),
    ("rq-simple", "rq Simple", "rq"),
    ("rq-fork", "rq fork", "rq"),
    ("arq", "arq", "arq"),
    ("saq", "saq", "saq"),
    ("taskiq", "taskiq", "taskiq_redis"),
    ("dramatiq", "dramatiq", "dramatiq"),
    (RAW, "raw redis-py", "redis"),
    (RAW_ASYNC, "raw redis.asyncio", "redis"),
]
HEADINGS = {key: heading for key, heading, _ in SYSTEMS}

Push = Callable[[int, float], Awaitable[Any]]


# -- the private redis-server --------------------------------------------------------------------


@contextlib.contextmanager
def redis_server(tmp: Path) -> Iterator[str]:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(binary).exists():
        sys.exit("redis-server not found: apt-get install -y redis-server")
    port = c.free_port()
    cmd = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp),
           "--save", "", "--appendonly", "no", "--logfile", str(tmp / "redis.log")]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        import redis

        client = redis.Redis(port=port)

        def up() -> bool:
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        c.wait_for(up, 15, what="redis-server")
        client.close()
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        c.stop_process(proc)


def flush(url: str) -> None:
    import redis

    with contextlib.closing(redis.Redis.from_url(url)) as client:
        client.flushall()


# -- producers: one awaitable push(i, sent) per system -------------------------------------------


@contextlib.asynccontextmanager
async def producer(system: str, url: str, tmp: Path) -> AsyncIterator[Push]:
    if system == MQTTQ:
        import mqttq

        async with mqttq.App.from_config(mqttq_config(url, tmp)) as app:

            async def push(i: int, sent: float) -> None:
                await app.queue.push(peers.MQTTQ_JOB, kwargs={"i": i, "sent": sent})

            yield push
        return
    sync: dict[str, Callable[[int, float], None]] = {
        "huey": peers.huey_enqueue,
        "rq-simple": peers.rq_enqueue,
        "rq-fork": peers.rq_enqueue,
        "dramatiq": peers.dramatiq_enqueue,
    }
    if system in sync:
        fn = sync[system]

        async def push_sync(i: int, sent: float) -> None:
            fn(i, sent)

        yield push_sync
        return
    make = {"arq": peers.arq_producer, "saq": peers.saq_producer, "taskiq": peers.taskiq_producer}
    push_async, close = await make[system]()
    try:
        yield push_async
    finally:
        result = close()
        if asyncio.iscoroutine(result):
            await result


def mqttq_config(url: str, tmp: Path) -> Path:
    path = tmp / "mqttq.toml"
    path.write_text(peers.mqttq_toml(url, peers.CONCURRENCY))
    return path


async def enqueue_each(system: str, url: str, tmp: Path, n: int) -> float:
    async with producer(system, url, tmp) as push:
        await push(-1, time.time())  # connections made, scripts loaded
        t0 = time.perf_counter()
        for i in range(n):
            await push(i, time.time())
        return c.rate(n, time.perf_counter() - t0)


async def enqueue_bulk(system: str, url: str, tmp: Path, n: int) -> float | None:
    if system == MQTTQ:
        import mqttq

        async with mqttq.App.from_config(mqttq_config(url, tmp)) as app:
            t0 = time.perf_counter()
            now = time.time()
            await app.queue.bulk(
                mqttq.Call(peers.MQTTQ_JOB, kwargs={"i": i, "sent": now}) for i in range(n)
            )
            return c.rate(n, time.perf_counter() - t0)
    if system.startswith("rq"):
        peers.rq_queue()  # connection set up outside the timing
        t0 = time.perf_counter()
        peers.rq_bulk(n)
        return c.rate(n, time.perf_counter() - t0)
    return None  # no bulk API


async def mqttq_claim_ack(url: str, tmp: Path, n: int, batch: int) -> float:
    import mqttq

    async with mqttq.App.from_config(mqttq_config(url, tmp)) as app:
        now = time.time()
        await app.queue.bulk(
            mqttq.Call(peers.MQTTQ_JOB, kwargs={"i": i, "sent": now}) for i in range(n)
        )
        done = 0
        t0 = time.perf_counter()
        while jobs := await app.driver.claim(["default"], batch, lease=30):
            await app.driver.ack([j.id for j in jobs])
            done += len(jobs)
        elapsed = time.perf_counter() - t0
        if done != n:
            raise RuntimeError(f"claimed {done} of {n}")
        return c.rate(n, elapsed)


# -- raw redis-py ceilings -----------------------------------------------------------------------


def raw_figures(url: str, n: int) -> dict[str, float]:
    import redis

    from mqttq.codec import encode_job
    from mqttq.models import Envelope

    payloads = [
        encode_job(Envelope(name=peers.MQTTQ_JOB, kwargs={"i": i, "sent": 0.0})) for i in range(n)
    ]
    out: dict[str, float] = {}
    with contextlib.closing(redis.Redis.from_url(url)) as r:
        r.ping()
        t0 = time.perf_counter()
        for p in payloads:
            r.lpush("raw:one", p)
        out["enqueue_each"] = c.rate(n, time.perf_counter() - t0)

        t0 = time.perf_counter()
        with r.pipeline(transaction=False) as pipe:
            for p in payloads:
                pipe.lpush("raw:bulk", p)
            pipe.execute()
        out["enqueue_bulk"] = c.rate(n, time.perf_counter() - t0)

        for cmd in ("lmove", "blmove"):
            t0 = time.perf_counter()
            with r.pipeline(transaction=False) as pipe:
                for _ in range(n):
                    if cmd == "lmove":
                        pipe.lmove("raw:bulk", "raw:moved", "RIGHT", "LEFT")
                    else:
                        pipe.blmove("raw:moved", "raw:bulk", 1, "RIGHT", "LEFT")
                pipe.execute()
            out[f"claim_{cmd}"] = c.rate(n, time.perf_counter() - t0)
    return out


async def raw_async_figures(url: str, n: int) -> dict[str, float]:
    """The same ceilings through redis.asyncio, the client an asyncio driver is built on."""
    import redis.asyncio as aioredis

    from mqttq.codec import encode_job
    from mqttq.models import Envelope

    payloads = [
        encode_job(Envelope(name=peers.MQTTQ_JOB, kwargs={"i": i, "sent": 0.0})) for i in range(n)
    ]
    out: dict[str, float] = {}
    r = aioredis.Redis.from_url(url)
    try:
        await r.ping()
        t0 = time.perf_counter()
        for p in payloads:
            await r.lpush("raw:one", p)
        out["enqueue_each"] = c.rate(n, time.perf_counter() - t0)
        t0 = time.perf_counter()
        async with r.pipeline(transaction=False) as pipe:
            for p in payloads:
                pipe.lpush("raw:bulk", p)
            await pipe.execute()
        out["enqueue_bulk"] = c.rate(n, time.perf_counter() - t0)
        t0 = time.perf_counter()
        async with r.pipeline(transaction=False) as pipe:
            for _ in range(n):
                pipe.lmove("raw:bulk", "raw:moved", "RIGHT", "LEFT")
            await pipe.execute()
        out["claim_lmove"] = c.rate(n, time.perf_counter() - t0)
    finally:
        await r.aclose()
    return out


async def mqttq_driver_push(url: str, tmp: Path, n: int) -> float:
    """``driver.push`` of envelopes built beforehand: the driver's own share of a bulk enqueue."""
    import mqttq

    async with mqttq.App.from_config(mqttq_config(url, tmp)) as app:
        now = time.time()
        calls = [mqttq.Call(peers.MQTTQ_JOB, kwargs={"i": i, "sent": now}) for i in range(n)]
        jobs = [app.queue.make_job(call, now=now) for call in calls]
        t0 = time.perf_counter()
        await app.driver.push(jobs)
        return c.rate(n, time.perf_counter() - t0)


# -- worker processes ----------------------------------------------------------------------------


def worker_cmd(system: str, url: str, tmp: Path) -> list[str]:
    if system == MQTTQ:
        return [sys.executable, "-m", "mqttq", "--config", str(mqttq_config(url, tmp)), "worker"]
    return [sys.executable, str(Path(__file__).resolve()), "--worker", system]


@contextlib.contextmanager
def workers(system: str, url: str, tmp: Path, records: Path, count: int) -> Iterator[None]:
    env = c.child_env(
        BENCH_REDIS_URL=url, BENCH_RECORD_DIR=str(records), BENCH_CONCURRENCY=str(peers.CONCURRENCY)
    )
    logs = [(tmp / f"{system}-worker{k}.log").open("w") for k in range(count)]
    procs = [
        subprocess.Popen(worker_cmd(system, url, tmp), env=env, cwd=tmp, stdout=log, stderr=log)
        for log in logs
    ]
    try:
        yield
    finally:
        for proc in procs:
            c.stop_process(proc, grace=5)
        for log in logs:
            log.close()


def read_records(records: Path) -> list[tuple[int, float, float]]:
    rows = []
    for path in records.glob("*.txt"):
        for line in path.read_text().splitlines():
            i, sent, start = line.split()
            rows.append((int(i), float(sent), float(start)))
    return rows


def count_records(records: Path) -> int:
    return sum(p.read_bytes().count(b"\n") for p in records.glob("*.txt"))


def fresh_records(tmp: Path, label: str) -> Path:
    path = tmp / f"records-{label}-{time.monotonic_ns()}"
    path.mkdir()
    return path


def drain(system: str, url: str, tmp: Path, n: int, procs: int, timeout: float) -> float | None:
    """Pre-fill n jobs, start ``procs`` workers, return jobs/s from first to last job start."""
    flush(url)
    asyncio.run(fill(system, url, tmp, n))
    records = fresh_records(tmp, f"{system}-{procs}")
    with workers(system, url, tmp, records, procs):
        try:
            c.wait_for(lambda: count_records(records) >= n, timeout, 0.05, f"{system} to run {n}")
        except TimeoutError as exc:
            print(f"  {system}: {exc}", flush=True)
            return None
    starts = [start for i, _, start in read_records(records) if i >= 0]
    return c.rate(len(starts), max(starts) - min(starts))


async def fill(system: str, url: str, tmp: Path, n: int) -> None:
    if await enqueue_bulk(system, url, tmp, n) is None:
        async with producer(system, url, tmp) as push:
            for i in range(n):
                await push(i, 0.0)


def latency(
    system: str, url: str, tmp: Path, n: int, rate: float, timeout: float
) -> tuple[float, float] | None:
    """p50 and p99 (ms) from push to job start, one idle worker process, ``rate`` jobs/s."""
    flush(url)
    records = fresh_records(tmp, f"{system}-latency")
    with workers(system, url, tmp, records, 1):

        async def produce() -> None:
            async with producer(system, url, tmp) as push:
                await push(-1, time.time())  # the worker is up once this one ran
                c.wait_for(lambda: count_records(records) >= 1, timeout, 0.01, f"{system} up")
                t0 = time.perf_counter()
                for k in range(n):
                    delay = t0 + k / rate - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    await push(k, time.time())

        try:
            asyncio.run(produce())
            c.wait_for(lambda: count_records(records) >= n + 1, timeout, 0.05, f"{system} latency")
        except TimeoutError as exc:
            print(f"  {system}: {exc}", flush=True)
            return None
    ms = [(start - sent) * 1000 for i, sent, start in read_records(records) if i >= 0]
    return c.percentile(ms, 50), c.percentile(ms, 99)


# -- the run ------------------------------------------------------------------------------------


@dataclass
class Settings:
    jobs: int
    latency_jobs: int
    rate: float
    systems: list[str]
    timeout: float = 180.0


def available(system: str) -> bool:
    module = next(m for key, _, m in SYSTEMS if key == system)
    return importlib.util.find_spec(module) is not None


def run(s: Settings) -> list[c.Metric]:
    values: dict[str, dict[str, float | None]] = {}

    def put(metric: str, system: str, value: float | None) -> None:
        values.setdefault(metric, {})[system] = value
        shown = c.fmt_value(value, "ms" if metric.startswith("latency") else "")
        print(f"  {metric:<16} {HEADINGS[system]:<14} {shown}", flush=True)

    with c.workdir("mqttq-bench-redis-") as tmp, redis_server(tmp) as url:
        os.environ["BENCH_REDIS_URL"] = url
        peers.URL = url
        c.banner(f"raw redis-py, N={s.jobs:,}")
        flush(url)
        for metric, value in raw_figures(url, s.jobs).items():
            put(metric, RAW, value)
        flush(url)
        for metric, value in asyncio.run(raw_async_figures(url, s.jobs)).items():
            put(metric, RAW_ASYNC, value)
        for system in s.systems:
            c.banner(HEADINGS[system])
            if not available(system):
                print("  not installed: n/a")
                continue
            if system != "rq-fork":  # same enqueue as rq-simple
                flush(url)
                put("enqueue_each", system, asyncio.run(enqueue_each(system, url, tmp, s.jobs)))
                flush(url)
                put("enqueue_bulk", system, asyncio.run(enqueue_bulk(system, url, tmp, s.jobs)))
            if system == MQTTQ:
                flush(url)
                put("driver_push", system, asyncio.run(mqttq_driver_push(url, tmp, s.jobs)))
                flush(url)
                put("claim_ack", system, asyncio.run(mqttq_claim_ack(url, tmp, s.jobs, 100)))
            n = s.jobs if system != "rq-fork" else min(s.jobs, 1000)
            for procs in (1, 2):
                put(f"process_{procs}", system, drain(system, url, tmp, n, procs, s.timeout))
            result = latency(system, url, tmp, s.latency_jobs, s.rate, s.timeout)
            put("latency_p50", system, result[0] if result else None)
            put("latency_p99", system, result[1] if result else None)
    return metrics(s, values)


def metrics(s: Settings, values: dict[str, dict[str, float | None]]) -> list[c.Metric]:
    peer_keys = [k for k, _, _ in SYSTEMS if k not in (MQTTQ, RAW, RAW_ASYNC)]

    def best_peer(metric: str, lower: bool) -> float | None:
        got = [v for k in peer_keys if (v := values.get(metric, {}).get(k)) is not None]
        return (min(got) if lower else max(got)) if got else None

    n = f"{s.jobs:,}"
    #: key, label, unit, goal, raw figure shown in the raw columns
    spec = [
        ("enqueue_each", f"enqueue {n}, one at a time", "jobs/s", "first", "enqueue_each"),
        ("enqueue_bulk", f"enqueue {n}, one bulk call", "jobs/s", ">= 50% raw", "enqueue_bulk"),
        ("driver_push", "  driver.push, jobs built before", "jobs/s", "", "enqueue_bulk"),
        ("claim_ack", "claim+ack, batches of 100, 1 proc", "jobs/s", "", "claim_lmove"),
        ("process_1", "process no-op, 1 worker proc", "jobs/s", ">= 2x best peer", None),
        ("process_2", "process no-op, 2 worker procs", "jobs/s", "first", None),
        ("latency_p50", f"latency p50 @ {s.rate:g}/s", "ms", "<= 1 ms", None),
        ("latency_p99", f"latency p99 @ {s.rate:g}/s", "ms", "first", None),
    ]
    rows = []
    for key, label, unit, goal, raw_key in spec:
        lower = unit == "ms"
        vals = dict(values.get(key, {}))
        refs = {"vs best peer": "best peer"}
        if key != "driver_push":
            vals["best peer"] = best_peer(key, lower)
        else:
            refs = {}
        if raw_key:
            vals[RAW] = values.get(raw_key, {}).get(RAW)
            vals[RAW_ASYNC] = values.get(raw_key, {}).get(RAW_ASYNC)
            refs |= {"vs raw": RAW, "vs raw async": RAW_ASYNC}
        m = c.Metric(
            metric=label,
            unit=unit,
            values=vals,
            subject=MQTTQ,
            higher_is_better=not lower,
            references=refs,
            goal=goal,
        )
        mine, peer = vals.get(MQTTQ), vals.get("best peer")
        if mine is not None and goal:
            if goal == ">= 50% raw":
                m.met = (m.ratios.get("vs raw") or 0) >= 0.5
            elif goal == ">= 2x best peer":
                m.met = peer is None or mine >= 2 * peer
            elif goal == "<= 1 ms":
                m.met = mine <= 1.0
            elif goal == "first":
                m.met = peer is None or (mine <= peer if lower else mine >= peer)
        rows.append(m)
    blmove = values.get("claim_blmove", {}).get(RAW)
    rows.append(
        c.Metric(metric="BLMOVE pipelined", unit="jobs/s", values={RAW: blmove}, subject=RAW)
    )
    return rows


def parse_args(argv: list[str]) -> Settings:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--jobs", type=int, default=10_000, help="jobs per throughput case")
    p.add_argument("--latency-jobs", type=int, default=1_000, help="jobs per latency case")
    p.add_argument("--rate", type=float, default=200.0, help="jobs/s in the latency case")
    default = ",".join(k for k, _, _ in SYSTEMS if k not in (RAW, RAW_ASYNC))
    p.add_argument("--systems", default=default)
    p.add_argument("--quick", action="store_true", help="1,000 jobs, 200 for latency")
    a = p.parse_args(argv)
    systems = [x.strip() for x in a.systems.split(",") if x.strip()]
    unknown = set(systems) - set(HEADINGS)
    if unknown:
        p.error(f"unknown systems: {', '.join(sorted(unknown))}")
    if a.quick:
        return Settings(1000, 200, a.rate, systems, timeout=60)
    return Settings(a.jobs, a.latency_jobs, a.rate, systems)


def main(argv: list[str]) -> None:
    if argv[:1] == ["--worker"]:
        peers.WORKERS[argv[1]]()
        return
    s = parse_args(argv)
    started = time.time()
    results = run(s)
    columns = [(k, h) for k, h, _ in SYSTEMS if k in s.systems or k in (RAW, RAW_ASYNC)]
    columns.insert(len(columns) - 2, ("best peer", "best peer"))
    c.banner("results")
    print(c.metrics_table(results, columns))
    import redis

    settings = {
        "jobs": s.jobs,
        "latency_jobs": s.latency_jobs,
        "rate": s.rate,
        "concurrency": peers.CONCURRENCY,
        "redis_py": redis.__version__,
        "hiredis": importlib.util.find_spec("hiredis") is not None,
    }
    print(f"\nsettings: {settings}")
    path = c.save_results(NAME, results, started=started, settings=settings)
    print(f"saved {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
