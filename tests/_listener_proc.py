"""A listener process for the crash tests: ``python _listener_proc.py CONFIG [SLOW] [BLOCK_AFTER]``.

Runs ``serve(worker=False)`` (what ``mqttq listen`` runs) with the queue's push slowed by SLOW
seconds per call; once BLOCK_AFTER jobs are stored, the next push never returns and the process
prints ``BLOCKED``, holding that batch (and whatever else it received) in memory until the test
kills it. Prints ``READY`` once subscribed and ``PUSHED <n>`` after each push.

``LISTENER_EARLY_PUBREC=1`` brings back paho's PUBREC on receipt of a QoS 2 message (a control).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Sequence

from mqttq import App, Envelope
from mqttq.listener import Listener
from mqttq.run import serve
from mqttq.transports._client import PahoClient


async def main(config: str, slow: float, block_after: int) -> None:
    if os.environ.get("LISTENER_EARLY_PUBREC") == "1":
        PahoClient.HOLD_PUBREC = False
    app = App.from_config(config)
    pushed = 0
    async with app:
        push = app.queue.push_jobs

        async def slow_push(jobs: Sequence[Envelope]) -> list[str]:
            nonlocal pushed
            if block_after and pushed >= block_after:
                print(f"BLOCKED {pushed} {len(jobs)}", flush=True)
                await asyncio.Event().wait()
            if slow:
                await asyncio.sleep(slow)
            ids = await push(jobs)
            pushed += len(jobs)
            print(f"PUSHED {pushed}", flush=True)
            return ids

        app.queue.push_jobs = slow_push  # type: ignore[method-assign]
        listener = Listener(app)

        async def ready() -> None:
            await listener.running.wait()
            print("READY", flush=True)

        announce = asyncio.create_task(ready())
        stats = await serve(app, worker=False, listener=listener)
        announce.cancel()
        print(f"STOPPED {stats.as_dict()}", flush=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    asyncio.run(
        main(
            args[0], float(args[1]) if len(args) > 1 else 0.0, int(args[2]) if len(args) > 2 else 0
        )
    )
