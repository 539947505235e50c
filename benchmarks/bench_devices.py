"""The device command queue: ``DeviceClient.send`` vs a bare aiomqtt publish of the same payloads,
one private Mosquitto, same run, same machine.

    python benchmarks/bench_devices.py            # the full run (a few minutes)
    python benchmarks/bench_devices.py --quick    # small counts: a smoke run, not figures

Every command is a ~300-byte JSON control (the shape of a Navien NWP500 request), QoS 1, to a
device family whose devices send no acknowledgement: a command is settled at its PUBACK, so the
figures are the queue's own cost over publishing. Defaults are mqttq's, except where a row says
otherwise (pacing off, and a 1,000-command window for the backlog flush: with pacing on, a
flush is paced by design).

Figures:

(a) **connected send**, one awaited call after the other, and 100 calls at a time
    (``asyncio.gather``), to one device and spread over 100 devices; the bare client publishes
    the same payloads the same way.
(b) **backlog flush**: 10,000 commands queued while disconnected, then the connection comes:
    time from connected to the last PUBACK, with the in-memory store and the durable SQLite
    store; bare: 10,000 publishes with 1,000 in flight.
(c) **memory** per 10,000 queued commands (tracemalloc, in this process), both stores.

Rounds run round-robin (``--rounds``, medians).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, ClassVar

import _common as c
from bench_ingest import Broker

NAME = "devices"
MQTTQ = "mqttq DeviceClient"
BARE = "bare aiomqtt"


def payload(i: int, device: str) -> bytes:
    body = {
        "clientID": "navien-client-bench0001",
        "sessionID": uuid.UUID(int=i).hex,
        "protocolVersion": 2,
        "request": {
            "command": 33554464,
            "deviceType": 52,
            "macAddress": device,
            "additionalValue": "5322",
            "mode": "dhw-temperature",
            "param": [100 + i % 30],
            "paramStr": "",
        },
        "requestTopic": f"cmd/52/navilink-{device}/ctrl",
        "responseTopic": f"cmd/52/navilink-{device}/navien-client-bench0001/res",
    }
    return json.dumps(body, separators=(",", ":")).encode()


def devices(n: int) -> list[str]:
    return [f"{k:012x}" for k in range(n)]


# -- mqttq ----------------------------------------------------------------------------------------


def make_client(url: str, *, store: str = "memory://", window: int = 1000) -> Any:
    import mqttq
    from mqttq.config import structure
    from mqttq.devices import Command, DeviceAdapter, DeviceClient, Reply
    from mqttq.plugin import Register

    class Bench(DeviceAdapter):
        family = "bench"
        in_flight: ClassVar[int] = window

        def subscriptions(self, device: str) -> list[str]:
            return []

        def interpret(self, topic: str, payload: bytes) -> Reply | None:
            return None

        def command(self, i: int, device: str) -> Command:
            return Command(
                device=device,
                kind="dhw-temperature",
                family="bench",
                topic=f"cmd/52/navilink-{device}/ctrl",
                payload=payload(i, device),
                acknowledged_by_device=False,
            )

    class Plugin:
        @mqttq.hookimpl
        def mqttq_register_devices(self, register: Register) -> None:
            register("bench", Bench)

    config = structure(
        {
            "mqtt": {"url": url, "reconnect_min": 0.05, "reconnect_max": 0.2},
            "queue": {"url": "memory://"},
            "devices": {
                "store": store,
                "pacing": 0,
                "max_queued_commands": 20000,
                "max_queued_command_age": 0,
            },
        }
    )
    host = mqttq.make_plugin_manager(extra=[("bench", Plugin())])
    return DeviceClient(mqttq.App(config, host=host))


async def mqttq_send(url: str, n: int, targets: list[str], batch: int) -> float:
    client = make_client(url)
    for d in targets:
        client.add_device("bench", d)
    async with client:
        await client.wait_connected(30)
        adapter = client.adapter("bench")
        commands = [adapter.command(i, targets[i % len(targets)]) for i in range(n)]
        start = time.perf_counter()
        if batch == 1:
            for command in commands:
                await client.send(command)
        else:
            for k in range(0, n, batch):
                await asyncio.gather(*(client.send(x) for x in commands[k : k + batch]))
        handles = client.pending()
        for h in handles:
            await h.wait(60)
        return c.rate(n, time.perf_counter() - start)


async def mqttq_flush(url: str, broker: Broker, n: int, store: str) -> float:
    """n commands queued while the broker is down, flushed once it is up."""
    broker.__exit__()
    client = make_client(url, store=store)
    target = devices(1)[0]
    client.add_device("bench", target)
    async with client:
        adapter = client.adapter("bench")
        handles = [await client.send(adapter.command(i, target)) for i in range(n)]
        broker.__enter__()
        await client.wait_connected(60)
        start = time.perf_counter()
        for h in handles:
            await h.wait(120)
        return c.rate(n, time.perf_counter() - start)


async def mqttq_memory(url: str, n: int, store: str) -> float:
    """Bytes of Python memory per queued command (tracemalloc), the broker unreachable."""
    client = make_client(url.rsplit(":", 1)[0] + ":9", store=store)  # port 9: nothing listens
    target = devices(1)[0]
    client.add_device("bench", target)
    async with client:
        adapter = client.adapter("bench")
        commands = [adapter.command(i, target) for i in range(n)]
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for command in commands:
            await client.send(command)
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        del commands
        await client.disconnect()
    return (after - before) / n


# -- bare aiomqtt ---------------------------------------------------------------------------------


async def bare_send(url: str, n: int, targets: list[str], batch: int) -> float:
    import aiomqtt

    host, port = url.removeprefix("mqtt://").split(":")
    async with aiomqtt.Client(
        host, int(port), identifier=f"bench-bare-{uuid.uuid4().hex[:6]}", max_inflight_messages=1000
    ) as client:
        client.pending_calls_threshold = 1 << 30
        messages = [
            (f"cmd/52/navilink-{targets[i % len(targets)]}/ctrl", payload(i, targets[0]))
            for i in range(n)
        ]
        start = time.perf_counter()
        if batch == 1:
            for topic, body in messages:
                await client.publish(topic, body, qos=1)
        else:
            for k in range(0, n, batch):
                chunk = messages[k : k + batch]
                await asyncio.gather(*(client.publish(t, b, qos=1) for t, b in chunk))
        return c.rate(n, time.perf_counter() - start)


# -- main -----------------------------------------------------------------------------------------


def rounds_of(fns: dict[str, Callable[[], Awaitable[float]]], rounds: int) -> dict[str, float]:
    results: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            results[name].append(asyncio.run(fn()))  # type: ignore[arg-type]
    return {k: c.median(v) for k, v in results.items()}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small counts (smoke run)")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    n = 2000 if args.quick else 10000
    rounds = 1 if args.quick else args.rounds
    started = time.time()
    warning = c.load_warning()
    if warning:
        print(f"warning: {warning}", flush=True)
    metrics: list[c.Metric] = []
    with tempfile.TemporaryDirectory(prefix="mqttq-bench-devices-") as tmp, Broker(Path(tmp)) as b:
        url = b.url
        for label, targets in (("1 device", devices(1)), ("100 devices", devices(100))):
            for batch in (1, 100):
                how = "one at a time" if batch == 1 else "100 at a time"
                c.banner(f"connected send, {label}, {how}: {n} commands")
                got = rounds_of(
                    {
                        MQTTQ: lambda t=targets, bt=batch: mqttq_send(url, n, t, bt),
                        BARE: lambda t=targets, bt=batch: bare_send(url, n, t, bt),
                    },
                    rounds,
                )
                print({k: f"{v:,.0f}" for k, v in got.items()}, flush=True)
                metrics.append(
                    c.Metric(
                        metric=f"send while connected, {label}, {how}",
                        unit="cmd/s",
                        values=got,
                        subject=MQTTQ,
                        references={"vs bare": BARE},
                        goal=">= 80% of bare publish",
                        met=got[MQTTQ] >= 0.8 * got[BARE],
                    )
                )
        c.banner(f"backlog of {n} flushed after connecting (pacing off, 1,000 in flight)")
        db = Path(tmp) / "commands.db"
        flush = rounds_of(
            {
                "mqttq, in-memory store": lambda: mqttq_flush(url, b, n, "memory://"),
                "mqttq, SQLite store": lambda: mqttq_flush(url, b, n, f"sqlite:///{db}"),
                BARE: lambda: bare_send(url, n, devices(1), 1000),
            },
            rounds,
        )
        print({k: f"{v:,.0f}" for k, v in flush.items()}, flush=True)
        for store, goal in (("in-memory store", 0.8), ("SQLite store", 0.5)):
            key = f"mqttq, {store}"
            metrics.append(
                c.Metric(
                    metric=f"flush a {n:,}-command backlog, {store}",
                    unit="cmd/s",
                    values={MQTTQ: flush[key], BARE: flush[BARE]},  # the row names the store
                    subject=MQTTQ,
                    references={"vs bare": BARE},
                    goal=f">= {goal:.0%} of bare publish",
                    met=flush[key] >= goal * flush[BARE],
                )
            )
        c.banner(f"memory per queued command ({n} queued)")
        mem_db = Path(tmp) / "memory.db"
        for store, label in (("memory://", "in-memory store"), (f"sqlite:///{mem_db}", "SQLite")):
            per = asyncio.run(mqttq_memory(url, n, store))
            print(f"{label}: {per:,.0f} bytes per command", flush=True)
            metrics.append(
                c.Metric(
                    metric=f"Python memory per queued command, {label}",
                    unit="bytes",
                    values={MQTTQ: per},
                    subject=MQTTQ,
                    higher_is_better=False,
                    note=f"tracemalloc while {n:,} commands were queued",
                )
            )
    print()
    print(c.metrics_table(metrics, [(MQTTQ, MQTTQ), (BARE, BARE)]))
    path = c.save_results(
        NAME, metrics, started=started, settings={"n": n, "rounds": rounds, "warning": warning}
    )
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
