"""The NWP500 wire protocol: topics, request codes and the JSON envelope. Pure functions only.

Every request goes to ``cmd/52/navilink-{mac}/{suffix}`` as one compact JSON object whose keys
come in a fixed order (``clientID, sessionID, protocolVersion, request, requestTopic,
responseTopic``; in ``request``: ``command, deviceType, macAddress, additionalValue`` and then
``mode, param, paramStr`` for controls, or the fields of a schedule write or energy query).
Replies go where the request's ``responseTopic`` says: the control acknowledgement topic
``cmd/52/navilink-{mac}/{clientId}/res`` for status, features and mode controls, the client form
``cmd/52/{clientId}/res/{reply}`` for the others. The device itself publishes on
``cmd/52/navilink-{mac}/res/{suffix}`` (``ctrl-fail``) and ``evt/52/navilink-{mac}/app-connection``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import attrs

#: the NWP500's deviceType
DEVICE_TYPE = 52
#: protocolVersion of requests
PROTOCOL_VERSION = 2
#: protocolVersion of app-connection events
EVENT_PROTOCOL_VERSION = 1
#: ``status.command`` of a status reply
STATUS_REPLY_COMMAND = 67108883
#: ``failCode`` of a control sent before the device's control interval passed: resend later
FAIL_CONTROL_INTERVAL = 2

#: booleans on the wire
FLAG_OFF = 1
FLAG_ON = 2


@attrs.frozen
class Request:
    """One kind of request: its topic suffix, its ``command`` code and where it is answered
    (``reply``: the suffix of the client-form reply topic; ``None``: the acknowledgement topic)."""

    suffix: str
    command: int
    reply: str | None = None


#: queries, by the ``kind`` of their commands
QUERIES: Mapping[str, Request] = {
    "status": Request("st", 16777219),
    "features": Request("st/did", 16777217),
    "end": Request("st/end", 16777218, "end"),
    "reservations": Request("st/rsv/rd", 16777222, "rsv/rd"),
    "recirc-reservations": Request("st/recirc-rsv/rd", 16777231, "recirc-rsv/rd"),
    "td": Request("st/td/rd", 16777228, "td/rd"),
    "software": Request("st/dl-sw-info", 16777227, "dl-sw-info"),
    "energy-daily": Request(
        "st/energy-usage-daily-query/rd", 16777225, "energy-usage-daily-query/rd"
    ),
    "energy-monthly": Request(
        "st/energy-usage-monthly-query/rd", 16777226, "energy-usage-monthly-query/rd"
    ),
    "energy-hourly": Request(
        "st/energy-usage-hourly-query/rd", 16777224, "energy-usage-hourly-query/rd"
    ),
}

#: writes that carry their own fields instead of mode/param, by kind
WRITES: Mapping[str, Request] = {
    "reservations-write": Request("ctrl/rsv/rd", 16777226, "rsv/rd"),
    "tou-schedule": Request("ctrl/tou/rd", 33554439, "tou/rd"),
    "recirc-schedule": Request("ctrl/recirc-rsv/rd", 33554440, "recirc-rsv/rd"),
    "commit-ota": Request("ctrl/commit-ota", 33554442),
}

#: mode controls (topic suffix ``ctrl``): ``mode`` -> ``command``
CONTROLS: Mapping[str, int] = {
    "power-on": 33554434,
    "power-off": 33554433,
    "dhw-mode": 33554437,
    "dhw-temperature": 33554464,
    "anti-leg-on": 33554472,
    "anti-leg-off": 33554471,
    "tou-on": 33554476,
    "tou-off": 33554475,
    "dr-on": 33554470,
    "dr-off": 33554469,
    "intelligent-on": 33554468,
    "intelligent-off": 33554467,
    "goout-day": 33554466,
    "reservation-mode": 33554441,
    "recirc-hotbtn": 33554444,
    "recirc-mode": 33554445,
    "air-filter-reset": 33554473,
    "air-filter-life": 33554474,
    "cond-fault-reset": 33554463,
}
#: ``command`` -> ``mode`` (what the simulator reads)
CONTROL_MODES: Mapping[int, str] = {code: mode for mode, code in CONTROLS.items()}

CONTROL_SUFFIX = "ctrl"

_MAC = re.compile(r"[0-9a-f]{12}")
_MAC_SEPARATED = re.compile(r"[0-9a-f]{2}([:\-.]?)(?:[0-9a-f]{2}\1){4}[0-9a-f]{2}")


def normalise_mac(text: str) -> str | None:
    """``04786332fca0`` from ``04786332FCA0``, ``04:78:63:32:fc:a0`` or ``04-78-...``; None for
    anything else."""
    lowered = text.strip().lower()
    if not _MAC_SEPARATED.fullmatch(lowered):
        return None
    mac = re.sub(r"[:\-.]", "", lowered)
    return mac if _MAC.fullmatch(mac) else None


# -- topics ---------------------------------------------------------------------------------------


def device_level(mac: str) -> str:
    return f"navilink-{mac}"


def request_topic(mac: str, suffix: str, device_type: int = DEVICE_TYPE) -> str:
    return f"cmd/{device_type}/navilink-{mac}/{suffix}"


def ack_topic(mac: str, client_id: str, device_type: int = DEVICE_TYPE) -> str:
    """Where the device answers status and feature requests and mode controls."""
    return f"cmd/{device_type}/navilink-{mac}/{client_id}/res"


def client_reply_topic(client_id: str, suffix: str, device_type: int = DEVICE_TYPE) -> str:
    return f"cmd/{device_type}/{client_id}/res/{suffix}"


def device_reply_topic(mac: str, suffix: str, device_type: int = DEVICE_TYPE) -> str:
    return f"cmd/{device_type}/navilink-{mac}/res/{suffix}"


def ctrl_fail_topic(mac: str, device_type: int = DEVICE_TYPE) -> str:
    return device_reply_topic(mac, "ctrl-fail", device_type)


def presence_topic(mac: str, device_type: int = DEVICE_TYPE) -> str:
    return f"evt/{device_type}/navilink-{mac}/app-connection"


def device_filter(mac: str, device_type: int = DEVICE_TYPE) -> str:
    """Everything under the device's command tree: requests, acknowledgements, device replies."""
    return f"cmd/{device_type}/navilink-{mac}/#"


def client_filter(client_id: str, device_type: int = DEVICE_TYPE) -> str:
    """Replies in the client form, for every device."""
    return f"cmd/{device_type}/{client_id}/res/#"


def is_request_suffix(suffix: str) -> bool:
    """Whether the part of a topic after ``navilink-{mac}/`` names a request (``st``,
    ``st/did``, ``ctrl``, ``ctrl/rsv/rd``...) rather than a reply."""
    head = suffix.split("/", 1)[0]
    return head in ("st", CONTROL_SUFFIX)


# -- envelope -------------------------------------------------------------------------------------


def encode(document: Mapping[str, Any]) -> bytes:
    """Compact JSON in the key order given (the app's own encoding: no spaces, UTF-8)."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def envelope(
    *,
    client_id: str,
    session_id: str,
    mac: str,
    additional_value: str,
    suffix: str,
    command: int,
    reply: str | None,
    fields: Mapping[str, Any] | None = None,
    device_type: int = DEVICE_TYPE,
) -> tuple[str, dict[str, Any]]:
    """The topic and the request document, keys in wire order; ``fields`` follow
    ``additionalValue`` inside ``request`` in the order given."""
    topic = request_topic(mac, suffix, device_type)
    request: dict[str, Any] = {
        "command": command,
        "deviceType": device_type,
        "macAddress": mac,
        "additionalValue": additional_value,
    }
    request.update(fields or {})
    response = (
        ack_topic(mac, client_id, device_type)
        if reply is None
        else client_reply_topic(client_id, reply, device_type)
    )
    return topic, {
        "clientID": client_id,
        "sessionID": session_id,
        "protocolVersion": PROTOCOL_VERSION,
        "request": request,
        "requestTopic": topic,
        "responseTopic": response,
    }


def mode_fields(mode: str, param: list[int]) -> dict[str, Any]:
    return {"mode": mode, "param": list(param), "paramStr": ""}


# -- values ---------------------------------------------------------------------------------------


def flag(value: bool) -> int:
    return FLAG_ON if value else FLAG_OFF


def from_flag(value: Any) -> bool | None:
    """2 -> True, 1 -> False, anything else -> None."""
    if value == FLAG_ON and not isinstance(value, bool):
        return True
    if value == FLAG_OFF and not isinstance(value, bool):
        return False
    return None


def half_celsius_from_celsius(celsius: float) -> int:
    return round(celsius * 2)


def half_celsius_from_fahrenheit(fahrenheit: float) -> int:
    return round((fahrenheit - 32) * 5 / 9 * 2)


def celsius(half_celsius: int) -> float:
    return half_celsius / 2


def fahrenheit(half_celsius: int) -> float:
    return round(half_celsius / 2 * 9 / 5 + 32, 1)
