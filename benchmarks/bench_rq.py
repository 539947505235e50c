"""mqttq-rq vs plain RQ, one run, the same no-op job, the same private redis-server.

    python benchmarks/bench_rq.py              # full run (a few minutes)
    python benchmarks/bench_rq.py --quick      # smaller counts, one round: a smoke run
    python benchmarks/run.py rq                # the same through the runner

Systems: **mqttq-rq** (``mqttq.App`` with ``rq+redis://``: JSON through mqttq-rq's entry point and
the job registry; ``mqttq worker --count W [--simple]``, i.e. mqttq-rq's supervised RQ workers)
and **RQ** as shipped (its default pickle serializer, the function imported by name; ``rq.Worker``
or ``rq.SimpleWorker`` processes). Both run the same function, which appends ``i`` and the time
to a file.

Figures: (a) enqueue N one call at a time (``app.queue.push`` / ``Queue.enqueue``); (b) enqueue N
in one bulk call (``app.queue.bulk``, one Lua script writing what ``Queue.enqueue_many`` writes /
RQ's own ``Queue.enqueue_many``); (c) processing throughput of 1 and 2 worker processes, forking
and SimpleWorker, draining N pre-filled jobs: N / (last job start - first job start), from the
times the jobs record (start-up left out). Every case runs ``--repeat`` times, round-robin across
the systems; the figure is the median, every round is in the JSON.

Goals: mqttq-rq processes at >= 90% of RQ's rate (the JSON path and the registry lookup cost at
most 10%); mqttq-rq's bulk enqueue is >= 5x RQ's one-at-a-time enqueue.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import _common as c

NAME = "rq"
JOB = "bench_rq:noop"
QUEUE = "bench"
RECORD = "BENCH_RQ_RECORD"
URL = os.environ.get("BENCH_RQ_URL", "redis://127.0.0.1:6379/0")


# -- the job and plain RQ's side (imported by the worker processes) ------------------------------


def noop(i: int, sent: float) -> None:
    fd = os.open(os.environ[RECORD], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, f"{i} {time.time():.6f}\n".encode())
    finally:
        os.close(fd)


def rq_worker(kind: str) -> None:
    from redis import Redis
    from rq import Queue, SimpleWorker, Worker

    cls = SimpleWorker if kind == "simple" else Worker
    q = Queue(QUEUE, connection=Redis.from_url(URL))
    # INFO: `rq worker`'s default, and what mqttq-rq's workers log at
    cls([q], connection=q.connection).work(burst=True, logging_level="INFO")


# -- the run -------------------------------------------------------------------------------------


@contextmanager
def redis_server(directory: Path) -> Iterator[str]:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = c.free_port()
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(directory),
        ],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        import redis

        client = redis.Redis.from_url(url)

        def up() -> bool:
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        c.wait_for(up, 15, what="redis-server")
        client.close()
        yield url
    finally:
        c.stop_process(proc)


class Bench:
    def __init__(self, directory: Path, url: str) -> None:
        import redis

        self.dir = directory
        self.url = url
        self.client = redis.Redis.from_url(url)
        self.record = directory / "record.txt"
        self.config = directory / "mqttq.toml"
        self.config.write_text(
            f'[queue]\nurl = "rq+{url}"\n\n[worker]\nqueues = ["{QUEUE}"]\n\n'
            f'[jobs]\nregister = ["{JOB}"]\n'
        )
        self.env = c.child_env(**{RECORD: str(self.record)}, BENCH_RQ_URL=url)

    def reset(self) -> None:
        self.client.flushall()
        self.record.unlink(missing_ok=True)

    # -- enqueue -------------------------------------------------------------------------------

    def mqttq_enqueue(self, n: int, bulk: bool) -> float:
        from mqttq import App, Call

        async def go() -> float:
            async with App.from_config(self.config) as app:
                await app.queue.push(JOB, kwargs={"i": -1, "sent": 0.0}, queue="warm-up")
                t0 = time.perf_counter()
                if bulk:
                    now = time.time()
                    calls = [Call(JOB, kwargs={"i": i, "sent": now}, queue=QUEUE) for i in range(n)]
                    await app.queue.bulk(calls)
                else:
                    for i in range(n):
                        await app.queue.push(JOB, kwargs={"i": i, "sent": time.time()}, queue=QUEUE)
                return time.perf_counter() - t0

        return asyncio.run(go())

    def rq_enqueue(self, n: int, bulk: bool) -> float:
        from bench_rq import noop  # not __main__'s: RQ workers import it by name
        from rq import Queue

        q = Queue(QUEUE, connection=self.client)
        q.enqueue(noop, -1, 0.0)
        q.empty()
        t0 = time.perf_counter()
        if bulk:
            now = time.time()
            q.enqueue_many([Queue.prepare_data(noop, (i, now)) for i in range(n)])
        else:
            for i in range(n):
                q.enqueue(noop, i, time.time())
        return time.perf_counter() - t0

    # -- processing ----------------------------------------------------------------------------

    def fill(self, system: str, n: int) -> None:
        if system.startswith("mqttq"):
            self.mqttq_enqueue(n, bulk=True)
        else:
            self.rq_enqueue(n, bulk=True)

    def workers(self, system: str, count: int) -> list[subprocess.Popen[bytes]]:
        simple = system.endswith("simple")
        if system.startswith("mqttq"):
            args = ["-m", "mqttq", "--config", str(self.config), "worker", "--burst"]
            args += ["--count", str(count), *(["--simple"] if simple else [])]
            cmds = [c.python_cmd(*args)]
        else:
            code = f"import bench_rq; bench_rq.rq_worker({'simple' if simple else 'fork'!r})"
            cmds = [c.python_cmd("-c", code) for _ in range(count)]
        return [
            subprocess.Popen(
                cmd, env=self.env, cwd=c.ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            for cmd in cmds
        ]

    def process(self, system: str, n: int, count: int) -> float:
        self.fill(system, n)
        procs = self.workers(system, count)
        try:
            c.wait_for(lambda: self._done() >= n, 600, 0.05, what=f"{n} jobs of {system}")
        finally:
            for proc in procs:
                c.stop_process(proc)
        times = sorted(float(line.split()[1]) for line in self.record.read_text().splitlines())
        return c.rate(n - 1, times[n - 1] - times[0])

    def _done(self) -> int:
        if not self.record.exists():
            return 0
        with self.record.open("rb") as f:
            return sum(1 for _ in f)


def rounds(
    systems: list[str], repeat: int, case: Callable[[str], float], bench: Bench
) -> dict[str, list[float]]:
    """``case(system)`` ``repeat`` times per system, round-robin."""
    out: dict[str, list[float]] = {s: [] for s in systems}
    for _ in range(repeat):
        for system in systems:
            bench.reset()
            out[system].append(case(system))
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    quick = args.quick
    repeat = 1 if quick else args.repeat
    n_one, n_bulk = (500, 2000) if quick else (3000, 20000)
    n_fork, n_simple = (200, 500) if quick else (1500, 4000)
    started = time.time()
    notes = [w] if (w := c.load_warning()) else []
    metrics: list[c.Metric] = []
    with c.workdir("bench-rq-") as tmp, redis_server(tmp) as url:
        bench = Bench(tmp, url)

        def enqueue(bulk: bool, n: int) -> dict[str, list[float]]:
            def case(system: str) -> float:
                fn = bench.mqttq_enqueue if system == "mqttq-rq" else bench.rq_enqueue
                return c.rate(n, fn(n, bulk))

            return rounds(["rq", "mqttq-rq"], repeat, case, bench)

        one = enqueue(False, n_one)
        bulk = enqueue(True, n_bulk)
        med = {k: c.median(v) for k, v in one.items()}
        metrics.append(
            c.Metric(
                "enqueue, one at a time",
                "jobs/s",
                med,
                "mqttq-rq",
                references={"vs rq": "rq"},
                extra={"rounds": one, "n": n_one},
            )
        )
        bulk_med = {k: c.median(v) for k, v in bulk.items()}
        vs_one = c.ratio(bulk_med["mqttq-rq"], med["rq"])
        metrics.append(
            c.Metric(
                "enqueue, one bulk",
                "jobs/s",
                {**bulk_med, "rq one at a time": med["rq"]},
                "mqttq-rq",
                references={"vs rq": "rq", "vs rq one at a time": "rq one at a time"},
                goal=">= 5x rq one at a time",
                met=vs_one is not None and vs_one >= 5,
                extra={"rounds": bulk, "n": n_bulk},
            )
        )
        for kind, n in (("fork", n_fork), ("simple", n_simple)):
            for count in (1, 2):
                systems = [f"rq {kind}", f"mqttq-rq {kind}"]
                got = rounds(systems, repeat, lambda s: bench.process(s, n, count), bench)  # noqa: B023
                values = {k: c.median(v) for k, v in got.items()}
                share = c.ratio(values[systems[1]], values[systems[0]])
                metrics.append(
                    c.Metric(
                        f"process N no-op, {count} {kind} worker{'s' if count > 1 else ''}",
                        "jobs/s",
                        values,
                        systems[1],
                        references={"vs rq": systems[0]},
                        goal=">= 0.9x rq",
                        met=share is not None and share >= 0.9,
                        extra={"rounds": got, "n": n},
                    )
                )
        bench.client.close()
    import rq

    settings = {"rq": rq.__version__, "repeat": repeat, "all": notes}
    path = c.save_results(NAME, metrics, started=started, settings=settings)
    for m in metrics:
        values = ", ".join(f"{k} {c.fmt_value(v)}" for k, v in m.values.items())
        ratios = ", ".join(f"{k} {c.fmt_ratio(v)}" for k, v in m.ratios.items())
        goal = f"  [{m.goal}: {'MET' if m.met else 'MISSED'}]" if m.goal else ""
        print(f"{m.metric}: {values} ({ratios}){goal}", flush=True)
    print(f"results: {path.relative_to(c.ROOT)}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main(sys.argv[1:]))
