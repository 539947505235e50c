"""``NavienAdapter``: the NWP500 protocol as a mqttq device family. Pure: it builds commands and
decodes replies; the device client does the I/O."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import attrs

from mqttq.devices import Command, DeviceAdapter, Reply, check_device_id
from mqttq.errors import ConfigError, MqttqError
from mqttq_navien import protocol
from mqttq_navien.models import (
    SETTABLE_MODES,
    ControlFailure,
    DhwMode,
    Features,
    Presence,
    Reservation,
    Response,
    Status,
    Temperature,
)

Unit = Literal["F", "C"]
EnergyPeriod = Literal["daily", "monthly", "hourly"]

#: the NWP500's setpoint range (half-°C: 40.5-65.5 °C, 105-150 °F), until its features say
DEFAULT_TEMPERATURE_RANGE = (Temperature(81), Temperature(131))


class NavienCommandError(MqttqError, ValueError):
    """A command that cannot be built: an unknown mode, a value out of range."""


@attrs.define
class NavienDevice:
    """What the adapter knows of one heater: its options and, once it answered a feature
    request, its features."""

    mac: str
    additional_value: str = ""
    features: Features | None = None


def _check_range(what: str, value: int, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise NavienCommandError(f"{what} must be a whole number from {low} to {high}, not {value}")
    return value


class NavienAdapter(DeviceAdapter):
    """Navien NWP500 heat-pump water heaters (``deviceType`` 52), addressed by MAC address.

    Options of a device (``[[devices.items]] options`` / :meth:`add_device`): ``additional_value``
    (the ``additionalValue`` the cloud lists for it; ``""`` by default).
    """

    family = "navien"
    #: the heater refuses controls that come too quickly (ctrl-fail, failCode 2); one a second
    #: stays clear of its control interval and of the simulator's (0.5 s by default)
    pacing = 1.0
    #: it answers a control or query within a second or two when online; 5 s leaves room for a
    #: cloud broker's latency and resends well before a user gives up
    ack_timeout = 5.0
    #: its replies name only the request topic (every mode control shares ``.../ctrl``), so
    #: a second command in flight could not be told apart from the first
    in_flight = 1

    def __init__(self, *, client_id: str, session_id: str | None = None) -> None:
        super().__init__(client_id=client_id)
        try:
            check_device_id(client_id)
        except ConfigError as exc:
            raise ConfigError(f"navien: the MQTT client id is used in topics: {exc}") from None
        #: ``sessionID`` of every request this client sends
        self.session_id = session_id or uuid.uuid4().hex
        self._devices: dict[str, NavienDevice] = {}

    # -- devices ----------------------------------------------------------------------------------

    def check_device(self, device: str) -> str:
        mac = protocol.normalise_mac(device) if isinstance(device, str) else None
        if mac is None:
            raise ConfigError(
                f"navien device id {device!r} is not a MAC address: "
                "12 hex digits, like 04786332fca0 or 04:78:63:32:fc:a0"
            )
        return mac

    def add_device(self, device: str, **options: Any) -> str:
        """Register a heater and its options; returns its id as this family writes it
        (``04786332fca0``). Adding it again replaces its options."""
        mac = self.check_device(device)
        additional_value = options.pop("additional_value", "")
        if options:
            raise ConfigError(
                f"unknown navien device option(s) for {mac}: {', '.join(sorted(options))} "
                "(known: additional_value)"
            )
        if not isinstance(additional_value, str | int) or isinstance(additional_value, bool):
            raise ConfigError(f"navien device {mac}: additional_value must be a string")
        known = self._devices.get(mac)
        features = known.features if known is not None else None
        self._devices[mac] = NavienDevice(mac, str(additional_value), features)
        return mac

    def device(self, device: str) -> NavienDevice:
        """What the adapter knows of ``device`` (a heater never added has no options)."""
        mac = self.check_device(device)
        known = self._devices.get(mac)
        if known is None:
            known = self._devices[mac] = NavienDevice(mac)
        return known

    @property
    def devices(self) -> list[str]:
        return list(self._devices)

    def set_features(self, device: str, features: Features | None) -> None:
        """Remember a heater's features (its setpoint range); decoding a feature reply does it."""
        self.device(device).features = features

    def temperature_range(self, device: str) -> tuple[Temperature, Temperature]:
        """The setpoints ``device`` accepts: from its features when known, else the NWP500's."""
        features = self.device(device).features
        low, high = DEFAULT_TEMPERATURE_RANGE
        if features is not None:
            low = features.dhw_temperature_min or low
            high = features.dhw_temperature_max or high
        return low, high

    def subscriptions(self, device: str) -> list[str]:
        mac = self.check_device(device)
        return [
            protocol.device_filter(mac),
            protocol.client_filter(self.client_id),
            protocol.presence_topic(mac),
        ]

    # -- building commands ------------------------------------------------------------------------

    def _command(
        self,
        device: str,
        kind: str,
        request: protocol.Request,
        fields: Mapping[str, Any] | None,
        *,
        control: bool,
        coalesce: bool = False,
    ) -> Command:
        known = self.device(device)
        topic, document = protocol.envelope(
            client_id=self.client_id,
            session_id=self.session_id,
            mac=known.mac,
            additional_value=known.additional_value,
            suffix=request.suffix,
            command=request.command,
            reply=request.reply,
            fields=fields,
        )
        return Command(
            device=known.mac,
            kind=kind,
            family=self.family,
            topic=topic,
            payload=protocol.encode(document),
            control=control,
            coalesce=coalesce,
        )

    def query(self, device: str, kind: str, *, coalesce: bool = False, **fields: Any) -> Command:
        """A query (``status``, ``features``, ``reservations``, ... see ``protocol.QUERIES``):
        not paced, answered by the device."""
        request = protocol.QUERIES.get(kind)
        if request is None:
            known = ", ".join(protocol.QUERIES)
            raise NavienCommandError(f"unknown navien query {kind!r} (known: {known})")
        return self._command(device, kind, request, fields, control=False, coalesce=coalesce)

    def status(self, device: str, *, coalesce: bool = False) -> Command:
        return self.query(device, "status", coalesce=coalesce)

    def request_features(self, device: str) -> Command:
        return self.query(device, "features")

    def read_reservations(self, device: str) -> Command:
        return self.query(device, "reservations")

    def energy_usage(
        self,
        device: str,
        period: EnergyPeriod,
        *,
        year: int,
        months: Sequence[int],
        days: Sequence[int] | None = None,
    ) -> Command:
        """Energy used per day of ``months`` (``daily``), per month (``monthly``) or per hour of
        ``days`` (``hourly``, which needs them)."""
        if period not in ("daily", "monthly", "hourly"):
            raise NavienCommandError(f"energy period is daily, monthly or hourly, not {period!r}")
        _check_range("year", year, 2000, 2099)
        if not months:
            raise NavienCommandError("an energy query needs at least one month")
        fields: dict[str, Any] = {
            "year": year,
            "month": [_check_range("month", m, 1, 12) for m in months],
        }
        if period == "hourly":
            if not days:
                raise NavienCommandError("an hourly energy query needs at least one day")
            fields["day"] = [_check_range("day", d, 1, 31) for d in days]
        elif days:
            raise NavienCommandError(f"a {period} energy query takes no days")
        return self.query(device, f"energy-{period}", **fields)

    def control(
        self, device: str, mode: str, param: Iterable[int] = (), *, coalesce: bool = False
    ) -> Command:
        """A mode control (``ctrl``) as the table in ``protocol.CONTROLS`` names it; ``kind`` is
        the mode, so coalescing (``[devices] coalesce``) works per mode."""
        code = protocol.CONTROLS.get(mode)
        if code is None:
            raise NavienCommandError(
                f"unknown navien control {mode!r} (known: {', '.join(protocol.CONTROLS)})"
            )
        request = protocol.Request(protocol.CONTROL_SUFFIX, code)
        fields = protocol.mode_fields(mode, list(param))
        return self._command(device, mode, request, fields, control=True, coalesce=coalesce)

    def power(self, device: str, on: bool) -> Command:
        return self.control(device, "power-on" if on else "power-off")

    def set_mode(
        self, device: str, mode: DhwMode | int | str, *, days: int | None = None
    ) -> Command:
        """``dhw-mode``: heat-pump, electric, energy-saver, high-demand, vacation (with
        ``days``, 1-99) or power-off."""
        chosen = self.parse_mode(mode)
        if chosen is DhwMode.VACATION:
            if days is None:
                raise NavienCommandError("vacation mode needs its number of days (1-99)")
            return self.control(
                device, "dhw-mode", [int(chosen), _check_range("days", days, 1, 99)]
            )
        if days is not None:
            raise NavienCommandError(f"only vacation mode takes days, not {chosen.label}")
        return self.control(device, "dhw-mode", [int(chosen)])

    @staticmethod
    def parse_mode(mode: DhwMode | int | str) -> DhwMode:
        chosen: DhwMode | None
        if isinstance(mode, DhwMode):
            chosen = mode
        elif isinstance(mode, int) and not isinstance(mode, bool):
            chosen = DhwMode(mode) if mode in DhwMode._value2member_map_ else None
        else:
            chosen = DhwMode.parse(str(mode))
        if chosen is None or chosen not in SETTABLE_MODES:
            names = ", ".join(m.label for m in SETTABLE_MODES)
            raise NavienCommandError(f"unknown DHW mode {mode!r} (known: {names})")
        return chosen

    def to_half_celsius(self, device: str, value: float, unit: Unit = "F") -> int:
        """The ``dhw-temperature`` param for ``value`` in ``unit``; ``NavienCommandError`` when
        it is outside the heater's range."""
        if unit not in ("F", "C"):
            raise NavienCommandError(f"temperature unit is F or C, not {unit!r}")
        if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
            raise NavienCommandError(f"temperature must be a number, not {value!r}")
        half = (
            protocol.half_celsius_from_fahrenheit(value)
            if unit == "F"
            else protocol.half_celsius_from_celsius(value)
        )
        low, high = self.temperature_range(device)
        if not low.half_celsius <= half <= high.half_celsius:
            mac = self.check_device(device)
            raise NavienCommandError(
                f"{value:g} °{unit} is outside the setpoint range of {mac}: "
                f"{low.celsius:g}-{high.celsius:g} °C "
                f"({round(low.fahrenheit)}-{round(high.fahrenheit)} °F)"
            )
        return half

    def set_temperature(
        self, device: str, value: float, unit: Unit = "F", *, coalesce: bool = False
    ) -> Command:
        """``dhw-temperature``: the setpoint, in °F or °C (half-°C on the wire)."""
        half = self.to_half_celsius(device, value, unit)
        return self.control(device, "dhw-temperature", [half], coalesce=coalesce)

    def anti_legionella(self, device: str, days: int | None) -> Command:
        """Disinfect every ``days`` (1-30); ``None`` turns it off."""
        if days is None:
            return self.control(device, "anti-leg-off")
        return self.control(device, "anti-leg-on", [_check_range("days", days, 1, 30)])

    def tou(self, device: str, on: bool) -> Command:
        return self.control(device, "tou-on" if on else "tou-off")

    def demand_response(self, device: str, on: bool) -> Command:
        return self.control(device, "dr-on" if on else "dr-off")

    def intelligent(self, device: str, on: bool) -> Command:
        return self.control(device, "intelligent-on" if on else "intelligent-off")

    def vacation_days(self, device: str, days: int) -> Command:
        return self.control(device, "goout-day", [_check_range("days", days, 1, 99)])

    def reservation_mode(self, device: str) -> Command:
        return self.control(device, "reservation-mode")

    def recirculation_hot_button(self, device: str) -> Command:
        return self.control(device, "recirc-hotbtn", [1])

    def recirculation_mode(self, device: str, mode: int) -> Command:
        return self.control(device, "recirc-mode", [_check_range("recirculation mode", mode, 1, 4)])

    def reset_air_filter(self, device: str) -> Command:
        return self.control(device, "air-filter-reset")

    def air_filter_life(self, device: str, hours: int) -> Command:
        """The air filter's service interval, in hours (a multiple of 500, up to 10000)."""
        _check_range("air filter life (hours)", hours, 500, 10000)
        if hours % 500:
            raise NavienCommandError(f"air filter life is counted in 500 hours, not {hours}")
        return self.control(device, "air-filter-life", [hours // 500])

    def reset_condensate_fault(self, device: str) -> Command:
        return self.control(device, "cond-fault-reset")

    def write(self, device: str, kind: str, **fields: Any) -> Command:
        """A write with fields of its own instead of mode/param (``protocol.WRITES``:
        ``reservations-write``, ``tou-schedule``, ``recirc-schedule``, ``commit-ota``); the
        fields go into ``request`` after ``additionalValue``, in the order given."""
        request = protocol.WRITES.get(kind)
        if request is None:
            known = ", ".join(protocol.WRITES)
            raise NavienCommandError(f"unknown navien write {kind!r} (known: {known})")
        return self._command(device, kind, request, fields, control=True)

    def set_reservations(
        self, device: str, entries: Sequence[Reservation], *, enabled: bool = True
    ) -> Command:
        """Replace the weekly reservation program (``ctrl/rsv/rd``); ``enabled`` is its
        ``reservationUse``."""
        low, high = self.temperature_range(device)
        for entry in entries:
            if not low <= entry.temperature <= high:
                raise NavienCommandError(
                    f"reservation at {entry.hour:02d}:{entry.minute:02d}: {entry.temperature} "
                    f"is outside the setpoint range {low.celsius:g}-{high.celsius:g} °C"
                )
        return self.write(
            device,
            "reservations-write",
            reservationUse=protocol.flag(enabled),
            reservation=[entry.to_wire() for entry in entries],
        )

    # -- decoding ---------------------------------------------------------------------------------

    def interpret(self, topic: str, payload: bytes) -> Reply | None:
        try:
            return self._interpret(topic, payload)
        except (ValueError, TypeError, AttributeError, KeyError):
            return None

    def _interpret(self, topic: str, payload: bytes) -> Reply | None:
        levels = topic.split("/")
        if len(levels) < 4 or levels[1] != str(protocol.DEVICE_TYPE):
            return None
        document = json.loads(payload)
        if not isinstance(document, dict):
            return None
        if levels[0] == "evt":
            if len(levels) == 4 and levels[3] == "app-connection":
                return self._presence(levels[2], document)
            return None
        if levels[0] != "cmd":
            return None
        if levels[2].startswith("navilink-"):
            mac = protocol.normalise_mac(levels[2].removeprefix("navilink-"))
            rest = levels[3:]
            if mac is None or protocol.is_request_suffix("/".join(rest)):
                return None  # a request (ours echoed back, or another client's)
            if len(rest) == 2 and rest[1] == "res":
                if rest[0] != self.client_id:
                    return None  # another client's reply
                return self._response(mac, None, document)
            if rest[0] == "res" and len(rest) > 1:
                sender = document.get("clientID")
                if sender is not None and sender != self.client_id:
                    return None
                return self._response(mac, "/".join(rest[1:]), document)
            return None
        if levels[2] == self.client_id and levels[3] == "res" and len(levels) > 4:
            response = document.get("response")
            if not isinstance(response, dict):
                return None
            mac = protocol.normalise_mac(str(response.get("macAddress", "")))
            if mac is None:
                return None
            return self._response(mac, "/".join(levels[4:]), document, client_form=True)
        return None

    def _answered(self, mac: str, document: Mapping[str, Any]) -> str | None:
        """The request a reply names, when it is one of ``mac``'s request topics."""
        requested = document.get("requestTopic")
        if not isinstance(requested, str):
            return None
        prefix = f"cmd/{protocol.DEVICE_TYPE}/{protocol.device_level(mac)}/"
        if not requested.startswith(prefix):
            return None
        return requested if protocol.is_request_suffix(requested[len(prefix) :]) else None

    def _response(
        self,
        mac: str,
        suffix: str | None,
        document: Mapping[str, Any],
        *,
        client_form: bool = False,
    ) -> Reply | None:
        if "request" in document and "response" not in document:
            return None
        response = document.get("response")
        if not isinstance(response, dict):
            return None
        answered = self._answered(mac, document)
        outcome: Literal["ok"] | None = "ok" if answered is not None else None
        if suffix == "ctrl-fail" or "failCode" in response:
            return self._failure(mac, response, answered)
        status = response.get("status")
        if isinstance(status, dict):
            return Reply(
                device=mac,
                kind="status",
                outcome=outcome,
                request_topic=answered,
                data=Status.decode(mac, status),
            )
        feature = response.get("feature")
        if isinstance(feature, dict):
            features = Features.decode(mac, feature)
            self.set_features(mac, features)
            return Reply(
                device=mac,
                kind="features",
                outcome=outcome,
                request_topic=answered,
                data=features,
            )
        kind = suffix or "response"
        if outcome is None and client_form:
            outcome = "ok"  # a client-form reply answers the request with the same suffix
        return Reply(
            device=mac,
            kind=kind,
            outcome=outcome,
            request_topic=answered,
            data=Response(device=mac, kind=kind, fields=dict(response)),
        )

    def _failure(self, mac: str, response: Mapping[str, Any], answered: str | None) -> Reply:
        code = response.get("failCode")
        failure = ControlFailure(
            device=mac, fail_code=code if isinstance(code, int) else None, raw=dict(response)
        )
        if failure.busy:
            return Reply(
                device=mac,
                kind="ctrl-fail",
                outcome="busy",
                request_topic=answered,
                data=failure,
                reason="ctrl-fail: failCode 2 (control interval exceeded)",
            )  # the lane backs off from its pacing (the configured one, maybe not ours)
        return Reply(
            device=mac,
            kind="ctrl-fail",
            outcome="rejected",
            request_topic=answered,
            data=failure,
            reason=f"ctrl-fail: failCode {code}",
        )

    def _presence(self, level: str, document: Mapping[str, Any]) -> Reply | None:
        if not level.startswith("navilink-"):
            return None
        mac = protocol.normalise_mac(level.removeprefix("navilink-"))
        event = document.get("event")
        if mac is None or not isinstance(event, dict):
            return None  # an app announcing itself, not the heater
        connection = event.get("connection")
        if not isinstance(connection, dict):
            return None
        status = connection.get("status")
        if not isinstance(status, int) or isinstance(status, bool):
            return None
        model = event.get("modelTypeCode")
        client = document.get("clientID")
        os_name = connection.get("os")
        presence = Presence(
            device=mac,
            online=status == 1,
            status=status,
            os=os_name if isinstance(os_name, str) else None,
            model_type_code=model if isinstance(model, int) else None,
            client_id=client if isinstance(client, str) else None,
            raw=dict(document),
        )
        return Reply(device=mac, kind="presence", data=presence, online=presence.online)

    def answers(self, command: Command, reply: Reply) -> bool:
        if reply.kind == "ctrl-fail":
            return command.control and reply.request_topic in (None, command.topic)
        if reply.request_topic is not None:
            return reply.request_topic == command.topic
        # a client-form reply without requestTopic: the request whose suffix it echoes
        return command.topic.endswith((f"/st/{reply.kind}", f"/ctrl/{reply.kind}"))
