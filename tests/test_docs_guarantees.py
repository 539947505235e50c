"""docs/guarantees.md: its idempotent example job, as written, stores a redelivered message once.

The page's ``# readings.py`` block is written to a temporary directory. A route makes a job for
each delivery; the same MQTT message delivered twice (same topic, packet id and payload, as after
a listener crash) makes two jobs with one ``message_id``. A real ``mqttq worker --burst`` on a
SQLite queue runs them all: both jobs succeed, and the table holds one row per message.
"""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

from mqttq import App, load_config
from mqttq.config import RouteConfig
from mqttq.interfaces import Delivery
from mqttq.models import Envelope, QueueStats
from mqttq.routing import compile_route, to_message

ROOT = Path(__file__).parent.parent
JOB = "readings:store_reading"


def example_module() -> str:
    page = (ROOT / "docs" / "guarantees.md").read_text(encoding="utf-8")
    blocks: list[str] = re.findall(r"```python\n(# readings\.py\n.*?)```", page, re.S)
    assert len(blocks) == 1, "guarantees.md has no single `# readings.py` block"
    return blocks[0]


def test_the_idempotent_example_stores_a_redelivered_message_once(tmp_path: Path) -> None:
    (tmp_path / "readings.py").write_text(example_module(), encoding="utf-8")
    (tmp_path / "mqttq.toml").write_text(
        f'[queue]\nurl = "sqlite:///{tmp_path / "q.db"}"\n\n[jobs]\nregister = ["{JOB}"]\n'
    )
    route = compile_route(
        RouteConfig(topic="sensors/{device_id}/temperature", job=JOB), 0, job=JOB, queue="default"
    )

    def job_for(device: str, mid: int, celsius: float) -> Envelope:
        payload = f'{{"celsius": {celsius}}}'.encode()
        delivery = Delivery(topic=f"sensors/{device}/temperature", payload=payload, qos=1, mid=mid)
        message = to_message(delivery, {"celsius": celsius})
        return route.make_job(message, {"device_id": device})

    jobs = [job_for("kitchen", 7, 21.5), job_for("kitchen", 7, 21.5), job_for("garage", 8, 18.0)]
    assert jobs[0].id != jobs[1].id  # two jobs
    assert jobs[0].kwargs == jobs[1].kwargs  # of one message (one message_id)

    async def queue(push: bool) -> dict[str, QueueStats]:
        sys.path.insert(0, str(tmp_path))  # the registry imports the job module
        try:
            async with App(load_config(tmp_path / "mqttq.toml")) as app:
                if push:
                    await app.queue.push_jobs(jobs)
                return await app.driver.stats()
        finally:
            sys.path.remove(str(tmp_path))
            sys.modules.pop("readings", None)

    assert asyncio.run(queue(push=True))["default"].ready == 3
    env = {k: v for k, v in os.environ.items() if not k.startswith("MQTTQ_")}
    worker = subprocess.run(
        [Path(sys.executable).with_name("mqttq"), "worker", "--burst"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert worker.returncode == 0, worker.stderr
    after = asyncio.run(queue(push=False))["default"]
    assert (after.ready, after.delayed, after.failed) == (0, 0, 0), worker.stderr  # all succeeded
    db = sqlite3.connect(tmp_path / "readings.db")
    try:
        rows = sorted(db.execute("SELECT device, celsius FROM readings"))
    finally:
        db.close()
    assert rows == [("garage", 18.0), ("kitchen", 21.5)]
