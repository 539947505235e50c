"""Periodic status requests that never fill the command queue.

Each round sends one status query per heater with ``queue=False``: while the device client is
disconnected the query is dropped at once (``not connected``) instead of waiting, so an outage
leaves nothing behind. Queries are coalesced (``coalesce=True``): one still waiting for its turn
is replaced by the newer one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from mqttq.devices import Command, DeviceAdapter

log = logging.getLogger("mqttq_navien.polling")


class _Client(Protocol):  # what of DeviceClient this needs
    def adapter(self, family: str) -> DeviceAdapter: ...

    async def send(self, command: Command, *, queue: bool = True) -> Any: ...


def _navien(client: _Client, family: str) -> Any:
    adapter = client.adapter(family)
    if not callable(getattr(adapter, "status", None)):
        raise TypeError(f"the {family!r} adapter builds no status requests")
    return adapter


async def request_status(
    client: _Client, devices: Sequence[str] | None = None, *, family: str = "navien"
) -> list[Any]:
    """One round: a status query to each of ``devices`` (default: every heater the adapter
    knows), not queued while disconnected. Returns the command handles."""
    adapter = _navien(client, family)
    handles = []
    for device in devices if devices is not None else adapter.devices:
        handles.append(await client.send(adapter.status(device, coalesce=True), queue=False))
    return handles


async def poll_status(
    client: _Client,
    *,
    interval: float = 60.0,
    devices: Sequence[str] | None = None,
    family: str = "navien",
    on_round: Callable[[list[Any]], Any] | None = None,
) -> None:
    """Ask for status every ``interval`` seconds until cancelled (run it as a task).
    ``on_round`` gets each round's handles."""
    if interval <= 0:
        raise ValueError(f"interval must be > 0, not {interval}")
    started = time.monotonic()
    rounds = 0
    while True:
        handles = await request_status(client, devices, family=family)
        skipped = sum(1 for h in handles if getattr(h, "reason", "") == "not connected")
        if skipped:
            log.debug("status round %d: %d request(s) skipped (not connected)", rounds, skipped)
        if on_round is not None:
            on_round(handles)
        rounds += 1
        # the period itself: rounds keep to a fixed grid however long a round took
        await asyncio.sleep(max(0.0, started + rounds * interval - time.monotonic()))
