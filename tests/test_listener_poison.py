"""Poison input is recorded once in the failed registry, acked, and the listener keeps going."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import ingest_jobs
import orjson

from mqttq import App, load_config
from mqttq.config import MqttConfig
from mqttq.listener import Listener
from mqttq.run import serve
from mqttq.testing import eventually
from mqttq.testing.services import Mosquitto
from mqttq.transports.mqtt import MqttTransport

MQTTQ = str(Path(sys.executable).with_name("mqttq"))

BAD = {
    100: ("p/d1/json", b"{bad json", "bad JSON on json route"),
    300: ("p/d3/json", b"x" * 1_048_576, "payload of 1048576 bytes exceeds mqtt.max_payload"),
    500: ("p/d5/text", b"\xff\xfe\xfd", "payload is not UTF-8 on a text route"),
    700: ("p/d7/json", b"[1, 2,", "bad JSON on json route"),
}


def good(i: int) -> tuple[str, bytes]:
    if i % 2:
        return f"p/d{i % 9}/text", f"t{i}".encode()
    return f"p/d{i % 9}/json", orjson.dumps({"i": i})


async def test_poison_goes_to_the_failed_registry_once_and_the_listener_goes_on(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    ingest_jobs.RUNS.clear()
    path = tmp_path / "mqttq.toml"
    path.write_text(
        f"""
[mqtt]
url = "{mosquitto.url}"
client_id = "poison"
max_payload = 262144

[queue]
url = "sqlite:///{tmp_path / "queue.db"}"

[worker]
concurrency = 8
lease = 10

[[routes]]
topic = "p/{{device_id}}/json"
job = "ingest_jobs:temperature"
queue = "pj"

[[routes]]
topic = "p/{{device_id}}/text"
job = "ingest_jobs:temperature"
queue = "pt"
payload = "text"
"""
    )
    app = App(load_config(path))
    listener = Listener(app)
    service = asyncio.create_task(serve(app, listener=listener, install_signals=False))
    await eventually(listener.running.is_set, timeout=20, what="the listener")
    messages = []
    for i in range(1000):
        if i in BAD:
            messages.append(BAD[i][:2])
        messages.append(good(i))
    async with MqttTransport(MqttConfig(url=mosquitto.url, client_id="poison-pub")) as pub:
        for start in range(0, len(messages), 100):
            await asyncio.gather(*(pub.publish(t, p) for t, p in messages[start : start + 100]))
        await eventually(lambda: len(ingest_jobs.RUNS) >= 1000, timeout=60, what="the good jobs")
        assert listener.stats.poison == len(BAD)
        await pub.publish("p/d0/json", b'{"i": "after"}')  # still listening
        await eventually(
            lambda: len(ingest_jobs.RUNS) == 1001, timeout=30, what="a job after the poison"
        )
    listener.stop()
    stats = await asyncio.wait_for(service, 30)
    assert (stats.received, stats.enqueued, stats.poison) == (1005, 1001, 4)

    got = sorted(str(r["payload"]) for r in ingest_jobs.RUNS)
    samples = [good(i) for i in range(1000)]
    want = [str(orjson.loads(p)) if "json" in t else p.decode() for t, p in samples]
    want = sorted([*want, "{'i': 'after'}"])
    assert got == want

    result = await asyncio.to_thread(
        subprocess.run,
        [MQTTQ, "--config", str(path), "failed", "list", "--json"],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    failed = json.loads(result.stdout)
    assert len(failed) == len(BAD)
    errors = sorted(entry["error"] for entry in failed)
    for topic, _, reason in BAD.values():
        matching = [e for e in errors if reason in e and f"(topic {topic})" in e]
        assert len(matching) == 1, (reason, errors)
    assert all(e.startswith("poison: ") for e in errors)
    assert {entry["job"] for entry in failed} == {"ingest_jobs:temperature"}


async def test_retrying_poison_decodes_it_again_and_never_runs_it_as_data(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """Poison entries keep their raw payload: ``failed retry`` leaves them alone (--force to
    requeue), and a worker decodes them again and fails them again, never calling the job."""
    from mqttq.testing import WorkerEnv

    env = WorkerEnv(tmp_path, f"sqlite:///{tmp_path / 'q.db'}", lease=10)
    env.write_config(
        extra=f"""
[mqtt]
url = "{mosquitto.url}"
client_id = "poison-retry"
max_payload = 1000

[[routes]]
topic = "p/{{device_id}}/json"
job = "ingest_jobs:temperature"

[[routes]]
topic = "p/{{device_id}}/text"
job = "ingest_jobs:temperature"
payload = "text"
"""
    )
    record = tmp_path / "ran.jsonl"
    extra_env = {"INGEST_RECORD": str(record), "PYTHONPATH": str(Path(__file__).parent)}
    poison = [
        ("p/a/json", b"{bad json"),
        ("p/b/text", b"\xff\xfe"),
        ("p/c/json", b'"' + b"x" * 2000 + b'"'),  # valid JSON, but over max_payload
    ]
    with env.start("listen", **extra_env) as listener:
        log = listener.log_path  # type: ignore[attr-defined]
        await eventually(lambda: "listening: " in log.read_text(), timeout=30, what="listen")
        async with MqttTransport(MqttConfig(url=mosquitto.url, client_id="poison-pub")) as pub:
            for topic, payload in poison:
                await pub.publish(topic, payload)
        await eventually(lambda: len(env.json("failed", "list")) == 3, timeout=30, what="poison")
        listener.terminate()
        assert listener.wait(30) == 0
    entries = {e["id"]: e for e in env.json("failed", "list")}
    assert {e["kind"] for e in entries.values()} == {"poison"}
    shown = env.json("failed", "show", next(iter(entries)))
    assert shown["kwargs"]["message"]["$message"]["undecoded"] in ("json", "text")

    skipped = env.run("failed", "retry", "--all", "--json", **extra_env)
    assert skipped.returncode == 0, skipped.stderr
    assert json.loads(skipped.stdout)["requeued"] == 0
    assert "3 poison messages" in skipped.stderr
    refused = env.run("failed", "retry", *entries, **extra_env)
    assert refused.returncode == 1
    assert refused.stderr.count("\n") == 1
    assert "--force" in refused.stderr

    forced = env.run("failed", "retry", "--all", "--force", "--json", **extra_env)
    assert json.loads(forced.stdout)["requeued"] == 3
    worked = env.run("worker", "--burst", **extra_env)
    assert worked.returncode == 0, worked.stderr
    again = {e["id"]: e for e in env.json("failed", "list")}
    assert set(again) == set(entries)  # every one failed again...
    assert all(e["attempts"] == 1 for e in again.values())  # ...at once, without retries
    assert "bad JSON on json route" in again[_by_topic(entries, "p/a/json")]["error"]
    assert "not UTF-8" in again[_by_topic(entries, "p/b/text")]["error"]
    assert "only its first 1024 bytes" in again[_by_topic(entries, "p/c/json")]["error"]
    assert not record.exists(), "a poison message was handed to the job as if it were decoded"


def _by_topic(entries: dict[str, dict[str, object]], topic: str) -> str:
    return next(i for i, e in entries.items() if f"(topic {topic})" in str(e["error"]))
