"""The command queue end to end: DeviceClient with the Navien adapter, the Navien simulator
playing heaters, a real Mosquitto the tests stop, kill and restart."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import mqttq
from mqttq.config import structure
from mqttq.devices import CommandState, DeviceClient
from mqttq.testing import eventually
from mqttq.testing.services import Mosquitto
from mqttq_navien.adapter import NavienAdapter
from mqttq_navien.simulator import NavienSimulator

TESTS = Path(__file__).parent
HEATERS = ["04786332fca0", "04786332fca1"]
#: setpoints that differ from one command to the next, in half-°C (81-131 is the default range)
SETPOINTS = [81 + i % 50 for i in range(1000)]


class Events:
    def __init__(self) -> None:
        self.seen: list[Any] = []

    @mqttq.hookimpl
    def mqttq_job_event(self, event: Any) -> None:
        self.seen.append(event)


def make_client(broker: Mosquitto, events: Events | None = None, **devices: Any) -> DeviceClient:
    config = structure(
        {
            "mqtt": {"url": broker.url, "reconnect_min": 0.05, "reconnect_max": 0.5},
            "queue": {"url": "memory://"},
            "devices": {
                "items": [
                    {"adapter": "navien", "id": mac, "options": {"additional_value": "5322"}}
                    for mac in HEATERS
                ],
                **devices,
            },
        }
    )
    extra = [("events", events)] if events is not None else []
    return DeviceClient(mqttq.App(config, host=mqttq.make_plugin_manager(extra=extra)))


def navien(client: DeviceClient) -> NavienAdapter:
    adapter = client.adapter("navien")
    assert isinstance(adapter, NavienAdapter)
    return adapter


def setpoint(client: DeviceClient, heater: str, half: int) -> Any:
    return navien(client).set_temperature(heater, half / 2, unit="C")


@contextlib.asynccontextmanager
async def heaters(
    broker: Mosquitto, interval: float = 0.02
) -> AsyncIterator[list[NavienSimulator]]:
    async with contextlib.AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(
                NavienSimulator(
                    broker.url, mac=mac, additional_value="5322", control_interval=interval
                )
            )
            for mac in HEATERS
        ]


def setpoints_received(sim: NavienSimulator) -> list[int]:
    return [r.param[0] for r in sim.requests if r.mode == "dhw-temperature"]


def ctrl_fails(sim: NavienSimulator) -> int:
    return sum(1 for p in sim.published if p.topic.endswith("/res/ctrl-fail"))


def repeats_in_order(got: list[int], sent: list[int], window: int) -> int:
    """``got`` is ``sent`` in order, a value repeated only right after one of the last
    ``window`` first sends; returns the number of repeats."""
    expected = repeats = 0
    for value in got:
        if expected < len(sent) and value == sent[expected]:
            expected += 1
        else:
            assert value in sent[max(0, expected - window) : expected], (value, expected)
            repeats += 1
    assert expected == len(sent), f"{expected} of {len(sent)} arrived"
    return repeats


async def test_150_sent_while_away_keep_the_newest_100_in_order(mosquitto: Mosquitto) -> None:
    events = Events()
    mosquitto.stop()
    client = make_client(mosquitto, events, pacing=0.05)
    async with client:
        heater = HEATERS[0]
        handles = [await client.send(setpoint(client, heater, SETPOINTS[i])) for i in range(150)]
        assert all(int(h) == 0 for h in handles)  # queued: packet id 0
        mosquitto.start()
        async with heaters(mosquitto) as [sim, _]:
            for h in handles[50:]:
                await h.wait(60)
    assert setpoints_received(sim) == SETPOINTS[50:150]
    assert all(h.state is CommandState.ACKNOWLEDGED for h in handles[50:])
    assert [h.state for h in handles[:50]] == [CommandState.DROPPED] * 50
    dropped = [e for e in events.seen if getattr(e, "kind", "") == "command.dropped"]
    assert {e.command.id for e in dropped} == {h.id for h in handles[:50]}


async def test_a_broker_killed_at_200_of_500_loses_nothing(mosquitto: Mosquitto) -> None:
    heater = HEATERS[0]
    async with (
        heaters(mosquitto) as [sim, _],
        make_client(mosquitto, pacing=0.03, ack_timeout=1.0, max_queued_commands=500) as client,
    ):
        await client.wait_connected(15)
        handles = [await client.send(setpoint(client, heater, SETPOINTS[i])) for i in range(500)]
        await eventually(lambda: len(sim.requests) >= 200, timeout=120, what="200 commands")
        mosquitto.kill()
        mosquitto.start()
        for h in handles:
            await h.wait(120)
    assert all(h.state is CommandState.ACKNOWLEDGED for h in handles)
    repeats = repeats_in_order(setpoints_received(sim), SETPOINTS[:500], window=1)
    assert repeats <= 1  # the in-flight window of a heater
    assert sum(h.sends - 1 for h in handles) >= repeats  # and counted


async def test_a_failing_heater_never_holds_up_the_other(mosquitto: Mosquitto) -> None:
    good, bad = HEATERS
    async with (
        NavienSimulator(
            mosquitto.url, mac=good, additional_value="5322", control_interval=0.02
        ) as sim,
        make_client(mosquitto, pacing=0.03, ack_timeout=0.5) as client,
    ):  # no simulator for `bad`: its commands are never acknowledged
        await client.wait_connected(15)
        stuck = [await client.send(setpoint(client, bad, SETPOINTS[i])) for i in range(20)]
        fine = [await client.send(setpoint(client, good, SETPOINTS[i])) for i in range(40)]
        for h in fine:
            await h.wait(60)
        assert setpoints_received(sim) == SETPOINTS[:40]
        assert all(h.state is not CommandState.ACKNOWLEDGED for h in stuck)


async def test_a_command_sent_during_a_flush_arrives_after_the_backlog(
    mosquitto: Mosquitto,
) -> None:
    heater = HEATERS[0]
    mosquitto.stop()
    async with make_client(mosquitto, pacing=0.05) as client:
        backlog = [await client.send(setpoint(client, heater, SETPOINTS[i])) for i in range(30)]
        mosquitto.start()
        async with heaters(mosquitto) as [sim, _]:
            await eventually(lambda: sim.requests, timeout=30, what="the flush to start")
            late = await client.send(navien(client).power(heater, on=False))
            assert late.state is CommandState.QUEUED
            await late.wait(30)
            assert all(h.state is CommandState.ACKNOWLEDGED for h in backlog)
    modes = [r.mode for r in sim.requests]
    assert modes == ["dhw-temperature"] * 30 + ["power-off"]


async def test_five_offline_setpoints_arrive_as_one_the_last(mosquitto: Mosquitto) -> None:
    heater = HEATERS[0]
    mosquitto.stop()
    async with make_client(mosquitto, coalesce=["dhw-temperature"]) as client:
        handles = [await client.send(setpoint(client, heater, v)) for v in (90, 92, 94, 96, 98)]
        mosquitto.start()
        async with heaters(mosquitto) as [sim, _]:
            await handles[-1].wait(30)
    assert setpoints_received(sim) == [98]
    assert [h.state for h in handles[:4]] == [CommandState.DROPPED] * 4
    assert handles[-1].state is CommandState.ACKNOWLEDGED


async def test_pacing_avoids_ctrl_fail_and_without_it_every_ctrl_fail_is_resent(
    mosquitto: Mosquitto,
) -> None:
    heater = HEATERS[0]
    for pacing, expect_fails in ((0.15, False), (0.0, True)):
        async with (
            heaters(mosquitto, interval=0.1) as [sim, _],
            make_client(mosquitto, pacing=pacing) as client,
        ):
            await client.wait_connected(15)
            handles = [await client.send(setpoint(client, heater, SETPOINTS[i])) for i in range(50)]
            for h in handles:
                await h.wait(120)
        assert all(h.state is CommandState.ACKNOWLEDGED for h in handles)
        fails = ctrl_fails(sim)
        if expect_fails:
            assert fails > 0  # too fast for the heater...
        else:
            assert fails == 0
        # ...and each refused control went again, at once, before the next one
        assert repeats_in_order(setpoints_received(sim), SETPOINTS[:50], window=1) == fails
        assert sum(h.sends for h in handles) == 50 + fails


async def test_expired_commands_are_reported_and_never_sent(mosquitto: Mosquitto) -> None:
    heater = HEATERS[0]
    mosquitto.stop()
    async with make_client(mosquitto, max_queued_command_age=0.5) as client:
        old = await client.send(setpoint(client, heater, 100))
        await old.wait(10)
        assert old.state is CommandState.EXPIRED
        mosquitto.start()
        async with heaters(mosquitto) as [sim, _]:
            fresh = await client.send(setpoint(client, heater, 110))
            await fresh.wait(30)
    assert setpoints_received(sim) == [110]


def sender(config: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), *sys.path])}
    return subprocess.Popen(
        [sys.executable, str(TESTS / "navien_sender.py"), str(config), *args],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


async def test_a_durable_store_delivers_100_queued_setpoints_after_kill_9(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    config = tmp_path / "mqttq.toml"
    config.write_text(
        f"""
[mqtt]
url = "{mosquitto.url}"
reconnect_min = 0.05
reconnect_max = 0.5

[devices]
store = "sqlite:///{tmp_path / "commands.db"}"
pacing = 0.05

[[devices.items]]
adapter = "navien"
id = "{HEATERS[0]}"
options = {{ additional_value = "5322" }}
"""
    )
    mosquitto.stop()
    first = sender(config, "queue", "100")
    assert first.stdout is not None
    assert await asyncio.to_thread(first.stdout.readline) == "queued 100\n"
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    mosquitto.start()
    async with heaters(mosquitto) as [sim, _]:
        second = sender(config, "drain")
        assert second.stdout is not None
        readline = second.stdout.readline
        assert await asyncio.to_thread(readline) == "loaded 100\n"
        assert await asyncio.to_thread(readline) == "done 100 acknowledged\n"
        assert await asyncio.to_thread(second.wait, 30) == 0
    assert setpoints_received(sim) == SETPOINTS[:100]
