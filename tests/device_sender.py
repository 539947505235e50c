"""A process that sends commands through a DeviceClient (for the device tests).

python device_sender.py CONFIG queue N    # send N commands to device d1, print "queued N", wait
python device_sender.py CONFIG drain      # load what the store kept, print "done" when all settle
"""

from __future__ import annotations

import asyncio
import sys

from echo_device import EchoAdapter, EchoPlugin

import mqttq
from mqttq.devices import DeviceClient


def client(config: str) -> DeviceClient:
    host = mqttq.make_plugin_manager(extra=[("echo", EchoPlugin())])
    return DeviceClient(mqttq.App.from_config(config, host=host))


async def queue(config: str, n: int) -> None:
    async with client(config) as c:
        c.add_device("echo", "d1")
        adapter = c.adapter("echo")
        assert isinstance(adapter, EchoAdapter)
        for i in range(n):
            await c.send(adapter.command("d1", i))
        print(f"queued {c.queued_commands_count}", flush=True)
        await asyncio.Event().wait()  # until killed


async def drain(config: str) -> None:
    async with client(config) as c:
        handles = c.pending()
        print(f"loaded {len(handles)}", flush=True)
        for handle in handles:
            await handle.wait(120)
        states = {str(h.state) for h in handles}
        print(f"done {len(handles)} {' '.join(sorted(states))}", flush=True)


if __name__ == "__main__":
    if sys.argv[2] == "queue":
        asyncio.run(queue(sys.argv[1], int(sys.argv[3])))
    else:
        asyncio.run(drain(sys.argv[1]))
