"""The adapter without a broker: decoding replies, matching them to commands, checking input."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mqttq.devices import Command, DeviceAdapter
from mqttq.errors import ConfigError
from mqttq_navien.adapter import NavienAdapter, NavienCommandError
from mqttq_navien.models import (
    ControlFailure,
    DhwMode,
    Features,
    OperationMode,
    Presence,
    Reservation,
    Response,
    Status,
    Temperature,
    week_bits,
)

MAC = "04786332fca0"
CID = "navien-client-1996271a"
OTHER = "navien-client-0badc0de"
ACK = f"cmd/52/navilink-{MAC}/{CID}/res"
CTRL = f"cmd/52/navilink-{MAC}/ctrl"
ST = f"cmd/52/navilink-{MAC}/st"


@pytest.fixture
def adapter() -> NavienAdapter:
    adapter = NavienAdapter(client_id=CID, session_id="s" * 32)
    adapter.add_device(MAC, additional_value="5322")
    return adapter


def body(**document: Any) -> bytes:
    return json.dumps(document).encode()


def status_reply(request_topic: str | None = CTRL, client: str = CID, **status: Any) -> bytes:
    fields = {
        "command": 67108883,
        "dhwTemperature": 118,
        "dhwTemperatureSetting": 120,
        "dhwTargetTemperatureSetting": 120,
        "dhwOperationSetting": 3,
        "operationMode": 64,
        "errorCode": 0,
        "subErrorCode": 0,
        "dhwUse": 1,
        "compUse": 2,
        "heatUpperUse": 1,
        "antiLegionellaUse": 2,
        "antiLegionellaPeriod": 7,
        **status,
    }
    document: dict[str, Any] = {"clientID": client, "sessionID": "x"}
    if request_topic is not None:
        document["requestTopic"] = request_topic
    document["responseTopic"] = ACK
    document["response"] = {
        "deviceType": 52,
        "macAddress": MAC,
        "additionalValue": "5322",
        "status": fields,
    }
    return body(**document)


# -- status ---------------------------------------------------------------------------------------


def test_a_status_reply_naming_the_control_acknowledges_it(adapter: NavienAdapter) -> None:
    reply = adapter.interpret(ACK, status_reply(CTRL))
    assert reply is not None
    assert (reply.device, reply.kind, reply.outcome, reply.request_topic) == (
        MAC,
        "status",
        "ok",
        CTRL,
    )
    status = reply.data
    assert isinstance(status, Status)
    assert status.dhw_temperature == Temperature(118)
    assert status.dhw_temperature.celsius == 59.0
    assert status.dhw_temperature_setting is not None
    assert status.dhw_temperature_setting.celsius == 60.0
    assert status.dhw_temperature_setting.fahrenheit == 140.0
    assert status.dhw_mode is DhwMode.ENERGY_SAVER
    assert status.operation_mode is OperationMode.HYBRID_EFFICIENCY
    assert status.error_code == 0
    assert status.dhw_use is False
    assert status.comp_use is True
    assert status.anti_legionella_use is True
    assert status.anti_legionella_period == 7
    assert status.heat_lower_use is None  # not in the message
    assert status.powered is True
    assert status.raw["dhwTemperatureSetting"] == 120
    control = adapter.set_temperature(MAC, 140)
    query = adapter.status(MAC)
    assert adapter.answers(control, reply)
    assert not adapter.answers(query, reply)


def test_a_status_reply_naming_the_status_query_answers_it_and_not_a_control(
    adapter: NavienAdapter,
) -> None:
    reply = adapter.interpret(ACK, status_reply(ST))
    assert reply is not None
    assert reply.outcome == "ok"
    assert adapter.answers(adapter.status(MAC), reply)
    assert not adapter.answers(adapter.power(MAC, True), reply)


def test_a_status_without_request_topic_settles_nothing(adapter: NavienAdapter) -> None:
    reply = adapter.interpret(ACK, status_reply(None))
    assert reply is not None
    assert reply.kind == "status"
    assert reply.outcome is None
    assert reply.request_topic is None


def test_a_status_pushed_on_the_device_topic_is_decoded(adapter: NavienAdapter) -> None:
    document = json.loads(status_reply(None))
    del document["clientID"]
    reply = adapter.interpret(f"cmd/52/navilink-{MAC}/res/st", json.dumps(document).encode())
    assert reply is not None
    assert (reply.device, reply.kind, reply.outcome) == (MAC, "status", None)
    assert reply.data.dhw_mode is DhwMode.ENERGY_SAVER


def test_a_request_topic_of_another_device_is_not_an_answer(adapter: NavienAdapter) -> None:
    reply = adapter.interpret(ACK, status_reply("cmd/52/navilink-aaaaaaaaaaaa/ctrl"))
    assert reply is not None
    assert reply.outcome is None


def test_status_codes_it_does_not_know_decode_as_none(adapter: NavienAdapter) -> None:
    reply = adapter.interpret(
        ACK, status_reply(dhwOperationSetting=42, operationMode=7, dhwUse=0, dhwTemperature="hot")
    )
    assert reply is not None
    status = reply.data
    assert isinstance(status, Status)
    assert status.dhw_mode is None
    assert status.operation_mode is None
    assert status.dhw_use is None
    assert status.dhw_temperature is None
    assert status.powered is None


def test_power_off_mode_means_not_powered(adapter: NavienAdapter) -> None:
    reply = adapter.interpret(ACK, status_reply(dhwOperationSetting=6, operationMode=0))
    assert reply is not None
    assert reply.data.powered is False
    assert reply.data.operation_mode is OperationMode.STANDBY
    assert reply.data.to_dict()["dhw_mode"] == "power-off"


# -- what is not for this client ------------------------------------------------------------------


@pytest.mark.parametrize(
    "suffix", ["st", "st/did", "ctrl", "ctrl/rsv/rd", "st/energy-usage-daily-query/rd"]
)
def test_requests_echoed_on_the_device_tree_are_ignored(
    adapter: NavienAdapter, suffix: str
) -> None:
    command = adapter.status(MAC) if suffix == "st" else adapter.power(MAC, True)
    assert adapter.interpret(f"cmd/52/navilink-{MAC}/{suffix}", command.payload) is None


def test_another_clients_reply_is_ignored(adapter: NavienAdapter) -> None:
    topic = f"cmd/52/navilink-{MAC}/{OTHER}/res"
    assert adapter.interpret(topic, status_reply(CTRL, client=OTHER)) is None
    client_form = f"cmd/52/{OTHER}/res/rsv/rd"
    payload = body(response={"macAddress": MAC, "reservationUse": 1})
    assert adapter.interpret(client_form, payload) is None


@pytest.mark.parametrize(
    ("topic", "payload"),
    [
        (ACK, b"not json"),
        (ACK, b"[1, 2]"),
        (ACK, b'{"response": 3}'),
        (ACK, b"\xff\xfe"),
        (f"cmd/53/navilink-{MAC}/{CID}/res", status_reply()),
        ("cmd/52/navilink-nothex/x/res", status_reply()),
        (f"cmd/52/navilink-{MAC}", status_reply()),
        (f"cmd/52/{CID}/res/rsv/rd", body(response={"macAddress": "nope"})),
        (f"evt/52/navilink-{MAC}/something-else", b"{}"),
        ("other/topic/entirely/here", status_reply()),
    ],
)
def test_undecodable_or_foreign_messages_are_none(
    adapter: NavienAdapter, topic: str, payload: bytes
) -> None:
    assert adapter.interpret(topic, payload) is None


@given(
    topic=st.lists(
        st.sampled_from(["cmd", "evt", "52", f"navilink-{MAC}", CID, "res", "st", "ctrl-fail", "x"])
        | st.text(max_size=8),
        min_size=1,
        max_size=7,
    ).map("/".join),
    payload=st.binary(max_size=64)
    | st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(
                st.sampled_from(
                    [
                        "response",
                        "status",
                        "feature",
                        "event",
                        "connection",
                        "failCode",
                        "requestTopic",
                        "macAddress",
                        "clientID",
                        "request",
                        "status",
                    ]
                ),
                inner,
                max_size=4,
            )
        ),
        max_leaves=8,
    ).map(lambda value: json.dumps(value).encode()),
)
def test_interpret_never_raises(topic: str, payload: bytes) -> None:
    adapter = NavienAdapter(client_id=CID)
    adapter.interpret(topic, payload)


# -- features -------------------------------------------------------------------------------------


def features_reply(**feature: Any) -> bytes:
    return body(
        clientID=CID,
        sessionID="x",
        requestTopic=f"cmd/52/navilink-{MAC}/st/did",
        responseTopic=ACK,
        response={
            "deviceType": 52,
            "macAddress": MAC,
            "additionalValue": "5322",
            "feature": feature,
        },
    )


def test_a_feature_reply_decodes_and_sets_the_setpoint_range(adapter: NavienAdapter) -> None:
    assert adapter.to_half_celsius(MAC, 150) == 131  # the default range: up to 65.5 °C
    reply = adapter.interpret(
        ACK,
        features_reply(
            dhwTemperatureMin=75,
            dhwTemperatureMax=130,
            controllerSerialNumber="ABC123",
            heatpumpUse=2,
            electricUse=1,
            controllerSwVersion=184614912,
        ),
    )
    assert reply is not None
    assert (reply.kind, reply.outcome) == ("features", "ok")
    features = reply.data
    assert isinstance(features, Features)
    assert features.dhw_temperature_min == Temperature(75)
    assert features.dhw_temperature_max is not None
    assert features.dhw_temperature_max.celsius == 65.0
    assert features.controller_serial_number == "ABC123"
    assert features.heatpump_use is True
    assert features.electric_use is False
    assert features.controller_sw_version == 184614912
    assert adapter.answers(adapter.request_features(MAC), reply)
    assert adapter.temperature_range(MAC) == (Temperature(75), Temperature(130))
    with pytest.raises(NavienCommandError, match=r"37\.5-65 °C"):
        adapter.set_temperature(MAC, 150)  # 131 half-°C: above this heater's 130
    assert json.loads(adapter.set_temperature(MAC, 100).payload)["request"]["param"] == [76]


def test_features_survive_adding_the_device_again(adapter: NavienAdapter) -> None:
    adapter.interpret(ACK, features_reply(dhwTemperatureMin=80, dhwTemperatureMax=120))
    adapter.add_device(MAC, additional_value="9999")
    assert adapter.temperature_range(MAC) == (Temperature(80), Temperature(120))
    assert json.loads(adapter.status(MAC).payload)["request"]["additionalValue"] == "9999"


# -- ctrl-fail ------------------------------------------------------------------------------------


def ctrl_fail(code: int, client: str | None = CID, request_topic: str | None = None) -> bytes:
    document: dict[str, Any] = {}
    if client is not None:
        document["clientID"] = client
    if request_topic is not None:
        document["requestTopic"] = request_topic
    document["response"] = {"deviceType": 52, "macAddress": MAC, "failCode": code}
    return body(**document)


FAIL_TOPIC = f"cmd/52/navilink-{MAC}/res/ctrl-fail"


def test_ctrl_fail_code_2_is_busy(adapter: NavienAdapter) -> None:
    reply = adapter.interpret(FAIL_TOPIC, ctrl_fail(2))
    assert reply is not None
    assert (reply.kind, reply.outcome, reply.retry_after) == ("ctrl-fail", "busy", None)
    assert isinstance(reply.data, ControlFailure)
    assert reply.data.busy
    assert "failCode 2" in reply.reason
    assert adapter.answers(adapter.set_mode(MAC, "heat-pump"), reply)
    assert not adapter.answers(adapter.status(MAC), reply)  # queries are never refused so


def test_other_fail_codes_reject(adapter: NavienAdapter) -> None:
    reply = adapter.interpret(FAIL_TOPIC, ctrl_fail(5, client=None))
    assert reply is not None
    assert reply.outcome == "rejected"
    assert reply.data.fail_code == 5
    assert not reply.data.busy


def test_ctrl_fail_naming_a_request_answers_only_that_one(adapter: NavienAdapter) -> None:
    reply = adapter.interpret(FAIL_TOPIC, ctrl_fail(2, request_topic=f"{CTRL}/rsv/rd"))
    assert reply is not None
    assert reply.request_topic == f"{CTRL}/rsv/rd"
    assert adapter.answers(adapter.set_reservations(MAC, []), reply)
    assert not adapter.answers(adapter.power(MAC, False), reply)


def test_another_clients_ctrl_fail_is_ignored(adapter: NavienAdapter) -> None:
    assert adapter.interpret(FAIL_TOPIC, ctrl_fail(2, client=OTHER)) is None


# -- presence -------------------------------------------------------------------------------------


PRESENCE = f"evt/52/navilink-{MAC}/app-connection"


def presence(status: int, model: int | None = 513) -> bytes:
    event: dict[str, Any] = {"macAddress": MAC, "deviceType": 52, "additionalValue": "5322"}
    if model is not None:
        event["modelTypeCode"] = model
    event["connection"] = {"status": status, "os": "P"}
    return body(
        clientID="heater",
        sessionID="x",
        protocolVersion=1,
        requestTopic=PRESENCE,
        event=event,
    )


@pytest.mark.parametrize(("status", "online"), [(1, True), (0, False)])
def test_presence_events_say_online_or_offline(
    adapter: NavienAdapter, status: int, online: bool
) -> None:
    reply = adapter.interpret(PRESENCE, presence(status))
    assert reply is not None
    assert (reply.device, reply.kind, reply.outcome) == (MAC, "presence", None)
    assert isinstance(reply.data, Presence)
    assert reply.data.online is online
    assert reply.online is online  # what the device client holds commands on
    assert reply.data.status == status
    assert (reply.data.os, reply.data.model_type_code) == ("P", 513)


def test_an_apps_own_connection_signal_is_not_presence(adapter: NavienAdapter) -> None:
    signal = body(clientID=OTHER, timestamp="2025-01-01T00:00:00Z")
    assert adapter.interpret(PRESENCE, signal) is None


# -- client-form replies --------------------------------------------------------------------------


def test_a_client_form_reply_answers_the_request_with_its_suffix(adapter: NavienAdapter) -> None:
    topic = f"cmd/52/{CID}/res/rsv/rd"
    response = {"deviceType": 52, "macAddress": MAC, "reservationUse": 2, "reservation": []}
    reply = adapter.interpret(topic, body(clientID=CID, response=response))
    assert reply is not None
    assert (reply.device, reply.kind, reply.outcome, reply.request_topic) == (
        MAC,
        "rsv/rd",
        "ok",
        None,
    )
    assert isinstance(reply.data, Response)
    assert reply.data.fields["reservationUse"] == 2
    assert adapter.answers(adapter.read_reservations(MAC), reply)
    assert adapter.answers(adapter.set_reservations(MAC, []), reply)
    assert not adapter.answers(adapter.status(MAC), reply)
    assert not adapter.answers(adapter.query(MAC, "recirc-reservations"), reply)


def test_a_client_form_reply_naming_its_request_answers_exactly_it(
    adapter: NavienAdapter,
) -> None:
    topic = f"cmd/52/{CID}/res/energy-usage-daily-query/rd"
    requested = f"cmd/52/navilink-{MAC}/st/energy-usage-daily-query/rd"
    payload = body(requestTopic=requested, response={"macAddress": MAC.upper(), "usage": []})
    reply = adapter.interpret(topic, payload)
    assert reply is not None
    assert reply.device == MAC
    assert reply.request_topic == requested
    assert adapter.answers(adapter.energy_usage(MAC, "daily", year=2025, months=[1]), reply)


# -- devices and options --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "written",
    ["04786332fca0", "04786332FCA0", "04:78:63:32:fc:a0", "04-78-63-32-FC-A0", " 04786332fca0 "],
)
def test_macs_are_normalised(adapter: NavienAdapter, written: str) -> None:
    assert adapter.check_device(written) == MAC


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "04786332fca",
        "04786332fca0a",
        "0478-6332-fca0",
        "04:78:63-32:fc:a0",
        "zz786332fca0",
        "navilink-04786332fca0",
        "04786332fca0/#",
    ],
)
def test_a_bad_mac_is_one_clear_config_error(adapter: NavienAdapter, bad: str) -> None:
    with pytest.raises(ConfigError) as caught:
        adapter.check_device(bad)
    message = str(caught.value)
    assert "\n" not in message
    assert repr(bad) in message
    assert "12 hex digits" in message


def test_unknown_device_options_are_refused(adapter: NavienAdapter) -> None:
    with pytest.raises(ConfigError, match=r"unknown navien device option.*colour"):
        adapter.add_device(MAC, colour="red")
    with pytest.raises(ConfigError, match="additional_value must be a string"):
        adapter.add_device(MAC, additional_value=["x"])


def test_the_client_id_is_checked() -> None:
    with pytest.raises(ConfigError, match="client id"):
        NavienAdapter(client_id="a/b")


def test_subscriptions_cover_the_device_tree_the_client_replies_and_presence(
    adapter: NavienAdapter,
) -> None:
    assert adapter.subscriptions("04:78:63:32:FC:A0") == [
        f"cmd/52/navilink-{MAC}/#",
        f"cmd/52/{CID}/res/#",
        f"evt/52/navilink-{MAC}/app-connection",
    ]


def test_defaults_suit_the_heater() -> None:
    assert issubclass(NavienAdapter, DeviceAdapter)
    assert NavienAdapter.family == "navien"
    assert NavienAdapter.pacing > 0.5  # above the simulator's default control interval
    assert NavienAdapter.in_flight == 1
    assert NavienAdapter.ack_timeout > NavienAdapter.pacing


def test_a_device_never_added_gets_an_empty_additional_value() -> None:
    adapter = NavienAdapter(client_id=CID)
    request = json.loads(adapter.status("AA:BB:CC:DD:EE:FF").payload)["request"]
    assert request["macAddress"] == "aabbccddeeff"
    assert request["additionalValue"] == ""


# -- command input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "unit", "param"),
    [
        (140, "F", 120),
        (105, "F", 81),
        (150, "F", 131),
        (60, "C", 120),
        (40.5, "C", 81),
        (65.5, "C", 131),
        (122.5, "F", 101),
    ],
)
def test_temperatures_in_range(adapter: NavienAdapter, value: float, unit: Any, param: int) -> None:
    command = adapter.set_temperature(MAC, value, unit)
    assert json.loads(command.payload)["request"]["param"] == [param]


@pytest.mark.parametrize(
    ("value", "unit"), [(104, "F"), (151, "F"), (40, "C"), (66, "C"), (0, "C")]
)
def test_temperatures_out_of_range_are_refused(
    adapter: NavienAdapter, value: float, unit: Any
) -> None:
    with pytest.raises(NavienCommandError) as caught:
        adapter.set_temperature(MAC, value, unit)
    assert str(caught.value) == (
        f"{value:g} °{unit} is outside the setpoint range of {MAC}: 40.5-65.5 °C (105-150 °F)"
    )


def test_temperature_input_is_checked(adapter: NavienAdapter) -> None:
    with pytest.raises(NavienCommandError, match="unit is F or C"):
        adapter.set_temperature(MAC, 140, "K")  # type: ignore[arg-type]
    with pytest.raises(NavienCommandError, match="must be a number"):
        adapter.set_temperature(MAC, float("nan"))


def test_modes(adapter: NavienAdapter) -> None:
    cases = [("hybrid", 3), ("Energy Saver", 3), ("boost", 4), ("HEAT_PUMP", 1), ("2", 2)]
    for text, code in [*cases, ("off", 6)]:
        assert json.loads(adapter.set_mode(MAC, text).payload)["request"]["param"] == [code]
    with pytest.raises(NavienCommandError, match=r"unknown DHW mode 'turbo' \(known: heat-pump, "):
        adapter.set_mode(MAC, "turbo")
    with pytest.raises(NavienCommandError, match="unknown DHW mode"):
        adapter.set_mode(MAC, "standby")  # status-only
    with pytest.raises(NavienCommandError, match="unknown DHW mode"):
        adapter.set_mode(MAC, 0)
    with pytest.raises(NavienCommandError, match="vacation mode needs its number of days"):
        adapter.set_mode(MAC, "vacation")
    with pytest.raises(NavienCommandError, match="from 1 to 99, not 100"):
        adapter.set_mode(MAC, "vacation", days=100)
    with pytest.raises(NavienCommandError, match="only vacation mode takes days"):
        adapter.set_mode(MAC, "heat-pump", days=3)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda a: a.anti_legionella(MAC, 31), "days must be a whole number from 1 to 30"),
        (lambda a: a.recirculation_mode(MAC, 5), "from 1 to 4, not 5"),
        (lambda a: a.air_filter_life(MAC, 1200), "counted in 500 hours"),
        (lambda a: a.vacation_days(MAC, 0), "from 1 to 99, not 0"),
        (lambda a: a.control(MAC, "self-destruct"), "unknown navien control 'self-destruct'"),
        (lambda a: a.query(MAC, "everything"), "unknown navien query 'everything'"),
        (lambda a: a.write(MAC, "firmware"), "unknown navien write 'firmware'"),
        (
            lambda a: a.energy_usage(MAC, "weekly", year=2025, months=[1]),
            "daily, monthly or hourly",
        ),
        (lambda a: a.energy_usage(MAC, "hourly", year=2025, months=[1]), "needs at least one day"),
        (lambda a: a.energy_usage(MAC, "daily", year=2025, months=[13]), "month must be"),
        (lambda a: a.energy_usage(MAC, "daily", year=2025, months=[]), "at least one month"),
    ],
)
def test_out_of_range_controls_are_refused(
    adapter: NavienAdapter, build: Any, message: str
) -> None:
    with pytest.raises(NavienCommandError, match=message):
        build(adapter)


def test_reservations_are_checked(adapter: NavienAdapter) -> None:
    with pytest.raises(ValueError, match="unknown day 'someday'"):
        Reservation(week="mon,someday", hour=1, minute=0, mode=3, temperature=Temperature(100))
    with pytest.raises(ValueError, match="mode is 1-5"):
        Reservation(week="daily", hour=1, minute=0, mode=6, temperature=Temperature(100))
    with pytest.raises(ValueError, match="hour"):
        Reservation(week="daily", hour=24, minute=0, mode=3, temperature=Temperature(100))
    hot = Reservation(week="daily", hour=1, minute=0, mode=3, temperature=Temperature(140))
    with pytest.raises(NavienCommandError, match="outside the setpoint range"):
        adapter.set_reservations(MAC, [hot])


def test_week_bits() -> None:
    assert week_bits("weekdays") == 124
    assert week_bits(["sunday", "Sat"]) == 130
    assert week_bits("daily") == 254
    assert week_bits(64) == 64
    with pytest.raises(ValueError, match="not a set of days"):
        week_bits(1)


def test_kinds_allow_coalescing_per_mode(adapter: NavienAdapter) -> None:
    first = adapter.set_temperature(MAC, 130, coalesce=True)
    second = adapter.set_temperature(MAC, 140, coalesce=True)
    assert isinstance(first, Command)
    assert first.kind == second.kind == "dhw-temperature"
    assert first.coalesce
    assert adapter.set_mode(MAC, "electric").kind == "dhw-mode"
    assert not adapter.set_mode(MAC, "electric").coalesce


def test_temperature_model() -> None:
    t = Temperature.from_fahrenheit(140)
    assert (t.half_celsius, t.celsius, t.fahrenheit) == (120, 60.0, 140.0)
    assert str(Temperature(121)) == "60.5 °C (140.9 °F)"
    assert Temperature(81) < Temperature(131)
