"""The worker: claims jobs in batches, runs up to N at once, renews leases, stops gracefully.

**Prefetch.** A claim may take more jobs than there are free slots: up to ``worker.prefetch``
more, held in order and started the moment a slot frees, so that short jobs are not bound by
one claim round trip per handful of jobs. How many it takes ahead follows the pace the worker
has shown: never more than it finished in the last :data:`PREFETCH_HORIZON` seconds (measured
over the last second). A fresh worker, or one running slow jobs, therefore holds none and leaves
the jobs to idle workers elsewhere; a worker going through no-op jobs holds the whole
``worker.prefetch``. Should jobs turn slow, a job held longer than :data:`HOLD_MAX` is given back
(beyond one per slot). Held jobs are leased like running ones (their leases are renewed) and
released at once on a stop.

**Supervision.** The acker and the heartbeat run as background tasks. A lost backend
(``DriverUnavailable``) is retried with backoff and logged once per outage; any other error in
them, or in the claim loop, is logged with its traceback and stops the worker at once (running
and held jobs are released), and :meth:`Worker.run` returns 1: a worker that cannot ack or renew
its leases must not go on claiming, nor keep its heartbeat fresh.

**Cancellation.** While it holds jobs, a worker asks the driver every :data:`CANCEL_POLL` seconds
which of them were cancelled (one call for all of them): a held job is dropped, a running one
is stopped (an async job gets ``CancelledError`` at its next ``await``; the ``process`` runner
kills its child). The driver recorded the cancellation already; nothing is retried or failed.

**Schedules.** Unless told not to (``--no-schedules``, or ``burst``), a worker also fires the
app's ``[[schedules]]`` (:mod:`mqttq.schedules`); any number of workers may, each slot fires
once.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import os
import signal
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from mqttq.app import App, redact
from mqttq.errors import ConfigError
from mqttq.interfaces import Capability, require
from mqttq.models import Envelope, JobEvent, WorkerInfo
from mqttq.retry import Outage, RetryPolicy, Stopped, retry
from mqttq.schedules import Scheduler, check_schedules
from mqttq.tasks import cancel_and_wait
from mqttq.worker.executor import Executor

log = logging.getLogger("mqttq.worker")
T = TypeVar("T")

#: how long one claim call may block waiting for work before the loop looks around again
CLAIM_WAIT = 1.0
#: retries while the queue backend is unreachable
UNAVAILABLE = RetryPolicy(first=0.1, max=5.0)
#: jobs held ahead are at most what the worker finished within this many seconds
PREFETCH_HORIZON = 0.1
#: the pace is measured over this many seconds
PACE_WINDOW = 1.0
#: a job held (claimed, not started) longer than this is given back, beyond one per slot
HOLD_MAX = 1.0
#: how often the heartbeat publishes this worker's counts (leases are renewed every lease/3)
INFO_EVERY = 2.0
#: how long a stopping worker keeps trying to flush acks while the backend is down
ACK_FLUSH_GRACE = 10.0
#: how often a worker holding jobs asks which of them were cancelled
CANCEL_POLL = 0.2


class Worker:
    """Runs jobs from ``queues`` (claimed in that priority order) until stopped.

    ``run()`` returns the process exit code: 0 after a stop, 1 when it stopped because something
    failed (logged with its traceback). The first SIGTERM/SIGINT stops claiming, lets running
    jobs finish within ``shutdown_grace`` and releases the rest; a second one stops at once
    (running jobs are released, not lost).

    ``max_tries`` and ``timeout`` override every job's defaults (``mqttq worker --max-tries
    --timeout``); ``schedules`` (default: unless ``burst``) fires the app's ``[[schedules]]``.
    """

    def __init__(
        self,
        app: App,
        *,
        queues: Sequence[str] | None = None,
        concurrency: int | None = None,
        burst: bool = False,
        max_jobs: int | None = None,
        max_time: float | None = None,
        runner: str | None = None,
        install_signals: bool = True,
        max_tries: int | None = None,
        timeout: float | None = None,
        schedules: bool | None = None,
    ) -> None:
        cfg = app.config.worker
        self.app = app
        self.queues = list(queues or cfg.queues)
        self.concurrency = concurrency or cfg.concurrency
        self.prefetch = cfg.prefetch
        self.batch = cfg.batch or self.concurrency + self.prefetch
        self.lease = cfg.lease
        self.shutdown_grace = cfg.shutdown_grace
        self.burst = burst
        self.max_jobs = max_jobs
        self.max_time = max_time
        self.runner_name = runner or cfg.runner
        self.install_signals = install_signals
        self.max_tries = max_tries
        self.timeout = timeout
        self.run_schedules = (not burst) if schedules is None else schedules
        self.scheduler: Scheduler | None = None
        #: ids of running jobs being stopped because they were cancelled
        self._cancelling: set[str] = set()
        self.cancelled = 0
        self.id = f"{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:6]}"
        self.started_at = time.time()
        self.executor: Executor | None = None
        self._running: dict[str, tuple[Envelope, asyncio.Task[bool]]] = {}
        self._held: collections.deque[tuple[Envelope, float]] = collections.deque()
        self._slot_free = asyncio.Event()
        self._stopping = asyncio.Event()
        self._stop_now = False
        self._claimed = 0
        self._pending_acks: list[str] = []
        self._acks_waiting = asyncio.Event()
        self._closing = False
        self._cancelled: list[Envelope] = []
        self._background: list[asyncio.Task[None]] = []
        #: when recent jobs finished (monotonic), for the pace that bounds prefetch
        self._finishes: collections.deque[float] = collections.deque(
            maxlen=int(self.prefetch * PACE_WINDOW / PREFETCH_HORIZON) + 1
        )
        #: the error that stopped the worker, if one did
        self.failure: BaseException | None = None
        self._outage = Outage("queue unavailable", log)

    # -- control ----------------------------------------------------------------------------------

    def stop(self, *, now: bool = False) -> None:
        """Stop claiming; ``now`` also cancels running jobs (they are released)."""
        if now or self._stopping.is_set():
            self._stop_now = True
            for _, task in self._running.values():
                task.cancel()
        self._stopping.set()
        self._slot_free.set()

    def _on_signal(self, signum: int) -> None:
        now = self._stopping.is_set()
        log.warning(
            "%s: %s",
            signal.Signals(signum).name,
            "stopping now" if now else "finishing running jobs (again to stop now)",
        )
        self.stop(now=now)

    def _fail(self, exc: BaseException, where: str) -> None:
        """Something the worker cannot work without failed: log it and stop at once."""
        if self.failure is None:
            self.failure = exc
            log.error("worker %s stops: %s failed", self.id, where, exc_info=exc)
        self.stop(now=True)

    def check(self) -> None:
        """Start-up checks: the driver can be claimed from, every job timeout is below the lease
        the heartbeat renews, the runner can run every registered job, and the schedules are
        valid and the driver can fire them."""
        driver_cls = self.app.driver_class()
        require(driver_cls, Capability.CLAIM, "mqttq worker")
        if self.max_tries is not None and self.max_tries < 1:
            raise ConfigError(f"--max-tries {self.max_tries} must be at least 1")
        if self.timeout is not None and not 0 < self.timeout < self.lease:
            raise ConfigError(
                f"--timeout {self.timeout:g}s must be above 0 and below worker.lease "
                f"({self.lease:g}s)"
            )
        runner_cls = self.app.runner_class(self.runner_name)
        timeout = self.app.config.worker.timeout
        for spec in self.app.jobs.specs():
            limit = self.timeout or spec.timeout or timeout
            if limit is not None and limit >= self.lease:
                raise ConfigError(
                    f"job {spec.name}: timeout {limit:g}s must be below worker.lease "
                    f"({self.lease:g}s)"
                )
            runner_cls.check_job(spec)
        if self.run_schedules and self.app.config.schedules:
            for capability in (Capability.UNIQUE, Capability.SCHEDULES):
                require(driver_cls, capability, "[[schedules]]")
            schedules = check_schedules(self.app)
            self.scheduler = Scheduler(self.app, schedules, outage=self._outage)

    # -- main loop --------------------------------------------------------------------------------

    async def run(self) -> int:
        self.check()
        loop = asyncio.get_running_loop()
        async with contextlib.AsyncExitStack() as stack:
            if not self.app.is_open:
                await stack.enter_async_context(self.app)
            if self.install_signals:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.add_signal_handler(sig, self._on_signal, sig)
                    stack.callback(loop.remove_signal_handler, sig)
            runner = self.app.make_runner(self.runner_name, concurrency=self.concurrency)
            await stack.enter_async_context(runner)
            self.executor = Executor(
                self.app,
                runner,
                ack=self._queue_ack,
                outage=self._outage,
                max_tries=self.max_tries,
                timeout=self.timeout,
                cancelling=self._cancelling,
            )
            log.info(
                "worker %s: %s, queues %s, concurrency %d, prefetch up to %d, runner %s",
                self.id,
                redact(self.app.config.queue.url),
                ", ".join(self.queues),
                self.concurrency,
                self.prefetch,
                self.runner_name,
            )
            self._spawn(self._ack_loop(), "acker")
            self._spawn(self._heartbeat_loop(), "heartbeat")
            if Capability.CANCEL in self.app.driver.capabilities:
                self._spawn(self._cancel_loop(), "cancellation poll")
            if self.scheduler is not None:
                self._spawn(self.scheduler.run(self._stopping), "scheduler")
            try:
                await self._claim_loop()
            except Exception as exc:
                self._fail(exc, "claiming")
            await self._drain()
            await self._finish_background()
        return 0 if self.failure is None else 1

    def _spawn(self, coro: Awaitable[None], name: str) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        task.set_name(f"mqttq-{name}")
        task.add_done_callback(functools.partial(self._background_done, name))
        self._background.append(task)

    def _background_done(self, name: str, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._fail(task.exception(), f"its {name}")  # type: ignore[arg-type]

    async def _retrying(self, op: Callable[[], Awaitable[T]], *, stop: bool = True) -> T:
        """``op`` retried while the backend is unavailable (until a stop, when ``stop``)."""
        return await retry(
            op, outage=self._outage, policy=UNAVAILABLE, stop=self._stopping if stop else None
        )

    # -- claiming ---------------------------------------------------------------------------------

    def _ahead(self) -> int:
        """How many jobs to hold beyond the free slots: what the worker finished lately
        within the horizon."""
        finishes = self._finishes
        if not self.prefetch or not finishes:
            return 0
        since = time.monotonic() - PACE_WINDOW
        while finishes and finishes[0] < since:
            finishes.popleft()
        return min(self.prefetch, int(len(finishes) * PREFETCH_HORIZON / PACE_WINDOW))

    def _want(self) -> int:
        want = self.concurrency + self._ahead() - len(self._running) - len(self._held)
        want = min(want, self.batch)
        if self.max_jobs is not None:
            want = min(want, self.max_jobs - self._claimed)
        return want

    async def _claim_loop(self) -> None:
        deadline = None if self.max_time is None else time.monotonic() + self.max_time
        while not self._stopping.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                log.info("max time reached")
                break
            if self.max_jobs is not None and self._claimed >= self.max_jobs:
                break
            want = self._want()
            if want <= 0:
                self._slot_free.clear()
                await self._slot_free.wait()
                continue
            wait = 0.0 if self.burst else CLAIM_WAIT
            if deadline is not None:
                wait = max(0.0, min(wait, deadline - time.monotonic()))
            claim = functools.partial(
                self.app.driver.claim, self.queues, want, lease=self.lease, wait=wait
            )
            try:
                jobs = await self._retrying(claim)
            except Stopped:
                break
            if self._stopping.is_set() and jobs:
                await self._retrying(functools.partial(self.app.driver.release, ids(jobs)))
                break
            self._claimed += len(jobs)
            now = time.monotonic()
            self._held.extend((job, now) for job in jobs)
            self._start_held()
            if not jobs and self.burst:
                if not self._running:
                    break
                self._slot_free.clear()
                await self._slot_free.wait()

    def _start_held(self) -> None:
        executor = self.executor
        assert executor is not None
        while self._held and len(self._running) < self.concurrency and not self._stopping.is_set():
            job, _ = self._held.popleft()
            task = asyncio.create_task(executor.execute(job), name=f"mqttq-job-{job.id}")
            self._running[job.id] = (job, task)
            task.add_done_callback(functools.partial(self._finished, job.id))

    async def _give_back_stale(self) -> None:
        """Jobs turned slow: release held jobs beyond one per slot that waited too long."""
        held = self._held
        if len(held) <= self.concurrency or time.monotonic() - held[0][1] < HOLD_MAX:
            return
        stale = [held.pop()[0] for _ in range(len(held) - self.concurrency)]
        log.info("giving back %d held job(s): jobs run slower than prefetch expected", len(stale))
        await self._retrying(functools.partial(self.app.driver.release, ids(stale)), stop=False)
        self._claimed -= len(stale)

    def _finished(self, job_id: str, task: asyncio.Task[bool]) -> None:
        job, _ = self._running.pop(job_id)
        self._cancelling.discard(job_id)
        self._finishes.append(time.monotonic())
        self._start_held()
        self._slot_free.set()
        if task.cancelled():  # stopped at once: handed back in _drain
            self._cancelled.append(job)
            return
        exc = task.exception()
        if exc is not None:  # the driver failed while settling: the lease will bring it back
            log.error(
                "job %s could not be settled; it runs again after its lease", job_id, exc_info=exc
            )

    async def _drain(self) -> None:
        """Stop: give held jobs back at once, wait up to ``shutdown_grace`` for running jobs
        (none after a second signal or a failure), release what is left."""
        held, self._held = [job for job, _ in self._held], collections.deque()
        if self._running and not self._stop_now:
            log.info(
                "waiting up to %gs for %d running job(s)", self.shutdown_grace, len(self._running)
            )
            tasks = [task for _, task in self._running.values()]
            done_or_now = asyncio.ensure_future(asyncio.wait(tasks))
            stop_now = asyncio.ensure_future(self._wait_stop_now())
            await asyncio.wait(
                {done_or_now, stop_now},
                timeout=self.shutdown_grace,
                return_when=asyncio.FIRST_COMPLETED,
            )
            stop_now.cancel()
            done_or_now.cancel()
        tasks = [task for _, task in self._running.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        released, self._cancelled = held + self._cancelled, []
        if not released:
            return
        log.warning("releasing %d unfinished job(s)", len(released))
        release = functools.partial(self.app.driver.release, ids(released))
        try:
            await self._retrying(release, stop=False)
        except Exception as exc:  # their leases bring them back
            log.error("could not release %d job(s): %s", len(released), exc)
            return
        if self.app.observed:
            for job in released:
                self.app.emit(JobEvent(kind="released", job=job))

    async def _wait_stop_now(self) -> None:
        while not self._stop_now:
            self._slot_free.clear()
            await self._slot_free.wait()

    async def _finish_background(self) -> None:
        """Flush the last acks, stop the heartbeat and say goodbye."""
        self._closing = True
        self._acks_waiting.set()
        acker, *others = self._background
        for task in others:
            task.cancel()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait({acker}, timeout=ACK_FLUSH_GRACE)
        await cancel_and_wait(self._background)
        if self._pending_acks:
            log.warning(
                "%d finished job(s) could not be acked: they run again after their lease",
                len(self._pending_acks),
            )
        with contextlib.suppress(Exception):
            await self.app.driver.worker_gone(self.id)

    # -- acks and heartbeats ----------------------------------------------------------------------

    def _queue_ack(self, job_id: str) -> None:
        self._pending_acks.append(job_id)
        self._acks_waiting.set()

    async def _ack_loop(self) -> None:
        """Acks everything that finished since the last call in one driver call; ends once
        ``_closing`` is set and nothing is pending. While the backend is down the ids are kept
        and retried; any other error ends the task (and, through its supervisor, the worker)."""
        while not (self._closing and not self._pending_acks):
            await self._acks_waiting.wait()
            self._acks_waiting.clear()
            ids_, self._pending_acks = self._pending_acks, []
            if not ids_:
                continue
            try:
                await self._retrying(functools.partial(self.app.driver.ack, ids_), stop=False)
            except BaseException:
                self._pending_acks[:0] = ids_
                raise

    async def _cancel_loop(self) -> None:
        """Every :data:`CANCEL_POLL` seconds, while it holds jobs: stop those cancelled."""
        while True:
            await asyncio.sleep(CANCEL_POLL)
            held = [*self._running, *(job.id for job, _ in self._held)]
            if not held:
                continue
            found = functools.partial(self.app.driver.cancelled, held)
            for job_id in await self._retrying(found, stop=False):
                self._stop_cancelled(job_id)

    def _stop_cancelled(self, job_id: str) -> None:
        running = self._running.get(job_id)
        if running is not None:
            if job_id not in self._cancelling:
                log.info("job %s was cancelled: stopping it", job_id)
                self._cancelling.add(job_id)
                running[1].cancel()
            return
        kept = [(job, at) for job, at in self._held if job.id != job_id]
        if len(kept) < len(self._held):  # held, not started: the driver dropped it already
            dropped = next(job for job, _ in self._held if job.id == job_id)
            self._held = collections.deque(kept)
            self.cancelled += 1
            log.info("job %s was cancelled before it started", job_id)
            if self.app.observed:
                self.app.emit(JobEvent(kind="cancelled", job=dropped))

    async def _heartbeat_loop(self) -> None:
        """Renew the leases of running and held jobs every lease/3; publish this worker's
        heartbeat (with its counts) every :data:`INFO_EVERY` seconds or more often."""
        interval = min(self.lease / 3, INFO_EVERY)
        renewed = time.monotonic()
        while True:
            now = time.monotonic()
            if now - renewed >= self.lease / 3 - interval / 2:
                held = [*self._running, *(job.id for job, _ in self._held)]
                if held:
                    extend = functools.partial(self.app.driver.extend, held, lease=self.lease)
                    await self._retrying(extend, stop=False)
                renewed = now
            await self._give_back_stale()
            info = functools.partial(
                self.app.driver.worker_heartbeat, self.info(), ttl=max(self.lease, 10.0)
            )
            await self._retrying(info, stop=False)
            await asyncio.sleep(interval)

    def info(self) -> WorkerInfo:
        ex = self.executor
        return WorkerInfo(
            id=self.id,
            hostname=socket.gethostname(),
            pid=os.getpid(),
            queues=self.queues,
            concurrency=self.concurrency,
            started_at=self.started_at,
            processed=ex.processed if ex else 0,
            failed=ex.failed if ex else 0,
            running=len(self._running),
        )


def ids(jobs: Sequence[Envelope]) -> list[str]:
    return [job.id for job in jobs]
