"""Assembling a process: ``mqttq run`` (listener and worker in one process) and ``mqttq listen``.

Data flows one way: transport -> listener -> queue driver -> worker -> runner. The listener and
the worker are built here from an :class:`~mqttq.app.App`, share its driver, and stop together.
A push-only driver's jobs are run by the worker pool its plugin registers, in a child process
(:mod:`mqttq.pool_process`) beside the listener.
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
from mqttq.interfaces import Capability, WorkerPool
from mqttq.listener import Listener, ListenerStats
from mqttq.pool_process import PoolProcess, describe
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

    With a push-only driver (no ``Capability.CLAIM``) the worker is the pool its plugin registers
    (``rq+redis://``): ``worker.count`` workers on ``queues``, supervised in a child process forked
    before the app opens (so ``app`` must not be open yet). The first signal stops the listener,
    then asks the pool for its warm stop (running jobs finish); a second one stops it cold.
    """
    from mqttq.worker import Worker

    pool = worker_pool(app) if worker else None
    if pool is not None:
        if concurrency is not None or runner is not None:
            raise MqttqError(
                "concurrency and runner are for mqttq's own worker; this queue's jobs run in its "
                "driver's workers, one job at a time each: set [worker] count instead"
            )
        return await _serve_with_pool(
            app,
            pool(app, queues=queues or worker_queues(app), count=app.config.worker.count),
            install_signals=install_signals,
            listener=listener,
        )

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


def worker_pool(app: App) -> type[WorkerPool] | None:
    """The worker pool that runs the jobs of ``queue.url``'s driver when it only pushes them;
    ``None`` when it claims them (mqttq's own worker runs them). A push-only driver with no pool
    registered is one :class:`MqttqError` saying what to run instead."""
    driver = app.driver_class()
    if Capability.CLAIM in driver.capabilities:
        return None
    pool = app.worker_pool_class()
    if pool is None:
        name = "/".join(driver.schemes) or driver.__name__
        raise MqttqError(
            f"the {name} queue driver only queues jobs (no Capability.CLAIM) and no plugin runs "
            "workers for it: run its own workers, with `mqttq listen` for the MQTT side"
        )
    return pool


async def _serve_with_pool(
    app: App, pool: WorkerPool, *, install_signals: bool, listener: Listener | None
) -> ListenerStats:
    """The listener here, ``pool`` in a child process: see :func:`serve`."""
    if app.is_open:
        raise MqttqError(
            "serve() forks the worker pool before it opens the app: pass an app that is not open"
        )
    child = PoolProcess.start(pool)
    queues = ", ".join(pool.queues)
    log.info("worker pool started (pid %d): %d worker(s) on %s", child.pid, pool.count, queues)
    try:
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(app)
            the_listener = listener or Listener(app)
            signals = 0

            def on_signal(signum: int) -> None:
                nonlocal signals
                signals += 1
                cold = signals > 1
                log.warning(
                    "%s: %s",
                    signal.Signals(signum).name,
                    "stopping the workers at once"
                    if cold
                    else "finishing received messages, then the running jobs",
                )
                the_listener.stop()
                if cold:
                    child.stop(cold=True)

            loop = asyncio.get_running_loop()
            if install_signals:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.add_signal_handler(sig, on_signal, sig)
                    stack.callback(loop.remove_signal_handler, sig)
            listening = asyncio.create_task(the_listener.run(), name="mqttq-listener")
            pooled = asyncio.create_task(child.wait(), name="mqttq-worker-pool")
            try:
                await asyncio.wait({listening, pooled}, return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                the_listener.stop()
                child.stop(cold=True)
                await asyncio.gather(listening, pooled, return_exceptions=True)
                raise
            if not listening.done():  # the pool ended first
                the_listener.stop()
                await asyncio.gather(listening, return_exceptions=True)
                if not child.asked:
                    raise MqttqError(
                        f"the worker pool stopped on its own ({describe(pooled.result())})"
                    )
            failed = listening.exception()
            child.stop(cold=failed is not None)  # once the listener has queued what it received
            code = await pooled
            if failed is not None:
                raise failed
            if not child.stopped_cleanly:
                raise MqttqError(f"the worker pool stopped with {describe(code)}")
    finally:
        await child.ensure_stopped()
    return the_listener.stats
