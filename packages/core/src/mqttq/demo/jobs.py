"""The job ``mqttq demo`` runs: keep a heater's status reply (in memory, for the live view).

A reply that reports an error code fails on purpose (retried once, then recorded failed), so the
demo also shows retries and the failed registry.
"""

from __future__ import annotations

import asyncio

import attrs

from mqttq.jobs import job
from mqttq.models import Backoff, Message


@attrs.define
class HeaterView:
    replies: int = 0
    tank: float = 0.0  #: °C
    setpoint: float = 0.0  #: °C
    mode: str = ""


#: what the jobs saw, per heater MAC (the live view reads it)
HEATERS: dict[str, HeaterView] = {}


class HeaterFault(Exception):
    """The heater reports an error code: no retry will fix it."""


@job(max_tries=2, backoff=Backoff(base=0.05, max=0.2, jitter=0.5), queue="navien")
async def record_status(device: str, message: Message) -> None:
    """Keep the status in a heater's reply (``device`` is ``navilink-<mac>``); a status with an
    error code fails."""
    from mqttq_navien.models import Status

    response = message.payload.get("response", {})
    mac = str(response.get("macAddress") or device.removeprefix("navilink-"))
    view = HEATERS.setdefault(mac, HeaterView())
    status = Status.decode(mac, response.get("status") or {})
    if status.error_code:
        raise HeaterFault(f"heater {mac} reports error code {status.error_code}")
    await asyncio.sleep(0.002)  # pretend to write it somewhere
    view.replies += 1
    if status.dhw_temperature is not None:
        view.tank = status.dhw_temperature.celsius
    if status.dhw_temperature_setting is not None:
        view.setpoint = status.dhw_temperature_setting.celsius
    if status.dhw_mode is not None:
        view.mode = status.dhw_mode.label
