"""Bounded waits on an observable condition: the only way the kit's tests synchronise."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

import pytest

T = TypeVar("T")


class _Deadline:
    """Polling cadence (10 ms doubling to 100 ms) and the failure message, for both waits."""

    def __init__(self, timeout: float, what: str) -> None:
        self.timeout = timeout
        self.what = what
        self.end = time.monotonic() + timeout
        self.pause = 0.01

    def next_pause(self) -> float:
        if time.monotonic() >= self.end:
            pytest.fail(f"timed out after {self.timeout:g}s waiting for {self.what}")
        pause, self.pause = self.pause, min(self.pause * 2, 0.1)
        return pause


@overload
async def eventually(
    check: Callable[[], Awaitable[T]], *, timeout: float = ..., what: str = ...
) -> T: ...
@overload
async def eventually(check: Callable[[], T], *, timeout: float = ..., what: str = ...) -> T: ...
async def eventually(
    check: Callable[[], Any], *, timeout: float = 30.0, what: str = "a condition"
) -> Any:
    """Poll ``check`` (plain or async) until it returns something truthy and return that;
    fail the test after ``timeout`` seconds, naming ``what``."""
    deadline = _Deadline(timeout, what)
    while True:
        result: Any = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        await asyncio.sleep(deadline.next_pause())


def eventually_sync(
    check: Callable[[], T], *, timeout: float = 30.0, what: str = "a condition"
) -> T:
    """:func:`eventually` for tests that are not async (they drive other processes)."""
    deadline = _Deadline(timeout, what)
    while not (result := check()):
        time.sleep(deadline.next_pause())
    return result
