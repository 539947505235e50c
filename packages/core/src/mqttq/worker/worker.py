"""The worker: claims jobs in batches, runs up to N at once, renews leases, stops gracefully."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import socket
import time
import uuid
from collections.abc import Sequence

from mqttq.app import App
from mqttq.errors import ConfigError, DriverUnavailable
from mqttq.models import Envelope, JobEvent, WorkerInfo
from mqttq.retry import Outage, RetryPolicy, Stopped, retry
from mqttq.worker.executor import Executor

log = logging.getLogger("mqttq.worker")

#: how long one claim call may block waiting for work before the loop looks around again
CLAIM_WAIT = 1.0
#: retries while the queue backend is unreachable
UNAVAILABLE = RetryPolicy(first=0.1, max=5.0)


class Worker:
    """Runs jobs from ``queues`` (claimed in that priority order) until stopped.

    ``run()`` returns the process exit code (0 after a graceful stop). The first SIGTERM/SIGINT
    stops claiming, lets running jobs finish within ``shutdown_grace`` and releases the rest; a
    second one stops at once (running jobs are released, not lost).
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
    ) -> None:
        cfg = app.config.worker
        self.app = app
        self.queues = list(queues or cfg.queues)
        self.concurrency = concurrency or cfg.concurrency
        self.batch = min(cfg.batch or self.concurrency, self.concurrency)
        self.lease = cfg.lease
        self.shutdown_grace = cfg.shutdown_grace
        self.burst = burst
        self.max_jobs = max_jobs
        self.max_time = max_time
        self.runner_name = runner or cfg.runner
        self.install_signals = install_signals
        self.id = f"{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:6]}"
        self.started_at = time.time()
        self._running: dict[str, tuple[Envelope, asyncio.Task[bool]]] = {}
        self._slot_free = asyncio.Event()
        self._stopping = asyncio.Event()
        self._stop_now = False
        self._claimed = 0
        self._pending_acks: list[str] = []
        self._acks_waiting = asyncio.Event()
        self._closing = False
        self._cancelled: list[Envelope] = []
        self.executor: Executor | None = None
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

    def check(self) -> None:
        """Start-up checks: every job timeout must be below the lease the heartbeat renews."""
        for spec in self.app.jobs.specs():
            if spec.timeout is not None and spec.timeout >= self.lease:
                raise ConfigError(
                    f"job {spec.name}: timeout {spec.timeout:g}s must be below worker.lease "
                    f"({self.lease:g}s)"
                )

    # -- main loop --------------------------------------------------------------------------------

    async def run(self) -> int:
        self.check()
        runner = self.app.make_runner(self.runner_name, concurrency=self.concurrency)
        opened_app = False
        if not self.app.is_open:
            await self.app.open()
            opened_app = True
        loop = asyncio.get_running_loop()
        signals = (signal.SIGTERM, signal.SIGINT) if self.install_signals else ()
        for sig in signals:
            loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            async with runner:
                self.executor = Executor(self.app, runner, ack=self._queue_ack)
                heartbeat = asyncio.create_task(self._heartbeat_loop(), name="mqttq-heartbeat")
                acker = asyncio.create_task(self._ack_loop(), name="mqttq-acker")
                try:
                    await self._claim_loop()
                    await self._drain()
                finally:
                    heartbeat.cancel()
                    self._closing = True
                    self._acks_waiting.set()
                    await asyncio.gather(heartbeat, acker, return_exceptions=True)
                    with contextlib.suppress(Exception):
                        await self.app.driver.worker_gone(self.id)
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)
            if opened_app:
                await self.app.aclose()
        return 0

    def _want(self) -> int:
        want = min(self.batch, self.concurrency - len(self._running))
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
            try:
                jobs = await retry(
                    functools.partial(
                        self.app.driver.claim, self.queues, want, lease=self.lease, wait=wait
                    ),
                    outage=self._outage,
                    policy=UNAVAILABLE,
                    stop=self._stopping,
                )
            except Stopped:
                break
            if self._stopping.is_set() and jobs:
                await self.app.driver.release([j.id for j in jobs])
                break
            for job in jobs:
                self._start(job)
            if not jobs and self.burst:
                if not self._running:
                    break
                self._slot_free.clear()
                await self._slot_free.wait()

    def _start(self, job: Envelope) -> None:
        assert self.executor is not None
        self._claimed += 1
        task = asyncio.create_task(self.executor.execute(job), name=f"mqttq-job-{job.id}")
        self._running[job.id] = (job, task)
        task.add_done_callback(functools.partial(self._finished, job.id))

    def _finished(self, job_id: str, task: asyncio.Task[bool]) -> None:
        job, _ = self._running.pop(job_id)
        self._slot_free.set()
        if task.cancelled():  # stopped at once: handed back in _drain
            self._cancelled.append(job)
            return
        exc = task.exception()
        if exc is not None:  # the driver failed while settling: the lease will bring it back
            log.error(
                "job %s could not be settled (%s); it will be retried after its lease", job_id, exc
            )

    async def _drain(self) -> None:
        """Graceful stop: wait up to ``shutdown_grace`` for running jobs, release the rest."""
        if self._running and not self._stop_now:
            log.info(
                "waiting up to %gs for %d running job(s)", self.shutdown_grace, len(self._running)
            )
            tasks = [task for _, task in self._running.values()]
            done_or_now = asyncio.ensure_future(asyncio.wait(tasks))
            grace = asyncio.ensure_future(self._wait_stop_now())
            await asyncio.wait(
                {done_or_now, grace},
                timeout=self.shutdown_grace,
                return_when=asyncio.FIRST_COMPLETED,
            )
            grace.cancel()
            done_or_now.cancel()
        tasks = [task for _, task in self._running.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        released, self._cancelled = self._cancelled, []
        if released:
            log.warning("releasing %d unfinished job(s)", len(released))
            await self.app.driver.release([job.id for job in released])
            if self.app.observed:
                for job in released:
                    self.app.emit(JobEvent(kind="released", job=job))

    async def _wait_stop_now(self) -> None:
        while not self._stop_now:
            self._slot_free.clear()
            await self._slot_free.wait()

    # -- acks and heartbeats ----------------------------------------------------------------------

    def _queue_ack(self, job_id: str) -> None:
        self._pending_acks.append(job_id)
        self._acks_waiting.set()

    async def _flush_acks(self) -> None:
        ids, self._pending_acks = self._pending_acks, []
        if ids:
            await self.app.driver.ack(ids)

    async def _ack_loop(self) -> None:
        """Acks everything that finished since the last call in one driver call; stops once
        ``_closing`` is set and nothing is pending (never cancelled mid-ack)."""
        while not (self._closing and not self._pending_acks):
            await self._acks_waiting.wait()
            self._acks_waiting.clear()
            try:
                await self._flush_acks()
            except DriverUnavailable as exc:  # the jobs come back after their lease: at-least-once
                log.warning("ack failed: %s", exc)
                if self._closing:
                    return

    async def _heartbeat_loop(self) -> None:
        """Renew leases of running jobs every lease/3 and publish this worker's heartbeat."""
        interval = self.lease / 3
        while True:
            try:
                if self._running:
                    await self.app.driver.extend(list(self._running), lease=self.lease)
                await self.app.driver.worker_heartbeat(self.info(), ttl=max(self.lease, 10.0))
            except DriverUnavailable as exc:
                log.warning("heartbeat failed: %s", exc)
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
