"""Class jobs vs function jobs, and the scheduler's cost on an idle worker; same run, same machine.

    python benchmarks/bench_jobs.py            # the full run (about 4 minutes)
    python benchmarks/bench_jobs.py --quick    # smaller counts, one round: a smoke run

Figures: (a) dispatch throughput of a class job (a ``mqttq.Job`` with four data attributes)
against a function job with the same four keyword arguments, one at a time and in one bulk,
on a SQLite file; (b) processing throughput of both (an in-process burst ``Worker`` draining a
pre-filled SQLite queue of no-op jobs, async ``handle``/``async def``); (c) CPU seconds per
minute of an idle ``mqttq worker`` process with no schedule, an ``every = 1`` schedule and a
cron schedule. Every case runs ``--rounds`` times, class and function jobs alternating (class,
function, then function, class, ...: neither always goes first; one-at-a-time pushes alternate
push by push within one run); each figure is the median, with the range of the runs. Machine
load drifts within a run, so "vs function" is the median of the per-round ratios (class over
function, the two runs of one round back to back), shown with their range; every run is in the
JSON (``extra``).

This module is also the job module of the runs (``bench_jobs:Noop``, ``bench_jobs:noop``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import _common as c

NAME = "jobs"
CLASS, FUNCTION = "class job", "function job"
IDLE, EVERY, CRON = "no schedule", "every = 1", "cron * * * * *"
DATA: dict[str, Any] = {
    "user_id": 123,
    "message": "Your order has shipped",
    "items": [1, 2, 3],
    "meta": {"a": 1},
}

try:
    import mqttq
except ImportError:  # pragma: no cover - the benchmark needs the checkout's packages
    sys.exit("bench_jobs: install mqttq (and mqttq-sqlite) first")


class Noop(mqttq.Job):
    def __init__(self) -> None:
        super().__init__()
        self.user_id: int | None = None
        self.message = ""
        self.items: list[int] = []
        self.meta: dict[str, int] = {}

    async def handle(self) -> None:
        return None


async def noop(user_id: int, message: str, items: list[int], meta: dict[str, int]) -> None:
    return None


def tick() -> None:
    return None


# both kinds build their data afresh for every job, as a handler does from each message: the
# same objects (a list and a dict each), so the allocator and the collector see the same work


def make_class() -> Noop:
    job = Noop()
    job.user_id, job.message, job.items, job.meta = (
        DATA["user_id"],
        DATA["message"],
        list(DATA["items"]),
        dict(DATA["meta"]),
    )
    return job


def make_kwargs() -> dict[str, Any]:
    return {
        "user_id": DATA["user_id"],
        "message": DATA["message"],
        "items": list(DATA["items"]),
        "meta": dict(DATA["meta"]),
    }


def toml(db: Path, extra: str = "") -> str:
    return f"""\
[queue]
url = "sqlite:///{db}"

[worker]
concurrency = 256
lease = 60

[jobs]
register = ["bench_jobs:Noop", "bench_jobs:noop", "bench_jobs:tick"]
{extra}"""


def app_for(db: Path) -> mqttq.App:
    path = db.with_suffix(".toml")
    path.write_text(toml(db))
    return mqttq.App.from_config(path)


# -- dispatch and processing ---------------------------------------------------------------------

#: one run: (jobs per second, jobs per CPU second of this process)
Sample = tuple[float, float]


class Timer:
    """Wall time and CPU time of this process (every thread: the SQLite driver's too). Jobs per
    CPU second barely move with the machine's load, where jobs per second follow it."""

    def __enter__(self) -> Timer:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu

    def rates(self, n: int) -> Sample:
        return c.rate(n, self.wall), c.rate(n, self.cpu)


async def dispatch_one(db: Path, n: int) -> dict[str, Sample]:
    """``n`` pushes of each kind, one at a time, interleaved push by push in one app (class,
    function, function, class, ...), each push timed on its own: a push is a SQLite commit, whose
    cost drifts with the machine far more than the microseconds that set the two kinds apart,
    and interleaving lays that drift on both alike."""
    async with app_for(db) as app:
        pushes = {
            CLASS: lambda: app.queue.push(make_class()),
            FUNCTION: lambda: app.queue.push(noop, kwargs=make_kwargs()),
        }
        spent = {CLASS: [0.0, 0.0], FUNCTION: [0.0, 0.0]}
        for i in range(2 * n):
            kind = CLASS if i % 4 in (0, 3) else FUNCTION
            wall, cpu = time.perf_counter(), time.process_time()
            await pushes[kind]()
            spent[kind][0] += time.perf_counter() - wall
            spent[kind][1] += time.process_time() - cpu
        return {kind: (c.rate(n, w), c.rate(n, p)) for kind, (w, p) in spent.items()}


async def dispatch_bulk(db: Path, kind: str, n: int) -> Sample:
    async with app_for(db) as app:
        name = app.jobs.name_for(noop)
        with Timer() as timer:
            if kind == CLASS:
                await app.queue.bulk([make_class() for _ in range(n)])
            else:
                await app.queue.bulk([mqttq.Call(name, kwargs=make_kwargs()) for _ in range(n)])
        return timer.rates(n)


async def process(db: Path, kind: str, n: int) -> Sample:
    from mqttq.worker import Worker

    async with app_for(db) as app:
        if kind == CLASS:
            await app.queue.bulk([make_class() for _ in range(n)])
        else:
            name = app.jobs.name_for(noop)
            await app.queue.bulk([mqttq.Call(name, kwargs=make_kwargs()) for _ in range(n)])
        worker = Worker(app, burst=True, install_signals=False)
        with Timer() as timer:
            assert await worker.run() == 0
        assert worker.executor is not None
        assert worker.executor.processed == n, (worker.executor.processed, n)
        return timer.rates(n)


Case = Callable[[Path, str, int], Coroutine[Any, Any, Sample]]


def round_robin(case: Case, n: int, rounds: int) -> dict[str, list[Sample]]:
    """``rounds`` runs of each kind, alternating, after a warm-up; run r of each is round r."""
    runs: dict[str, list[Sample]] = {CLASS: [], FUNCTION: []}
    for kind in runs:  # a warm-up of each, not counted: first-run imports and caches
        with c.workdir("bench-jobs-") as tmp:
            asyncio.run(case(tmp / "q.db", kind, max(1, n // 10)))
    for r in range(rounds):
        order = (CLASS, FUNCTION) if r % 2 == 0 else (FUNCTION, CLASS)
        for kind in order:
            with c.workdir("bench-jobs-") as tmp:
                runs[kind].append(asyncio.run(case(tmp / "q.db", kind, n)))
    return runs


def interleaved(n: int, rounds: int) -> dict[str, list[Sample]]:
    """``rounds`` runs of :func:`dispatch_one` after a warm-up; round r is run r."""
    runs: dict[str, list[Sample]] = {CLASS: [], FUNCTION: []}
    for r in range(rounds + 1):
        with c.workdir("bench-jobs-") as tmp:
            samples = asyncio.run(dispatch_one(tmp / "q.db", max(1, n // 10) if r == 0 else n))
        for kind in runs if r else ():
            runs[kind].append(samples[kind])
    return runs


def spread(values: list[float], fmt: str = "{:,.0f}") -> str:
    """``median (min-max)``."""
    return f"{fmt.format(c.median(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def compare(label: str, unit: str, runs: dict[str, list[float]]) -> c.Metric:
    """Class against function jobs: medians, and the median of the per-round ratios."""
    paired = [a / b for a, b in zip(runs[CLASS], runs[FUNCTION], strict=True)]
    ratio = c.median(paired)
    return c.Metric(
        metric=label,
        unit=unit,
        values={k: c.median(v) for k, v in runs.items()},
        subject=CLASS,
        references={"vs function": FUNCTION},
        ratios={"vs function": ratio},
        goal=">= 90% of function jobs",
        met=ratio >= 0.9,
        note=(
            f"class/function per round {spread(paired, '{:.2f}')}; {unit} class "
            f"{spread(runs[CLASS])}, function {spread(runs[FUNCTION])}"
        ),
        extra={"runs": runs, "ratios per round": paired},
    )


# -- scheduler overhead --------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def idle_cpu(kind: str, seconds: float) -> float:
    """CPU seconds per minute of an idle worker process, start-up left out."""
    extra = {
        IDLE: "",
        EVERY: '[[schedules]]\njob = "bench_jobs:tick"\nevery = 1\n',
        CRON: '[[schedules]]\njob = "bench_jobs:tick"\ncron = "* * * * *"\n',
    }[kind]
    with c.workdir("bench-jobs-idle-") as tmp:
        db = tmp / "q.db"
        config = tmp / "mqttq.toml"
        config.write_text(toml(db, extra))
        proc = subprocess.Popen(
            c.python_cmd("-m", "mqttq", "--config", str(config), "worker", "--queue", "idle"),
            env=c.child_env(),
            cwd=tmp,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            c.wait_for(lambda: db.exists(), 30, what="the worker to open its queue")
            time.sleep(3.0)  # start-up done: imports, first claims, first heartbeats
            before, t0 = cpu_seconds(proc.pid), time.monotonic()
            time.sleep(seconds)
            used, took = cpu_seconds(proc.pid) - before, time.monotonic() - t0
        finally:
            c.stop_process(proc)
    return used / took * 60


# -- main ------------------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts, one round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--idle-seconds", type=float, default=20.0)
    parser.add_argument("--no-idle", action="store_true", help="leave out the idle-CPU runs")
    args = parser.parse_args(argv)
    rounds = 1 if args.quick else args.rounds
    one, bulk, work = (300, 2000, 2000) if args.quick else (2000, 10_000, 10_000)
    idle_for = 5.0 if args.quick else args.idle_seconds
    started = time.time()
    load_before = os.getloadavg()
    print(f"load average at the start {load_before[0]:.2f} on {os.cpu_count()} CPUs", flush=True)
    warning = c.load_warning()
    if warning:
        print(f"WARNING: {warning}", flush=True)

    metrics: list[c.Metric] = []
    systems = [(CLASS, CLASS), (FUNCTION, FUNCTION)]
    cases: list[tuple[str, Callable[[], dict[str, list[Sample]]]]] = [
        (f"dispatch {one:,}, one at a time", lambda: interleaved(one, rounds)),
        (f"dispatch {bulk:,}, one bulk", lambda: round_robin(dispatch_bulk, bulk, rounds)),
        (f"process {work:,} no-op, burst worker", lambda: round_robin(process, work, rounds)),
    ]
    for label, run in cases:
        c.banner(label)
        runs = run()
        pair = [
            compare(label, "jobs/s", {k: [s[0] for s in v] for k, v in runs.items()}),
            compare(
                "  same, per CPU second",
                "jobs/cpu-s",
                {k: [s[1] for s in v] for k, v in runs.items()},
            ),
        ]
        metrics += pair
        print(c.metrics_table(pair, systems), flush=True)
        for metric in pair:
            print(f"  {metric.note}", flush=True)

    c.banner(f"idle worker, CPU per minute ({idle_for:g} s measured per run)")
    idle_runs: dict[str, list[float]] = {IDLE: [], EVERY: [], CRON: []}
    for r in range(0 if args.no_idle else rounds):
        for kind in list(idle_runs)[r % 3 :] + list(idle_runs)[: r % 3]:
            idle_runs[kind].append(idle_cpu(kind, idle_for))
    idle = {k: c.median(v) for k, v in idle_runs.items()}
    for kind in () if args.no_idle else (EVERY, CRON):
        metrics.append(
            c.Metric(
                metric=f"idle worker CPU, {kind}",
                unit="cpu s/min",
                values=idle,  # type: ignore[arg-type]
                subject=kind,
                higher_is_better=False,
                references={"vs no schedule": IDLE},
                note=f"scheduler overhead {idle[kind] - idle[IDLE]:+.3f} cpu s/min",
                extra={"runs": idle_runs},
            )
        )
    if not args.no_idle:
        print(c.metrics_table(metrics[-2:], [(IDLE, IDLE), (EVERY, EVERY), (CRON, CRON)]))
        for m in metrics[-2:]:
            print(f"  {m.metric}: {m.note}")
    load_after = os.getloadavg()
    print(f"load average at the end {load_after[0]:.2f}")
    settings = {
        "rounds": rounds,
        "all": [warning] if warning else [],
        "loadavg": {"start": load_before, "end": load_after},
    }
    path = c.save_results(NAME, metrics, started=started, settings=settings)
    print(f"\nwrote {path.relative_to(c.ROOT)}")
    return 0


if __name__ == "__main__":
    import bench_jobs  # the jobs must be the registered module's, not __main__'s

    sys.exit(bench_jobs.main(sys.argv[1:]))
