"""The device client with the navien adapter, against the simulator on a real Mosquitto."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from navien_helpers import MAC, Clock

from mqttq.app import App
from mqttq.config import Config, DeviceConfig, DevicesConfig, MqttConfig
from mqttq.devices import CommandState, DeviceClient, Reply
from mqttq.testing import eventually
from mqttq.testing.services import Mosquitto
from mqttq_navien.adapter import NavienAdapter
from mqttq_navien.models import DhwMode, Presence, Status
from mqttq_navien.polling import poll_status, request_status
from mqttq_navien.simulator import NavienSimulator, Published, ReceivedRequest


def make_app(url: str, **devices: Any) -> App:
    item = DeviceConfig(
        adapter="navien", id="04:78:63:32:FC:A0", options={"additional_value": "5322"}
    )
    config = Config(
        mqtt=MqttConfig(url=url, reconnect_min=0.1, reconnect_max=0.5),
        devices=DevicesConfig(items=[item], **devices),
    )
    return App(config)


def navien(client: DeviceClient) -> NavienAdapter:
    adapter = client.adapter("navien")
    assert isinstance(adapter, NavienAdapter)
    return adapter


@contextlib.asynccontextmanager
async def running(app: App) -> AsyncIterator[tuple[DeviceClient, list[Reply]]]:
    client = DeviceClient(app)
    replies: list[Reply] = []
    client.on_reply(replies.append)
    async with client:
        await client.wait_connected(timeout=15)
        yield client, replies


@pytest.fixture
async def sim(mosquitto: Mosquitto) -> AsyncIterator[NavienSimulator]:
    async with NavienSimulator(
        mosquitto.url, mac=MAC, additional_value="5322", control_interval=0.2
    ) as simulator:
        yield simulator


async def test_a_setpoint_is_acknowledged_with_the_heaters_status(
    mosquitto: Mosquitto, sim: NavienSimulator
) -> None:
    async with running(make_app(mosquitto.url)) as (client, _):
        assert client.devices() == [MAC]
        command = navien(client).set_temperature(MAC, 140, "F")
        handle = await client.send(command)
        await handle.wait(timeout=15)
    assert handle.state is CommandState.ACKNOWLEDGED
    assert handle.packet_id > 0
    assert handle.reply is not None
    status = handle.reply.data
    assert isinstance(status, Status)
    assert status.dhw_temperature_setting is not None
    assert status.dhw_temperature_setting.fahrenheit == 140.0
    # the heater got exactly the bytes the adapter built, from the client's own client id
    assert [(r.topic, r.payload) for r in sim.requests] == [(command.topic, command.payload)]
    assert sim.requests[0].document["clientID"] == client.client_id
    assert sim.state.setpoint == 120


async def test_status_features_and_mode(mosquitto: Mosquitto, sim: NavienSimulator) -> None:
    async with running(make_app(mosquitto.url)) as (client, _):
        adapter = navien(client)
        features = await (await client.send(adapter.request_features(MAC))).wait(15)
        mode = await (await client.send(adapter.set_mode(MAC, "heat-pump"))).wait(15)
        status = await (await client.send(adapter.status(MAC))).wait(15)
    assert [h.state for h in (features, mode, status)] == [CommandState.ACKNOWLEDGED] * 3
    assert adapter.temperature_range(MAC)[1].half_celsius == sim.state.temperature_max
    assert status.reply is not None
    assert status.reply.data.dhw_mode is DhwMode.HEAT_PUMP


async def test_a_too_fast_control_gets_ctrl_fail_2_and_goes_again(mosquitto: Mosquitto) -> None:
    clock = Clock()  # the heater's: it moves only when the first refusal has been seen
    async with NavienSimulator(
        mosquitto.url, mac=MAC, additional_value="5322", control_interval=0.2, clock=clock
    ) as sim:

        def after(received: ReceivedRequest, answer: Published) -> None:
            if answer.topic.endswith("/res/ctrl-fail"):
                clock.advance(0.2)

        sim.on_request.append(after)
        # no pacing: the client sends both at once, faster than the heater takes them
        async with running(make_app(mosquitto.url, pacing=0.0)) as (client, _):
            adapter = navien(client)
            first = await client.send(adapter.set_temperature(MAC, 130))
            second = await client.send(adapter.set_mode(MAC, "electric"))
            await first.wait(15)
            await second.wait(15)
    assert first.state is CommandState.ACKNOWLEDGED
    assert second.state is CommandState.ACKNOWLEDGED
    busy = [t for t in second.history if t.state is CommandState.QUEUED and "busy" in t.reason]
    assert len(busy) == 1
    assert "failCode 2" in busy[0].reason
    assert second.sends == 2
    modes = [
        (r.mode, a.topic.rsplit("/", 1)[-1])
        for r, a in zip(sim.requests, answers(sim), strict=True)
    ]
    assert modes == [("dhw-temperature", "res"), ("dhw-mode", "ctrl-fail"), ("dhw-mode", "res")]
    assert sim.state.mode is DhwMode.ELECTRIC


def announced(sim: NavienSimulator) -> int:
    return sum(1 for p in sim.published if p.topic == sim.presence_topic)


def answers(sim: NavienSimulator) -> list[Published]:
    return [p for p in sim.published if not p.topic.startswith("evt/")]


async def test_the_adapters_pacing_keeps_controls_clear_of_the_heaters_interval(
    mosquitto: Mosquitto,
) -> None:
    # the simulator's default control interval (0.5 s) against the adapter's default pacing
    async with (
        NavienSimulator(mosquitto.url, mac=MAC, additional_value="5322") as sim,
        running(make_app(mosquitto.url)) as (client, _),
    ):
        adapter = navien(client)
        handles = [await client.send(adapter.set_temperature(MAC, 120 + n)) for n in range(3)]
        for handle in handles:
            await handle.wait(15)
    assert [h.state for h in handles] == [CommandState.ACKNOWLEDGED] * 3
    assert [h.sends for h in handles] == [1, 1, 1]
    assert not [p for p in sim.published if p.topic.endswith("ctrl-fail")]


async def test_presence_offline_holds_commands_until_the_heater_is_back(
    mosquitto: Mosquitto,
) -> None:
    async with running(make_app(mosquitto.url)) as (client, replies):
        adapter = navien(client)

        def presence(online: bool) -> bool:
            return any(isinstance(r.data, Presence) and r.online is online for r in replies)

        async with NavienSimulator(mosquitto.url, mac=MAC, additional_value="5322"):
            await eventually(lambda: presence(True), what="the heater online")
        await eventually(lambda: presence(False), what="the heater's goodbye")
        held = await client.send(adapter.set_temperature(MAC, 125))
        assert held.state is CommandState.QUEUED  # not published to a heater known offline
        async with NavienSimulator(mosquitto.url, mac=MAC, additional_value="5322") as sim:
            await held.wait(15)
    assert held.state is CommandState.ACKNOWLEDGED
    assert [r.mode for r in sim.requests] == ["dhw-temperature"]


async def test_periodic_status_is_skipped_while_disconnected_and_never_queued(
    mosquitto: Mosquitto, sim: NavienSimulator
) -> None:
    app = make_app(mosquitto.url)
    client = DeviceClient(app)
    mosquitto.stop()
    async with client:
        skipped = await request_status(client)
        assert [(h.state, h.reason) for h in skipped] == [(CommandState.DROPPED, "not connected")]
        assert client.queued_commands_count == 0
        assert client.pending() == []
        mosquitto.start()
        await client.wait_connected(timeout=30)
        await eventually(lambda: announced(sim) >= 2, what="the heater back on the broker")
        rounds: list[list[Any]] = []
        poller = asyncio.create_task(poll_status(client, interval=0.2, on_round=rounds.append))
        try:
            await eventually(lambda: len(rounds) >= 3, what="three status rounds")
            settled = [await h.wait(15) for r in rounds[:3] for h in r]
        finally:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
    assert all(h.command.kind == "status" for h in settled)
    acknowledged = [h for h in settled if h.state is CommandState.ACKNOWLEDGED]
    assert acknowledged
    assert all(isinstance(h.reply.data, Status) for h in acknowledged if h.reply is not None)
    # the rest were superseded by a newer status query, never sent twice
    others = [h for h in settled if h.state is not CommandState.ACKNOWLEDGED]
    assert all(h.state is CommandState.DROPPED and "superseded" in h.reason for h in others)
