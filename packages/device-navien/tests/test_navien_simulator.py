"""The simulator against a real Mosquitto: what it answers, where, and when it refuses."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from navien_helpers import MAC, Clock, Watcher

from mqttq.testing import eventually
from mqttq.testing.services import Mosquitto
from mqttq_navien.adapter import NavienAdapter
from mqttq_navien.models import ControlFailure, DhwMode, Features, OperationMode, Status
from mqttq_navien.models import Temperature as T
from mqttq_navien.simulator import FAIL_INVALID, HeaterState, NavienSimulator

CID = "navien-client-1996271a"
ACK = f"cmd/52/navilink-{MAC}/{CID}/res"
FAIL = f"cmd/52/navilink-{MAC}/res/ctrl-fail"
PRESENCE = f"evt/52/navilink-{MAC}/app-connection"


@pytest.fixture
def adapter() -> NavienAdapter:
    adapter = NavienAdapter(client_id=CID)
    adapter.add_device(MAC, additional_value="5322")
    return adapter


@pytest.fixture
async def watcher(mosquitto: Mosquitto) -> AsyncIterator[Watcher]:
    async with Watcher(mosquitto.url) as w:
        yield w


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def sim(
    mosquitto: Mosquitto, watcher: Watcher, clock: Clock
) -> AsyncIterator[NavienSimulator]:
    simulator = NavienSimulator(
        mosquitto.url, mac=MAC, additional_value="5322", control_interval=0.2, clock=clock
    )
    async with simulator:
        await watcher.next_on(PRESENCE)  # it is subscribed and answering
        yield simulator


async def ask(watcher: Watcher, command: Any, topic: str = ACK, after: int = 0) -> bytes:
    await watcher.publish(command.topic, command.payload)
    return await watcher.next_on(topic, after)


async def test_presence_on_connect_and_status_0_when_it_stops(
    mosquitto: Mosquitto, watcher: Watcher, adapter: NavienAdapter
) -> None:
    async with NavienSimulator(
        mosquitto.url, mac="04:78:63:32:FC:A0", additional_value="5322", model_type_code=513
    ) as sim:
        online = json.loads(await watcher.next_on(PRESENCE))
    offline = json.loads(await watcher.next_on(PRESENCE, 1))
    assert list(online) == ["clientID", "sessionID", "protocolVersion", "requestTopic", "event"]
    assert online["clientID"] == sim.client_id
    assert online["protocolVersion"] == 1
    assert online["requestTopic"] == PRESENCE
    assert online["event"] == {
        "macAddress": MAC,
        "deviceType": 52,
        "additionalValue": "5322",
        "modelTypeCode": 513,
        "connection": {"status": 1, "os": "P"},
    }
    assert offline["event"]["connection"] == {"status": 0, "os": "P"}
    replies = [adapter.interpret(PRESENCE, p) for p in watcher.on(PRESENCE)]
    assert [r.data.online for r in replies if r is not None] == [True, False]


async def test_a_status_request_is_answered_on_its_response_topic(
    sim: NavienSimulator, watcher: Watcher, adapter: NavienAdapter
) -> None:
    command = adapter.status(MAC)
    payload = await ask(watcher, command)
    document = json.loads(payload)
    assert list(document) == ["clientID", "sessionID", "requestTopic", "responseTopic", "response"]
    assert document["clientID"] == CID
    assert document["sessionID"] == adapter.session_id
    assert document["requestTopic"] == command.topic
    assert document["responseTopic"] == ACK
    response = document["response"]
    assert list(response) == ["deviceType", "macAddress", "additionalValue", "status"]
    assert (response["deviceType"], response["macAddress"], response["additionalValue"]) == (
        52,
        MAC,
        "5322",
    )
    assert response["status"]["command"] == 67108883
    reply = adapter.interpret(ACK, payload)
    assert reply is not None
    assert (reply.outcome, reply.request_topic) == ("ok", command.topic)
    assert adapter.answers(command, reply)
    status = reply.data
    assert isinstance(status, Status)
    assert status.dhw_temperature_setting is not None
    assert status.dhw_temperature_setting.half_celsius == 120
    assert status.dhw_mode is DhwMode.ENERGY_SAVER
    assert status.powered is True
    assert status.error_code == 0
    # it kept the request exactly as sent
    assert [(r.topic, r.payload) for r in sim.requests] == [(command.topic, command.payload)]


async def test_a_feature_request_is_answered_with_the_setpoint_range(
    sim: NavienSimulator, watcher: Watcher, adapter: NavienAdapter
) -> None:
    sim.state.temperature_max = 130
    reply = adapter.interpret(ACK, await ask(watcher, adapter.request_features(MAC)))
    assert reply is not None
    assert (reply.kind, reply.outcome) == ("features", "ok")
    assert isinstance(reply.data, Features)
    assert reply.data.dhw_temperature_max is not None
    assert reply.data.dhw_temperature_max.half_celsius == 130
    assert reply.data.controller_serial_number == sim.state.controller_serial_number


async def test_controls_change_the_heater_and_are_acknowledged_with_its_status(
    sim: NavienSimulator, watcher: Watcher, adapter: NavienAdapter, clock: Clock
) -> None:
    steps = [
        (adapter.set_temperature(MAC, 130, "F"), lambda s: s.dhw_temperature_setting == T(109)),
        (adapter.set_mode(MAC, "high-demand"), lambda s: s.dhw_mode is DhwMode.HIGH_DEMAND),
        (adapter.power(MAC, False), lambda s: s.dhw_mode is DhwMode.POWER_OFF and not s.powered),
        (adapter.power(MAC, True), lambda s: s.dhw_mode is DhwMode.HIGH_DEMAND),
        (adapter.set_mode(MAC, "vacation", days=9), lambda s: s.vacation_day_setting == 9),
        (adapter.anti_legionella(MAC, 14), lambda s: s.anti_legionella_period == 14),
        (adapter.anti_legionella(MAC, None), lambda s: s.anti_legionella_use is False),
    ]
    for n, (command, check) in enumerate(steps):
        clock.advance(0.2)  # the control interval
        reply = adapter.interpret(ACK, await ask(watcher, command, after=n))
        assert reply is not None, command.kind
        assert (reply.kind, reply.outcome, reply.request_topic) == ("status", "ok", command.topic)
        assert check(reply.data), (command.kind, reply.data)
    assert watcher.on(FAIL) == []
    assert [r.mode for r in sim.requests] == [
        "dhw-temperature",
        "dhw-mode",
        "power-off",
        "power-on",
        "dhw-mode",
        "anti-leg-on",
        "anti-leg-off",
    ]


async def test_other_controls_reach_the_heaters_state(
    sim: NavienSimulator, watcher: Watcher, adapter: NavienAdapter, clock: Clock
) -> None:
    commands = [
        adapter.tou(MAC, True),
        adapter.demand_response(MAC, True),
        adapter.intelligent(MAC, True),
        adapter.recirculation_mode(MAC, 3),
        adapter.recirculation_hot_button(MAC),
        adapter.reset_air_filter(MAC),
        adapter.air_filter_life(MAC, 2000),
    ]
    for n, command in enumerate(commands):
        clock.advance(1)
        await ask(watcher, command, after=n)
    state = sim.state
    assert (state.tou, state.demand_response, state.intelligent) == (True, True, True)
    assert (state.recirc_mode, state.recirc_hot_button) == (3, 1)
    assert (state.air_filter_elapsed, state.air_filter_life) == (0, 2000)


async def test_a_control_sooner_than_the_interval_gets_ctrl_fail_2(
    sim: NavienSimulator, watcher: Watcher, adapter: NavienAdapter, clock: Clock
) -> None:
    first = adapter.set_temperature(MAC, 130)
    second = adapter.set_temperature(MAC, 140)
    await ask(watcher, first)
    clock.advance(0.19)
    failure = json.loads(await ask(watcher, second, FAIL))
    assert failure["requestTopic"] == second.topic
    assert failure["clientID"] == CID
    assert failure["response"]["failCode"] == 2
    reply = adapter.interpret(FAIL, json.dumps(failure).encode())
    assert reply is not None
    assert (reply.kind, reply.outcome) == ("ctrl-fail", "busy")
    assert isinstance(reply.data, ControlFailure)
    assert adapter.answers(second, reply)
    assert sim.state.setpoint == 109  # the refused control changed nothing
    clock.advance(0.01)  # the interval has passed since the control it took
    accepted = adapter.interpret(ACK, await ask(watcher, second, after=1))
    assert accepted is not None
    assert accepted.outcome == "ok"
    assert sim.state.setpoint == 120
    assert len(watcher.on(FAIL)) == 1


async def test_queries_are_never_refused_for_coming_quickly(
    sim: NavienSimulator, watcher: Watcher, adapter: NavienAdapter
) -> None:
    await ask(watcher, adapter.power(MAC, True))
    for n in range(1, 4):
        await ask(watcher, adapter.status(MAC), after=n)
    assert watcher.on(FAIL) == []


async def test_a_control_it_cannot_apply_is_rejected(
    sim: NavienSimulator, watcher: Watcher, adapter: NavienAdapter
) -> None:
    too_hot = adapter.control(MAC, "dhw-temperature", [200])  # past the adapter's range check
    failure = await ask(watcher, too_hot, FAIL)
    reply = adapter.interpret(FAIL, failure)
    assert reply is not None
    assert reply.outcome == "rejected"
    assert reply.data.fail_code == FAIL_INVALID
    assert sim.state.setpoint == 120


async def test_reservations_are_written_and_read_back(
    sim: NavienSimulator, watcher: Watcher, adapter: NavienAdapter
) -> None:
    from mqttq_navien.models import Reservation, Temperature

    entry = Reservation(week="weekdays", hour=6, minute=30, mode=3, temperature=Temperature(118))
    write = adapter.set_reservations(MAC, [entry])
    topic = f"cmd/52/{CID}/res/rsv/rd"
    written = adapter.interpret(topic, await ask(watcher, write, topic))
    assert written is not None
    assert (written.kind, written.outcome) == ("rsv/rd", "ok")
    assert adapter.answers(write, written)
    read = adapter.read_reservations(MAC)
    back = adapter.interpret(topic, await ask(watcher, read, topic, after=1))
    assert back is not None
    assert back.data.fields["reservationUse"] == 2
    assert back.data.fields["reservation"] == [entry.to_wire()]
    assert sim.state.reservation_use is True


async def test_it_takes_only_requests_and_keeps_them_in_order(
    sim: NavienSimulator, watcher: Watcher, adapter: NavienAdapter
) -> None:
    status = adapter.status(MAC)
    noise = [
        (f"cmd/52/navilink-{MAC}/{CID}/res", status.payload),  # a reply topic
        (f"cmd/52/navilink-{MAC}/res/ctrl-fail", b"{}"),
        (f"cmd/52/navilink-{MAC}/st", b"not json"),
        (f"cmd/52/navilink-{MAC}/st", b'{"no": "request"}'),
        ("cmd/52/navilink-aaaaaaaaaaaa/st", status.payload),  # another heater
    ]
    for topic, payload in noise:
        await watcher.publish(topic, payload)
    queries = [
        adapter.status(MAC),
        adapter.request_features(MAC),
        adapter.energy_usage(MAC, "daily", year=2025, months=[9]),
        adapter.status(MAC),
    ]
    for command in queries:
        await watcher.publish(command.topic, command.payload)
    await eventually(lambda: len(sim.requests) >= 4, what="the four requests")
    assert [(r.topic, r.payload) for r in sim.requests] == [(c.topic, c.payload) for c in queries]
    assert [r.command for r in sim.requests] == [16777219, 16777217, 16777225, 16777219]


def test_the_tank_drifts_toward_the_setpoint() -> None:
    clock = Clock()
    sim = NavienSimulator(mac=MAC, heating_rate=0.5, clock=clock, state=HeaterState(tank=100.0))
    first = sim.status_document()
    assert first["dhwTemperature"] == 100
    assert first["operationMode"] == OperationMode.HYBRID_EFFICIENCY
    assert first["compUse"] == 2
    clock.advance(10)
    assert sim.status_document()["dhwTemperature"] == 105
    clock.advance(100)
    reached = sim.status_document()
    assert reached["dhwTemperature"] == 120
    assert reached["operationMode"] == OperationMode.STANDBY
    assert reached["compUse"] == 1
    sim.state.mode = DhwMode.POWER_OFF
    clock.advance(40)  # cooling goes at a tenth of the heating rate
    assert sim.status_document()["dhwTemperature"] == 118
    sim.state.mode = DhwMode.ELECTRIC
    heating = sim.status_document()
    assert (heating["heatUpperUse"], heating["compUse"]) == (2, 1)


def test_a_bad_mac_is_refused() -> None:
    with pytest.raises(Exception, match="not a MAC address"):
        NavienSimulator(mac="garage")
