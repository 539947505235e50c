"""mqttq-sqlite vs huey's SqliteHuey vs the raw stdlib-sqlite3 ceiling, same run, same machine.

    python benchmarks/bench_sqlite.py            # the full run (about 2 minutes)
    python benchmarks/bench_sqlite.py --quick    # smaller counts, one round: a smoke run

Figures: (a) enqueue throughput, one job at a time and in one bulk call; (b) no-op processing
throughput of one worker process draining a pre-filled queue; (c) enqueue-to-start latency
(p50/p99) of an idle worker while a producer pushes at a paced rate. Every case gets a fresh
database file in a temporary directory. See benchmarks/README.md for what each figure means.

This module is also the job module of the worker processes it starts (``bench_sqlite:bench_job``):
its top level imports the standard library only, and the jobs record when they start.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _common as c

NAME = "sqlite"
JOB = "bench_sqlite:bench_job"  # async no-op (mqttq)
JOB_SYNC = "bench_sqlite:bench_job_sync"  # sync no-op (mqttq's thread pool; huey's task)
QUEUE = "default"

MQTTQ = "mqttq-sqlite"
HUEY = "huey"  # SqliteHuey as shipped: SQLite's synchronous=FULL, an fsync per commit
HUEY_NORMAL = "huey-normal"  # SqliteHuey set to synchronous=NORMAL: mqttq-sqlite's durability
RAW = "ceiling"
SYSTEMS = [
    (MQTTQ, "mqttq-sqlite"),
    (HUEY, "huey"),
    (HUEY_NORMAL, "huey NORMAL"),
    (RAW, "raw sqlite3"),
]
REFS = {"vs huey": HUEY, "vs huey NORMAL": HUEY_NORMAL, "vs ceiling": RAW}

# -- the jobs (run inside worker processes) ------------------------------------------------------
#
# Each run records (i, sent, started) per job in memory; once BENCH_EXPECT jobs ran, the records
# are written to BENCH_OUT in one go (atomically), which is how the parent knows the run is over.
# For the mqttq worker, BENCH_OUT.exit receives the time the process reached exit (atexit: after
# the worker flushed its last acks and closed the driver).

_OUT = os.environ.get("BENCH_OUT")
_EXPECT = int(os.environ.get("BENCH_EXPECT", "0"))
_records: list[tuple[int, float, float]] = []
_dump_lock = threading.Lock()


def _write_atomic(path: str, data: str) -> None:
    tmp = f"{path}.tmp"
    Path(tmp).write_text(data)
    os.replace(tmp, path)


def _record(i: int, sent: float) -> None:
    _records.append((i, sent, time.time()))
    if len(_records) >= _EXPECT and _OUT:
        with _dump_lock:
            if not Path(_OUT).exists():
                _write_atomic(_OUT, json.dumps(_records))


async def bench_job(i: int, sent: float) -> None:
    """The no-op job, as ``async def`` (mqttq runs it on the event loop)."""
    _record(i, sent)


def bench_job_sync(i: int, sent: float) -> None:
    """The no-op job as a plain function (huey's task; mqttq runs it on its thread pool)."""
    _record(i, sent)


if _OUT:
    atexit.register(lambda: _write_atomic(f"{_OUT}.exit", json.dumps(time.time())))


@dataclass
class Run:
    """What one processing or latency run recorded."""

    records: list[tuple[int, float, float]]
    exit_at: float | None = None

    def throughput(self) -> float:
        starts = [r[2] for r in self.records]
        return c.rate(len(starts), max(starts) - min(starts))

    def latencies_ms(self) -> list[float]:
        return [(start - sent) * 1000 for i, sent, start in self.records if i >= 0]


def read_run(out: Path, expect: int) -> Run:
    records = [tuple(r) for r in json.loads(out.read_text())]
    ids = {r[0] for r in records}
    if len(ids) != expect:
        raise RuntimeError(f"{out.name}: {len(ids)} distinct jobs ran, expected {expect}")
    exit_file = Path(f"{out}.exit")
    exit_at = json.loads(exit_file.read_text()) if exit_file.exists() else None
    return Run(records, exit_at)  # type: ignore[arg-type]


def payload(i: int, sent: float) -> bytes:
    """A JSON body shaped and sized like mqttq's job envelope (~320 bytes), for the raw ceiling."""
    return json.dumps(
        {
            "id": uuid.uuid4().hex,
            "name": JOB,
            "queue": QUEUE,
            "args": [],
            "kwargs": {"i": i, "sent": sent},
            "attempts": 0,
            "max_tries": None,
            "timeout": None,
            "backoff": None,
            "enqueued_at": sent,
            "available_at": sent,
            "unique_key": None,
            "last_error": None,
            "v": 1,
        },
        separators=(",", ":"),
    ).encode()


# -- raw sqlite3: the ceiling --------------------------------------------------------------------
#
# The least a durable queue table needs: FIFO rowid, queue, state, availability, lease, attempts,
# payload, and the partial index that keeps a claim O(log n). Same pragmas as mqttq-sqlite
# (WAL, synchronous=NORMAL). Rows are built before the clock starts: this is SQLite's own cost.
# One variant (``raw_insert_batched_built``) also gives each row a uuid4 id under a UNIQUE index
# and builds the JSON payloads inside the timing: a hand-written queue doing mqttq's work.

RAW_SCHEMA = (
    """CREATE TABLE jobs (seq INTEGER PRIMARY KEY, queue TEXT NOT NULL, state INTEGER NOT NULL,
        available_at REAL NOT NULL, lease_until REAL, attempts INTEGER NOT NULL,
        payload BLOB NOT NULL, id TEXT UNIQUE)""",
    "CREATE INDEX jobs_waiting ON jobs (queue, available_at, seq) WHERE state = 0",
)
RAW_INSERT = (
    "INSERT INTO jobs (queue, state, available_at, attempts, payload) VALUES (?, 0, ?, 0, ?)"
)
RAW_INSERT_ID = (
    "INSERT INTO jobs (queue, state, available_at, attempts, payload, id) VALUES (?, 0, ?, 0, ?, ?)"
)
RAW_CLAIM = (
    "UPDATE jobs SET state = 1, lease_until = ?, attempts = attempts + 1 WHERE seq IN "
    "(SELECT seq FROM jobs WHERE state = 0 AND queue = ? AND available_at <= ? "
    "ORDER BY available_at, seq LIMIT ?) RETURNING seq, payload"
)


def raw_connect(path: Path, create: bool = True) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, timeout=10)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    if create:
        for statement in RAW_SCHEMA:
            conn.execute(statement)
    return conn


def raw_rows(n: int) -> list[tuple[str, float, bytes]]:
    now = time.time()
    return [(QUEUE, now, payload(i, now)) for i in range(n)]


def raw_insert_each(path: Path, n: int) -> float:
    """One INSERT per transaction (autocommit), ``n`` times; returns seconds."""
    rows = raw_rows(n)
    with contextlib.closing(raw_connect(path)) as conn:
        t0 = time.perf_counter()
        for row in rows:
            conn.execute(RAW_INSERT, row)
        return time.perf_counter() - t0


def raw_insert_batched(path: Path, n: int) -> float:
    """``executemany`` of ``n`` rows in one transaction; returns seconds."""
    rows = raw_rows(n)
    with contextlib.closing(raw_connect(path)) as conn:
        t0 = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(RAW_INSERT, rows)
        conn.execute("COMMIT")
        return time.perf_counter() - t0


def raw_insert_batched_built(path: Path, n: int) -> float:
    """Like :func:`raw_insert_batched`, but each row also gets a uuid4 id (UNIQUE index), and
    building the rows (id, JSON payload) is inside the timing."""
    with contextlib.closing(raw_connect(path)) as conn:
        t0 = time.perf_counter()
        now = time.time()
        rows = []
        for i in range(n):
            body = payload(i, now)
            rows.append((QUEUE, now, body, uuid.uuid4().hex))
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(RAW_INSERT_ID, rows)
        conn.execute("COMMIT")
        return time.perf_counter() - t0


def raw_claim_batch(conn: sqlite3.Connection, batch: int) -> list[tuple[int, bytes]]:
    now = time.time()
    conn.execute("BEGIN IMMEDIATE")
    rows = conn.execute(RAW_CLAIM, (now + 30, QUEUE, now, batch)).fetchall()
    conn.execute("COMMIT")
    return rows


def raw_ack(conn: sqlite3.Connection, seqs: list[int]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(f"DELETE FROM jobs WHERE seq IN ({','.join('?' * len(seqs))})", seqs)
    conn.execute("COMMIT")


def raw_claim_ack(path: Path, n: int, batch: int = 100) -> float:
    """Claim ``batch`` per UPDATE ... RETURNING, then DELETE them, until ``n`` are done."""
    with contextlib.closing(raw_connect(path)) as conn:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(RAW_INSERT, raw_rows(n))
        conn.execute("COMMIT")
        done = 0
        t0 = time.perf_counter()
        while rows := raw_claim_batch(conn, batch):
            raw_ack(conn, [seq for seq, _ in rows])
            done += len(rows)
        elapsed = time.perf_counter() - t0
    if done != n:
        raise RuntimeError(f"raw claim+ack processed {done} of {n} rows")
    return elapsed


def raw_consumer_main(db: str, poll: float) -> None:
    """Child process: claim up to 100 rows, 'run' them (decode, record), delete them; poll every
    ``poll`` seconds while the table is empty. The latency floor of a polling consumer."""
    with contextlib.closing(raw_connect(Path(db), create=False)) as conn:
        while True:
            rows = raw_claim_batch(conn, 100)
            if not rows:
                time.sleep(poll)
                continue
            for _, body in rows:
                kwargs = json.loads(body)["kwargs"]
                bench_job_sync(kwargs["i"], kwargs["sent"])
            raw_ack(conn, [seq for seq, _ in rows])


# -- huey ----------------------------------------------------------------------------------------


def make_huey(path: Path, durability: str) -> tuple[Any, Any]:
    """A ``SqliteHuey`` and its no-op task. ``durability``: ``normal`` (synchronous=NORMAL, as
    mqttq-sqlite) or ``default`` (huey as shipped: SQLite's default, synchronous=FULL)."""
    from huey import SqliteHuey
    from huey.storage import SqliteStorage

    class Storage(SqliteStorage):  # type: ignore[misc]
        def _create_connection(self) -> sqlite3.Connection:
            conn = super()._create_connection()
            if durability == "normal":
                conn.execute("PRAGMA synchronous = NORMAL")
            return conn

    huey = SqliteHuey(name="bench", filename=str(path), storage_class=Storage)
    task = huey.task(name="bench_job")(bench_job_sync)
    return huey, task


def huey_enqueue_each(path: Path, n: int, durability: str) -> float:
    huey, task = make_huey(path, durability)
    t0 = time.perf_counter()
    for i in range(n):
        task(i, time.time())
    elapsed = time.perf_counter() - t0
    huey.storage.close()
    return elapsed


def huey_consumer_main(db: str, durability: str) -> None:
    """Child process: huey's consumer with one worker thread (huey's defaults otherwise)."""
    huey, _ = make_huey(Path(db), durability)
    huey.create_consumer(workers=1, worker_type="thread").run()


# -- mqttq ---------------------------------------------------------------------------------------


def mqttq_toml(db: Path, concurrency: int) -> str:
    return (
        f'[queue]\nurl = "sqlite:///{db}"\n\n'
        f"[worker]\nconcurrency = {concurrency}\n\n"
        f'[jobs]\nregister = ["{JOB}", "{JOB_SYNC}"]\n'
    )


def mqttq_app(db: Path) -> Any:
    import tomllib

    from mqttq import App
    from mqttq.config import structure

    return App(structure(tomllib.loads(mqttq_toml(db, 8))))


def mqttq_problem(tmp: Path) -> str | None:
    """Why mqttq-sqlite cannot be measured, or None when it can."""

    async def probe() -> None:
        async with mqttq_app(tmp / "probe.db") as app:
            await app.queue.push(JOB, kwargs={"i": 0, "sent": 0.0})

    try:
        asyncio.run(probe())
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


async def mqttq_enqueue_each(path: Path, n: int) -> float:
    async with mqttq_app(path) as app:
        push = app.queue.push
        t0 = time.perf_counter()
        for i in range(n):
            await push(JOB, kwargs={"i": i, "sent": time.time()})
        return time.perf_counter() - t0


async def mqttq_bulk(path: Path, n: int, job: str = JOB) -> float:
    """One ``bulk`` of ``n`` calls; building the calls is inside the timing."""
    from mqttq import Call

    async with mqttq_app(path) as app:
        t0 = time.perf_counter()
        now = time.time()
        await app.queue.bulk([Call(job, kwargs={"i": i, "sent": now}) for i in range(n)])
        return time.perf_counter() - t0


def mqttq_cli() -> list[str]:
    script = Path(sys.executable).with_name("mqttq")
    return [str(script)] if script.exists() else [sys.executable, "-m", "mqttq"]


def mqttq_worker_cmd(config: Path, concurrency: int, *, burst: bool) -> list[str]:
    cmd = [*mqttq_cli(), "--config", str(config), "worker", "--concurrency", str(concurrency)]
    return [*cmd, "--burst"] if burst else cmd


# -- running worker processes --------------------------------------------------------------------


@contextlib.contextmanager
def process(cmd: list[str], tmp: Path, out: Path, expect: int) -> Iterator[subprocess.Popen[Any]]:
    """Start a worker process that records into ``out``; stop it (SIGTERM) on the way out."""
    env = c.child_env(BENCH_OUT=str(out), BENCH_EXPECT=str(expect))
    log = tmp / f"{out.stem}.log"
    with log.open("w") as stderr:
        proc = subprocess.Popen(cmd, env=env, cwd=tmp, stdout=stderr, stderr=stderr)
    try:
        yield proc
    except BaseException:
        tail = log.read_text()[-3000:]
        print(f"--- {' '.join(cmd[:4])} ... output:\n{tail}", file=sys.stderr)
        raise
    finally:
        c.stop_process(proc)


def wait_records(proc: subprocess.Popen[Any], out: Path, timeout: float) -> None:
    def done() -> bool:
        if proc.poll() is not None and not out.exists():
            raise RuntimeError(f"worker exited with {proc.returncode} before finishing")
        return out.exists()

    c.wait_for(done, timeout, what=f"{out.name}")


def drain(cmd: list[str], tmp: Path, out: Path, n: int, *, exits: bool) -> Run:
    """Run a worker over a pre-filled queue of ``n`` jobs until all ran (and it exited)."""
    with process(cmd, tmp, out, n) as proc:
        wait_records(proc, out, timeout=300)
        if exits:
            code = proc.wait(60)
            if code != 0:
                raise RuntimeError(f"worker exited with {code}")
    return read_run(out, n)


#: ``produce(count, per_second, offset)`` pushes jobs ``-offset .. count-offset-1`` at that pace
Producer = Callable[[int, float, int], None]


def paced(push: Callable[[int], Any]) -> Producer:
    """A producer calling ``push(i)`` on schedule: push ``k`` is due at ``start + k / rate`` (a
    late producer catches up instead of drifting); the enqueue time is taken at the call."""

    def produce(n: int, per_second: float, offset: int) -> None:
        t0 = time.perf_counter()
        for k in range(n):
            delay = t0 + k / per_second - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            push(k - offset)

    return produce


def mqttq_paced(db: Path) -> Producer:
    """The paced producer for mqttq: ``await app.queue.push`` on an event loop."""

    async def run(n: int, per_second: float, offset: int) -> None:
        async with mqttq_app(db) as app:
            t0 = time.perf_counter()
            for k in range(n):
                delay = t0 + k / per_second - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                await app.queue.push(JOB, kwargs={"i": k - offset, "sent": time.time()})

    return lambda n, per_second, offset: asyncio.run(run(n, per_second, offset))


# -- the benchmark -------------------------------------------------------------------------------


@dataclass
class Settings:
    jobs: int
    latency_jobs: int
    rate: float
    repeat: int
    concurrency: list[int]
    systems: list[str]
    warmup: int = 1000
    latency_warmup: int = 20


@dataclass
class Case:
    """One throughput figure of one system (``variant``: a setting, e.g. a concurrency).

    ``sample()`` makes one timed run on a fresh database file and returns jobs/s."""

    metric: str
    system: str
    sample: Callable[[], float]
    warmup: Callable[[], object] | None = None
    variant: str = ""
    rates: list[float] = field(default_factory=list)


#: throughput metrics, in the order they run
THROUGHPUT = ("enqueue_each", "enqueue_bulk", "enqueue_bulk_built", "process", "process_sync")


class Bench:
    """Runs every case, each on a fresh database file, and keeps the figures.

    Throughput cases of one metric run round-robin (system A, B, C, then A, B, C again...), so
    a disturbance from outside hits every system alike rather than one of them."""

    def __init__(self, s: Settings, tmp: Path) -> None:
        self.s = s
        self.tmp = tmp
        self._n = 0
        self.values: dict[str, dict[str, float | None]] = {}
        self.details: dict[str, dict[str, Any]] = {}
        self.notes: dict[str, list[str]] = {}
        self.best_concurrency: int | None = None
        self.to_exit: dict[int, list[float]] = {}  # mqttq: jobs/s up to the worker's exit

    def fresh(self, label: str) -> Path:
        self._n += 1
        return self.tmp / f"{self._n:03d}-{label}.db"

    def put(self, metric: str, system: str, value: float | None, **detail: Any) -> None:
        self.values.setdefault(metric, {})[system] = value
        if detail:
            self.details.setdefault(metric, {})[system] = detail
        shown = c.fmt_value(value, "ms" if "latency" in metric else "")
        print(f"  {metric:<20} {system:<13} {shown:>9}  {_brief(detail)}", flush=True)

    def run(self) -> None:
        systems = self.s.systems
        cases: list[Case] = []
        if "mqttq" in systems:
            problem = mqttq_problem(self.tmp)
            if problem:
                print(f"mqttq-sqlite skipped: not usable yet ({problem})")
                self.notes.setdefault("all", []).append(f"mqttq-sqlite not measured: {problem}")
                systems = [x for x in systems if x != "mqttq"]
        if "raw" in systems:
            cases += self.raw_cases()
        for name, durability in (("huey", "default"), ("huey-normal", "normal")):
            if name in systems:
                cases += self.huey_cases(durability)
        if "mqttq" in systems:
            cases += self.mqttq_cases()
        self.run_throughput(cases)
        c.banner(f"pickup latency, {self.s.latency_jobs:,} jobs at {self.s.rate:g}/s")
        if "raw" in systems:
            self.raw_latency()
        for name, durability in (("huey", "default"), ("huey-normal", "normal")):
            if name in systems:
                self.huey_latency(durability)
        if "mqttq" in systems:
            self.mqttq_latency()

    def run_throughput(self, cases: list[Case]) -> None:
        n = self.s.jobs
        for metric in THROUGHPUT:
            todo = [k for k in cases if k.metric == metric]
            if not todo:
                continue
            c.banner(f"{metric}: {n:,} jobs, {self.s.repeat} round(s) over {len(todo)} case(s)")
            for k in todo:
                if k.warmup is not None:
                    k.warmup()
            for _ in range(self.s.repeat):
                for k in todo:
                    k.rates.append(k.sample())
            for system in dict.fromkeys(k.system for k in todo):
                mine = [k for k in todo if k.system == system]
                best = max(mine, key=lambda k: c.median(k.rates))
                detail: dict[str, Any] = {"runs": [round(r) for r in best.rates]}
                if len(mine) > 1:
                    detail["best"] = best.variant
                    detail["sweep"] = {k.variant: round(c.median(k.rates)) for k in mine}
                elif best.variant:
                    detail["setting"] = best.variant
                if system == MQTTQ and metric == "process":
                    self.best_concurrency = conc = int(best.variant.removeprefix("c="))
                    detail["to_exit"] = round(c.median(self.to_exit.get(conc, [])))
                self.put(metric, system, c.median(best.rates), **detail)

    def timed(self, label: str, fn: Callable[[Path, int], float]) -> Case:
        """``fn(path, n) -> seconds`` as a case sample, with a warm-up on a throwaway file."""
        n = self.s.jobs
        return Case(
            metric="",
            system="",
            sample=lambda: c.rate(n, fn(self.fresh(label), n)),
            warmup=lambda: fn(self.fresh(f"{label}-warmup"), min(self.s.warmup, n)),
        )

    def case(self, metric: str, system: str, fn: Callable[[Path, int], float]) -> Case:
        k = self.timed(f"{system}-{metric}", fn)
        k.metric, k.system = metric, system
        return k

    # the systems --------------------------------------------------------------------------------

    def raw_cases(self) -> list[Case]:
        return [
            self.case("enqueue_each", RAW, raw_insert_each),
            self.case("enqueue_bulk", RAW, raw_insert_batched),
            self.case("enqueue_bulk_built", RAW, raw_insert_batched_built),
            self.case("process", RAW, raw_claim_ack),
        ]

    def huey_cases(self, durability: str) -> list[Case]:
        system = HUEY_NORMAL if durability == "normal" else HUEY

        def each(path: Path, n: int) -> float:
            return huey_enqueue_each(path, n, durability)

        def drain_once() -> float:
            db = self.fresh(f"{system}-process")
            huey_enqueue_each(db, self.s.jobs, durability)
            cmd = c.python_cmd(__file__, "_huey-consumer", str(db), durability)
            return drain(
                cmd, self.tmp, db.with_suffix(".out"), self.s.jobs, exits=False
            ).throughput()

        return [
            self.case("enqueue_each", system, each),
            Case("process", system, drain_once, variant="1 worker thread"),
        ]

    def mqttq_cases(self) -> list[Case]:
        def each(path: Path, n: int) -> float:
            return asyncio.run(mqttq_enqueue_each(path, n))

        def bulk(path: Path, n: int) -> float:
            return asyncio.run(mqttq_bulk(path, n))

        def drainer(job: str, conc: int) -> Callable[[], float]:
            return lambda: self.mqttq_drain(job, conc).throughput()

        most = max(self.s.concurrency)
        return [
            self.case("enqueue_each", MQTTQ, each),
            self.case("enqueue_bulk", MQTTQ, bulk),
            *(
                Case("process", MQTTQ, drainer(JOB, k), variant=f"c={k}")
                for k in self.s.concurrency
            ),
            Case("process_sync", MQTTQ, drainer(JOB_SYNC, most), variant=f"c={most}"),
        ]

    def mqttq_drain(self, job: str, concurrency: int) -> Run:
        db = self.fresh(f"mqttq-process-c{concurrency}")
        asyncio.run(mqttq_bulk(db, self.s.jobs, job))
        config = db.with_suffix(".toml")
        config.write_text(mqttq_toml(db, concurrency))
        cmd = mqttq_worker_cmd(config, concurrency, burst=True)
        run = drain(cmd, self.tmp, db.with_suffix(".out"), self.s.jobs, exits=True)
        with contextlib.closing(sqlite3.connect(db)) as conn:
            left = conn.execute("SELECT count(*) FROM mqttq_jobs").fetchone()[0]
        if left:
            raise RuntimeError(f"{left} jobs still in the queue after the burst worker exited")
        if run.exit_at is not None:  # first job to the worker reaching exit, last acks included
            first = min(r[2] for r in run.records)
            rate = c.rate(len(run.records), run.exit_at - first)
            if job == JOB:
                self.to_exit.setdefault(concurrency, []).append(rate)
        return run

    # latency ------------------------------------------------------------------------------------

    def latency_run(self, cmd: list[str], label: str, produce: Producer) -> Run:
        """Start a worker, let it run a few warm-up jobs, leave it idle for a moment, then push
        at the paced rate. Warm-up jobs have negative numbers and are left out of the figures."""
        warm, n = self.s.latency_warmup, self.s.latency_jobs
        out = self.tmp / f"{label}-latency.out"
        with process(cmd, self.tmp, out, warm + n) as proc:
            produce(warm, 50, warm)
            time.sleep(0.5)  # part of the scenario: the worker has gone idle (and backed off)
            produce(n, self.s.rate, 0)
            wait_records(proc, out, timeout=60)
        return read_run(out, warm + n)

    def put_latency(self, system: str, run: Run, **detail: Any) -> None:
        lat = run.latencies_ms()
        self.put("latency_p50", system, c.percentile(lat, 50), **detail)
        self.put(
            "latency_p99",
            system,
            c.percentile(lat, 99),
            max=round(max(lat), 1),
            mean=round(sum(lat) / len(lat), 2),
        )

    def raw_latency(self) -> None:
        db = self.fresh("raw-latency")
        raw_connect(db).close()
        cmd = c.python_cmd(__file__, "_raw-consumer", str(db), "0.001")
        conn = raw_connect(db, create=False)

        def push(i: int) -> None:
            conn.execute(RAW_INSERT, (QUEUE, time.time(), payload(i, time.time())))

        with contextlib.closing(conn):
            run = self.latency_run(cmd, "raw", paced(push))
        self.put_latency(RAW, run, poll="1 ms")

    def huey_latency(self, durability: str) -> None:
        system = HUEY_NORMAL if durability == "normal" else HUEY
        db = self.fresh(f"{system}-latency")
        huey, task = make_huey(db, durability)
        cmd = c.python_cmd(__file__, "_huey-consumer", str(db), durability)
        run = self.latency_run(cmd, system, paced(lambda i: task(i, time.time())))
        huey.storage.close()
        self.put_latency(system, run, poll="0.1 s, x1.15 while idle")

    def mqttq_latency(self) -> None:
        conc = self.best_concurrency or max(self.s.concurrency)
        db = self.fresh("mqttq-latency")
        config = self.tmp / "mqttq-latency.toml"
        config.write_text(mqttq_toml(db, conc))
        cmd = mqttq_worker_cmd(config, conc, burst=False)
        run = self.latency_run(cmd, "mqttq", mqttq_paced(db))
        self.put_latency(MQTTQ, run, concurrency=conc)

    # report -------------------------------------------------------------------------------------

    def metrics(self) -> list[c.Metric]:
        s, v = self.s, self.values
        conc = self.best_concurrency

        def metric(key: str, label: str, unit: str, **kw: Any) -> c.Metric:
            kw.setdefault("values", {k: v.get(key, {}).get(k) for k, _ in SYSTEMS})
            kw.setdefault("references", REFS)
            kw.setdefault("extra", self.details.get(key, {}))
            return c.Metric(metric=label, unit=unit, subject=MQTTQ, **kw)

        to_exit = self.details.get("process", {}).get(MQTTQ, {}).get("to_exit")
        each = v.get("enqueue_each", {})
        process = v.get("process", {})
        bulk = metric(
            "enqueue_bulk",
            f"enqueue {s.jobs:,}, one bulk",
            "jobs/s",
            goal=">= 50% of ceiling",
            note="huey has no bulk API: 'vs huey' compares with its task() loop; "
            "ceiling: executemany in one transaction, rows built beforehand",
        )
        built = metric(
            "enqueue_bulk_built",
            "  same, vs ceiling building its rows",
            "jobs/s",
            values={MQTTQ: bulk.values[MQTTQ], RAW: v.get("enqueue_bulk_built", {}).get(RAW)},
            references={"vs ceiling": RAW},
            note="ceiling also makes a uuid4 id (UNIQUE index) and a JSON payload per row, "
            "inside the timing",
        )
        sync = metric(
            "process_sync",
            "  same, sync no-op (thread pool)",
            "jobs/s",
            references={},
            note="mqttq runs a plain-function job on its thread pool (huey's tasks are plain "
            "functions): compared with the same huey and ceiling figures",
        )
        for label, key in REFS.items():
            if key != RAW:  # huey has no bulk: its one-at-a-time loop is how it enqueues 10,000
                bulk.ratios[label] = c.ratio(bulk.values[MQTTQ], each.get(key))
            sync.ratios[label] = c.ratio(sync.values[MQTTQ], process.get(key))
        by_key = {
            "enqueue_each": metric(
                "enqueue_each",
                f"enqueue {s.jobs:,}, one at a time",
                "jobs/s",
                note="mqttq: await queue.push() in a loop; huey: task() calls; "
                "ceiling: one INSERT per transaction (autocommit)",
            ),
            "enqueue_bulk": bulk,
            "enqueue_bulk_built": built,
            "process": metric(
                "process",
                f"process {s.jobs:,} no-op, 1 worker proc",
                "jobs/s",
                goal=">= 3x huey as shipped",
                note=f"mqttq: async job, `mqttq worker --concurrency {conc}` (first job to the "
                f"worker's exit, last acks included: {c.fmt_value(to_exit)} jobs/s); huey: its "
                "consumer, 1 worker thread; ceiling: claim 100 per UPDATE ... RETURNING, "
                "then DELETE",
            ),
            "process_sync": sync,
            "latency_p50": metric(
                "latency_p50",
                f"pickup latency p50 @ {s.rate:g}/s",
                "ms",
                higher_is_better=False,
                goal="<= 10 ms",
            ),
            "latency_p99": metric(
                "latency_p99",
                f"pickup latency p99 @ {s.rate:g}/s",
                "ms",
                higher_is_better=False,
                goal="<= 50 ms",
                note="enqueue time taken just before the push call, start time by the job; "
                "huey: its consumer's default polling (0.1 s, backing off x1.15 while idle)",
            ),
        }
        _judge(by_key)
        return list(by_key.values())


def _judge(m: dict[str, c.Metric]) -> None:
    """Set ``met`` for the four goals (None: not measured)."""

    def check(key: str, value: float | None, ok: Callable[[float], bool]) -> None:
        m[key].met = None if value is None else ok(value)

    check("enqueue_bulk", m["enqueue_bulk"].ratios.get("vs ceiling"), lambda r: r >= 0.5)
    check("process", m["process"].ratios.get("vs huey"), lambda r: r >= 3)
    check("latency_p50", m["latency_p50"].values.get(MQTTQ), lambda ms: ms <= 10)
    check("latency_p99", m["latency_p99"].values.get(MQTTQ), lambda ms: ms <= 50)


def _brief(detail: dict[str, Any]) -> str:
    return "  ".join(f"{k}={v}" for k, v in detail.items())


def parse_args(argv: list[str]) -> Settings:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--jobs", type=int, default=10_000, help="jobs per throughput case")
    p.add_argument("--latency-jobs", type=int, default=2_000, help="jobs per latency case")
    p.add_argument("--rate", type=float, default=200, help="producer rate for latency (jobs/s)")
    p.add_argument("--repeat", type=int, default=3, help="timed runs per in-process case")
    p.add_argument(
        "--concurrency",
        default="8,64,256",
        help="mqttq worker concurrencies to try, 8 being the default (the best one is reported)",
    )
    p.add_argument(
        "--only",
        default="raw,huey,huey-normal,mqttq",
        help="systems to run, comma-separated (raw, huey, huey-normal, mqttq)",
    )
    p.add_argument("--quick", action="store_true", help="small counts, one repeat (smoke run)")
    a = p.parse_args(argv)
    unknown = set(a.only.split(",")) - {"raw", "huey", "huey-normal", "mqttq"}
    if unknown:
        p.error(f"--only: unknown system(s) {', '.join(sorted(unknown))}")
    s = Settings(
        jobs=a.jobs,
        latency_jobs=a.latency_jobs,
        rate=a.rate,
        repeat=a.repeat,
        concurrency=[int(x) for x in a.concurrency.split(",")],
        systems=a.only.split(","),
    )
    if a.quick:
        s.jobs, s.latency_jobs, s.repeat, s.warmup = 2000, 300, 1, 200
    return s


def main(argv: list[str]) -> int:
    if argv[:1] == ["_huey-consumer"]:
        huey_consumer_main(argv[1], argv[2])
        return 0
    if argv[:1] == ["_raw-consumer"]:
        raw_consumer_main(argv[1], float(argv[2]))
        return 0
    s = parse_args(argv)
    started = time.time()
    print(
        f"bench_sqlite: {s.jobs:,} jobs per throughput case, {s.latency_jobs:,} at {s.rate:g}/s "
        f"for latency, median of {s.repeat} run(s); {c.machine_info()['cpus']} CPUs, "
        f"SQLite {sqlite3.sqlite_version}",
        flush=True,
    )
    busy = c.load_warning()
    if busy:
        print(f"WARNING: {busy}", flush=True)
    with c.workdir("mqttq-bench-sqlite-") as tmp:
        bench = Bench(s, tmp)
        if busy:
            bench.notes.setdefault("all", []).append(f"at start, {busy}")
        bench.run()
        metrics = bench.metrics()
    c.banner(f"mqttq-sqlite vs huey SqliteHuey vs raw sqlite3 ({time.time() - started:.0f} s)")
    print(c.metrics_table(metrics, SYSTEMS))
    for m in metrics:
        if m.note:
            print(f"  {m.metric.strip()}: {m.note}")
    for note in bench.notes.get("all", []):
        print(f"  NOTE: {note}")
    path = c.save_results(NAME, metrics, started=started, settings=vars(s) | bench.notes)
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    import bench_sqlite  # run as the importable module, so worker processes see the same names

    sys.exit(bench_sqlite.main(sys.argv[1:]))
