"""Jobs for the process tests of class jobs, dispatch, schedules and cancellation: RouteMQ's
documented examples written as mqttq class jobs, and a few recording helpers.

Every run appends ``<event> <key> <pid> <time>`` to ``$MQTTQ_TEST_RECORD``
(:func:`mqttq.testing.jobs.record`).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import mqttq
from mqttq.testing import jobs


def record(event: str, key: str) -> None:
    """One record line; spaces in ``key`` become ``_`` (a line is split on spaces)."""
    jobs.record(event, key.replace(" ", "_"))


class SendNotificationJob(mqttq.Job):
    """Send a notification to a user (RouteMQ's creating-jobs example)."""

    max_tries = 3
    timeout = 60
    retry_after = 10
    queue = "default"

    def __init__(self) -> None:
        super().__init__()
        self.user_id = None
        self.message = None

    async def handle(self) -> None:
        record("notify", f"{self.user_id}:{self.message}:{self.attempts}")

    async def failed(self, exception: Exception) -> None:
        record("notify-failed", f"{self.user_id}:{exception}")


class ProcessOrderJob(mqttq.Job):
    """RouteMQ's example with list and dict attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.order_id = None
        self.customer_email = None
        self.items: list[Any] = []
        self.metadata: dict[str, Any] = {}

    async def handle(self) -> None:
        data = {"items": self.items, "metadata": self.metadata, "email": self.customer_email}
        text = json.dumps(data, sort_keys=True, separators=(",", ":"))
        record("order", f"{self.order_id}:{text}")


class SendEmailJob(mqttq.Job):
    """Fails until its flag file exists; ``failed()`` records the exception it got."""

    max_tries = 3
    timeout = 30
    retry_after = 1
    queue = "emails"

    def __init__(self) -> None:
        super().__init__()
        self.to = None
        self.flag = ""

    async def handle(self) -> None:
        record("email", f"{self.to}:{self.attempts}")
        if not Path(self.flag).exists():
            raise ConnectionError(f"SMTP down for {self.to}")

    async def failed(self, exception: Exception) -> None:
        record(
            "email-failed", f"{self.to}:{type(exception).__name__}:{exception}".replace(" ", "_")
        )


# -- a chain: A dispatches B, B dispatches C a second later ------------------------------------


class ChainA(mqttq.Job):
    def __init__(self) -> None:
        super().__init__()
        self.tag = ""

    async def handle(self) -> None:
        record("chain", f"A:{self.tag}")
        b = ChainB()
        b.tag = self.tag
        await mqttq.dispatch(b)


class ChainB(ChainA):
    async def handle(self) -> None:
        record("chain", f"B:{self.tag}")
        c = ChainC()
        c.tag = self.tag
        await mqttq.current_queue().later(1, c)
        record("chain", f"B-done:{self.tag}")


class ChainC(ChainA):
    def handle(self) -> None:  # a sync handle, on a thread (or in a child process)
        record("chain", f"C:{self.tag}")


# -- schedules ----------------------------------------------------------------------------------


@mqttq.job
def tick(**kwargs: Any) -> None:
    """A scheduled job: records its slot (from its unique key) and its id."""
    job = mqttq.current_job()
    assert job is not None
    assert job.unique_key is not None
    slot = job.unique_key.rsplit(":", 1)[1]
    record("tick", f"{slot}:{job.id}")


# -- cancellation -------------------------------------------------------------------------------


@mqttq.job
async def long_async(key: str, seconds: float = 10.0) -> None:
    record("start", key)
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        record("stopped", key)
        raise
    record("end", key)


@mqttq.job
def long_sync(key: str, seconds: float = 10.0) -> None:
    record("start", key)
    time.sleep(seconds)
    record("end", key)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
