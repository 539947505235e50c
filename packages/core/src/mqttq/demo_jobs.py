"""The jobs ``mqttq demo`` runs: store a heater's telemetry reading (in memory, for the view).

A reading flagged ``fault`` fails on purpose, so the demo also shows retries and the failed
registry.
"""

from __future__ import annotations

import asyncio
import time

import attrs

from mqttq.jobs import job
from mqttq.models import Backoff, Message


@attrs.define
class DeviceView:
    readings: int = 0
    temperature: float = 0.0
    total_temperature: float = 0.0

    @property
    def average(self) -> float:
        return self.total_temperature / self.readings if self.readings else 0.0


#: what the jobs saw, per device (the demo's live view reads it)
DEVICES: dict[str, DeviceView] = {}
#: seconds from publish to job start, per reading
LATENCIES: list[float] = []


class SensorFault(Exception):
    """The reading says the sensor failed: no retry will fix it."""


@job(max_tries=2, backoff=Backoff(base=0.05, max=0.2, jitter=0.5), queue="telemetry")
async def record_reading(device_id: str, message: Message) -> None:
    """Keep a heater's reading; a faulty reading fails (retried once, then recorded failed)."""
    reading = message.payload
    if "ts" in reading:
        LATENCIES.append(max(0.0, time.time() - float(reading["ts"])))
    view = DEVICES.setdefault(device_id, DeviceView())
    if reading.get("fault"):
        raise SensorFault(f"{device_id}: sensor fault in reading {reading.get('seq')}")
    await asyncio.sleep(0.002)  # pretend to write it somewhere
    view.readings += 1
    view.temperature = float(reading["temperature"])
    view.total_temperature += view.temperature
