"""MQTT ingest: ``mqttq run`` (listener + workers, SQLite, manual acks) vs a bare aiomqtt
subscriber, on one private Mosquitto, same run, same machine.

    python benchmarks/bench_ingest.py            # the full run (about 2 minutes)
    python benchmarks/bench_ingest.py --quick    # small counts: a smoke run, not figures

Figures:

(a) **Throughput**, QoS 1, from the first publish to the last job *done* (mqttq) or the last
    message received (bare aiomqtt subscriber, which acks on receipt and does nothing else: the
    ceiling). The same publisher process publishes the same N messages as fast as it can in every
    run; its own rate is reported too (when it is the bottleneck, every figure is capped by it).
    mqttq runs **with its default configuration first** (``mqttq run`` on SQLite and on Redis,
    and ``mqttq listen`` + one ``mqttq worker`` process), then labelled tuned settings beside
    it; ``mqttq listen`` alone (publish -> every job *queued*) is the ingest ceiling the end-to-end
    figures are compared with. Variants run round-robin, ``--rounds`` times; medians.
(b) **Latency** publish -> job start at a paced 200 msg/s: p50 / p99 (clocks of one machine).
(c) **Memory**: RSS of a ``mqttq listen`` process while 100,000 messages pass through it into
    SQLite (sampled every 0.5 s); flat means the first and last quarter differ by little.

flowerpower-mqtt is not run here (it needs RQ and Redis); its published figure, ~1,200 msg/s
enqueued into RQ, is quoted as a reference only.

This module is also the job module of the ``mqttq run`` processes it starts
(``bench_ingest:ingest_job``): its top level imports the standard library only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import _common as c

NAME = "ingest"
MQTTQ = "mqttq run (sqlite)"
BARE = "bare aiomqtt"
#: the end-to-end variants: label -> (queue, commands, [worker] settings); default first
TUNED = "concurrency = 64\nprefetch = 256"
VARIANTS: dict[str, tuple[str, tuple[str, ...], str]] = {
    MQTTQ: ("sqlite", ("run",), ""),
    "mqttq run (redis)": ("redis", ("run",), ""),
    "mqttq listen + worker (sqlite)": ("sqlite", ("listen", "worker"), ""),
    "tuned: mqttq run (sqlite), concurrency 64": ("sqlite", ("run",), TUNED),
    "tuned: mqttq run (redis), concurrency 64": ("redis", ("run",), TUNED),
    "no prefetch: mqttq run (sqlite), concurrency 32": (
        "sqlite",
        ("run",),
        "concurrency = 32\nprefetch = 0",
    ),
}
INGEST = "mqttq listen (sqlite): publish -> queued"
PUBLISHER = "publisher"
FLOWERPOWER_REFERENCE = 1200.0  # msg/s, flowerpower-mqtt's published figure into RQ
TOPIC = "bench/{device}/reading"

# -- the job (runs inside `mqttq run`) ------------------------------------------------------------

_OUT = os.environ.get("BENCH_OUT")
_EXPECT = int(os.environ.get("BENCH_EXPECT", "0"))
_records: list[tuple[int, float, float, float]] = []
_lock = threading.Lock()


def _write_atomic(path: str, data: str) -> None:
    Path(f"{path}.tmp").write_text(data)
    os.replace(f"{path}.tmp", path)


async def ingest_job(device: str, message: Any) -> None:
    """Records (i, sent, started, done); the payload is ``{"i": ..., "sent": ...}``."""
    started = time.time()
    body = message.payload
    _records.append((body["i"], body["sent"], started, time.time()))
    if len(_records) >= _EXPECT and _OUT:
        with _lock:
            if not Path(_OUT).exists():
                _write_atomic(_OUT, json.dumps(_records))


# -- the broker -----------------------------------------------------------------------------------


class Broker:
    def __init__(self, directory: Path) -> None:
        self.port = c.free_port()
        self.conf = directory / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\nuser {getpass.getuser()}\n"
            f"persistence false\nmax_queued_messages 0\nmax_inflight_messages 1000\n"
            f"log_dest file {directory / 'mosquitto.log'}\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def __enter__(self) -> Broker:
        binary = "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else "mosquitto"
        self.proc = subprocess.Popen([binary, "-c", str(self.conf)], stderr=subprocess.DEVNULL)
        import socket

        def up() -> bool:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return True
            except OSError:
                return False

        c.wait_for(up, 10, what="mosquitto")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            c.stop_process(self.proc)


# -- child roles: publisher and bare subscriber --------------------------------------------------


async def role_publish(url: str, n: int, rate: float, out: str) -> None:
    """Publish n QoS 1 messages (as fast as possible, or paced at ``rate`` msg/s)."""
    import aiomqtt

    host, port = url.removeprefix("mqtt://").split(":")
    async with aiomqtt.Client(
        host,
        int(port),
        identifier=f"bench-pub-{os.getpid()}",
        protocol=aiomqtt.ProtocolVersion.V5,
        max_inflight_messages=1000,
        timeout=60,
    ) as client:
        client.pending_calls_threshold = 1 << 30
        t0 = time.time()
        window = 500 if rate <= 0 else 1
        i = 0
        while i < n:
            chunk = range(i, min(n, i + window))
            await asyncio.gather(
                *(
                    client.publish(
                        TOPIC.format(device=f"d{j % 10}"),
                        json.dumps({"i": j, "sent": time.time(), "v": 21.5}),
                        qos=1,
                    )
                    for j in chunk
                )
            )
            i += len(chunk)
            if rate > 0:
                delay = t0 + i / rate - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
        _write_atomic(out, json.dumps({"first": t0, "last": time.time(), "n": n}))


async def role_bare(url: str, n: int, out: str, mode: str) -> None:
    """A bare aiomqtt QoS 1 subscriber: receive n messages, record first and last arrival.

    ``mode``: ``live`` (fresh session), ``session`` (create a persistent session and leave),
    ``drain`` (resume that session and drain what the broker kept).
    """
    import aiomqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    host, port = url.removeprefix("mqtt://").split(":")
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600 if mode != "live" else 0
    async with aiomqtt.Client(
        host,
        int(port),
        identifier="bench-bare",
        protocol=aiomqtt.ProtocolVersion.V5,
        clean_start=mode == "live",
        properties=props,
    ) as client:
        if mode != "drain":
            await client.subscribe("bench/+/reading", qos=1)
        print("READY", flush=True)
        if mode == "session":
            return
        count, first = 0, 0.0
        async for _ in client.messages:
            count += 1
            if count == 1:
                first = time.time()
            if count >= n:
                break
        _write_atomic(out, json.dumps({"first": first, "last": time.time(), "n": count}))


# -- runs -----------------------------------------------------------------------------------------


def write_config(
    work: Path,
    broker: Broker,
    inflight: int,
    session: bool = False,
    db: Path | None = None,
    queue_url: str | None = None,
    worker: str = "",
) -> Path:
    path = work / f"mqttq-{time.monotonic_ns()}.toml"
    db = db or work / f"queue-{time.monotonic_ns()}.db"
    path.write_text(
        f"""
[mqtt]
url = "{broker.url}"
client_id = "bench-listener-{os.getpid()}{"-session" if session else time.monotonic_ns()}"
inflight = {inflight}
session_expiry = {3600 if session else 0}

[queue]
url = "{queue_url or f"sqlite:///{db}"}"

[worker]
{worker}

[[routes]]
topic = "bench/{{device}}/reading"
job = "bench_ingest:ingest_job"
qos = 1
"""
    )
    return path


def start_mqttq(work: Path, config: Path, command: str, expect: int, out: Path) -> Any:
    env = c.child_env(BENCH_OUT=str(out), BENCH_EXPECT=str(expect), MQTTQ_CONFIG=str(config))
    mqttq = str(Path(sys.executable).with_name("mqttq"))
    log_path = work / f"{command}-{time.monotonic_ns()}.log"
    log = open(log_path, "w")  # noqa: SIM115
    proc = subprocess.Popen([mqttq, command], cwd=work, env=env, stderr=log, stdout=log)
    ready = "listening: " if command != "worker" else "worker "
    c.wait_for(lambda: ready in log_path.read_text(), 30, what=f"mqttq {command} to start")
    return proc, log


def publish(broker: Broker, work: Path, n: int, rate: float = 0.0) -> dict[str, float]:
    out = work / f"pub-{time.monotonic_ns()}.json"
    subprocess.run(
        c.python_cmd(__file__, "--role", "publish", broker.url, str(n), str(rate), str(out)),
        env=c.child_env(),
        check=True,
    )
    result: dict[str, float] = json.loads(out.read_text())
    return result


def bare(broker: Broker, out: Path, n: int, mode: str) -> subprocess.Popen[str]:
    sub = subprocess.Popen(
        c.python_cmd(__file__, "--role", "bare", broker.url, str(n), str(out), mode),
        env=c.child_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert sub.stdout is not None
    assert sub.stdout.readline().strip() == "READY"
    return sub


def run_bare(broker: Broker, work: Path, n: int) -> tuple[float, float]:
    """Live: (subscriber rate from first publish to last receipt, publisher rate)."""
    out = work / f"bare-{time.monotonic_ns()}.json"
    sub = bare(broker, out, n, "live")
    pub = publish(broker, work, n)
    c.wait_for(out.exists, 300, what="the bare subscriber")
    sub.wait(30)
    got = json.loads(out.read_text())
    return c.rate(n, got["last"] - pub["first"]), c.rate(n, pub["last"] - pub["first"])


def drain_bare(broker: Broker, work: Path, n: int) -> float:
    """Backlog: n messages kept for an absent session, then drained (first to last receipt)."""
    out = work / f"bare-drain-{time.monotonic_ns()}.json"
    bare(broker, out, n, "session").wait(30)
    publish(broker, work, n)
    sub = bare(broker, out, n, "drain")
    c.wait_for(out.exists, 300, what="the bare subscriber")
    sub.wait(30)
    got = json.loads(out.read_text())
    return c.rate(n, got["last"] - got["first"])


def run_mqttq(
    broker: Broker,
    work: Path,
    n: int,
    rate: float = 0.0,
    variant: str = MQTTQ,
    redis_url: str | None = None,
) -> list[list[float]]:
    """Records (i, sent, started, done) of n jobs run by a variant (``mqttq run`` by default),
    then one row (-1, first publish, last publish, 0)."""
    queue, commands, worker = VARIANTS[variant]
    out = work / f"mqttq-{time.monotonic_ns()}.json"
    queue_url = None
    if queue == "redis":
        assert redis_url is not None, "the redis variants need a redis-server"
        queue_url = f"{redis_url}?prefix=bench{time.monotonic_ns()}:"
    config = write_config(work, broker, inflight=1000, queue_url=queue_url, worker=worker)
    procs = [start_mqttq(work, config, command, n, out) for command in commands]
    try:
        pub = publish(broker, work, n, rate)
        c.wait_for(out.exists, 600, interval=0.05, what=f"{n} jobs done")
    finally:
        for proc, log in procs:
            c.stop_process(proc)
            log.close()
    records = read_records(out, n)
    records.append([-1, pub["first"], pub["last"], 0.0])
    return records


def ingest_only(broker: Broker, work: Path, n: int) -> float:
    """``mqttq listen`` alone: first publish -> last job queued in SQLite, msg/s."""
    db = work / f"ingest-{time.monotonic_ns()}.db"
    config = write_config(work, broker, inflight=1000, db=db)
    proc, log = start_mqttq(work, config, "listen", 0, work / "unused.json")
    try:
        pub = publish(broker, work, n)
        _, last = queued_between(db, n)
    finally:
        c.stop_process(proc)
        log.close()
    return c.rate(n, last - pub["first"])


def _session_with_backlog(
    broker: Broker, work: Path, n: int, queue_url: str | None = None, worker: str = ""
) -> Path:
    """`mqttq listen` makes its session and stops; then n messages wait for it on the broker."""
    config = write_config(
        work, broker, inflight=1000, session=True, queue_url=queue_url, worker=worker
    )
    proc, log = start_mqttq(work, config, "listen", 0, work / "unused.json")
    c.stop_process(proc)
    log.close()
    publish(broker, work, n)
    return config


def drain_mqttq(
    broker: Broker, work: Path, n: int, variant: str = MQTTQ, redis_url: str | None = None
) -> float:
    """Backlog: a variant drains n messages kept for its session (first job start to last job
    done)."""
    queue, commands, worker = VARIANTS[variant]
    queue_url = f"{redis_url}?prefix=drain{time.monotonic_ns()}:" if queue == "redis" else None
    config = _session_with_backlog(broker, work, n, queue_url, worker)
    out = work / f"mqttq-drain-{time.monotonic_ns()}.json"
    procs = [start_mqttq(work, config, command, n, out) for command in commands]
    try:
        c.wait_for(out.exists, 600, interval=0.05, what=f"{n} jobs done")
    finally:
        for proc, log in procs:
            c.stop_process(proc)
            log.close()
    records = read_records(out, n)
    return c.rate(n, max(r[3] for r in records) - min(r[2] for r in records))


def queued_between(db: Path, n: int) -> tuple[float, float]:
    """Once ``n`` jobs are queued in ``db``: when the first and the last was made."""
    import sqlite3

    def all_queued() -> bool:
        with sqlite3.connect(db, timeout=10) as conn:
            return bool(conn.execute("SELECT count(*) FROM mqttq_jobs").fetchone()[0] >= n)

    c.wait_for(all_queued, 600, interval=0.05, what=f"{n} jobs queued")
    with sqlite3.connect(db, timeout=10) as conn:
        first, last = conn.execute(
            "SELECT min(json_extract(envelope, '$.enqueued_at')), "
            "max(json_extract(envelope, '$.enqueued_at')) FROM mqttq_jobs"
        ).fetchone()
    return float(first), float(last)


def drain_ingest(broker: Broker, work: Path, n: int) -> float:
    """Backlog, `mqttq listen` alone (SQLite): first job made to last job made."""
    db = work / f"drain-ingest-{time.monotonic_ns()}.db"
    config = write_config(work, broker, inflight=1000, session=True, db=db)
    proc, log = start_mqttq(work, config, "listen", 0, work / "unused.json")
    c.stop_process(proc)
    log.close()
    publish(broker, work, n)
    proc, log = start_mqttq(work, config, "listen", 0, work / "unused.json")
    try:
        first, last = queued_between(db, n)
    finally:
        c.stop_process(proc)
        log.close()
    return c.rate(n, last - first)


def read_records(out: Path, n: int) -> list[list[float]]:
    records: list[list[float]] = json.loads(out.read_text())
    distinct = len({r[0] for r in records})
    if distinct != n:
        raise RuntimeError(f"{distinct} distinct jobs ran, expected {n}")
    return records


def rss_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def run_memory(broker: Broker, work: Path, n: int) -> list[tuple[float, int]]:
    """RSS samples (seconds, bytes) of `mqttq listen` while n messages go into SQLite."""
    db = work / "memory.db"
    config = write_config(work, broker, inflight=1000, db=db)
    proc, log = start_mqttq(work, config, "listen", 0, work / "unused.json")
    samples: list[tuple[float, int]] = []
    stop = threading.Event()

    def sample() -> None:
        t0 = time.monotonic()
        while not stop.is_set():
            samples.append((time.monotonic() - t0, rss_of(proc.pid)))
            stop.wait(0.5)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        publish(broker, work, n)
        import sqlite3

        def all_queued() -> bool:
            with sqlite3.connect(db, timeout=10) as conn:
                return bool(conn.execute("SELECT count(*) FROM mqttq_jobs").fetchone()[0] >= n)

        c.wait_for(all_queued, 600, interval=0.5, what=f"{n} jobs queued")
    finally:
        stop.set()
        sampler.join()
        c.stop_process(proc, signal.SIGTERM)
        log.close()
    return samples


@contextlib.contextmanager
def redis_server(work: Path) -> Iterator[str]:
    """A private redis-server (no persistence) for the Redis variants."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = c.free_port()
    cmd = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(work),
           "--save", "", "--appendonly", "no"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import socket

    def up() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    try:
        c.wait_for(up, 15, what="redis-server")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        c.stop_process(proc)


# -- main -----------------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small counts (smoke run)")
    p.add_argument("--rounds", type=int, default=3, help="rounds of the throughput cases")
    p.add_argument("--role", nargs="+", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.role:
        role, *rest = args.role
        if role == "publish":
            asyncio.run(role_publish(rest[0], int(rest[1]), float(rest[2]), rest[3]))
        elif role == "bare":
            asyncio.run(role_bare(rest[0], int(rest[1]), rest[2], rest[3]))
        return 0

    started = time.time()
    warning = c.load_warning()
    if warning:
        print(f"warning: {warning}", flush=True)
    n = 3000 if args.quick else 20000
    paced = 600 if args.quick else 3000
    memory_n = 10000 if args.quick else 100000
    rounds = 1 if args.quick else args.rounds
    metrics: list[c.Metric] = []
    with (
        c.workdir("mqttq-bench-ingest-") as work,
        Broker(work) as broker,
        redis_server(work) as redis_url,
    ):
        c.banner(f"throughput: {n} QoS 1 messages, live, {rounds} round(s), round-robin")
        rates: dict[str, list[float]] = {v: [] for v in (BARE, *VARIANTS, INGEST)}
        pubs: list[float] = []
        for _ in range(rounds):
            rate_, pub_ = run_bare(broker, work, n)
            rates[BARE].append(rate_)
            pubs.append(pub_)
            for variant in VARIANTS:
                records = run_mqttq(broker, work, n, variant=variant, redis_url=redis_url)
                first = records[-1][1]
                rates[variant].append(c.rate(n, max(r[3] for r in records[:-1]) - first))
            rates[INGEST].append(ingest_only(broker, work, n))
            print("; ".join(f"{k} {v[-1]:,.0f}" for k, v in rates.items()), flush=True)
        medians = {k: c.median(v) for k, v in rates.items()}
        best_tuned = max(v for k, v in medians.items() if k.startswith("tuned"))
        rows = [
            [k, c.fmt_value(v, "msg/s"), f"{v / medians[BARE]:.0%}", f"{v / medians[INGEST]:.0%}"]
            for k, v in medians.items()
        ]
        print(c.format_table(["system", "msg/s (median)", "vs bare", "vs listen"], rows))
        mqttq_rate, bare_rate = medians[MQTTQ], medians[BARE]
        metrics.append(
            c.Metric(
                metric="ingest QoS 1 live, publish -> job done (median)",
                unit="msg/s",
                values={
                    **{k: medians[k] for k in VARIANTS},
                    INGEST: medians[INGEST],
                    BARE: bare_rate,
                    "flowerpower-mqtt (reference)": FLOWERPOWER_REFERENCE,
                },
                subject=MQTTQ,
                references={
                    "vs bare": BARE,
                    "vs own ingest": INGEST,
                    "vs flowerpower": "flowerpower-mqtt (reference)",
                },
                goal=">= 60% bare, >= 4x flowerpower; default >= 80% of the best tuned",
                met=mqttq_rate >= 0.6 * bare_rate
                and mqttq_rate >= 4 * FLOWERPOWER_REFERENCE
                and mqttq_rate >= 0.8 * best_tuned,
                note=f"default config: {mqttq_rate / best_tuned:.0%} of the best tuned figure "
                f"({best_tuned:,.0f}); redis default {medians['mqttq run (redis)']:,.0f}; "
                f"publisher alone (median): {c.median(pubs):,.0f} msg/s; flowerpower-mqtt is a "
                "reference figure, not measured",
                extra=rates,
            )
        )

        c.banner(f"throughput: a backlog of {n} QoS 1 messages drained, {rounds} round(s)")
        drains: dict[str, list[float]] = {v: [] for v in (BARE, *VARIANTS, INGEST)}
        for _ in range(rounds):
            # a fresh broker each: the sessions a drain leaves behind would keep collecting
            # every later message and slow the broker down
            with Broker(work) as fresh:
                drains[BARE].append(drain_bare(fresh, work, n))
            for variant in VARIANTS:
                with Broker(work) as fresh:
                    drains[variant].append(drain_mqttq(fresh, work, n, variant, redis_url))
            with Broker(work) as fresh:
                drains[INGEST].append(drain_ingest(fresh, work, n))
            print("; ".join(f"{k} {v[-1]:,.0f}" for k, v in drains.items()), flush=True)
        medians = {k: c.median(v) for k, v in drains.items()}
        best_tuned = max(v for k, v in medians.items() if k.startswith("tuned"))
        rows = [
            [k, c.fmt_value(v, "msg/s"), f"{v / medians[BARE]:.0%}", f"{v / medians[INGEST]:.0%}"]
            for k, v in medians.items()
        ]
        print(c.format_table(["system", "msg/s (median)", "vs bare", "vs listen"], rows))
        metrics.append(
            c.Metric(
                metric="ingest QoS 1 backlog drain, -> job done (median)",
                unit="msg/s",
                values={
                    **{k: medians[k] for k in VARIANTS},
                    INGEST: medians[INGEST],
                    BARE: medians[BARE],
                },
                subject=MQTTQ,
                references={"vs bare": BARE, "vs own ingest": INGEST},
                goal=">= 60% bare; default >= 80% of the best tuned",
                met=medians[MQTTQ] >= 0.6 * medians[BARE] and medians[MQTTQ] >= 0.8 * best_tuned,
                note=f"default config: {medians[MQTTQ] / best_tuned:.0%} of the best tuned "
                f"figure ({best_tuned:,.0f}); redis default {medians['mqttq run (redis)']:,.0f}",
                extra=drains,
            )
        )

        c.banner(f"latency: {paced} messages at 200 msg/s")
        paced_records = run_mqttq(broker, work, paced, rate=200)[:-1]
        lat = [(r[2] - r[1]) * 1000 for r in paced_records]
        p50, p99 = c.percentile(lat, 50), c.percentile(lat, 99)
        print(f"publish -> job start: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
        metrics.append(
            c.Metric(
                metric="latency publish -> job start @200 msg/s p50",
                unit="ms",
                values={MQTTQ: p50},
                subject=MQTTQ,
                higher_is_better=False,
                goal="<= 10 ms",
                met=p50 <= 10,
            )
        )
        metrics.append(
            c.Metric(
                metric="latency publish -> job start @200 msg/s p99",
                unit="ms",
                values={MQTTQ: p99},
                subject=MQTTQ,
                higher_is_better=False,
                goal="<= 50 ms",
                met=p99 <= 50,
            )
        )

        c.banner(f"memory: `mqttq listen` while {memory_n} messages pass")
        samples = run_memory(broker, work, memory_n)
        mib = [s / 2**20 for _, s in samples if s]
        quarter = max(1, len(mib) // 4)  # the first quarter is warm-up (caches, lazy imports)
        early, late = max(mib[quarter : 2 * quarter] or mib), max(mib[-quarter:])
        print(f"RSS: start {mib[0]:.1f} MiB, peak {max(mib):.1f} MiB, second quarter max "
              f"{early:.1f}, last quarter max {late:.1f} ({len(mib)} samples)")  # fmt: skip
        metrics.append(
            c.Metric(
                metric=f"listener RSS over {memory_n:,} messages (last quarter max)",
                unit="MiB",
                values={MQTTQ: late},
                subject=MQTTQ,
                higher_is_better=False,
                goal="flat",
                met=late <= early * 1.1 + 2,
                extra={"start_mib": mib[0], "peak_mib": max(mib), "second_quarter_max": early},
                note=f"second quarter max {early:.1f} MiB, peak {max(mib):.1f} MiB",
            )
        )
    print()
    print(c.metrics_table(metrics, [(MQTTQ, MQTTQ), (BARE, BARE)]))
    path = c.save_results(
        NAME,
        metrics,
        started=started,
        settings={
            "n": n,
            "rounds": rounds,
            "paced": paced,
            "memory_n": memory_n,
            "warning": warning,
        },
    )
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
