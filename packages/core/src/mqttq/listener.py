"""The listener: MQTT messages in, jobs out; a message is acked only once its jobs are safe.

Each turn takes every message the transport has received (up to the in-flight window), makes
one job per matching route, pushes all of them in **one** driver call, records poison input in
the failed registry, and only then acks the messages. While a push is slow, messages pile up in
the transport until the window (``mqtt.inflight``) is full; then the transport stops reading and
the broker holds the rest: nothing is dropped and memory stays bounded.

Routes in ``sync`` mode (and QoS 2 messages on ``mixed`` routes) run inline, one at a time in
arrival order, and their message is acked after the job finished (a failure follows the job's
retry policy: a delayed retry is queued, or the job is recorded as failed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import attrs

from mqttq.errors import DriverUnavailable, MqttqError
from mqttq.interfaces import Delivery, Transport
from mqttq.models import Job, Message
from mqttq.routing import PoisonError, Route, Router, message_id, poison_job

if TYPE_CHECKING:
    from mqttq.app import App
    from mqttq.worker.executor import Executor

log = logging.getLogger("mqttq.listener")

#: bounds of the back-off while the queue backend is unreachable
_RETRY = (0.1, 5.0)


@attrs.define
class ListenerStats:
    """Counters since start. ``enqueued`` counts jobs pushed, ``inline`` jobs run inline."""

    received: int = 0
    enqueued: int = 0
    unmatched: int = 0
    poison: int = 0
    inline: int = 0
    acked: int = 0
    batches: int = 0

    def as_dict(self) -> dict[str, int]:
        return attrs.asdict(self)


def make_transport(app: App, **options: Any) -> Transport:
    """The transport registered for the scheme of ``mqtt.url``."""
    scheme = urlsplit(app.config.mqtt.url).scheme
    cls = app.host.registry("transports").load(scheme)
    transport: Transport = cls.from_config(app.config.mqtt, **options)
    return transport


class Listener:
    """Subscribes to every route and turns messages into jobs until :meth:`stop`.

    The app must be open (its driver is used); ``transport`` defaults to the one for
    ``mqtt.url``; ``executor`` (for sync routes) defaults to one built on the configured runner.
    """

    def __init__(
        self,
        app: App,
        *,
        transport: Transport | None = None,
        router: Router | None = None,
        executor: Executor | None = None,
        batch: int | None = None,
    ) -> None:
        self.app = app
        self.router = router or Router.from_app(app)
        self.transport = transport or make_transport(app)
        self.executor = executor
        self.batch = batch or app.config.mqtt.inflight
        self.stats = ListenerStats()
        self._stopping = asyncio.Event()
        self._inline: asyncio.Queue[tuple[Delivery, list[Job]]] = asyncio.Queue()
        self._lane: asyncio.Task[None] | None = None
        self.running = asyncio.Event()

    @property
    def needs_executor(self) -> bool:
        return any(route.mode != "async" for route in self.router.routes)

    def stop(self) -> None:
        """Stop reading; what was received is still pushed and acked, then :meth:`run` returns."""
        self._stopping.set()
        self.transport.stop_reading()

    async def run(self) -> None:
        """Connect, subscribe and work until :meth:`stop`; closes the transport at the end."""
        async with contextlib.AsyncExitStack() as stack:
            if self.needs_executor and self.executor is None:
                self.executor = await stack.enter_async_context(_inline_executor(self.app))
            stack.push_async_callback(self.transport.aclose)
            if not await self._connect():
                return
            cfg = self.app.config.mqtt
            await self.transport.subscribe(self.router.subscriptions(cfg.share_group))
            if self.needs_executor:
                self._lane = asyncio.create_task(self._inline_lane(), name="mqttq-sync-lane")
            self.running.set()
            log.info("listening: %s", ", ".join(r.filter for r in self.router.routes))
            try:
                while batch := await self.transport.receive(self.batch):
                    await self.handle(batch)
            except _Abandon:
                log.warning("stopped while the queue was unavailable: unacked messages come again")
            finally:
                self.running.clear()
                await self._finish_lane()
        log.info("listener stopped: %s", self.stats.as_dict())

    async def _connect(self) -> bool:
        """Connect (retrying an unreachable broker); False when stopped meanwhile."""
        connecting = asyncio.ensure_future(self.transport.connect())
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({connecting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            if not connecting.done():
                connecting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await connecting
        return connecting.done() and not connecting.cancelled() and connecting.result() is None

    # -- one turn ---------------------------------------------------------------------------------

    async def handle(self, batch: Sequence[Delivery]) -> None:
        """Route, push (one driver call), fail poison, ack: one turn of the listener."""
        stats = self.stats
        stats.received += len(batch)
        stats.batches += 1
        now = time.time()
        to_push: list[Job] = []
        poison: list[tuple[Job, str]] = []
        ack_now: list[Delivery] = []
        run_inline: list[tuple[Delivery, list[Job]]] = []
        router = self.router
        for delivery in batch:
            matches = router.match(
                delivery.topic, delivery.properties.get("subscription_identifier")
            )
            if not matches:
                stats.unmatched += 1
                ack_now.append(delivery)
                continue
            inline = self._jobs_for(delivery, matches, now, to_push, poison)
            if inline:
                run_inline.append((delivery, inline))
            else:
                ack_now.append(delivery)
        if to_push:
            await self._push(to_push)
        for job, error in poison:
            await self._fail(job, error)
        if ack_now:
            await self.transport.ack(ack_now)
            stats.acked += len(ack_now)
        for item in run_inline:  # only now: the lane acks, and this message's queued jobs are in
            self._inline.put_nowait(item)

    def _jobs_for(
        self,
        delivery: Delivery,
        matches: list[tuple[Route, dict[str, str]]],
        now: float,
        to_push: list[Job],
        poison: list[tuple[Job, str]],
    ) -> list[Job]:
        """Fill ``to_push``/``poison`` for one message; return its inline (sync) jobs."""
        oversized = len(delivery.payload) > self.router.max_payload
        decoded: dict[str, Any] = {}
        inline: list[Job] = []
        msg_id = message_id(delivery)
        for route, params in matches:
            try:
                if oversized:
                    self.router.check_size(delivery.payload)
                if route.payload not in decoded:
                    decoded[route.payload] = route.decode(delivery.payload)
            except PoisonError as exc:
                self.stats.poison += 1
                job = poison_job(route, delivery, params, oversized=oversized)
                poison.append((job, f"poison: {exc.reason} (topic {delivery.topic})"))
                continue
            message = Message(
                topic=delivery.topic,
                payload=decoded[route.payload],
                qos=delivery.qos,
                retain=delivery.retain,
                message_id=msg_id,
                properties=delivery.properties,
            )
            job = route.make_job(message, params, now=now)
            (inline if route.inline(delivery.qos) else to_push).append(job)
        return inline

    async def _push(self, jobs: list[Job]) -> None:
        """Push in one call; retry while the backend is down (the messages stay unacked)."""
        delay = _RETRY[0]
        while True:
            try:
                await self.app.queue.push_jobs(jobs)
            except DriverUnavailable as exc:
                log.warning(
                    "queue unavailable, holding %d job(s), retry in %.1fs: %s",
                    len(jobs),
                    delay,
                    exc,
                )
                await self._backoff(delay)
                delay = min(delay * 2, _RETRY[1])
                continue
            except MqttqError as exc:
                if len(jobs) > 1:  # find the job the driver refuses; push the others
                    half = len(jobs) // 2
                    await self._push(jobs[:half])
                    await self._push(jobs[half:])
                    return
                await self._fail(jobs[0], f"cannot enqueue: {exc}")
                return
            self.stats.enqueued += len(jobs)
            return

    async def _fail(self, job: Job, error: str) -> None:
        log.warning("%s", error)
        delay = _RETRY[0]
        while True:
            try:
                await self.app.driver.fail(job, error=error)
                return
            except DriverUnavailable as exc:
                log.warning("queue unavailable, retry in %.1fs: %s", delay, exc)
                await self._backoff(delay)
                delay = min(delay * 2, _RETRY[1])
            except NotImplementedError:
                log.error("the queue driver keeps no failed registry; dropped: %s", error)
                return

    async def _backoff(self, delay: float) -> None:
        """Wait before a retry; a stop request ends waiting for the backend (and the turn:
        its messages stay unacked and the broker delivers them again later)."""
        if self._stopping.is_set():
            raise _Abandon
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), delay)
        if self._stopping.is_set():
            raise _Abandon

    # -- sync routes ------------------------------------------------------------------------------

    async def _inline_lane(self) -> None:
        assert self.executor is not None
        while True:
            delivery, jobs = await self._inline.get()
            for job in jobs:
                await self._run_inline(job)
            await self.transport.ack([delivery])
            self.stats.acked += 1
            self._inline.task_done()

    async def _run_inline(self, job: Job) -> None:
        assert self.executor is not None
        delay = _RETRY[0]
        while True:
            try:
                await self.executor.run_inline(job)
                self.stats.inline += 1
                return
            except DriverUnavailable as exc:  # the outcome could not be stored: run it again
                log.warning("queue unavailable settling %s, retry in %.1fs: %s", job.id, delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY[1])

    async def _finish_lane(self) -> None:
        """Let the sync lane finish what was received, within ``worker.shutdown_grace``."""
        lane, self._lane = self._lane, None
        if lane is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._inline.join(), self.app.config.worker.shutdown_grace)
        lane.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await lane
        if not self._inline.empty():
            log.warning(
                "%d sync message(s) left unacked: the broker delivers them again",
                self._inline.qsize(),
            )


class _Abandon(Exception):
    """Stop was requested while the queue backend was down."""


@contextlib.asynccontextmanager
async def _inline_executor(app: App) -> Any:
    from mqttq.worker.executor import Executor

    cfg = app.config.worker
    runner_cls = app.host.registry("job_runners").load(cfg.runner)
    async with runner_cls(app=app, concurrency=cfg.concurrency) as runner:
        yield Executor(app, runner)


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
        if app._driver is None:
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
        the_listener.stop()  # the worker ended (an error), or the listener did
        if the_worker is not None:
            the_worker.stop(now=failed)
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
    return the_listener.stats
