"""One thread that owns one SQLite connection and runs whole operations for the event loop.

Why whole operations: a wrapper that hops to its thread once per statement (``execute``,
``fetchall``, ``commit`` ...) pays a hop per statement and holds a write transaction open across
event-loop turns between those hops. Here each driver operation is one plain function
(``BEGIN IMMEDIATE`` ... ``COMMIT``, busy retries included) submitted in one hop, so the write
lock is held only while SQLite works and a claim costs one round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from queue import SimpleQueue
from typing import Any, TypeVar

T = TypeVar("T")

_Item = tuple[Callable[[], Any], "asyncio.Future[Any] | None"] | None


def _resolve(fut: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if fut.done():  # the awaiting task was cancelled
        return
    if exc is None:
        fut.set_result(result)
    else:
        fut.set_exception(exc)


class DbThread:
    """Runs submitted functions one at a time, in order, on a dedicated daemon thread."""

    def __init__(self, name: str) -> None:
        self._queue: SimpleQueue[_Item] = SimpleQueue()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    def _main(self) -> None:
        while (item := self._queue.get()) is not None:
            fn, fut = item
            result: Any = None
            exc: BaseException | None = None
            try:
                result = fn()
            except BaseException as e:
                exc = e
            if fut is not None:
                # the loop may be gone when a driver is dropped without aclose()
                with contextlib.suppress(RuntimeError):
                    fut.get_loop().call_soon_threadsafe(_resolve, fut, result, exc)
            del fn, fut, item, result, exc

    def submit(self, fn: Callable[[], T]) -> asyncio.Future[T]:
        """Queue ``fn``; the returned future (of the running loop) gets its result."""
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put((fn, fut))
        return fut

    def post(self, fn: Callable[[], object]) -> None:
        """Queue ``fn`` without waiting for it (errors are dropped)."""
        self._queue.put((fn, None))

    async def call(self, fn: Callable[[], T]) -> T:
        return await self.submit(fn)

    def stop(self) -> None:
        """Finish what is queued, then end the thread."""
        self._queue.put(None)
