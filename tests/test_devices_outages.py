"""Commands survive what happens to the processes around them: a broker killed mid-flush and a
sending process killed with commands queued (durable store). Real Mosquitto, real processes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from echo_device import echo_devices
from test_devices_client import adapter, make_client

from mqttq.devices import CommandState
from mqttq.testing import eventually
from mqttq.testing.services import Mosquitto

TESTS = Path(__file__).parent


def in_order_with_duplicates(got: list[int], sent: list[int]) -> int:
    """``got`` is ``sent`` in order, each maybe repeated right after an earlier send of the
    window; returns how many repeats there were (AssertionError otherwise)."""
    expected, repeats = 0, 0
    for n in got:
        if n == sent[expected] if expected < len(sent) else False:
            expected += 1
        else:
            assert n in sent[max(0, expected - 2) : expected], f"{n} out of order at {expected}"
            repeats += 1
    assert expected == len(sent), f"only {expected} of {len(sent)} arrived"
    return repeats


async def test_a_broker_killed_mid_flush_loses_nothing(mosquitto: Mosquitto) -> None:
    """500 commands; the broker is killed (SIGKILL, nothing saved) at about the 200th and
    started again: every command reaches the device, in order; a repeat only of one sent
    just before the kill (at most the in-flight window), counted on its handle."""
    async with (
        echo_devices(mosquitto.url, "d1") as [device],
        make_client(mosquitto, ack_timeout=1.0, max_queued_commands=500) as client,
    ):
        client.add_device("echo", "d1")
        await client.wait_connected(10)
        handles = [await client.send(adapter(client).command("d1", n)) for n in range(500)]
        await eventually(lambda: len(device.got) >= 200, timeout=60, what="200 commands")
        mosquitto.kill()
        mosquitto.start()
        for h in handles:
            await h.wait(60)
    assert all(h.state is CommandState.ACKNOWLEDGED for h in handles)
    repeats = in_order_with_duplicates(device.got, list(range(500)))
    assert repeats <= 1  # the window: one command in flight at a time
    assert sum(h.sends - 1 for h in handles) >= repeats  # every repeat is counted


def sender(config: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), *sys.path])}
    return subprocess.Popen(
        [sys.executable, str(TESTS / "device_sender.py"), str(config), *args],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


async def test_a_durable_store_keeps_commands_across_kill_9(
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
"""
    )
    mosquitto.stop()  # the commands must wait
    first = sender(config, "queue", "100")
    assert first.stdout is not None
    assert first.stdout.readline() == "queued 100\n"
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    mosquitto.start()
    async with echo_devices(mosquitto.url, "d1") as [device]:
        second = sender(config, "drain")
        assert second.stdout is not None
        readline = second.stdout.readline  # in a thread: the device answers on this loop
        assert await asyncio.to_thread(readline) == "loaded 100\n"
        assert await asyncio.to_thread(readline) == "done 100 acknowledged\n"
        assert await asyncio.to_thread(second.wait, 30) == 0
    assert device.got == list(range(100))
    listed = subprocess.run(
        [Path(sys.executable).with_name("mqttq"), "-c", str(config), "devices", "queue", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(listed.stdout) == {"devices": {}}  # delivered: nothing left
