"""``mqttq navien ...``: talk to an NWP500 (or the simulator) through the device client.

Every command takes ``--mac`` (or uses the one ``[[devices.items]]`` with ``adapter =
"navien"``), ``--json`` and ``--timeout`` (how long to wait for the heater's answer). Exit
status: 0 once the heater acknowledged; 1 when it refused, never answered or the broker was out
of reach; 2 for a bad MAC, temperature or mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import attrs
import orjson
import typer
from rich.table import Table

from mqttq.cli import CliError, age, console, get_state, iso, print_json, sub_app
from mqttq.errors import MqttqError

if TYPE_CHECKING:
    from mqttq.app import App
    from mqttq.devices import Command, CommandHandle, DeviceClient
    from mqttq_navien.adapter import NavienAdapter
    from mqttq_navien.simulator import Published, ReceivedRequest

FAMILY = "navien"

app = sub_app("Navien NWP500 heat-pump water heaters: status, setpoint, mode, power, simulator.")

_MAC = typer.Option(
    None, "--mac", "-m", metavar="MAC", help="The heater (default: the configured navien device)."
)
_JSON = typer.Option(False, "--json", help="Print JSON.")
_TIMEOUT = typer.Option(
    15.0, "--timeout", "-t", min=0.1, help="Seconds to wait for the heater's answer."
)


# -- the device -----------------------------------------------------------------------------------


def _configured(a: App) -> list[tuple[str, dict[str, Any]]]:
    return [
        (item.id, dict(item.options)) for item in a.config.devices.items if item.adapter == FAMILY
    ]


def _device(client: DeviceClient, a: App, mac: str | None) -> str:
    """The heater the command is for, registered with the client (its configured options)."""
    adapter = client.adapter(FAMILY)
    if mac is not None:
        try:
            wanted = adapter.check_device(mac)
        except MqttqError as exc:
            raise CliError(str(exc)) from None
        for device, options in _configured(a):
            if adapter.check_device(device) == wanted:
                return client.add_device(FAMILY, device, **options)
        return client.add_device(FAMILY, wanted)
    configured = _configured(a)
    if not configured:
        raise CliError(
            'no navien device: pass --mac or add [[devices.items]] with adapter = "navien"'
        )
    if len(configured) > 1:
        names = ", ".join(device for device, _ in configured)
        raise CliError(f"several navien devices are configured ({names}): pass --mac")
    device, options = configured[0]
    return client.add_device(FAMILY, device, **options)


def _client(ctx: typer.Context, mac: str | None) -> tuple[App, DeviceClient, NavienAdapter, str]:
    from mqttq.devices import DeviceClient
    from mqttq_navien.adapter import NavienAdapter

    state = get_state(ctx)
    if state.owns_logging and not state.debug:
        # one command, one line: its outcome says what the retries were about
        for name in ("mqttq.transport", "mqttq.devices"):
            logging.getLogger(name).setLevel(logging.ERROR)
    a = state.app(jobs=False)
    client = DeviceClient(a)
    adapter = client.adapter(FAMILY)
    if not isinstance(adapter, NavienAdapter):
        raise CliError(f"the navien adapter is {type(adapter).__name__}, not NavienAdapter")
    return a, client, adapter, _device(client, a, mac)


def _build(build: Callable[[], Command]) -> Command:
    from mqttq_navien.adapter import NavienCommandError

    try:
        return build()
    except NavienCommandError as exc:
        raise CliError(str(exc)) from None


async def _settle(handle: CommandHandle, timeout: float) -> bool:
    with contextlib.suppress(TimeoutError):
        await handle.wait(timeout)
    return handle.settled


@attrs.frozen
class _Outcome:
    app: App
    durable: bool  #: whether a command left waiting survives this process
    handle: CommandHandle
    connected: bool  #: whether the client was connected when it stopped waiting
    timeout: float


def _failure(outcome: _Outcome) -> str | None:
    """Why the command did not get through, in one line; None when it was acknowledged."""
    from mqttq.devices import CommandState

    handle, timeout = outcome.handle, outcome.timeout
    state, kind, device = handle.state, handle.command.kind, handle.command.device
    if state is CommandState.ACKNOWLEDGED:
        return None
    if state is CommandState.REJECTED:
        return f"{device} refused {kind}: {handle.reason or 'rejected'}"
    if state in (CommandState.EXPIRED, CommandState.DROPPED):
        return f"{kind} to {device} {state}: {handle.reason}"
    kept = "; it waits in the command store for the next client" if outcome.durable else ""
    if not outcome.connected:
        url = outcome.app.config.mqtt.url
        return f"could not reach the MQTT broker at {url} within {timeout:g}s{kept}"
    if state is CommandState.SENT:
        return f"no answer from {device} within {timeout:g}s: is the heater online?{kept}"
    return f"{kind} to {device} still queued after {timeout:g}s (the heater is offline?){kept}"


def _run(
    ctx: typer.Context,
    mac: str | None,
    build: Callable[[NavienAdapter, str], Command],
    timeout: float,
    *,
    features_first: bool = False,
) -> _Outcome:
    """Send one command and wait for the heater's answer (or ``timeout``)."""
    a, client, adapter, device = _client(ctx, mac)
    command = _build(lambda: build(adapter, device))  # input errors before any I/O

    async def main() -> _Outcome:
        nonlocal command
        deadline = time.monotonic() + timeout
        async with client:
            if features_first:  # check against this heater's own setpoint range
                asked = await client.send(adapter.request_features(device))
                await _settle(asked, min(timeout, 5.0))
                command = _build(lambda: build(adapter, device))
            handle = await client.send(command)
            await _settle(handle, max(0.1, deadline - time.monotonic()))
            return _Outcome(a, client.store.durable, handle, client.connected, timeout)

    return asyncio.run(main())


def _finish(outcome: _Outcome, as_json: bool, show: Callable[[CommandHandle], None]) -> None:
    problem = _failure(outcome)
    handle = outcome.handle
    if as_json:
        reply = handle.reply
        data = getattr(reply.data, "to_dict", None) if reply is not None else None
        print_json({**handle.as_dict(), "reply": data() if data is not None else None})
    elif problem is None:
        show(handle)
    if problem is not None:
        raise CliError(problem, exit_code=1)


# -- status ---------------------------------------------------------------------------------------


def _status_lines(device: str, status: Any) -> list[tuple[str, str]]:
    def mode(value: Any) -> str:
        return "-" if value is None else str(value.label)

    def temperature(value: Any) -> str:
        return "-" if value is None else str(value)

    error = status.error_code
    return [
        ("heater", device),
        ("power", "-" if status.powered is None else ("on" if status.powered else "off")),
        ("water", temperature(status.dhw_temperature)),
        ("setpoint", temperature(status.dhw_temperature_setting)),
        ("mode", mode(status.dhw_mode)),
        ("operation", mode(status.operation_mode)),
        ("error", "none" if not error else f"{error} (sub {status.sub_error_code})"),
    ]


def _print_status(device: str, status: Any) -> None:
    table = Table(box=None, show_header=False)
    for name, value in _status_lines(device, status):
        table.add_row(name, value)
    console().print(table)


@app.command("status")
def status(
    ctx: typer.Context, mac: str | None = _MAC, as_json: bool = _JSON, timeout: float = _TIMEOUT
) -> None:
    """Ask the heater for its status: water temperature, setpoint, mode, operation, errors."""
    outcome = _run(ctx, mac, lambda adapter, device: adapter.status(device), timeout)
    _finish(outcome, as_json, _show_status)


def _show_status(handle: CommandHandle) -> None:
    assert handle.reply is not None
    _print_status(handle.command.device, handle.reply.data)


# -- controls -------------------------------------------------------------------------------------


def _acknowledged(what: str) -> Callable[[CommandHandle], None]:
    def show(handle: CommandHandle) -> None:
        line = f"{handle.command.device}: {what}: acknowledged"
        data = handle.reply.data if handle.reply is not None else None
        setpoint = getattr(data, "dhw_temperature_setting", None)
        mode = getattr(data, "dhw_mode", None)
        if setpoint is not None and mode is not None:
            line += f" (setpoint {setpoint}, mode {mode.label})"
        typer.echo(line)

    return show


@app.command("set-temperature")
def set_temperature(
    ctx: typer.Context,
    value: float = typer.Argument(..., help="The setpoint, in --unit."),
    unit: str = typer.Option("F", "--unit", "-u", help="F or C.", case_sensitive=False),
    mac: str | None = _MAC,
    as_json: bool = _JSON,
    timeout: float = _TIMEOUT,
) -> None:
    """Set the DHW temperature (sent in half-°C; checked against the heater's range)."""
    chosen = unit.upper()
    if chosen not in ("F", "C"):
        raise CliError(f"--unit is F or C, not {unit!r}")
    scale: Literal["F", "C"] = "F" if chosen == "F" else "C"
    outcome = _run(
        ctx,
        mac,
        lambda adapter, device: adapter.set_temperature(device, value, scale),
        timeout,
        features_first=True,
    )
    _finish(outcome, as_json, _acknowledged(f"dhw-temperature {value:g} °{scale}"))


@app.command("set-mode")
def set_mode(
    ctx: typer.Context,
    mode: str = typer.Argument(
        ...,
        help="heat-pump, electric, energy-saver (hybrid), high-demand, vacation or power-off.",
    ),
    days: int | None = typer.Option(None, "--days", help="Vacation days (1-99)."),
    mac: str | None = _MAC,
    as_json: bool = _JSON,
    timeout: float = _TIMEOUT,
) -> None:
    """Set the DHW mode."""
    outcome = _run(
        ctx, mac, lambda adapter, device: adapter.set_mode(device, mode, days=days), timeout
    )
    _finish(outcome, as_json, _acknowledged(f"dhw-mode {_mode_label(mode)}"))


def _mode_label(mode: str) -> str:
    from mqttq_navien.adapter import NavienAdapter

    return NavienAdapter.parse_mode(mode).label


@app.command("power")
def power(
    ctx: typer.Context,
    state: str = typer.Argument(..., help="on or off.", metavar="on|off"),
    mac: str | None = _MAC,
    as_json: bool = _JSON,
    timeout: float = _TIMEOUT,
) -> None:
    """Turn the heater on or off."""
    wanted = state.strip().lower()
    if wanted not in ("on", "off"):
        raise CliError(f"power is on or off, not {state!r}")
    outcome = _run(ctx, mac, lambda adapter, device: adapter.power(device, wanted == "on"), timeout)
    _finish(outcome, as_json, _acknowledged(f"power {wanted}"))


# -- the command store ----------------------------------------------------------------------------


def _client_of(command: Command) -> str | None:
    """The client id a stored request names: the heater answers that client only."""
    try:
        client = orjson.loads(command.payload).get("clientID")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return client if isinstance(client, str) else None


def describe(command: Command) -> str:
    """``dhw-temperature [120] (60 °C, 140 °F)``: what a stored command asks for."""
    from mqttq_navien.models import Temperature

    try:
        request = orjson.loads(command.payload).get("request", {})
    except (orjson.JSONDecodeError, AttributeError):
        return command.kind
    param = request.get("param")
    if not isinstance(param, list):
        return command.kind
    text = f"{command.kind} {param}"
    if command.kind == "dhw-temperature" and len(param) == 1 and isinstance(param[0], int):
        text += f" ({Temperature(param[0])})"
    return text


@app.command("queue")
def queue(ctx: typer.Context, mac: str | None = _MAC, as_json: bool = _JSON) -> None:
    """Commands waiting for navien heaters in the command store ([devices] store), in order."""
    from mqttq.devices.client import make_store
    from mqttq.devices.store import StoredCommand
    from mqttq.errors import QueueNotFoundError
    from mqttq_navien.adapter import NavienAdapter

    a = get_state(ctx).app(jobs=False)
    wanted = None
    if mac is not None:
        try:
            wanted = NavienAdapter(client_id="mqttq-navien-cli").check_device(mac)
        except MqttqError as exc:
            raise CliError(str(exc)) from None
    store = make_store(a, create=False)
    if not store.durable:
        typer.echo(
            f"mqttq: [devices] store = {a.config.devices.store!r} keeps commands inside the "
            'process that sends them; set store = "sqlite:///commands.db" to see them here',
            err=True,
        )

    async def load() -> list[StoredCommand]:
        try:
            await store.open()
        except QueueNotFoundError:
            return []
        try:
            return await store.load()
        finally:
            await store.aclose()

    stored = asyncio.run(load()) if store.durable else []
    mine = [
        s
        for s in stored
        if s.command.family in (FAMILY, "")
        and s.command.topic.startswith("cmd/52/navilink-")
        and (wanted is None or s.command.device == wanted)
    ]
    if as_json:
        print_json(
            {
                "commands": [
                    {
                        "device": s.command.device,
                        "id": s.command.id,
                        "kind": s.command.kind,
                        "request": describe(s.command),
                        "client": _client_of(s.command),
                        "topic": s.command.topic,
                        "control": s.command.control,
                        "created_at": iso(s.command.created_at),
                        "seq": s.seq,
                    }
                    for s in mine
                ]
            }
        )
        return
    if not mine:
        typer.echo("no commands waiting")
        return
    now = time.time()
    table = Table("heater", "waiting", "command", "answered to", "id", box=None)
    for s in mine:
        c = s.command
        table.add_row(c.device, age(c.created_at, now), describe(c), _client_of(c) or "-", c.id)
    console().print(table)


# -- the simulator --------------------------------------------------------------------------------


def _request_line(received: ReceivedRequest, answer: Published) -> dict[str, Any]:
    response = answer.document.get("response", {})
    fail = response.get("failCode") if isinstance(response, dict) else None
    return {
        "at": iso(received.at),
        "topic": received.topic,
        "command": received.command,
        "mode": received.mode,
        "param": received.param if received.mode else None,
        "client": received.document.get("clientID"),
        "answer": "ctrl-fail" if fail is not None else "ok",
        "fail_code": fail,
        "answered_on": answer.topic,
    }


@app.command("simulate")
def simulate(
    ctx: typer.Context,
    mac: str = typer.Option(..., "--mac", "-m", metavar="MAC", help="The heater to be."),
    broker: str | None = typer.Option(
        None, "--broker", "-b", metavar="URL", help="MQTT broker (default: [mqtt] url)."
    ),
    additional_value: str = typer.Option("", "--additional-value", help="Its additionalValue."),
    control_interval: float = typer.Option(
        0.5, "--control-interval", min=0.0, help="Controls sooner than this get ctrl-fail 2."
    ),
    as_json: bool = _JSON,
) -> None:
    """Be an NWP500 on the broker until stopped: answer status, features and controls."""
    from mqttq_navien.simulator import NavienSimulator

    config = get_state(ctx).config()
    try:
        sim = NavienSimulator(
            broker,
            mac=mac,
            additional_value=additional_value,
            control_interval=control_interval,
            mqtt=config.mqtt,
        )
    except MqttqError as exc:
        raise CliError(str(exc)) from None

    def show(received: ReceivedRequest, answer: Published) -> None:
        line = _request_line(received, answer)
        if as_json:
            sys.stdout.write(orjson.dumps(line).decode() + "\n")
        else:
            what = received.mode or received.suffix
            param = f" {line['param']}" if line["param"] else ""
            outcome = "ctrl-fail " + str(line["fail_code"]) if line["fail_code"] else "answered"
            sys.stdout.write(f"{line['at']} {what}{param} from {line['client']}: {outcome}\n")
        sys.stdout.flush()

    sim.on_request.append(show)

    async def main() -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signal.SIGTERM, task.cancel)
        await sim.start()
        if not as_json:
            typer.echo(
                f"simulating NWP500 {sim.mac} on {sim.config.url} as {sim.client_id} "
                f"(control interval {control_interval:g}s); Ctrl-C to stop"
            )
        try:
            await asyncio.Event().wait()
        finally:
            await sim.stop()

    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        asyncio.run(main())
