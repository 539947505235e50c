"""Entry points for worker processes started by test_sqlite_specific.py (spawn context).

Each child records what it claimed in its own file, one id per line, and any exception in
``<file>.error`` before exiting non-zero, so the parent can check the union for duplicates.
"""

from __future__ import annotations

import asyncio
import os
import traceback
from collections.abc import Coroutine
from multiprocessing.synchronize import Barrier, Event
from pathlib import Path
from typing import Any

from mqttq.models import Envelope
from mqttq_sqlite.driver import SqliteQueueDriver


def _guard(out: str, main: Coroutine[Any, Any, None]) -> None:
    try:
        asyncio.run(main)
    except BaseException:
        Path(out + ".error").write_text(traceback.format_exc())
        raise


def consume(url: str, queue: str, out: str, barrier: Barrier, producer_done: Event) -> None:
    """Claim and ack in small batches until the producer is done and the queue is drained."""

    async def main() -> None:
        async with SqliteQueueDriver.from_url(url) as driver:
            barrier.wait(timeout=60)
            with open(out, "a") as f:
                while True:
                    drained = producer_done.is_set()  # read before claiming: see its last push
                    jobs = await driver.claim([queue], 10, lease=120, wait=0.05)
                    if not jobs:
                        if drained:
                            return
                        continue
                    f.write("".join(f"{j.id}\n" for j in jobs))
                    f.flush()
                    await driver.ack([j.id for j in jobs])

    _guard(out, main())


def produce(
    url: str, queue: str, out: str, count: int, barrier: Barrier, producer_done: Event
) -> None:
    """Push ``count`` jobs with ids ``p00000``... in batches of 50, then set ``producer_done``."""

    async def main() -> None:
        async with SqliteQueueDriver.from_url(url) as driver:
            barrier.wait(timeout=60)
            for start in range(0, count, 50):
                batch = [
                    Envelope(id=f"p{i:05d}", name="tests:noop", queue=queue, kwargs={"i": i})
                    for i in range(start, min(count, start + 50))
                ]
                await driver.push(batch)
        producer_done.set()

    _guard(out, main())


def claim_and_vanish(url: str, queue: str, out: str, lease: float) -> None:
    """Claim one job and die without acking or closing anything (a crashed worker)."""

    async def main() -> None:
        driver = SqliteQueueDriver.from_url(url)
        await driver.open()
        jobs = await driver.claim([queue], 1, lease=lease)
        Path(out).write_text("".join(f"{j.id} {j.attempts}\n" for j in jobs))
        os._exit(0)

    _guard(out, main())
