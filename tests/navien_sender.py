"""A process that sends setpoints to the first configured Navien heater (for the device tests).

python navien_sender.py CONFIG queue N   # send N setpoints, print "queued N", wait to be killed
python navien_sender.py CONFIG drain     # load what the store kept, print "done" once settled
"""

from __future__ import annotations

import asyncio
import sys

import mqttq
from mqttq.devices import DeviceClient
from mqttq_navien.adapter import NavienAdapter

SETPOINTS = [81 + i % 50 for i in range(1000)]  # as test_devices_navien


async def queue(config: str, n: int) -> None:
    async with DeviceClient(mqttq.App.from_config(config)) as client:
        adapter = client.adapter("navien")
        assert isinstance(adapter, NavienAdapter)
        heater = client.devices()[0]
        for i in range(n):
            await client.send(adapter.set_temperature(heater, SETPOINTS[i] / 2, unit="C"))
        print(f"queued {client.queued_commands_count}", flush=True)
        await asyncio.Event().wait()


async def drain(config: str) -> None:
    async with DeviceClient(mqttq.App.from_config(config)) as client:
        handles = client.pending()
        print(f"loaded {len(handles)}", flush=True)
        for handle in handles:
            await handle.wait(120)
        states = " ".join(sorted({str(h.state) for h in handles}))
        print(f"done {len(handles)} {states}", flush=True)


if __name__ == "__main__":
    if sys.argv[2] == "queue":
        asyncio.run(queue(sys.argv[1], int(sys.argv[3])))
    else:
        asyncio.run(drain(sys.argv[1]))
