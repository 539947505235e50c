"""``NavienSimulator``: an MQTT client that answers like an NWP500 heater, for tests and demos.

It subscribes as a heater does (``cmd/52/navilink-{mac}/#``, taking only requests: ``st...`` and
``ctrl...``), keeps a heater's state (setpoint, mode, power, a tank temperature that drifts
toward the setpoint), answers status and feature requests and controls with the device's reply
shapes on the request's ``responseTopic``, announces itself on
``evt/52/navilink-{mac}/app-connection`` (status 1; its Last Will says status 0) and refuses a
control that comes sooner than ``control_interval`` after the last one it took with
``ctrl-fail`` / ``failCode`` 2. Every request it receives is kept, in order, in
:attr:`NavienSimulator.requests`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Self

import attrs

from mqttq.config import MqttConfig
from mqttq.errors import MqttqError
from mqttq.interfaces import Delivery, Subscription, Transport, Will
from mqttq_navien import protocol
from mqttq_navien.models import DhwMode, OperationMode

log = logging.getLogger("mqttq_navien.simulator")

#: ``failCode`` of a control the simulator cannot apply (unknown code, bad parameters)
FAIL_INVALID = 1
#: half-°C the tank cools toward while it does not heat (20 °C)
AMBIENT = 40

#: what each mode heats with: (operationMode while heating, compressor, upper element)
_HEATING = {
    DhwMode.HEAT_PUMP: (OperationMode.HEAT_PUMP, True, False),
    DhwMode.ELECTRIC: (OperationMode.HYBRID_BOOST, False, True),
    DhwMode.ENERGY_SAVER: (OperationMode.HYBRID_EFFICIENCY, True, False),
    DhwMode.HIGH_DEMAND: (OperationMode.HYBRID_BOOST, True, True),
}


@attrs.define
class HeaterState:
    """What the simulated heater holds. Temperatures are half-degrees Celsius."""

    setpoint: int = 120
    tank: float = 100.0
    mode: DhwMode = DhwMode.ENERGY_SAVER
    #: the mode ``power-on`` restores
    mode_before_off: DhwMode = DhwMode.ENERGY_SAVER
    vacation_days: int = 0
    anti_legionella: bool = True
    anti_legionella_days: int = 7
    tou: bool = False
    demand_response: bool = False
    intelligent: bool = False
    recirc_mode: int = 1
    recirc_hot_button: int = 0  #: presses so far
    reservation_use: bool = False
    reservations: list[dict[str, Any]] = attrs.field(factory=list)
    air_filter_life: int = 1000  #: hours
    air_filter_elapsed: int = 120  #: hours
    error_code: int = 0
    temperature_min: int = 81
    temperature_max: int = 131
    controller_serial_number: str = "SIM0000000000"

    @property
    def powered(self) -> bool:
        return self.mode is not DhwMode.POWER_OFF

    @property
    def heating(self) -> bool:
        return self.mode in _HEATING and self.tank < self.setpoint


@attrs.frozen
class ReceivedRequest:
    """One request, as it arrived."""

    topic: str
    payload: bytes
    document: Mapping[str, Any]
    at: float

    @property
    def suffix(self) -> str:
        return self.topic.split("/", 3)[3]

    @property
    def request(self) -> Mapping[str, Any]:
        request = self.document.get("request")
        return request if isinstance(request, dict) else {}

    @property
    def command(self) -> int | None:
        command = self.request.get("command")
        return command if isinstance(command, int) else None

    @property
    def mode(self) -> str | None:
        mode = self.request.get("mode")
        return mode if isinstance(mode, str) else None

    @property
    def param(self) -> list[Any]:
        param = self.request.get("param")
        return list(param) if isinstance(param, list) else []


@attrs.frozen
class Published:
    """One message the simulator sent."""

    topic: str
    document: Mapping[str, Any]


class _Invalid(Exception):
    """A control the heater cannot apply."""


class NavienSimulator:
    """``async with NavienSimulator(broker_url, mac=..., additional_value=...):`` runs a heater.

    ``mqtt`` gives the rest of the connection settings (TLS, credentials); ``broker_url``
    overrides its URL. ``clock`` (monotonic seconds) paces the control interval and the tank's
    drift; tests may pass one they move by hand. ``heating_rate``: half-°C per second while
    heating (cooling goes at a tenth of it).
    """

    def __init__(
        self,
        broker_url: str | None = None,
        *,
        mac: str,
        additional_value: str = "",
        control_interval: float = 0.5,
        heating_rate: float = 0.5,
        client_id: str | None = None,
        model_type_code: int | None = None,
        mqtt: MqttConfig | None = None,
        state: HeaterState | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        normalised = protocol.normalise_mac(mac)
        if normalised is None:
            raise MqttqError(f"not a MAC address: {mac!r} (12 hex digits, like 04786332fca0)")
        self.mac = normalised
        self.additional_value = additional_value
        self.control_interval = control_interval
        self.heating_rate = heating_rate
        self.model_type_code = model_type_code
        self.client_id = client_id or f"navien-sim-{self.mac}-{uuid.uuid4().hex[:6]}"
        self.session_id = uuid.uuid4().hex
        self.state = state or HeaterState()
        self.clock = clock
        config = mqtt or MqttConfig()
        self.config = attrs.evolve(
            config, url=broker_url or config.url, client_id=self.client_id, session_expiry=0
        )
        #: every request received, in order
        self.requests: list[ReceivedRequest] = []
        #: every message published (replies, presence), in order
        self.published: list[Published] = []
        #: called with each request and its answer once it is answered (quick, no I/O)
        self.on_request: list[Callable[[ReceivedRequest, Published], Any]] = []
        self._last_control: float | None = None
        self._updated = clock()
        self._transport: Transport | None = None
        self._task: asyncio.Task[None] | None = None

    # -- topics and documents ---------------------------------------------------------------------

    @property
    def presence_topic(self) -> str:
        return protocol.presence_topic(self.mac)

    def presence(self, online: bool) -> dict[str, Any]:
        """The app-connection event (status 1 online, 0 gone: the Last Will)."""
        event: dict[str, Any] = {
            "macAddress": self.mac,
            "deviceType": protocol.DEVICE_TYPE,
            "additionalValue": self.additional_value,
        }
        if self.model_type_code is not None:
            event["modelTypeCode"] = self.model_type_code
        event["connection"] = {"status": 1 if online else 0, "os": "P"}
        return {
            "clientID": self.client_id,
            "sessionID": self.session_id,
            "protocolVersion": protocol.EVENT_PROTOCOL_VERSION,
            "requestTopic": self.presence_topic,
            "event": event,
        }

    def status_document(self) -> dict[str, Any]:
        """``response.status`` as the heater reports it now."""
        self._advance()
        s = self.state
        flag = protocol.flag
        operation, compressor, upper = _HEATING.get(s.mode, (OperationMode.STANDBY, False, False))
        heating = s.heating
        return {
            "command": protocol.STATUS_REPLY_COMMAND,
            "dhwTemperature": round(s.tank),
            "dhwTemperatureSetting": s.setpoint,
            "dhwTargetTemperatureSetting": s.setpoint,
            "dhwOperationSetting": int(s.mode),
            "operationMode": int(operation if heating else OperationMode.STANDBY),
            "errorCode": s.error_code,
            "subErrorCode": 0,
            "dhwUse": flag(False),
            "operationBusy": flag(heating),
            "compUse": flag(heating and compressor),
            "heatUpperUse": flag(heating and upper),
            "heatLowerUse": flag(False),
            "antiLegionellaUse": flag(s.anti_legionella),
            "antiLegionellaPeriod": s.anti_legionella_days,
            "programReservationUse": flag(s.reservation_use),
            "freezeProtectionUse": flag(False),
            "ecoUse": flag(False),
            "vacationDaySetting": s.vacation_days,
            "vacationDayElapsed": 0,
            "recircOperationMode": s.recirc_mode,
            "airFilterAlarmPeriod": s.air_filter_life,
            "airFilterAlarmElapsed": s.air_filter_elapsed,
        }

    def feature_document(self) -> dict[str, Any]:
        """``response.feature``: what the heater can do, and its setpoint range."""
        on = protocol.flag(True)
        feature: dict[str, Any] = {
            "controllerSerialNumber": self.state.controller_serial_number,
            "controllerSwVersion": 184614912,
            "panelSwVersion": 1,
            "wifiSwVersion": 1,
        }
        if self.model_type_code is not None:
            feature["modelTypeCode"] = self.model_type_code
        feature.update(
            {
                "dhwTemperatureMin": self.state.temperature_min,
                "dhwTemperatureMax": self.state.temperature_max,
                "powerUse": on,
                "dhwUse": on,
                "heatpumpUse": on,
                "electricUse": on,
                "energySaverUse": on,
                "highDemandUse": on,
                "holidayUse": on,
                "antiLegionellaSettingUse": on,
                "programReservationUse": on,
                "recirculationUse": on,
                "energyUsageUse": on,
            }
        )
        return feature

    def _advance(self) -> None:
        """Move the tank temperature toward where it is going since the last look."""
        now = self.clock()
        elapsed, self._updated = max(0.0, now - self._updated), now
        s = self.state
        if s.heating:
            s.tank = min(float(s.setpoint), s.tank + self.heating_rate * elapsed)
            return
        floor = float(s.setpoint) if s.mode in _HEATING else float(AMBIENT)
        if s.tank > floor:
            s.tank = max(floor, s.tank - self.heating_rate / 10 * elapsed)

    # -- running ----------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._transport is not None and self._transport.connected

    async def start(self) -> None:
        """Connect (retrying until the broker answers), subscribe, announce, answer."""
        if self._transport is not None:
            return
        from mqttq.transports.mqtt import MqttTransport

        will = Will(topic=self.presence_topic, payload=protocol.encode(self.presence(False)))
        transport = MqttTransport(self.config, client_id=self.client_id, will=will)
        self._transport = transport
        await transport.subscribe([Subscription(topic=protocol.device_filter(self.mac), qos=1)])
        transport.on_connect(self._announce)
        await transport.connect()
        self._task = asyncio.create_task(self._serve(transport), name=f"navien-sim-{self.mac}")

    async def stop(self) -> None:
        """Say goodbye (status 0) and disconnect cleanly."""
        transport, self._transport = self._transport, None
        if transport is None:
            return
        if transport.connected:
            with contextlib.suppress(MqttqError):
                await self._publish(transport, self.presence_topic, self.presence(False))
        transport.stop_reading()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await transport.aclose()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def run_forever(self) -> None:
        """Run until cancelled (``mqttq navien simulate``)."""
        async with self:
            await asyncio.Event().wait()

    async def _announce(self) -> None:
        transport = self._transport
        if transport is not None:
            await self._publish(transport, self.presence_topic, self.presence(True))

    async def _publish(
        self, transport: Transport, topic: str, document: dict[str, Any]
    ) -> Published:
        await transport.publish(topic, protocol.encode(document), qos=1)
        published = Published(topic, document)
        self.published.append(published)
        return published

    async def _serve(self, transport: Transport) -> None:
        async for delivery in transport.messages():
            try:
                await self._handle(transport, delivery)
            except MqttqError as exc:  # the connection dropped mid-answer: the client resends
                log.warning("could not answer %s: %s", delivery.topic, exc)
            except Exception:
                log.exception("the simulator failed on %s", delivery.topic)
            await transport.ack([delivery])

    # -- answering --------------------------------------------------------------------------------

    async def _handle(self, transport: Transport, delivery: Delivery) -> None:
        prefix = f"cmd/{protocol.DEVICE_TYPE}/{protocol.device_level(self.mac)}/"
        suffix = delivery.topic.removeprefix(prefix)
        if suffix == delivery.topic or not protocol.is_request_suffix(suffix):
            return  # a reply on the device's tree (ours or another heater's), not a request
        try:
            document = json.loads(delivery.payload)
        except ValueError:
            log.warning("not JSON on %s", delivery.topic)
            return
        if not isinstance(document, dict) or not isinstance(document.get("request"), dict):
            log.warning("not a request on %s", delivery.topic)
            return
        received = ReceivedRequest(delivery.topic, delivery.payload, document, time.time())
        self.requests.append(received)
        reply_to = self._reply_topic(received)
        if suffix.startswith(protocol.CONTROL_SUFFIX):
            answer = await self._control(transport, received, reply_to)
        else:
            answer = await self._query(transport, received, reply_to)
        for callback in self.on_request:
            try:
                callback(received, answer)
            except Exception:
                log.exception("an on_request callback failed")

    def _reply_topic(self, received: ReceivedRequest) -> str:
        wanted = received.document.get("responseTopic")
        if isinstance(wanted, str) and wanted and not {"+", "#"} & set(wanted):
            return wanted
        client = received.document.get("clientID")
        return protocol.ack_topic(self.mac, client if isinstance(client, str) else "unknown")

    def _reply(self, received: ReceivedRequest, reply_to: str, **response: Any) -> dict[str, Any]:
        document = received.document
        return {
            "clientID": document.get("clientID"),
            "sessionID": document.get("sessionID"),
            "requestTopic": received.topic,
            "responseTopic": reply_to,
            "response": {
                "deviceType": protocol.DEVICE_TYPE,
                "macAddress": self.mac,
                "additionalValue": self.additional_value,
                **response,
            },
        }

    async def _query(
        self, transport: Transport, received: ReceivedRequest, reply_to: str
    ) -> Published:
        suffix = received.suffix
        response: dict[str, Any]
        if suffix == "st":
            response = {"status": self.status_document()}
        elif suffix == "st/did":
            response = {"feature": self.feature_document()}
        elif suffix == "st/rsv/rd":
            response = self._reservations()
        else:  # energy, software...: the fields asked for, and nothing measured
            asked = {k: v for k, v in received.request.items() if k not in _ENVELOPE_KEYS}
            response = {**asked, "usage": []} if "energy-usage" in suffix else asked
        return await self._publish(transport, reply_to, self._reply(received, reply_to, **response))

    def _reservations(self) -> dict[str, Any]:
        return {
            "reservationUse": protocol.flag(self.state.reservation_use),
            "reservation": list(self.state.reservations),
        }

    async def _control(
        self, transport: Transport, received: ReceivedRequest, reply_to: str
    ) -> Published:
        now = self.clock()
        last = self._last_control
        if last is not None and now - last < self.control_interval:
            return await self._fail(transport, received, protocol.FAIL_CONTROL_INTERVAL)
        self._advance()
        try:
            response = self._apply(received)
        except _Invalid as exc:
            log.info("ctrl-fail %d for %s: %s", FAIL_INVALID, received.topic, exc)
            return await self._fail(transport, received, FAIL_INVALID)
        self._last_control = now
        return await self._publish(transport, reply_to, self._reply(received, reply_to, **response))

    async def _fail(self, transport: Transport, received: ReceivedRequest, code: int) -> Published:
        document = received.document
        failure = {
            "clientID": document.get("clientID"),
            "sessionID": document.get("sessionID"),
            "requestTopic": received.topic,
            "responseTopic": protocol.ctrl_fail_topic(self.mac),
            "response": {
                "deviceType": protocol.DEVICE_TYPE,
                "macAddress": self.mac,
                "additionalValue": self.additional_value,
                "failCode": code,
            },
        }
        return await self._publish(transport, protocol.ctrl_fail_topic(self.mac), failure)

    def _apply(self, received: ReceivedRequest) -> dict[str, Any]:
        """Change the heater's state for a control; the ``response`` to send back."""
        suffix = received.suffix
        request = received.request
        if suffix == "ctrl/rsv/rd":
            entries = request.get("reservation")
            use = request.get("reservationUse")
            if not isinstance(entries, list) or use not in (1, 2):
                raise _Invalid("reservationUse 1|2 and a reservation list are needed")
            self.state.reservation_use = use == 2
            self.state.reservations = [dict(e) for e in entries if isinstance(e, dict)]
            return self._reservations()
        if suffix != protocol.CONTROL_SUFFIX:  # other writes: taken as they are
            return {k: v for k, v in request.items() if k not in _ENVELOPE_KEYS}
        mode = protocol.CONTROL_MODES.get(received.command or 0)
        if mode is None or mode != received.mode:
            raise _Invalid(f"unknown control {received.command} / {received.mode!r}")
        _CONTROLS[mode](self.state, received.param)
        return {"status": self.status_document()}


_ENVELOPE_KEYS = frozenset({"command", "deviceType", "macAddress", "additionalValue"})


def _one(param: list[Any], low: int, high: int) -> int:
    if len(param) != 1 or not isinstance(param[0], int) or not low <= param[0] <= high:
        raise _Invalid(f"expected one value {low}-{high}, got {param}")
    value: int = param[0]
    return value


def _none(param: list[Any]) -> None:
    if param:
        raise _Invalid(f"expected no parameters, got {param}")


def _power(on: bool) -> Callable[[HeaterState, list[Any]], None]:
    def apply(state: HeaterState, param: list[Any]) -> None:
        _none(param)
        if on and not state.powered:
            state.mode = state.mode_before_off
        elif not on and state.powered:
            state.mode_before_off, state.mode = state.mode, DhwMode.POWER_OFF

    return apply


def _dhw_mode(state: HeaterState, param: list[Any]) -> None:
    if not param or param[0] not in range(1, 7):
        raise _Invalid(f"dhw-mode needs a mode 1-6, got {param}")
    mode = DhwMode(param[0])
    if mode is DhwMode.VACATION:
        if len(param) != 2 or not isinstance(param[1], int) or not 1 <= param[1] <= 99:
            raise _Invalid(f"vacation needs [5, days 1-99], got {param}")
        state.vacation_days = param[1]
    elif len(param) != 1:
        raise _Invalid(f"dhw-mode {mode.label} takes one value, got {param}")
    if mode is DhwMode.POWER_OFF:
        _power(False)(state, [])
    else:
        state.mode = mode


def _temperature(state: HeaterState, param: list[Any]) -> None:
    state.setpoint = _one(param, state.temperature_min, state.temperature_max)


def _setter(name: str, value: Any) -> Callable[[HeaterState, list[Any]], None]:
    def apply(state: HeaterState, param: list[Any]) -> None:
        _none(param)
        setattr(state, name, value)

    return apply


def _anti_legionella_on(state: HeaterState, param: list[Any]) -> None:
    state.anti_legionella_days = _one(param, 1, 30)
    state.anti_legionella = True


def _vacation_days(state: HeaterState, param: list[Any]) -> None:
    state.vacation_days = _one(param, 1, 99)


def _hot_button(state: HeaterState, param: list[Any]) -> None:
    _one(param, 1, 1)
    state.recirc_hot_button += 1


def _recirc_mode(state: HeaterState, param: list[Any]) -> None:
    state.recirc_mode = _one(param, 1, 4)


def _air_filter_life(state: HeaterState, param: list[Any]) -> None:
    state.air_filter_life = _one(param, 1, 20) * 500


_CONTROLS: dict[str, Callable[[HeaterState, list[Any]], None]] = {
    "power-on": _power(True),
    "power-off": _power(False),
    "dhw-mode": _dhw_mode,
    "dhw-temperature": _temperature,
    "anti-leg-on": _anti_legionella_on,
    "anti-leg-off": _setter("anti_legionella", False),
    "tou-on": _setter("tou", True),
    "tou-off": _setter("tou", False),
    "dr-on": _setter("demand_response", True),
    "dr-off": _setter("demand_response", False),
    "intelligent-on": _setter("intelligent", True),
    "intelligent-off": _setter("intelligent", False),
    "goout-day": _vacation_days,
    "reservation-mode": _setter("reservation_use", True),
    "recirc-hotbtn": _hot_button,
    "recirc-mode": _recirc_mode,
    "air-filter-reset": _setter("air_filter_elapsed", 0),
    "air-filter-life": _air_filter_life,
    "cond-fault-reset": _setter("error_code", 0),
}
