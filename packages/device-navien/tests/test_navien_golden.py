"""Every request the adapter builds, byte for byte against tests/golden/<case>.txt.

Each file is ``TOPIC <topic>`` and the payload, one line each, written from the protocol
description (topics, codes, key order, compact JSON), not from the adapter's output.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from mqttq.devices import Command
from mqttq_navien.adapter import NavienAdapter
from mqttq_navien.models import DhwMode, Reservation, Temperature

GOLDEN = Path(__file__).parent / "golden"
MAC = "04786332fca0"
CLIENT_ID = "navien-client-1996271a"
SESSION_ID = "5e1c2ab0b7e34d0c9f3a6d8e2b4c1f70"

Build = Callable[[NavienAdapter], Command]

#: case -> (how it is built, its kind, whether it is a control)
CASES: dict[str, tuple[Build, str, bool]] = {
    "status": (lambda a: a.status(MAC), "status", False),
    "features": (lambda a: a.request_features(MAC), "features", False),
    "end": (lambda a: a.query(MAC, "end"), "end", False),
    "reservations-read": (lambda a: a.read_reservations(MAC), "reservations", False),
    "recirc-reservations-read": (
        lambda a: a.query(MAC, "recirc-reservations"),
        "recirc-reservations",
        False,
    ),
    "td-read": (lambda a: a.query(MAC, "td"), "td", False),
    "software-info": (lambda a: a.query(MAC, "software"), "software", False),
    "energy-daily": (
        lambda a: a.energy_usage(MAC, "daily", year=2025, months=[9]),
        "energy-daily",
        False,
    ),
    "energy-monthly": (
        lambda a: a.energy_usage(MAC, "monthly", year=2025, months=[7, 8, 9]),
        "energy-monthly",
        False,
    ),
    "energy-hourly": (
        lambda a: a.energy_usage(MAC, "hourly", year=2025, months=[9], days=[14]),
        "energy-hourly",
        False,
    ),
    "power-on": (lambda a: a.power(MAC, True), "power-on", True),
    "power-off": (lambda a: a.power(MAC, False), "power-off", True),
    "dhw-mode-heat-pump": (lambda a: a.set_mode(MAC, "heat-pump"), "dhw-mode", True),
    "dhw-mode-electric": (lambda a: a.set_mode(MAC, DhwMode.ELECTRIC), "dhw-mode", True),
    "dhw-mode-energy-saver": (lambda a: a.set_mode(MAC, "energy-saver"), "dhw-mode", True),
    "dhw-mode-high-demand": (lambda a: a.set_mode(MAC, 4), "dhw-mode", True),
    "dhw-mode-vacation-7-days": (
        lambda a: a.set_mode(MAC, "vacation", days=7),
        "dhw-mode",
        True,
    ),
    "dhw-mode-power-off": (lambda a: a.set_mode(MAC, "power-off"), "dhw-mode", True),
    "dhw-temperature-140f": (
        lambda a: a.set_temperature(MAC, 140, "F"),
        "dhw-temperature",
        True,
    ),
    "dhw-temperature-120f": (
        lambda a: a.set_temperature(MAC, 120, "F"),
        "dhw-temperature",
        True,
    ),
    "dhw-temperature-49.5c": (
        lambda a: a.set_temperature(MAC, 49.5, "C"),
        "dhw-temperature",
        True,
    ),
    "anti-leg-on-7-days": (lambda a: a.anti_legionella(MAC, 7), "anti-leg-on", True),
    "anti-leg-off": (lambda a: a.anti_legionella(MAC, None), "anti-leg-off", True),
    "tou-on": (lambda a: a.tou(MAC, True), "tou-on", True),
    "tou-off": (lambda a: a.tou(MAC, False), "tou-off", True),
    "dr-on": (lambda a: a.demand_response(MAC, True), "dr-on", True),
    "dr-off": (lambda a: a.demand_response(MAC, False), "dr-off", True),
    "intelligent-on": (lambda a: a.intelligent(MAC, True), "intelligent-on", True),
    "intelligent-off": (lambda a: a.intelligent(MAC, False), "intelligent-off", True),
    "goout-day-10": (lambda a: a.vacation_days(MAC, 10), "goout-day", True),
    "reservation-mode": (lambda a: a.reservation_mode(MAC), "reservation-mode", True),
    "recirc-hotbtn": (lambda a: a.recirculation_hot_button(MAC), "recirc-hotbtn", True),
    "recirc-mode-2": (lambda a: a.recirculation_mode(MAC, 2), "recirc-mode", True),
    "air-filter-reset": (lambda a: a.reset_air_filter(MAC), "air-filter-reset", True),
    "air-filter-life-1000h": (lambda a: a.air_filter_life(MAC, 1000), "air-filter-life", True),
    "cond-fault-reset": (lambda a: a.reset_condensate_fault(MAC), "cond-fault-reset", True),
    "reservations-write": (
        lambda a: a.set_reservations(
            MAC,
            [
                Reservation(
                    week="weekdays",
                    hour=6,
                    minute=30,
                    mode=DhwMode.ENERGY_SAVER,
                    temperature=Temperature.from_celsius(60),
                ),
                Reservation(
                    week=["sat", "sun"],
                    hour=8,
                    minute=0,
                    mode=DhwMode.HIGH_DEMAND,
                    temperature=Temperature(125),
                    enabled=False,
                ),
            ],
        ),
        "reservations-write",
        True,
    ),
    "reservations-write-off": (
        lambda a: a.set_reservations(MAC, [], enabled=False),
        "reservations-write",
        True,
    ),
    "tou-schedule": (
        lambda a: a.write(
            MAC,
            "tou-schedule",
            controllerSerialNumber="ABC123",
            reservationUse=2,
            reservation=[
                {
                    "season": 4095,
                    "week": 124,
                    "startHour": 16,
                    "startMinute": 0,
                    "endHour": 21,
                    "endMinute": 0,
                    "priceMin": 30,
                    "priceMax": 45,
                    "decimalPoint": 2,
                }
            ],
        ),
        "tou-schedule",
        True,
    ),
    "recirc-schedule": (
        lambda a: a.write(
            MAC,
            "recirc-schedule",
            reservationUse=2,
            reservation=[{"enable": 2, "week": 254, "hour": 6, "min": 0}],
        ),
        "recirc-schedule",
        True,
    ),
    "commit-ota": (
        lambda a: a.write(MAC, "commit-ota", commitOta={"swCode": 1, "swVersion": 184614912}),
        "commit-ota",
        True,
    ),
}


@pytest.fixture
def adapter() -> NavienAdapter:
    adapter = NavienAdapter(client_id=CLIENT_ID, session_id=SESSION_ID)
    adapter.add_device(MAC, additional_value="5322")
    return adapter


def wire(command: Command) -> bytes:
    return f"TOPIC {command.topic}\n".encode() + command.payload + b"\n"


@pytest.mark.parametrize("case", sorted(CASES))
def test_request_matches_its_golden_file(adapter: NavienAdapter, case: str) -> None:
    build, kind, control = CASES[case]
    command = build(adapter)
    assert wire(command) == (GOLDEN / f"{case}.txt").read_bytes()
    assert command.device == MAC
    assert command.family == "navien"
    assert command.kind == kind
    assert command.control is control
    assert command.qos == 1
    assert command.acknowledged_by_device


def test_every_golden_file_has_a_case() -> None:
    assert {p.stem for p in GOLDEN.glob("*.txt")} == set(CASES)


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_envelope_key_order(case: str) -> None:
    # the fixtures themselves follow the documented key order
    _, payload = (GOLDEN / f"{case}.txt").read_text().splitlines()
    document = json.loads(payload)
    assert list(document) == [
        "clientID",
        "sessionID",
        "protocolVersion",
        "request",
        "requestTopic",
        "responseTopic",
    ]
    request = list(document["request"])
    assert request[:4] == ["command", "deviceType", "macAddress", "additionalValue"]
    if document["requestTopic"].endswith("/ctrl"):
        assert request[4:] == ["mode", "param", "paramStr"]
    elif "/st" in document["requestTopic"]:
        assert not {"mode", "param", "paramStr"} & set(request)


def test_requests_are_addressed_to_the_configured_mac_however_it_was_written() -> None:
    adapter = NavienAdapter(client_id=CLIENT_ID, session_id=SESSION_ID)
    assert adapter.add_device("04:78:63:32:FC:A0", additional_value="5322") == MAC
    command = adapter.status("04-78-63-32-fc-a0")
    assert wire(command) == (GOLDEN / "status.txt").read_bytes()


def test_session_id_is_one_uuid_per_adapter() -> None:
    one = NavienAdapter(client_id=CLIENT_ID)
    two = NavienAdapter(client_id=CLIENT_ID)
    sessions = [json.loads(a.status(MAC).payload)["sessionID"] for a in (one, one, two)]
    assert sessions[0] == sessions[1] != sessions[2]
    assert all(len(s) == 32 and int(s, 16) >= 0 for s in sessions)
