"""Stopping background tasks for sure."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

#: seconds between two cancellations of a task that is still running
RECANCEL_EVERY = 0.2


async def cancel_and_wait(tasks: Iterable[asyncio.Future[Any]]) -> None:
    """Cancel ``tasks`` and return once every one has ended (their errors are not raised).

    A task is cancelled again while it runs on: a cancellation can be lost inside a library
    (``asyncio.wait_for`` before Python 3.12 drops one that races its inner operation's
    completion, and redis-py sends every command through it when a socket timeout is set),
    and a task that was told once and never heard it would hold its owner's stop forever.
    """
    tasks = list(tasks)
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=RECANCEL_EVERY)
    for task in tasks:
        if not task.cancelled():
            task.exception()  # retrieved: no "exception was never retrieved" at exit
