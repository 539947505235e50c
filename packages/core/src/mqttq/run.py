"""Assembling a process: ``mqttq run`` (listener and worker in one process) and ``mqttq listen``.

Data flows one way: transport -> listener -> queue driver -> worker -> runner. The listener and
the worker are built here from an :class:`~mqttq.app.App`, share its driver, and stop together.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Sequence
from typing import Any

from mqttq.app import App
from mqttq.errors import MqttqError
from mqttq.listener import Listener, ListenerStats
from mqttq.routing import Router

log = logging.getLogger("mqttq.run")


def worker_queues(app: App) -> list[str]:
    """``worker.queues``, then every route's queue not already listed (so ``mqttq run`` works
    the jobs its own routes make)."""
    queues = list(app.config.worker.queues)
    for route in Router.from_app(app).routes:
        if route.queue not in queues:
            queues.append(route.queue)
    return queues


async def serve(
    app: App,
    *,
    worker: bool = True,
    concurrency: int | None = None,
    queues: Sequence[str] | None = None,
    runner: str | None = None,
    install_signals: bool = True,
    listener: Listener | None = None,
) -> ListenerStats:
    """``mqttq run`` (``worker=True``) and ``mqttq listen``: run until SIGTERM/SIGINT.

    The first signal stops reading, pushes and acks what was received, then lets the worker
    finish its running jobs (``worker.shutdown_grace``); a second signal stops the worker at once
    (its running jobs are released, not lost). If either part fails, the other is stopped and the
    error is raised.
    """
    from mqttq.worker import Worker

    async with contextlib.AsyncExitStack() as stack:
        if not app.is_open:
            await stack.enter_async_context(app)
        the_listener = listener or Listener(app)
        the_worker = None
        if worker:
            the_worker = Worker(
                app,
                queues=queues or worker_queues(app),
                concurrency=concurrency,
                runner=runner,
                install_signals=False,
            )
        signals = 0

        def on_signal(signum: int) -> None:
            nonlocal signals
            signals += 1
            log.warning(
                "%s: %s",
                signal.Signals(signum).name,
                "stopping at once" if signals > 1 else "finishing received messages and jobs",
            )
            the_listener.stop()
            if the_worker is not None and signals > 1:
                the_worker.stop(now=True)

        loop = asyncio.get_running_loop()
        if install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, on_signal, sig)
                stack.callback(loop.remove_signal_handler, sig)
        tasks: set[asyncio.Task[Any]] = {
            asyncio.create_task(the_listener.run(), name="mqttq-listener")
        }
        if the_worker is not None:
            tasks.add(asyncio.create_task(the_worker.run(), name="mqttq-worker"))
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            the_listener.stop()
            if the_worker is not None:
                the_worker.stop(now=True)
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        failed = any(t.exception() is not None for t in done)
        the_listener.stop()  # the worker ended (it failed), or the listener did
        if the_worker is not None:
            the_worker.stop(now=failed or the_worker.failure is not None)
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        if the_worker is not None and the_worker.failure is not None:
            raise MqttqError(f"the worker stopped: {the_worker.failure}") from the_worker.failure
    return the_listener.stats
