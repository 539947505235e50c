"""Child process of the race test: claim until the queue is empty, ack, report what it got.

Usage: python _claimer.py URL QUEUE OUTFILE. Prints "ready" once connected, then waits for a
line on stdin so that every claimer starts at the same moment.
"""

from __future__ import annotations

import asyncio
import sys

from mqttq_redis.driver import RedisQueueDriver


async def main(url: str, queue: str, outfile: str) -> None:
    got: list[str] = []
    async with RedisQueueDriver.from_url(url) as driver:
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        while jobs := await driver.claim([queue], 25, lease=300):
            got += (f"{j.id} {j.attempts}" for j in jobs)
            await driver.ack([j.id for j in jobs])
    with open(outfile, "w") as f:
        f.write("\n".join(got))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
