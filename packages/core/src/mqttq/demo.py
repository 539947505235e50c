"""``mqttq demo``: the whole pipeline on one machine with nothing installed beside mqttq.

An embedded MQTT broker (amqtt, pure Python, in this process, on a free local port) or
``--broker URL``; a SQLite queue in a temporary directory (or ``--db``); the listener and
in-process workers (``serve``, exactly what ``mqttq run`` does); and simulated heaters publishing
telemetry. A live view follows messages received -> jobs queued -> done / failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import signal
import socket
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import attrs
import orjson
from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from mqttq import demo_jobs
from mqttq.app import App
from mqttq.config import structure
from mqttq.errors import MqttqError
from mqttq.hookspecs import hookimpl
from mqttq.listener import Listener
from mqttq.models import JobEvent
from mqttq.plugins import make_plugin_manager
from mqttq.run import serve

log = logging.getLogger("mqttq.demo")

#: a stalled demo (no progress for this long) gives up instead of hanging
STALL_TIMEOUT = 60.0
#: how long the demo waits for the broker before it gives up
CONNECT_TIMEOUT = 10.0
#: every FAULT_EVERY-th reading of the last device reports a sensor fault (a failing job)
FAULT_EVERY = 10


@attrs.frozen(kw_only=True)
class DemoOptions:
    messages: int = 500
    devices: int = 5
    rate: float = 200.0
    broker: str | None = None
    db: Path | None = None


@attrs.define
class Counters:
    published: int = 0
    started: int = 0
    done: int = 0
    failed: int = 0
    retries: int = 0

    @property
    def processed(self) -> int:
        return self.done + self.failed


class _Observer:
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def embedded_broker() -> AsyncIterator[str]:
    """An amqtt broker on a free local port, for the duration of the block."""
    try:
        from amqtt.broker import Broker  # type: ignore[import-untyped]
    except ImportError:
        raise MqttqError(
            "the demo's embedded MQTT broker needs amqtt: pip install 'mqttq[demo]' "
            "(or give a broker of your own with --broker mqtt://host:1883)"
        ) from None

    for name in ("amqtt", "transitions"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    port = _free_port()
    broker = Broker(
        {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }
    )
    try:
        await broker.start()
    except Exception as exc:
        raise MqttqError(f"cannot start the embedded MQTT broker: {exc}") from None
    try:
        yield f"mqtt://127.0.0.1:{port}"
    finally:
        with contextlib.suppress(Exception):
            await broker.shutdown()


async def simulate_devices(
    app: App, prefix: str, opts: DemoOptions, counters: Counters, stop: asyncio.Event
) -> None:
    """Heaters taking turns to publish a reading (QoS 1) at ``opts.rate`` in total."""
    publisher = app.make_transport(client_id=f"mqttq-demo-devices-{uuid.uuid4().hex[:6]}")
    async with publisher:
        interval = 1.0 / opts.rate
        started = time.monotonic()
        seq = 0
        while not stop.is_set() and (opts.messages == 0 or seq < opts.messages):
            device = seq % opts.devices + 1
            n = seq // opts.devices
            reading = {
                "seq": seq,
                "temperature": round(48 + 6 * math.sin(n / 7 + device) + device / 2, 2),
                "flow": round(2.5 + math.cos(n / 5 + device), 2),
                "fault": device == opts.devices and n % FAULT_EVERY == FAULT_EVERY - 1,
                "ts": time.time(),
            }
            await publisher.publish(f"{prefix}/heater-{device}/telemetry", orjson.dumps(reading))
            seq += 1
            counters.published = seq
            delay = started + seq * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)  # pacing, not synchronisation


def _connecting(url: str, since: float) -> Text:
    waited = time.monotonic() - since
    return Text.assemble(
        ("mqttq demo", "bold"),
        f"  connecting to the MQTT broker at {url} ... {waited:.0f}s ",
        (f"(giving up after {CONNECT_TIMEOUT:g}s; Ctrl-C to stop)", "dim"),
    )


def _view(
    opts: DemoOptions,
    url: str | None,
    embedded: bool,
    queue_url: str,
    c: Counters,
    listener: Listener,
) -> Group:
    s = listener.stats
    total = opts.messages or max(c.published, 1)
    where = f"{url} ({'embedded amqtt' if embedded else 'external'})"
    head = Text.assemble(("mqttq demo", "bold"), "  broker ", (where, "cyan"), "  queue ")
    head.append(queue_url, "cyan")
    flow = Table(box=None, padding=(0, 2))
    for name in ("published", "received", "queued", "running", "done", "failed", "retries"):
        flow.add_column(name, justify="right")
    running = max(0, c.started - c.done - c.failed - c.retries)
    flow.add_row(
        str(c.published),
        str(s.received),
        str(s.enqueued),
        str(running),
        Text(str(c.done), "green"),
        Text(str(c.failed), "red" if c.failed else ""),
        str(c.retries),
    )
    devices = Table(box=None, padding=(0, 2))
    for name in ("device", "readings", "last °C", "avg °C"):
        devices.add_column(name, justify="right" if name != "device" else "left")
    for name, view in sorted(demo_jobs.DEVICES.items()):
        devices.add_row(name, str(view.readings), f"{view.temperature:.1f}", f"{view.average:.1f}")
    bar = ProgressBar(total=total, completed=min(c.processed, total), width=50)
    progress = Text(f" {c.processed}/{total} processed")
    return Group(head, Text(), flow, Text(), Group(bar, progress), Text(), devices)


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))] if ordered else math.nan


async def _demo(opts: DemoOptions, console: Console) -> int:
    demo_jobs.DEVICES.clear()
    demo_jobs.LATENCIES.clear()
    with tempfile.TemporaryDirectory(prefix="mqttq-demo-") as tmp:
        db = opts.db or Path(tmp) / "demo.db"
        queue_url = f"sqlite:///{db}"
        if opts.db is None and not _has_sqlite():
            queue_url = "memory://demo"
            console.print(
                "[yellow]mqttq-sqlite is not installed: the demo keeps its queue in memory "
                "(pip install 'mqttq[demo]' for the durable SQLite queue)[/yellow]"
            )
        async with contextlib.AsyncExitStack() as stack:
            url = opts.broker or await stack.enter_async_context(embedded_broker())
            assert url is not None
            prefix = f"mqttq-demo/{uuid.uuid4().hex[:8]}"
            config = structure(
                {
                    "mqtt": {
                        "url": url,
                        "client_id": f"mqttq-demo-{uuid.uuid4().hex[:6]}",
                        "protocol": "5" if opts.broker else "3.1.1",  # amqtt speaks 3.1.1
                        "session_expiry": 0,
                    },
                    "queue": {"url": queue_url},
                    "worker": {"concurrency": 4, "queues": ["telemetry"], "lease": 30},
                    "routes": [
                        {
                            "topic": prefix + "/{device_id}/telemetry",
                            "job": "mqttq.demo_jobs:record_reading",
                            "payload": "json",
                        }
                    ],
                }
            )
            counters = Counters()
            host = make_plugin_manager(extra=[("demo", _Observer(counters))])
            app = App(config, host=host)
            listener = Listener(app)
            service = asyncio.create_task(
                serve(app, listener=listener, install_signals=False), name="mqttq-demo-service"
            )
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
                stack.callback(loop.remove_signal_handler, sig)
            started = time.monotonic()
            devices: asyncio.Task[None] | None = None
            result = 0
            with Live(console=console, refresh_per_second=8, transient=False) as live:

                def render() -> Group:
                    return _view(opts, url, not opts.broker, queue_url, counters, listener)

                try:
                    since = time.monotonic()
                    while not listener.running.is_set():
                        if stop.is_set():
                            return 130  # interrupted before anything started
                        if service.done():
                            service.result()  # raises the start-up error
                        if time.monotonic() - since > CONNECT_TIMEOUT:
                            raise MqttqError(
                                f"cannot connect to the MQTT broker at {url} within "
                                f"{CONNECT_TIMEOUT:g}s: is it running? (leave out --broker to "
                                "use the embedded one)"
                            )
                        live.update(_connecting(url, since))
                        await asyncio.sleep(0.1)  # the view's refresh
                    devices = asyncio.create_task(
                        simulate_devices(app, prefix, opts, counters, stop)
                    )
                    last, last_change = -1, time.monotonic()
                    while not stop.is_set():
                        live.update(render())
                        if devices.done() and devices.exception() is not None:
                            raise devices.exception()  # type: ignore[misc]
                        if service.done():
                            service.result()
                            break
                        if opts.messages and counters.processed >= opts.messages:
                            break
                        progress = counters.processed + listener.stats.received
                        if progress != last:
                            last, last_change = progress, time.monotonic()
                        elif time.monotonic() - last_change > STALL_TIMEOUT:
                            console.print("[red]mqttq demo: no progress for 60s, giving up[/red]")
                            result = 1
                            break
                        await asyncio.sleep(0.1)  # the view's refresh
                finally:
                    stop.set()
                    listener.stop()
                    if devices is not None:
                        devices.cancel()
                        await asyncio.gather(devices, return_exceptions=True)
                    await asyncio.gather(service, return_exceptions=True)
                    if listener.running.is_set() or listener.stats.received:
                        live.update(render())
            elapsed = time.monotonic() - started
            _summary(console, opts, counters, listener, elapsed, queue_url)
    return result


def _summary(
    console: Console,
    opts: DemoOptions,
    c: Counters,
    listener: Listener,
    elapsed: float,
    queue_url: str,
) -> None:
    s = listener.stats
    lat = demo_jobs.LATENCIES
    console.print()
    console.print("[bold]Summary[/bold]")
    console.print(
        f"  {c.published} messages published, {s.received} received, {s.enqueued} jobs queued"
    )
    console.print(
        f"  {c.processed} processed: {c.done} done, {c.failed} failed "
        f"({c.retries} retried first; the failures are the simulated sensor faults)"
    )
    if lat:
        console.print(
            f"  {c.processed / elapsed:.0f} jobs/s; publish -> job start p50 "
            f"{_percentile(lat, 50) * 1000:.1f} ms, p99 {_percentile(lat, 99) * 1000:.1f} ms"
        )
    if opts.db:
        console.print(
            f"  queue kept in {queue_url}: try `MQTTQ_QUEUE_URL={queue_url} mqttq failed list`"
        )
    else:
        console.print("  the queue was a temporary SQLite file (keep one with --db demo.db)")


def _has_sqlite() -> bool:
    try:
        make_plugin_manager().catalog("queue_drivers").load("sqlite")
    except MqttqError:
        return False
    return True


def run_demo(opts: DemoOptions, console: Console | None = None) -> int:
    """Run the demo; the exit code (0 once the requested messages were processed)."""
    console = console or Console(highlight=False)
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        logging.getLogger("mqttq").setLevel(logging.ERROR)  # warnings would tear the live view
    return asyncio.run(_demo(opts, console))


__all__ = ["Counters", "DemoOptions", "embedded_broker", "run_demo"]
