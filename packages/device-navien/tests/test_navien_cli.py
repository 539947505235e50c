"""``mqttq navien ...`` as a user runs it: real processes, a real Mosquitto, the simulator."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import attrs
import pytest
from navien_helpers import MAC, Watcher

from mqttq.testing.services import Mosquitto
from mqttq_navien.adapter import NavienAdapter
from mqttq_navien.models import DhwMode
from mqttq_navien.simulator import NavienSimulator

PRESENCE = f"evt/52/navilink-{MAC}/app-connection"


@attrs.frozen
class Result:
    code: int
    out: str
    err: str


def write_config(
    directory: Path, url: str, store: str = "memory://", devices: int = 1, client_id: str = ""
) -> Path:
    items = "".join(
        f'\n[[devices.items]]\nadapter = "navien"\nid = "{mac}"\n'
        'options = { additional_value = "5322" }\n'
        for mac in [MAC, "aabbccddeeff"][:devices]
    )
    path = directory / "mqttq.toml"
    path.write_text(
        f'[mqtt]\nurl = "{url}"\nreconnect_min = 0.1\nreconnect_max = 0.5\n\n'
        f'[devices]\nstore = "{store}"\nclient_id = "{client_id}"\n{items}'
    )
    return path


async def mqttq(config: Path, *args: str, timeout: float = 60) -> Result:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mqttq", "-c", str(config), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=config.parent,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


@pytest.fixture
def config(tmp_path: Path, mosquitto: Mosquitto) -> Path:
    return write_config(tmp_path, mosquitto.url)


@pytest.fixture
async def sim(mosquitto: Mosquitto) -> AsyncIterator[NavienSimulator]:
    async with NavienSimulator(
        mosquitto.url, mac=MAC, additional_value="5322", control_interval=0.2
    ) as simulator:
        yield simulator


async def test_status(config: Path, sim: NavienSimulator) -> None:
    human = await mqttq(config, "navien", "status")
    assert human.code == 0, human.err
    lines = dict(line.split(None, 1) for line in human.out.strip().splitlines())
    assert lines["heater"].strip() == MAC
    assert lines["setpoint"].strip() == "60 °C (140 °F)"
    assert lines["mode"].strip() == "energy-saver"
    assert lines["power"].strip() == "on"
    as_json = await mqttq(config, "navien", "status", "--json")
    assert as_json.code == 0, as_json.err
    data = json.loads(as_json.out)
    assert (data["device"], data["kind"], data["state"]) == (MAC, "status", "acknowledged")
    assert data["reply"]["dhw_temperature_setting"] == {
        "half_celsius": 120,
        "celsius": 60.0,
        "f": 140.0,
    }
    assert data["reply"]["dhw_mode"] == "energy-saver"
    assert [r.suffix for r in sim.requests] == ["st", "st"]


async def test_set_temperature_mode_and_power(config: Path, sim: NavienSimulator) -> None:
    done = await mqttq(config, "navien", "set-temperature", "130", "--unit", "F")
    assert done.code == 0, done.err
    assert done.out.startswith(f"{MAC}: dhw-temperature 130 °F: acknowledged (setpoint 54.5 °C")
    assert sim.state.setpoint == 109
    # features first (the heater's own range), then the control, byte for byte the adapter's
    assert [r.suffix for r in sim.requests] == ["st/did", "ctrl"]
    assert sim.requests[1].param == [109]
    celsius = await mqttq(config, "navien", "set-temperature", "60", "-u", "c", "--json")
    assert celsius.code == 0, celsius.err
    assert json.loads(celsius.out)["state"] == "acknowledged"
    assert sim.state.setpoint == 120
    mode = await mqttq(config, "navien", "set-mode", "hybrid")
    assert mode.code == 0, mode.err
    assert mode.out == (
        f"{MAC}: dhw-mode energy-saver: acknowledged (setpoint 60 °C (140 °F), mode energy-saver)\n"
    )
    vacation = await mqttq(config, "navien", "set-mode", "vacation", "--days", "4", "--mac", MAC)
    assert vacation.code == 0, vacation.err
    assert (sim.state.mode, sim.state.vacation_days) == (DhwMode.VACATION, 4)
    off = await mqttq(config, "navien", "power", "off")
    assert off.code == 0, off.err
    assert sim.state.mode is DhwMode.POWER_OFF
    on = await mqttq(config, "navien", "power", "on", "--mac", "04:78:63:32:fc:a0")
    assert on.code == 0, on.err
    assert sim.state.mode is DhwMode.VACATION


async def test_the_heaters_own_range_is_checked(config: Path, sim: NavienSimulator) -> None:
    sim.state.temperature_max = 120  # 60 °C
    refused = await mqttq(config, "navien", "set-temperature", "145")
    assert refused.code == 2
    assert refused.err == (
        f"mqttq: 145 °F is outside the setpoint range of {MAC}: 40.5-60 °C (105-140 °F)\n"
    )
    assert [r.suffix for r in sim.requests] == ["st/did"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["status", "--mac", "garage"], "mqttq: navien device id 'garage' is not a MAC address: "
         "12 hex digits, like 04786332fca0 or 04:78:63:32:fc:a0"),
        (["set-temperature", "160"], f"mqttq: 160 °F is outside the setpoint range of {MAC}: "
         "40.5-65.5 °C (105-150 °F)"),
        (["set-temperature", "30", "--unit", "C"], f"mqttq: 30 °C is outside the setpoint range "
         f"of {MAC}: 40.5-65.5 °C (105-150 °F)"),
        (["set-temperature", "60", "--unit", "K"], "mqttq: --unit is F or C, not 'K'"),
        (["set-mode", "turbo"], "mqttq: unknown DHW mode 'turbo' (known: heat-pump, electric, "
         "energy-saver, high-demand, vacation, power-off)"),
        (["set-mode", "vacation"], "mqttq: vacation mode needs its number of days (1-99)"),
        (["power", "maybe"], "mqttq: power is on or off, not 'maybe'"),
        (["simulate", "--mac", "nope"], "mqttq: not a MAC address: 'nope' (12 hex digits, like "
         "04786332fca0)"),
    ],
)  # fmt: skip
async def test_mistakes_are_one_line_before_anything_is_sent(
    config: Path, args: list[str], message: str
) -> None:
    result = await mqttq(config, "navien", *args)
    assert (result.code, result.err, result.out) == (2, message + "\n", "")


async def test_which_heater(tmp_path: Path, mosquitto: Mosquitto) -> None:
    none = await mqttq(write_config(tmp_path, mosquitto.url, devices=0), "navien", "status")
    assert (none.code, none.err) == (
        2,
        'mqttq: no navien device: pass --mac or add [[devices.items]] with adapter = "navien"\n',
    )
    two = await mqttq(write_config(tmp_path, mosquitto.url, devices=2), "navien", "status")
    assert (two.code, two.err) == (
        2,
        f"mqttq: several navien devices are configured ({MAC}, aabbccddeeff): pass --mac\n",
    )


async def test_no_answer_is_exit_1_and_says_why(tmp_path: Path, mosquitto: Mosquitto) -> None:
    config = write_config(tmp_path, mosquitto.url)
    silent = await mqttq(config, "navien", "status", "--timeout", "1")
    assert (silent.code, silent.err) == (
        1,
        f"mqttq: no answer from {MAC} within 1s: is the heater online?\n",
    )
    mosquitto.stop()
    away = await mqttq(config, "navien", "status", "--timeout", "1", "--json")
    assert away.code == 1
    assert away.err == f"mqttq: could not reach the MQTT broker at {mosquitto.url} within 1s\n"
    assert json.loads(away.out)["state"] == "queued"


async def test_queue_shows_what_waits_in_a_durable_store(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    # a stable client id: the heater answers the client named in each request, so commands left
    # for the next client must name the one it will be
    store = f"sqlite:///{tmp_path / 'commands.db'}"
    config = write_config(tmp_path, mosquitto.url, store=store, client_id="mqttq-navien-test")
    empty = await mqttq(config, "navien", "queue")
    assert (empty.code, empty.out) == (0, "no commands waiting\n")
    unanswered = await mqttq(config, "navien", "set-temperature", "130", "--timeout", "1")
    assert unanswered.code == 1
    assert unanswered.err.endswith("; it waits in the command store for the next client\n")
    listed = await mqttq(config, "navien", "queue", "--json")
    assert listed.code == 0, listed.err
    commands = json.loads(listed.out)["commands"]
    assert [(c["device"], c["kind"]) for c in commands] == [
        (MAC, "features"),
        (MAC, "dhw-temperature"),
    ]
    assert commands[1]["request"] == "dhw-temperature [109] (54.5 °C (130.1 °F))"
    assert {c["client"] for c in commands} == {"mqttq-navien-test"}
    table = await mqttq(config, "navien", "queue", "--mac", "04:78:63:32:FC:A0")
    assert "dhw-temperature [109]" in table.out
    # the next client sends them first, in order, once the heater answers
    async with NavienSimulator(mosquitto.url, mac=MAC, additional_value="5322") as sim:
        status = await mqttq(config, "navien", "status", "--json")
    assert status.code == 0, status.err
    assert [r.suffix for r in sim.requests] == ["st/did", "ctrl", "st"]
    assert sim.state.setpoint == 109
    after = await mqttq(config, "navien", "queue", "--json")
    assert json.loads(after.out) == {"commands": []}


async def test_queue_with_an_in_memory_store_says_where_to_look(config: Path) -> None:
    result = await mqttq(config, "navien", "queue", "--json")
    assert result.code == 0
    assert json.loads(result.out) == {"commands": []}
    assert "keeps commands inside the process that sends them" in result.err


# -- mqttq navien simulate ------------------------------------------------------------------------


async def start_simulator(
    mosquitto: Mosquitto, config: Path, *extra: str
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mqttq", "-c", str(config), "navien", "simulate",
        "--mac", "04:78:63:32:FC:A0", "--additional-value", "5322", "--broker", mosquitto.url,
        *extra, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def test_simulate_answers_reports_and_leaves_its_last_will_when_killed(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    config = write_config(tmp_path, "mqtt://127.0.0.1:1")  # --broker wins
    adapter = NavienAdapter(client_id="cli-test")
    async with Watcher(mosquitto.url, PRESENCE) as watcher:
        proc = await start_simulator(mosquitto, config, "--json")
        try:
            online = json.loads(await watcher.next_on(PRESENCE, timeout=30))
            assert online["event"]["connection"] == {"status": 1, "os": "P"}
            cli = write_config(tmp_path, mosquitto.url)
            status = await mqttq(cli, "navien", "status", "--json")
            assert status.code == 0, status.err
            assert proc.stdout is not None
            line = json.loads(await asyncio.wait_for(proc.stdout.readline(), 30))
            assert (line["topic"], line["command"], line["answer"]) == (
                f"cmd/52/navilink-{MAC}/st",
                16777219,
                "ok",
            )
            assert line["answered_on"].endswith("/res")
        finally:
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
        will = await watcher.next_on(PRESENCE, after=1, timeout=30)
    document = json.loads(will)
    assert document["clientID"] == online["clientID"]
    assert document["event"] == {**online["event"], "connection": {"status": 0, "os": "P"}}
    reply = adapter.interpret(PRESENCE, will)
    assert reply is not None
    assert reply.online is False


async def test_simulate_stops_on_sigterm_saying_goodbye(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    config = write_config(tmp_path, mosquitto.url)
    async with Watcher(mosquitto.url, PRESENCE) as watcher:
        proc = await start_simulator(mosquitto, config, "--control-interval", "0.1")
        assert proc.stdout is not None
        banner = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert banner.startswith(f"simulating NWP500 {MAC} on {mosquitto.url}")
        await watcher.next_on(PRESENCE, timeout=30)
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 30)
        goodbye = json.loads(await watcher.next_on(PRESENCE, after=1))
    assert code == 0
    assert goodbye["event"]["connection"]["status"] == 0
    assert len(watcher.on(PRESENCE)) == 2  # online, goodbye: a clean exit leaves no Will
