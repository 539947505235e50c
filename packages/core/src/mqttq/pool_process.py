"""A :class:`~mqttq.interfaces.WorkerPool` run in a child process of its own: what ``mqttq run``
does beside the listener for a push-only driver (``rq+redis://``).

The child is forked before the app opens (it inherits no connection and no thread), runs
``pool.run()`` on an event loop of its own and handles SIGTERM/SIGINT as the pool does under
``mqttq worker``: one signal a warm stop, two a cold one. It runs in a session of its own, so a
terminal's Ctrl-C reaches only the parent, which passes the stop on once the listener has queued
what it received; it gets SIGTERM (a warm stop) should the parent die.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
import traceback
from typing import Self

from mqttq.interfaces import WorkerPool

log = logging.getLogger("mqttq.run")

#: seconds between looks at the child
POLL = 0.05
#: longest wait for the child after a cold stop before it is killed (only when serve fails)
COLD_WAIT = 30.0
_PR_SET_PDEATHSIG = 1


def describe(code: int | None) -> str:
    """An exit status as words: ``exit code 3``, ``signal SIGKILL``."""
    if code is None:
        return "running"
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


class PoolProcess:
    """The child process running a worker pool: :meth:`start`, then :meth:`stop` and
    :meth:`wait`."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        #: stop signals sent: 1 asked for a warm stop, 2 for a cold one
        self.sent = 0

    @classmethod
    def start(cls, pool: WorkerPool) -> Self:
        parent = os.getpid()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # never returns into the parent's event loop
            os._exit(_child(pool, parent))
        return cls(pid)

    @property
    def asked(self) -> bool:
        """Whether the pool was asked to stop."""
        return self.sent > 0

    @property
    def stopped_cleanly(self) -> bool:
        """Exit code 0, or ended by a stop signal it got before it could handle signals."""
        stop_signals = (-signal.SIGTERM, -signal.SIGINT)
        return self.returncode == 0 or (self.asked and self.returncode in stop_signals)

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

    def stop(self, *, cold: bool = False) -> None:
        """Ask for the pool's warm stop (its first signal) or its cold stop (the second). The
        first is SIGTERM and the second SIGINT, which the pool treats alike: two different
        signals are never merged into one, however close together they are sent."""
        for sig in (signal.SIGTERM, signal.SIGINT)[self.sent : 2 if cold else 1]:
            if self.poll() is not None:
                return
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)
            self.sent += 1

    async def wait(self) -> int:
        """The exit code, once the child has ended (woken by a pidfd where there is one)."""
        loop = asyncio.get_running_loop()
        while (code := self.poll()) is None:
            try:
                fd = os.pidfd_open(self.pid)
            except (AttributeError, OSError):  # not Linux 5.3+: look again shortly
                await asyncio.sleep(POLL)
                continue
            ended = asyncio.Event()
            loop.add_reader(fd, ended.set)
            try:
                if self.poll() is None:
                    await ended.wait()
            finally:
                loop.remove_reader(fd)
                os.close(fd)
        return code

    async def ensure_stopped(self) -> None:
        """A cold stop of a child still running (when serving failed), killed if it lingers."""
        if self.poll() is not None:
            return
        self.stop(cold=True)
        try:
            await asyncio.wait_for(self.wait(), COLD_WAIT)
        except TimeoutError:
            log.error("the worker pool (pid %d) did not stop: killing it", self.pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            await self.wait()


def _child(pool: WorkerPool, parent: int) -> int:
    """The forked child: a session of its own, default signal handling until the pool installs
    its own, then the pool."""
    code = 1
    try:
        os.setsid()
        signal.set_wakeup_fd(-1)  # the parent's event loop is not ours
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)
        _die_with(parent)
        code = asyncio.run(pool.run())
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
    return code


def _die_with(parent: int) -> None:
    """SIGTERM (the pool's warm stop) when ``parent`` dies (Linux)."""
    if sys.platform == "linux":
        with contextlib.suppress(Exception):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # it died before we could ask
        raise SystemExit(0)
