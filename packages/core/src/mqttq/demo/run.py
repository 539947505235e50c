"""Running ``mqttq demo``: the broker, the queue, the service, the heaters and the live view."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs
from rich.console import Console
from rich.live import Live

from mqttq.app import App
from mqttq.config import structure
from mqttq.demo import heaters, jobs, view
from mqttq.demo.broker import embedded_broker
from mqttq.demo.relay import Relay
from mqttq.devices import DeviceClient
from mqttq.errors import MqttqError
from mqttq.listener import Listener
from mqttq.plugins import make_plugin_manager
from mqttq.run import serve

log = logging.getLogger("mqttq.demo")

#: a stalled demo (no progress for this long) gives up instead of hanging
STALL_TIMEOUT = 60.0
#: how long the demo waits for the broker before it gives up
CONNECT_TIMEOUT = 10.0
#: the outage comes once this share of the replies was published (or after CUT_AFTER seconds)
CUT_AT = 0.3
CUT_AFTER = 5.0


@attrs.frozen(kw_only=True)
class DemoOptions:
    messages: int = 500
    devices: int = 5
    rate: float = 100.0
    broker: str | None = None
    db: Path | None = None


def _config(opts: DemoOptions, url: str, queue_url: str, devices_client: str) -> dict[str, Any]:
    return {
        "mqtt": {
            "url": url,
            "client_id": f"mqttq-demo-{uuid.uuid4().hex[:6]}",
            "protocol": "5" if opts.broker else "3.1.1",  # amqtt speaks 3.1.1
            "session_expiry": 0,
            "reconnect_min": 0.2,
            "reconnect_max": 1.0,
        },
        "queue": {"url": queue_url},
        "worker": {"concurrency": 4, "queues": ["navien"], "lease": 30},
        "routes": [
            {  # where the heaters answer status requests and controls
                "topic": "cmd/52/{device}/" + devices_client + "/res",
                "job": "mqttq.demo.jobs:record_status",
                "payload": "json",
            }
        ],
        "devices": {
            "client_id": devices_client,
            "ack_timeout": 2.0,
            "items": [
                {"adapter": "navien", "id": heaters.mac_of(n)} for n in range(1, opts.devices + 1)
            ],
        },
    }


def _queue_url(opts: DemoOptions, tmp: str, console: Console) -> str:
    if opts.db is not None:
        return f"sqlite:///{opts.db}"
    if _has_sqlite():
        return f"sqlite:///{Path(tmp) / 'demo.db'}"
    console.print(
        "[yellow]mqttq-sqlite is not installed: the demo keeps its queue in memory "
        "(pip install 'mqttq[demo]' for the durable SQLite queue)[/yellow]"
    )
    return "memory://demo"


async def _demo(opts: DemoOptions, console: Console) -> int:
    jobs.HEATERS.clear()
    with tempfile.TemporaryDirectory(prefix="mqttq-demo-") as tmp:
        queue_url = _queue_url(opts, tmp, console)
        async with contextlib.AsyncExitStack() as stack:
            url = opts.broker
            if not url:
                url = await stack.enter_async_context(embedded_broker())
            devices_client = f"mqttq-demo-devices-{uuid.uuid4().hex[:6]}"
            config = structure(_config(opts, url, queue_url, devices_client))
            counters = view.Counters()
            host = make_plugin_manager(extra=[("demo", view.JobCounter(counters))])
            app = App(config, host=host)
            listener = Listener(app)
            where = view.Where(broker=url, embedded=not opts.broker, queue=queue_url)
            service = asyncio.create_task(
                serve(app, listener=listener, install_signals=False), name="mqttq-demo-service"
            )
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
                stack.callback(loop.remove_signal_handler, sig)
            traffic = heaters.Traffic()
            tasks: list[asyncio.Task[None]] = []
            result = 0
            started = time.monotonic()
            devices = contextlib.AsyncExitStack()  # relay, device client, heaters
            with Live(console=console, refresh_per_second=8, transient=False) as screen:

                def render() -> Any:
                    expected = opts.messages + len(heaters.COMMANDS) if opts.messages else 0
                    return view.live(where, opts.devices, expected, counters, traffic, listener)

                try:
                    if not await _connected(url, listener, service, stop, screen):
                        return 130  # interrupted before anything started
                    relay = None
                    device_url = url
                    if urlsplit(url).scheme == "mqtt":
                        parts = urlsplit(url)
                        relay = await devices.enter_async_context(
                            Relay(parts.hostname or "localhost", parts.port or 1883)
                        )
                        device_url = f"mqtt://127.0.0.1:{relay.port}"
                    else:
                        traffic.outage = "not cut (a TLS broker is reached directly)"
                    device_app = App(
                        attrs.evolve(config, mqtt=attrs.evolve(config.mqtt, url=device_url)),
                        host=make_plugin_manager(),
                    )
                    client = await devices.enter_async_context(DeviceClient(device_app))
                    await devices.enter_async_context(
                        heaters.run_heaters(
                            config.mqtt,
                            opts.devices,
                            traffic,
                            lambda mac: f"cmd/52/navilink-{mac}/{devices_client}/res",
                        )
                    )
                    await client.wait_connected(CONNECT_TIMEOUT)
                    tasks += _pollers(opts, client, traffic)
                    cut_at = time.monotonic() + CUT_AFTER
                    last, last_change = -1, time.monotonic()
                    outage: asyncio.Task[None] | None = None
                    while not stop.is_set():
                        screen.update(render())
                        for task in tasks:
                            if task.done() and task.exception() is not None:
                                raise task.exception()  # type: ignore[misc]
                        if service.done():
                            service.result()
                            break
                        due = (
                            traffic.published >= CUT_AT * opts.messages
                            if opts.messages
                            else time.monotonic() >= cut_at
                        )
                        if relay is not None and outage is None and due:
                            outage = asyncio.create_task(
                                heaters.outage(
                                    client, relay.cut, relay.restore, opts.devices, traffic
                                )
                            )
                            tasks.append(outage)
                        if opts.messages and _finished(tasks, counters, traffic, outage, relay):
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
                    for task in tasks:
                        task.cancel()
                    await asyncio.gather(*tasks, return_exceptions=True)
                    await devices.aclose()
                    listener.stop()
                    await asyncio.gather(service, return_exceptions=True)
                    if listener.running.is_set() or listener.stats.received:
                        screen.update(render())
            elapsed = time.monotonic() - started
            view.summary(console, counters, traffic, listener, elapsed, where, opts.db is not None)
    return result


async def _connected(
    url: str, listener: Listener, service: asyncio.Task[Any], stop: asyncio.Event, screen: Live
) -> bool:
    """Wait for the listener to be up (``False``: interrupted); a clear error when it cannot."""
    since = time.monotonic()
    while not listener.running.is_set():
        if stop.is_set():
            return False
        if service.done():
            service.result()  # raises the start-up error
        if time.monotonic() - since > CONNECT_TIMEOUT:
            raise MqttqError(
                f"cannot connect to the MQTT broker at {url} within {CONNECT_TIMEOUT:g}s: is it "
                "running? (leave out --broker to use the embedded one)"
            )
        screen.update(view.connecting(url, since, CONNECT_TIMEOUT))
        await asyncio.sleep(0.1)  # the view's refresh
    return True


def _pollers(
    opts: DemoOptions, client: DeviceClient, traffic: heaters.Traffic
) -> list[asyncio.Task[None]]:
    """One poller per heater; ``opts.messages`` status requests shared out, ``opts.rate`` in
    total per second."""
    per_heater, extra = divmod(opts.messages, opts.devices)
    interval = opts.devices / opts.rate
    return [
        asyncio.create_task(
            heaters.poll(
                client,
                heaters.mac_of(n),
                per_heater + (1 if n <= extra else 0) if opts.messages else 0,
                interval,
                traffic,
            ),
            name=f"mqttq-demo-poll-{n}",
        )
        for n in range(1, opts.devices + 1)
    ]


def _finished(
    tasks: list[asyncio.Task[None]],
    counters: view.Counters,
    traffic: heaters.Traffic,
    outage: asyncio.Task[None] | None,
    relay: Relay | None,
) -> bool:
    """Every request made and answered, the outage over, and a job run for every reply."""
    if relay is not None and (outage is None or not outage.done()):
        return False
    if not all(task.done() for task in tasks):
        return False
    return counters.processed >= traffic.published


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
        for name in ("mqttq", "mqttq_navien"):  # warnings would tear the live view
            logging.getLogger(name).setLevel(logging.ERROR)
    return asyncio.run(_demo(opts, console))
