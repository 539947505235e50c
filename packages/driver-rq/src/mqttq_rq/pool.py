"""``RqWorkerPool``: what ``mqttq worker`` runs for an ``rq+redis://`` queue (and ``mqttq run``,
in a child process beside the listener).

It forks ``count`` RQ worker processes (:class:`mqttq_rq.worker.Worker`, or ``SimpleWorker`` with
``--simple``; forked from this process, so they start with the app and its jobs already loaded)
with RQ's scheduler on, listening to the queues in priority order, and supervises them:

* A worker that dies is replaced, after 0.5 s doubling to 30 s while it keeps dying within 10 s of
  its start (one warning line says so). Before that the pool makes RQ handle the jobs the dead
  worker was running at once (RQ's own abandoned-job handling: retried when they have tries left,
  else failed), instead of after RQ's heartbeat expiry and maintenance interval; processes the
  dead worker left behind (its work-horse, its scheduler) are stopped first.
* First SIGTERM/SIGINT: every worker finishes its current job and exits (RQ's warm shutdown).
  Second: they stop at once (cold); the jobs they were running go back to the front of their
  queue with the attempt given back. Exit code 0.
* Workers run in sessions of their own (a terminal's Ctrl-C reaches only the pool, which passes
  each signal on once) and get SIGTERM should the pool itself die.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
import time
import traceback
import uuid
from typing import Any

import attrs

from mqttq.plugin import WorkerPool

log = logging.getLogger("mqttq.rq")

#: a worker that dies within this many seconds of its start counts as dying again
QUICK = 10.0
RESTART_FIRST, RESTART_MAX = 0.5, 30.0
#: seconds between looks at the workers
TICK = 0.05
#: longest wait for what a dead worker left behind to exit before a replacement starts
ORPHAN_WAIT = 10.0
_PR_SET_CHILD_SUBREAPER, _PR_SET_PDEATHSIG = 36, 1


def describe(code: int | None) -> str:
    if code is None:
        return "running"
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


def _subreaper() -> None:
    """Become the parent of orphans of our workers (Linux), so they can be found and stopped."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def die_with(parent: int) -> None:
    """SIGTERM (a warm shutdown) when the process that started us dies (Linux)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if parent and os.getppid() != parent:  # it died before we could ask
        sys.exit(0)


class Proc:
    """A forked child: its pid and, once it ended and was reaped, its exit code."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                self.returncode = 0
            else:
                if pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)


def _children_of(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (from /proc; empty where there is none)."""
    found = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat.rpartition(b")")[2].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            found.append(int(entry))
    return found


@attrs.define
class Slot:
    """One worker position: its current process, and how often it died quickly in a row."""

    index: int
    proc: Proc | None = None
    name: str = ""
    started: float = 0.0
    quick_deaths: int = 0
    next_start: float = 0.0
    done: bool = False


class RqWorkerPool(WorkerPool):
    """Supervised RQ worker processes for the app's ``rq+redis://`` queue (see the module)."""

    def __init__(self, app: Any, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        from mqttq_rq import _url

        self.settings = _url.parse(
            app.config.queue.url, {"failed_ttl": app.config.queue.failed_ttl}
        )
        self.slots = [Slot(i) for i in range(self.count)]
        self.tag = uuid.uuid4().hex[:8]
        self._stopping = 0  # 1: warm, 2: cold
        self._orphans: set[int] = set()
        self._orphans_until = 0.0  # wait at most this long for orphans before restarting
        self._cold_names: list[str] = []

    # -- processes ----------------------------------------------------------------------------

    def start(self, slot: Slot) -> None:
        slot.name = f"mqttq-{self.tag}-{slot.index}-{uuid.uuid4().hex[:6]}"
        parent = os.getpid()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the worker: never returns into the pool's event loop
            os._exit(self._child(slot.name, parent))
        slot.proc = Proc(pid)
        slot.started = time.monotonic()
        log.info(
            "rq worker %s started (pid %d) on %s%s",
            slot.name,
            pid,
            ", ".join(self.queues),
            " (SimpleWorker)" if self.simple else "",
        )

    def _child(self, name: str, parent: int) -> int:
        """The forked worker process: a session of its own, RQ's signal handling, then RQ."""
        code = 1
        try:
            os.setsid()
            signal.set_wakeup_fd(-1)  # the pool's event loop is not ours
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, signal.SIG_DFL)
            die_with(parent)
            from mqttq_rq import _app
            from mqttq_rq.worker import run_worker

            _app.set_app(self.app)
            code = run_worker(
                self.settings,
                self.queues,
                name=name,
                simple=self.simple,
                burst=self.burst,
                supervised=True,
            )
        except SystemExit as exc:  # RQ's cold shutdown, or die_with
            code = exc.code if isinstance(exc.code, int) else 0
        except BaseException:
            traceback.print_exc()
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
        return code

    def signal_all(self, sig: int) -> None:
        for slot in self.slots:
            if slot.proc is not None and slot.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    slot.proc.send_signal(sig)

    def on_signal(self, signum: int) -> None:
        self._stopping = min(2, self._stopping + 1)
        cold = self._stopping == 2
        log.warning(
            "%s: %s",
            signal.Signals(signum).name,
            "stopping the rq workers at once" if cold else "rq workers finish their current job",
        )
        if cold:
            self._cold_names = [s.name for s in self.slots if s.proc is not None]
        self.signal_all(signal.SIGTERM)

    def _stop_orphans(self) -> None:
        """Stop what dead workers left behind (now our children): SIGTERM ends a work-horse at
        once and makes RQ's scheduler release its locks."""
        ours = {s.proc.pid for s in self.slots if s.proc is not None}
        self._orphans_until = time.monotonic() + ORPHAN_WAIT
        for pid in _children_of(os.getpid()):
            if pid not in ours and pid not in self._orphans:
                self._orphans.add(pid)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)

    def _reap_orphans(self) -> None:
        for pid in list(self._orphans):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                self._orphans.discard(pid)

    # -- the loop -------------------------------------------------------------------------------

    async def run(self) -> int:
        import mqttq_rq.entry
        import mqttq_rq.worker  # noqa: F401  (rq and redis loaded once, before the forks)

        _subreaper()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.on_signal, sig)
        try:
            await self._supervise()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            self.signal_all(signal.SIGKILL)  # only if the loop itself failed
        if self._cold_names:
            released = await asyncio.to_thread(self.recover, self._cold_names, release=True)
            if released:
                log.warning("%d running job(s) given back to their queue", released)
        return 0

    async def _supervise(self) -> None:
        while True:
            now = time.monotonic()
            for slot in self.slots:
                if slot.proc is not None and slot.proc.poll() is not None:
                    await self._exited(slot)
                if (
                    slot.proc is None
                    and not slot.done
                    and not self._stopping
                    and now >= slot.next_start
                    and (not self._orphans or now >= self._orphans_until)
                ):  # after a death, first let its scheduler release RQ's scheduler lock
                    self.start(slot)
            self._reap_orphans()
            if all(s.proc is None for s in self.slots) and (
                self._stopping or all(s.done for s in self.slots)
            ):
                return
            await asyncio.sleep(TICK)

    async def _exited(self, slot: Slot) -> None:
        assert slot.proc is not None
        code, name = slot.proc.returncode, slot.name
        slot.proc = None
        lived = time.monotonic() - slot.started
        if self._stopping:
            slot.done = True
            if code != 0 and self._stopping == 1:
                log.warning("rq worker %s stopped with %s", name, describe(code))
            return
        if self.burst and code == 0:
            slot.done = True
            return
        self._stop_orphans()
        slot.quick_deaths = slot.quick_deaths + 1 if lived < QUICK else 1
        delay = min(RESTART_MAX, RESTART_FIRST * 2 ** (slot.quick_deaths - 1))
        slot.next_start = time.monotonic() + delay
        if slot.quick_deaths >= 3:
            log.error(
                "rq worker %d keeps dying: %d times in a row within %.0f s of its start "
                "(last: %s); next start in %.1f s (see its output above)",
                slot.index,
                slot.quick_deaths,
                QUICK,
                describe(code),
                delay,
            )
        else:
            log.warning(
                "rq worker %s died (%s) after %.1f s; restarting it in %.1f s",
                name,
                describe(code),
                lived,
                delay,
            )
        try:
            recovered = await asyncio.to_thread(self.recover, [name])
        except Exception as exc:  # Redis away: RQ's own clean-up will find the jobs later
            log.warning("could not hand the jobs of %s back to RQ now: %s", name, exc)
        else:
            if recovered:
                log.warning("%d job(s) %s was running handed to RQ's retry", recovered, name)

    # -- jobs of workers that are gone --------------------------------------------------------

    def recover(self, names: list[str], *, release: bool = False) -> int:
        """Handle the jobs the workers ``names`` were running: RQ's abandoned-job handling
        (retry or fail) now, or with ``release`` back to the front of the queue, attempt given
        back. Also removes the workers from RQ's worker registry. Returns how many jobs."""
        from mqttq_rq import recovery

        return recovery.recover(self.settings, self.queues, names, release=release)
