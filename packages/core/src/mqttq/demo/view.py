"""What ``mqttq demo`` shows: the live view while it runs, and the summary after."""

from __future__ import annotations

import math
import time

import attrs
from rich.console import Console, Group
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from mqttq.demo import jobs
from mqttq.demo.heaters import OUTAGE, Traffic, mac_of
from mqttq.hookspecs import hookimpl
from mqttq.listener import Listener
from mqttq.models import JobEvent

#: how the view colours a command's state
_STATE_STYLE = {"queued": "yellow", "sent": "cyan", "acknowledged": "green"}


@attrs.define
class Counters:
    started: int = 0
    done: int = 0
    failed: int = 0
    retries: int = 0

    @property
    def processed(self) -> int:
        return self.done + self.failed


class JobCounter:
    """Counts job events (the ``mqttq_job_event`` hook any plugin can implement)."""

    def __init__(self, counters: Counters) -> None:
        self.counters = counters

    @hookimpl
    def mqttq_job_event(self, event: JobEvent) -> None:
        c = self.counters
        if event.kind == "started":
            c.started += 1
        elif event.kind == "succeeded":
            c.done += 1
        elif event.kind == "failed":
            c.failed += 1
        elif event.kind == "retrying":
            c.retries += 1


@attrs.frozen(kw_only=True)
class Where:
    broker: str
    embedded: bool
    queue: str


def connecting(url: str, since: float, timeout: float) -> Text:
    waited = time.monotonic() - since
    return Text.assemble(
        ("mqttq demo", "bold"),
        f"  connecting to the MQTT broker at {url} ... {waited:.0f}s ",
        (f"(giving up after {timeout:g}s; Ctrl-C to stop)", "dim"),
    )


def live(
    where: Where, heaters: int, expected: int, c: Counters, traffic: Traffic, listener: Listener
) -> Group:
    s = listener.stats
    head = Text.assemble(("mqttq demo", "bold"), "  broker ")
    head.append(f"{where.broker} ({'embedded amqtt' if where.embedded else 'external'})", "cyan")
    head.append("  queue ")
    head.append(where.queue, "cyan")
    flow = Table(box=None, padding=(0, 2))
    for name in ("requested", "replies", "received", "queued", "running", "done", "failed"):
        flow.add_column(name, justify="right")
    flow.add_column("retries", justify="right")
    running = max(0, c.started - c.done - c.failed - c.retries)
    flow.add_row(
        str(traffic.requested),
        str(traffic.published),
        str(s.received),
        str(s.enqueued),
        str(running),
        Text(str(c.done), "green"),
        Text(str(c.failed), "red" if c.failed else ""),
        str(c.retries),
    )
    total = max(expected, traffic.published, 1)
    bar = ProgressBar(total=total, completed=min(c.processed, total), width=50)
    progress = Text(f" {c.processed}/{total} processed")
    parts: list[Text | Table | Group] = [head, Text(), flow, Text(), Group(bar, progress)]
    parts += [Text(), _heaters(heaters), Text(), _commands(traffic)]
    return Group(*parts)


def _heaters(count: int) -> Table:
    table = Table(box=None, padding=(0, 2))
    for name in ("heater", "mac", "replies", "tank °C", "setpoint °C", "mode"):
        table.add_column(name, justify="left" if name in ("heater", "mac", "mode") else "right")
    for number in range(1, count + 1):
        mac = mac_of(number)
        view = jobs.HEATERS.get(mac, jobs.HeaterView())
        table.add_row(
            f"heater-{number}",
            mac,
            str(view.replies),
            f"{view.tank:.1f}",
            f"{view.setpoint:.1f}",
            view.mode,
        )
    return table


def _commands(traffic: Traffic) -> Group | Text:
    outage = {
        "not yet": Text("device client connection: up (a cut comes at about 30%)", "dim"),
        "cut": Text(
            f"device client connection: CUT for {OUTAGE:g}s; commands wait in their heater's "
            "lane, status requests are never queued",
            "yellow",
        ),
        "restored": Text("device client connection: restored", "green"),
    }.get(traffic.outage, Text(f"device client connection: {traffic.outage}", "dim"))
    if not traffic.commands:
        return outage
    table = Table(box=None, padding=(0, 2))
    for name in ("command", "heater", "state", "path"):
        table.add_column(name)
    for sent in traffic.commands:
        path = sent.path
        state = path[-1] if path else "queued"
        table.add_row(
            sent.what,
            f"heater-{sent.heater}",
            Text(state, _STATE_STYLE.get(state, "red")),
            " -> ".join(path),
        )
    return Group(outage, table)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))] if ordered else math.nan


def summary(
    console: Console,
    c: Counters,
    traffic: Traffic,
    listener: Listener,
    elapsed: float,
    where: Where,
    kept: bool,
) -> None:
    s = listener.stats
    console.print()
    console.print("[bold]Summary[/bold]")
    console.print(
        f"  {traffic.published} replies published, {s.received} received, {s.enqueued} jobs queued"
    )
    console.print(
        f"  {c.processed} processed: {c.done} done, {c.failed} failed "
        f"({c.retries} retried first; the failures are heaters reporting an error code)"
    )
    rtt = traffic.round_trips
    if rtt:
        console.print(
            f"  {traffic.requested} status requests ({traffic.refused} more refused while cut "
            "off); "
            f"request -> reply p50 {percentile(rtt, 50) * 1000:.1f} ms, "
            f"p99 {percentile(rtt, 99) * 1000:.1f} ms; {c.processed / elapsed:.0f} jobs/s"
        )
    if traffic.commands:
        states = [sent.path[-1] if sent.path else "queued" for sent in traffic.commands]
        acknowledged = states.count("acknowledged")
        console.print(
            f"  {len(states)} commands sent while the device client was cut off: "
            f"{acknowledged} acknowledged"
            + ("" if acknowledged == len(states) else f" ({', '.join(states)})")
        )
    if kept:
        console.print(
            f"  queue kept in {where.queue}: try `MQTTQ_QUEUE_URL={where.queue} mqttq failed list`"
        )
    elif where.queue.startswith("sqlite"):
        console.print("  the queue was a temporary SQLite file (keep one with --db demo.db)")
    else:
        console.print("  the queue was in memory (install mqttq-sqlite for a durable one)")
