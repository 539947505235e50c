"""The device client's lanes against a real Mosquitto and a real MQTT client playing the
device (``echo_device``): order, bounds, acknowledgements, reconnects."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from echo_device import EchoAdapter, EchoPlugin, echo_devices

import mqttq
from mqttq.config import structure
from mqttq.devices import CommandState, DeviceClient
from mqttq.testing import eventually
from mqttq.testing.services import Mosquitto


class Events:
    """An observer plugin: the kinds of every event it saw."""

    def __init__(self) -> None:
        self.kinds: list[str] = []

    @mqttq.hookimpl
    def mqttq_job_event(self, event: Any) -> None:
        self.kinds.append(event.kind)


def make_client(broker: Mosquitto, events: Events | None = None, **devices: Any) -> DeviceClient:
    config = structure(
        {
            "mqtt": {"url": broker.url, "reconnect_min": 0.05, "reconnect_max": 0.5},
            "queue": {"url": "memory://"},
            "devices": {"client_id": f"devices-{uuid.uuid4().hex[:6]}", **devices},
        }
    )
    plugins: list[tuple[str, object]] = [("echo", EchoPlugin())]
    if events is not None:
        plugins.append(("events", events))
    host = mqttq.make_plugin_manager(autoload=False, extra=plugins)
    return DeviceClient(mqttq.App(config, host=host))


def adapter(client: DeviceClient) -> EchoAdapter:
    a = client.adapter("echo")
    assert isinstance(a, EchoAdapter)
    return a


async def test_connected_commands_are_sent_at_once_and_acknowledged(mosquitto: Mosquitto) -> None:
    async with echo_devices(mosquitto.url, "d1") as [device], make_client(mosquitto) as client:
        client.add_device("echo", "d1")
        await client.wait_connected(10)
        handles = [await client.send(adapter(client).command("d1", n)) for n in range(5)]
        assert handles[0].state is CommandState.SENT
        assert handles[0].packet_id > 0
        for h in handles:
            await h.wait(10)
        assert [h.state for h in handles] == [CommandState.ACKNOWLEDGED] * 5
        assert device.got == [0, 1, 2, 3, 4]
        assert handles[1].history[0].state is CommandState.QUEUED  # behind the first one


async def test_commands_sent_while_away_go_out_in_order_after_connecting(
    mosquitto: Mosquitto,
) -> None:
    mosquitto.stop()
    client = make_client(mosquitto)
    client.add_device("echo", "d1")
    async with client:
        handles = [await client.send(adapter(client).command("d1", n)) for n in range(150)]
        assert [int(h) for h in handles[:3]] == [0, 0, 0]  # queued: packet id 0
        dropped = [h for h in handles if h.state is CommandState.DROPPED]
        assert len(dropped) == 50  # the default bound of 100: the oldest go, never silently
        assert all("queue of d1 is full" in h.reason for h in dropped)
        assert client.queued_commands_count == 100
        mosquitto.start()
        async with echo_devices(mosquitto.url, "d1") as [device]:
            for h in handles[50:]:
                await h.wait(30)
            assert device.got == list(range(50, 150))
    assert all(h.state is CommandState.ACKNOWLEDGED for h in handles[50:])


async def test_a_silent_device_gets_its_command_again_then_it_expires(
    mosquitto: Mosquitto,
) -> None:
    async with (
        echo_devices(mosquitto.url, "mute", mode="silent") as [device],
        make_client(mosquitto, ack_timeout=0.3, max_sends=3) as client,
    ):
        client.add_device("echo", "mute")
        await client.wait_connected(10)
        handle = await client.send(adapter(client).command("mute", 7))
        await handle.wait(20)
    assert handle.state is CommandState.EXPIRED
    assert handle.reason == "not acknowledged after 3 sends"
    assert device.got == [7, 7, 7]
    assert handle.possible_duplicate


async def test_busy_goes_back_to_the_front_and_comes_again(mosquitto: Mosquitto) -> None:
    async with (
        echo_devices(mosquitto.url, "b", mode="busy_first") as [device],
        make_client(mosquitto) as client,
    ):
        client.add_device("echo", "b")
        await client.wait_connected(10)
        handles = [await client.send(adapter(client).command("b", n)) for n in range(3)]
        for h in handles:
            await h.wait(20)
    assert [h.state for h in handles] == [CommandState.ACKNOWLEDGED] * 3
    assert device.got == [0, 0, 1, 1, 2, 2]  # each one busy once, then again, in order


async def test_one_failing_device_never_holds_up_another(mosquitto: Mosquitto) -> None:
    async with (
        echo_devices(mosquitto.url, "bad", mode="silent") as [_],
        echo_devices(mosquitto.url, "good") as [good],
        make_client(mosquitto, ack_timeout=5) as client,
    ):
        for d in ("bad", "good"):
            client.add_device("echo", d)
        await client.wait_connected(10)
        stuck = [await client.send(adapter(client).command("bad", n)) for n in range(10)]
        fine = [await client.send(adapter(client).command("good", n)) for n in range(30)]
        for h in fine:
            await h.wait(20)
        assert good.got == list(range(30))
        assert [h.state for h in stuck[1:]] == [CommandState.QUEUED] * 9


async def test_coalescing_keeps_the_last_of_a_kind(mosquitto: Mosquitto) -> None:
    mosquitto.stop()
    client = make_client(mosquitto, coalesce=["temp"])
    client.add_device("echo", "c")
    async with client:
        temps = [await client.send(adapter(client).command("c", n, kind="temp")) for n in range(5)]
        power = await client.send(adapter(client).command("c", 99, kind="power"))
        assert [h.state for h in temps[:4]] == [CommandState.DROPPED] * 4
        assert "superseded by a newer temp command" in temps[0].reason
        mosquitto.start()
        async with echo_devices(mosquitto.url, "c") as [device]:
            await temps[4].wait(30)
            await power.wait(30)
    assert device.got == [4, 99]


async def test_presence_offline_holds_commands_until_online(mosquitto: Mosquitto) -> None:
    async with echo_devices(mosquitto.url, "p") as [device], make_client(mosquitto) as client:
        client.add_device("echo", "p")
        await client.wait_connected(10)
        seen: list[Any] = []
        client.on_reply(seen.append)
        await device.say("offline")
        await eventually(lambda: seen, timeout=10, what="the presence message")
        handle = await client.send(adapter(client).command("p", 1))
        assert handle.state is CommandState.QUEUED
        assert device.got == []
        await device.say("online")
        await handle.wait(10)
    assert device.got == [1]


async def test_device_ids_that_could_reach_other_topics_are_refused(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    client = make_client(mosquitto)
    for bad in ("a/b", "a+", "#", "nul\x00", "x" * 65):
        with pytest.raises(mqttq.ConfigError, match="device id"):
            client.add_device("echo", bad)
    assert client.devices() == []


async def test_a_new_command_never_overtakes_a_flushing_backlog(mosquitto: Mosquitto) -> None:
    mosquitto.stop()
    client = make_client(mosquitto, pacing=0.02)  # slow enough to send into the flush
    client.add_device("echo", "f")
    async with client:
        backlog = [await client.send(adapter(client).command("f", n)) for n in range(40)]
        mosquitto.start()
        async with echo_devices(mosquitto.url, "f") as [device]:
            await client.wait_connected(30)
            await eventually(lambda: device.got, timeout=30, what="the flush to start")
            late = await client.send(adapter(client).command("f", 1000))
            assert late.state is CommandState.QUEUED  # behind the backlog, not sent at once
            await late.wait(30)
            assert all(h.state is CommandState.ACKNOWLEDGED for h in backlog)
    assert device.got == [*range(40), 1000]


async def test_expired_commands_are_reported_and_never_sent(mosquitto: Mosquitto) -> None:
    mosquitto.stop()
    events = Events()
    client = make_client(mosquitto, events, max_queued_command_age=0.5)
    client.add_device("echo", "e")
    async with client:
        old = await client.send(adapter(client).command("e", 1))
        await old.wait(10)
        assert old.state is CommandState.EXPIRED
        assert old.reason == "not sent within 0.5s"
        mosquitto.start()
        async with echo_devices(mosquitto.url, "e") as [device]:
            await client.wait_connected(30)
            fresh = await client.send(adapter(client).command("e", 2))
            await fresh.wait(10)
    assert device.got == [2]
    assert events.kinds == [
        "command.queued",
        "command.expired",
        "command.queued",
        "command.sent",
        "command.acknowledged",
    ]
