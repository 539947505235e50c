"""The listener: MQTT messages in, jobs out; a message is acked only once its jobs are safe.

Each turn takes every message the transport has received (up to the in-flight window), makes
one job per matching route, pushes all of them in **one** driver call, records poison input in
the failed registry, and only then acks the messages. While a push is slow, messages pile up in
the transport until the window (``mqtt.inflight``) is full; then the transport stops reading and
the broker holds the rest: nothing is dropped and memory stays bounded.

Routes in ``sync`` mode (and QoS 2 messages on ``mixed`` routes) run inline, one at a time in
arrival order, and their message is acked after the job finished (a failure follows the job's
retry policy: a delayed retry is queued, or the job is recorded as failed).

Retained messages follow each route's ``retained`` policy: ``new`` (the broker sends them only
for a new subscription, MQTT 5 Retain Handling 1; and a retained message this process already
turned into a job is not run again when a resubscription brings it back, under either protocol),
``always``, or ``ignore``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from mqttq.errors import MqttqError
from mqttq.interfaces import Capability, Delivery, Transport, require
from mqttq.models import Envelope, Message
from mqttq.retry import Outage, RetryPolicy, Stopped, retry
from mqttq.routing import (
    PoisonError,
    Route,
    Router,
    message_id,
    poison_error,
    poison_job,
    retained_identity,
)
from mqttq.tasks import cancel_and_wait

if TYPE_CHECKING:
    from mqttq.app import App
    from mqttq.worker.executor import Executor

log = logging.getLogger("mqttq.listener")

#: retained messages remembered (per route) so that a resubscription does not run them again
RETAINED_MEMORY = 100_000
#: retries while the queue backend is unreachable
UNAVAILABLE = RetryPolicy(first=0.1, max=5.0)
T = TypeVar("T")


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
    #: retained messages not turned into jobs (policy "ignore", or seen before under "new")
    retained_skipped: int = 0

    def as_dict(self) -> dict[str, int]:
        return attrs.asdict(self)


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
        self.transport = transport or app.make_transport()
        self.executor = executor
        self.batch = batch or app.config.mqtt.inflight
        self.stats = ListenerStats()
        self._stopping = asyncio.Event()
        self._inline: asyncio.Queue[tuple[Delivery, list[Envelope]]] = asyncio.Queue()
        self._lane: asyncio.Task[None] | None = None
        self.running = asyncio.Event()
        self._outage = Outage("queue unavailable, holding messages unacked", log)
        #: identities of retained messages this process turned into jobs, per route (bounded)
        self._retained: collections.OrderedDict[bytes, None] = collections.OrderedDict()
        #: what stopped the listener, when something failed
        self.failure: BaseException | None = None

    @property
    def needs_executor(self) -> bool:
        return any(route.mode != "async" for route in self.router.routes)

    def stop(self) -> None:
        """Stop reading; what was received is still pushed and acked, then :meth:`run` returns."""
        self._stopping.set()
        self.transport.stop_reading()

    def check(self) -> None:
        """Start-up checks: what the routes need from the queue driver and the job runner."""
        driver = self.app.driver_class()
        require(driver, Capability.FAILED_REGISTRY, "recording poison messages")
        for route in self.router.routes:
            if route.delay:
                require(driver, Capability.DELAY, f"routes[{route.index}].delay")
            if route.mode != "async":  # a failed inline job is queued as a delayed retry
                require(driver, Capability.DELAY, f"routes[{route.index}] in {route.mode} mode")
        if self.needs_executor:
            runner = self.app.runner_class()
            for route in self.router.routes:
                if route.mode != "async":
                    runner.check_job(self.app.jobs.get(route.job))

    async def run(self) -> None:
        """Connect, subscribe and work until :meth:`stop`; closes the transport at the end.

        Raises what made it stop when something failed (the sync lane)."""
        from mqttq.worker.executor import inline_executor

        self.check()
        async with contextlib.AsyncExitStack() as stack:
            if self.needs_executor and self.executor is None:
                self.executor = await stack.enter_async_context(inline_executor(self.app))
            stack.push_async_callback(self.transport.aclose)
            if not await self._connect():
                return
            cfg = self.app.config.mqtt
            await self.transport.subscribe(self.router.subscriptions(cfg.share_group))
            if self.needs_executor:
                self._lane = asyncio.create_task(self._inline_lane(), name="mqttq-sync-lane")
                self._lane.add_done_callback(self._lane_done)
            self.running.set()
            log.info("listening: %s", ", ".join(r.filter for r in self.router.routes))
            try:
                while batch := await self.transport.receive(self.batch):
                    await self.handle(batch)
            except Stopped:
                log.warning("stopped while the queue was unavailable: unacked messages come again")
            finally:
                self.running.clear()
                await self._finish_lane()
        log.info("listener stopped: %s", self.stats.as_dict())
        if self.failure is not None:
            raise self.failure

    def _lane_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.failure = task.exception()
            log.error("the sync lane failed; stopping", exc_info=self.failure)
            self.stop()

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
        to_push: list[Envelope] = []
        poison: list[tuple[Envelope, str]] = []
        ack_now: list[Delivery] = []
        run_inline: list[tuple[Delivery, list[Envelope]]] = []
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
        to_push: list[Envelope],
        poison: list[tuple[Envelope, str]],
    ) -> list[Envelope]:
        """Fill ``to_push``/``poison`` for one message; return its inline (sync) jobs."""
        oversized = len(delivery.payload) > self.router.max_payload
        decoded: dict[str, Any] = {}
        inline: list[Envelope] = []
        msg_id = message_id(delivery)
        for route, params in matches:
            if delivery.retain and self._skip_retained(route, delivery):
                continue
            try:
                if oversized:
                    self.router.check_size(delivery.payload)
                if route.payload not in decoded:
                    decoded[route.payload] = route.decode(delivery.payload)
            except PoisonError as exc:
                self.stats.poison += 1
                job = poison_job(route, delivery, params, oversized=oversized)
                poison.append((job, poison_error(exc.reason, delivery.topic)))
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

    def _skip_retained(self, route: Route, delivery: Delivery) -> bool:
        """Whether a retained message makes no job for ``route``: always under "ignore"; under
        "new" when this process already made its job (a resubscription brought it again)."""
        if route.retained == "always":
            return False
        if route.retained == "new":
            identity = retained_identity(route, delivery)
            if identity not in self._retained:
                self._retained[identity] = None
                if len(self._retained) > RETAINED_MEMORY:
                    self._retained.popitem(last=False)
                return False
        self.stats.retained_skipped += 1
        return True

    async def _push(self, jobs: list[Envelope]) -> None:
        """Push in one call, retrying while the backend is down (the messages stay unacked); a
        job the driver refuses is found by halving the batch and recorded as failed."""
        try:
            await self._retrying(functools.partial(self.app.queue.push_jobs, jobs))
        except Stopped:
            raise
        except MqttqError as exc:
            if len(jobs) > 1:
                half = len(jobs) // 2
                await self._push(jobs[:half])
                await self._push(jobs[half:])
                return
            await self._fail(jobs[0], f"cannot enqueue: {exc}")
            return
        self.stats.enqueued += len(jobs)

    async def _fail(self, job: Envelope, error: str) -> None:
        log.warning("%s", error)
        await self._retrying(functools.partial(self.app.driver.fail, job, error=error))

    async def _retrying(self, op: Callable[[], Awaitable[T]]) -> T:
        """``op`` retried while the queue backend is unavailable. A stop request ends the wait
        (:class:`Stopped`): the turn's messages stay unacked and the broker delivers them again."""
        return await retry(op, outage=self._outage, policy=UNAVAILABLE, stop=self._stopping)

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

    async def _run_inline(self, job: Envelope) -> None:
        """Run a sync-route job; while its outcome cannot be stored, run it again."""
        executor = self.executor
        assert executor is not None
        await retry(
            functools.partial(executor.run_inline, job), outage=self._outage, policy=UNAVAILABLE
        )
        self.stats.inline += 1

    async def _finish_lane(self) -> None:
        """Let the sync lane finish what was received, within ``worker.shutdown_grace``."""
        lane, self._lane = self._lane, None
        if lane is None:
            return
        if not lane.done():  # a failed lane finishes nothing more
            with contextlib.suppress(TimeoutError):
                grace = self.app.config.worker.shutdown_grace
                await asyncio.wait_for(self._inline.join(), grace)
        await cancel_and_wait([lane])
        if not self._inline.empty():
            log.warning(
                "%d sync message(s) left unacked: the broker delivers them again",
                self._inline.qsize(),
            )
