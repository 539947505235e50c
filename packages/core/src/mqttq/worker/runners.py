"""The default runner: coroutines on the event loop, sync functions on a thread pool."""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from mqttq.errors import JobTimeoutError
from mqttq.interfaces import JobRunner
from mqttq.models import Envelope
from mqttq.routing import restore_kwargs


class AsyncioJobRunner(JobRunner):
    """``async def`` jobs run on the loop; plain functions run on a pool of ``concurrency`` threads
    so they never block the loop. A timed-out coroutine is cancelled; a timed-out thread cannot be
    stopped (Python has no way to), so its result is dropped: use the ``process`` runner for jobs
    that must really be stopped. A cancelled coroutine gets ``CancelledError`` at its next
    ``await``; a cancelled thread likewise runs on, its result dropped."""

    _pool: ThreadPoolExecutor | None = None

    async def open(self) -> None:
        self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="mqttq-job")

    async def aclose(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    async def run(
        self, func: Callable[..., Any], target: str, job: Envelope, *, timeout: float | None
    ) -> Any:
        kwargs = restore_kwargs(job.kwargs)  # a route job's message becomes a mqttq.Message
        if asyncio.iscoroutinefunction(func):
            call = func(*job.args, **kwargs)
        else:
            loop = asyncio.get_running_loop()
            # in the job's context (mqttq.current_job() and current_queue() work on the thread)
            context = contextvars.copy_context()
            work = functools.partial(context.run, func, *job.args, **kwargs)
            call = loop.run_in_executor(self._pool, work)
        if timeout is None:
            return await call
        try:
            async with asyncio.timeout(timeout) as scope:
                return await call
        except TimeoutError:
            if scope.expired():
                raise JobTimeoutError(f"job {job.name} timed out after {timeout:g}s") from None
            raise
