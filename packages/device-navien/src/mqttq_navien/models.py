"""What NWP500 replies decode into (``Reply.data``): attrs models with plain units.

Temperatures on the wire are half-degrees Celsius (120 = 60 °C = 140 °F); booleans are 1 (false)
and 2 (true); modes are codes. Each model keeps the decoded fields and the message as sent
(``raw``) for everything it does not name.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

import attrs

from mqttq_navien import protocol


class DhwMode(enum.IntEnum):
    """``dhwOperationSetting``: the configured DHW mode (``dhw-mode`` param). ``STANDBY`` only
    appears in status replies, it is never sent."""

    STANDBY = 0
    HEAT_PUMP = 1
    ELECTRIC = 2
    ENERGY_SAVER = 3  #: hybrid: efficiency
    HIGH_DEMAND = 4  #: hybrid: boost
    VACATION = 5
    POWER_OFF = 6

    @property
    def label(self) -> str:
        """``energy-saver``: the name the CLI takes and shows."""
        return self.name.lower().replace("_", "-")

    @classmethod
    def parse(cls, text: str) -> DhwMode | None:
        """A mode from its label, an alias (``hybrid``, ``boost``, ``off``) or its code."""
        key = text.strip().lower().replace("_", "-").replace(" ", "-")
        if key.isdigit():
            return cls(int(key)) if int(key) in cls._value2member_map_ else None
        return _MODE_NAMES.get(key)


_MODE_NAMES = {mode.label: mode for mode in DhwMode}
_MODE_NAMES.update(
    {
        "hybrid": DhwMode.ENERGY_SAVER,
        "hybrid-efficiency": DhwMode.ENERGY_SAVER,
        "efficiency": DhwMode.ENERGY_SAVER,
        "hybrid-boost": DhwMode.HIGH_DEMAND,
        "boost": DhwMode.HIGH_DEMAND,
        "heatpump": DhwMode.HEAT_PUMP,
        "off": DhwMode.POWER_OFF,
    }
)
#: modes a ``dhw-mode`` control may set
SETTABLE_MODES = tuple(mode for mode in DhwMode if mode is not DhwMode.STANDBY)


class OperationMode(enum.IntEnum):
    """``operationMode``: what the heater is doing right now."""

    STANDBY = 0
    HEAT_PUMP = 32
    HYBRID_EFFICIENCY = 64
    HYBRID_BOOST = 96

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", "-")


@attrs.frozen(order=True)
class Temperature:
    """A temperature as the device counts it: half-degrees Celsius."""

    half_celsius: int

    @property
    def celsius(self) -> float:
        return protocol.celsius(self.half_celsius)

    @property
    def fahrenheit(self) -> float:
        return protocol.fahrenheit(self.half_celsius)

    @classmethod
    def from_celsius(cls, value: float) -> Temperature:
        return cls(protocol.half_celsius_from_celsius(value))

    @classmethod
    def from_fahrenheit(cls, value: float) -> Temperature:
        return cls(protocol.half_celsius_from_fahrenheit(value))

    def to_dict(self) -> dict[str, Any]:
        return {"half_celsius": self.half_celsius, "celsius": self.celsius, "f": self.fahrenheit}

    def __str__(self) -> str:
        return f"{self.celsius:g} °C ({self.fahrenheit:g} °F)"


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _temperature(value: Any) -> Temperature | None:
    raw = _int(value)
    return None if raw is None else Temperature(raw)


def _enum(kind: type[enum.IntEnum], value: Any) -> Any:
    raw = _int(value)
    if raw is None or raw not in kind._value2member_map_:
        return None
    return kind(raw)


def _plain(value: Any) -> Any:
    if isinstance(value, Temperature):
        return value.to_dict()
    if isinstance(value, DhwMode | OperationMode):
        return value.label
    if isinstance(value, Mapping):
        return dict(value)
    return value


def _as_dict(model: Any) -> dict[str, Any]:
    return {
        field.name: _plain(getattr(model, field.name))
        for field in attrs.fields(type(model))
        if field.name != "raw"
    }


#: status fields that are 1/2 booleans, by attribute name
_STATUS_FLAGS = {
    "dhw_use": "dhwUse",
    "operation_busy": "operationBusy",
    "comp_use": "compUse",
    "heat_upper_use": "heatUpperUse",
    "heat_lower_use": "heatLowerUse",
    "anti_legionella_use": "antiLegionellaUse",
    "program_reservation_use": "programReservationUse",
    "freeze_protection_use": "freezeProtectionUse",
    "eco_use": "ecoUse",
}
_STATUS_INTS = {
    "error_code": "errorCode",
    "sub_error_code": "subErrorCode",
    "anti_legionella_period": "antiLegionellaPeriod",
    "vacation_day_setting": "vacationDaySetting",
    "vacation_day_elapsed": "vacationDayElapsed",
    "recirc_operation_mode": "recircOperationMode",
    "air_filter_alarm_period": "airFilterAlarmPeriod",
    "air_filter_alarm_elapsed": "airFilterAlarmElapsed",
}


@attrs.frozen(kw_only=True)
class Status:
    """A status reply (``response.status``). Fields the message lacks are ``None``."""

    device: str
    command: int | None = None
    dhw_temperature: Temperature | None = None  #: the water now
    dhw_temperature_setting: Temperature | None = None  #: the setpoint
    dhw_target_temperature_setting: Temperature | None = None
    dhw_mode: DhwMode | None = None  #: dhwOperationSetting
    operation_mode: OperationMode | None = None  #: operationMode
    error_code: int | None = None
    sub_error_code: int | None = None
    dhw_use: bool | None = None
    operation_busy: bool | None = None
    comp_use: bool | None = None
    heat_upper_use: bool | None = None
    heat_lower_use: bool | None = None
    anti_legionella_use: bool | None = None
    program_reservation_use: bool | None = None
    freeze_protection_use: bool | None = None
    eco_use: bool | None = None
    anti_legionella_period: int | None = None
    vacation_day_setting: int | None = None
    vacation_day_elapsed: int | None = None
    recirc_operation_mode: int | None = None
    air_filter_alarm_period: int | None = None
    air_filter_alarm_elapsed: int | None = None
    raw: Mapping[str, Any] = attrs.field(factory=dict, repr=False)

    @property
    def powered(self) -> bool | None:
        """Off when its mode is ``power-off``."""
        return None if self.dhw_mode is None else self.dhw_mode is not DhwMode.POWER_OFF

    @classmethod
    def decode(cls, device: str, status: Mapping[str, Any]) -> Status:
        values: dict[str, Any] = {
            "command": _int(status.get("command")),
            "dhw_temperature": _temperature(status.get("dhwTemperature")),
            "dhw_temperature_setting": _temperature(status.get("dhwTemperatureSetting")),
            "dhw_target_temperature_setting": _temperature(
                status.get("dhwTargetTemperatureSetting")
            ),
            "dhw_mode": _enum(DhwMode, status.get("dhwOperationSetting")),
            "operation_mode": _enum(OperationMode, status.get("operationMode")),
        }
        values.update(
            {name: protocol.from_flag(status.get(key)) for name, key in _STATUS_FLAGS.items()}
        )
        values.update({name: _int(status.get(key)) for name, key in _STATUS_INTS.items()})
        return cls(device=device, raw=dict(status), **values)

    def to_dict(self) -> dict[str, Any]:
        return {**_as_dict(self), "powered": self.powered}


_FEATURE_FLAGS = {
    "power_use": "powerUse",
    "dhw_use": "dhwUse",
    "heatpump_use": "heatpumpUse",
    "electric_use": "electricUse",
    "energy_saver_use": "energySaverUse",
    "high_demand_use": "highDemandUse",
    "holiday_use": "holidayUse",
    "anti_legionella_setting_use": "antiLegionellaSettingUse",
    "program_reservation_use": "programReservationUse",
    "recirculation_use": "recirculationUse",
    "energy_usage_use": "energyUsageUse",
}


@attrs.frozen(kw_only=True)
class Features:
    """A feature reply (``response.feature``): what the heater can do, and its setpoint range."""

    device: str
    dhw_temperature_min: Temperature | None = None
    dhw_temperature_max: Temperature | None = None
    controller_serial_number: str | None = None
    model_type_code: int | None = None
    controller_sw_version: int | None = None
    panel_sw_version: int | None = None
    wifi_sw_version: int | None = None
    power_use: bool | None = None
    dhw_use: bool | None = None
    heatpump_use: bool | None = None
    electric_use: bool | None = None
    energy_saver_use: bool | None = None
    high_demand_use: bool | None = None
    holiday_use: bool | None = None
    anti_legionella_setting_use: bool | None = None
    program_reservation_use: bool | None = None
    recirculation_use: bool | None = None
    energy_usage_use: bool | None = None
    raw: Mapping[str, Any] = attrs.field(factory=dict, repr=False)

    @classmethod
    def decode(cls, device: str, feature: Mapping[str, Any]) -> Features:
        serial = feature.get("controllerSerialNumber")
        values: dict[str, Any] = {
            "dhw_temperature_min": _temperature(feature.get("dhwTemperatureMin")),
            "dhw_temperature_max": _temperature(feature.get("dhwTemperatureMax")),
            "controller_serial_number": serial if isinstance(serial, str) else None,
            "model_type_code": _int(feature.get("modelTypeCode")),
            "controller_sw_version": _int(feature.get("controllerSwVersion")),
            "panel_sw_version": _int(feature.get("panelSwVersion")),
            "wifi_sw_version": _int(feature.get("wifiSwVersion")),
        }
        values.update(
            {name: protocol.from_flag(feature.get(key)) for name, key in _FEATURE_FLAGS.items()}
        )
        return cls(device=device, raw=dict(feature), **values)

    def to_dict(self) -> dict[str, Any]:
        return _as_dict(self)


@attrs.frozen(kw_only=True)
class Presence:
    """An app-connection event: the heater came online (status 1) or went away (status 0: its
    Last Will)."""

    device: str
    online: bool
    status: int
    os: str | None = None
    model_type_code: int | None = None
    client_id: str | None = None
    raw: Mapping[str, Any] = attrs.field(factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return _as_dict(self)


@attrs.frozen(kw_only=True)
class ControlFailure:
    """A ``ctrl-fail`` message. ``failCode`` 2: controls came faster than the device's control
    interval (the command is sent again later)."""

    device: str
    fail_code: int | None
    raw: Mapping[str, Any] = attrs.field(factory=dict, repr=False)

    @property
    def busy(self) -> bool:
        return self.fail_code == protocol.FAIL_CONTROL_INTERVAL

    def to_dict(self) -> dict[str, Any]:
        return {**_as_dict(self), "busy": self.busy}


@attrs.frozen(kw_only=True)
class Response:
    """Any other reply (reservations read back, energy usage...): its ``response`` as sent.
    ``kind`` is the reply topic's suffix (``rsv/rd``)."""

    device: str
    kind: str
    fields: Mapping[str, Any] = attrs.field(factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"device": self.device, "kind": self.kind, "fields": dict(self.fields)}


#: days of a reservation's ``week`` bitfield
WEEKDAYS: Mapping[str, int] = {
    "sun": 128,
    "mon": 64,
    "tue": 32,
    "wed": 16,
    "thu": 8,
    "fri": 4,
    "sat": 2,
}


def week_bits(days: str | int | list[str] | tuple[str, ...] | set[str] | frozenset[str]) -> int:
    """The ``week`` bitfield (Sun=128 ... Sat=2) from day names (``["mon", "fri"]``,
    ``"mon,tue"``), ``"weekdays"``/``"weekends"``/``"daily"``, or the bitfield itself."""
    if isinstance(days, bool):
        raise TypeError(f"week must be days or a bitfield, not {days!r}")
    if isinstance(days, int):
        if days <= 0 or days > 254 or days & 1:
            raise ValueError(f"week bitfield {days} is not a set of days (Sun=128 ... Sat=2)")
        return days
    names = days.split(",") if isinstance(days, str) else list(days)
    bits = 0
    for name in names:
        key = name.strip().lower()
        if key in _DAY_GROUPS:
            bits |= _DAY_GROUPS[key]
        elif key[:3] in WEEKDAYS and _DAY_NAMES.get(key[:3], "").startswith(key):
            bits |= WEEKDAYS[key[:3]]
        else:
            raise ValueError(f"unknown day {name!r}: use sun, mon, tue, wed, thu, fri, sat")
    if not bits:
        raise ValueError("a reservation needs at least one day")
    return bits


_DAY_NAMES = {
    "sun": "sunday",
    "mon": "monday",
    "tue": "tuesday",
    "wed": "wednesday",
    "thu": "thursday",
    "fri": "friday",
    "sat": "saturday",
}
_DAY_GROUPS = {
    "weekdays": 64 | 32 | 16 | 8 | 4,
    "weekends": 128 | 2,
    "daily": 254,
}


def _between(low: int, high: int) -> Any:
    return attrs.validators.and_(
        attrs.validators.instance_of(int), attrs.validators.ge(low), attrs.validators.le(high)
    )


@attrs.frozen(kw_only=True)
class Reservation:
    """One entry of the weekly reservation program: at ``hour:minute`` on ``week``'s days,
    switch to ``mode`` with setpoint ``temperature``."""

    week: int = attrs.field(converter=week_bits)
    hour: int = attrs.field(validator=_between(0, 23))
    minute: int = attrs.field(validator=_between(0, 59))
    mode: DhwMode = attrs.field(converter=DhwMode)
    temperature: Temperature
    enabled: bool = True

    @mode.validator
    def _check_mode(self, _: Any, value: DhwMode) -> None:
        if not DhwMode.HEAT_PUMP <= value <= DhwMode.VACATION:
            raise ValueError(f"a reservation's mode is 1-5, not {value.label}")

    def to_wire(self) -> dict[str, Any]:
        return {
            "enable": protocol.flag(self.enabled),
            "week": self.week,
            "hour": self.hour,
            "min": self.minute,
            "mode": int(self.mode),
            "param": self.temperature.half_celsius,
        }
