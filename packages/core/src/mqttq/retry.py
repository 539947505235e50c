"""Waiting for something to come back: one backoff policy and one way to report an outage.

Every loop in mqttq that retries (the listener and worker while the queue backend is down, the
transport reconnecting to the broker, the Redis driver on a lost connection, the SQLite driver
on a locked database) uses :class:`RetryPolicy` for its delays and :class:`Outage` for its log
lines: one warning when the outage starts, one line when it ends, debug lines in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import attrs

from mqttq.errors import DriverUnavailable, MqttqError

T = TypeVar("T")

Rand = Callable[[], float]


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """Delays of ``first`` growing by ``factor`` per attempt up to ``max``; each is then cut by up
    to ``jitter`` (a fraction) at random, so many clients never retry in lockstep."""

    first: float = 0.1
    max: float = 5.0
    factor: float = 2.0
    jitter: float = 0.5

    def delay(self, attempt: int, rand: Rand = random.random) -> float:
        """Seconds to wait before retry ``attempt`` (0 for the first retry)."""
        base = min(self.max, self.first * self.factor ** min(attempt, 64))
        return base * (1.0 - self.jitter * rand())


class Stopped(MqttqError):
    """A stop was requested while waiting to retry."""


class Outage:
    """Logs an outage of ``what`` once when it starts and once when it ends. ``describe`` turns
    the error into the words of the log line (default: ``str``)."""

    def __init__(
        self,
        what: str,
        log: logging.Logger,
        describe: Callable[[BaseException], str] = str,
    ) -> None:
        self.what = what
        self.log = log
        self.describe = describe
        self.since: float | None = None
        self.failures = 0

    @property
    def ongoing(self) -> bool:
        return self.since is not None

    def failed(self, exc: BaseException, retry_in: float | None = None) -> None:
        self.failures += 1
        again = "" if retry_in is None else f" in {retry_in:.1f}s"
        reason = self.describe(exc)
        if self.since is None:
            self.since = time.monotonic()
            self.log.warning("%s: %s — retrying%s (further retries are logged at debug level)",
                             self.what, reason, again)  # fmt: skip
        else:
            self.log.debug("%s, still: %s — retrying%s", self.what, reason, again)

    def recovered(self) -> None:
        if self.since is None:
            return
        seconds = time.monotonic() - self.since
        self.log.warning(
            "%s: back after %.1fs (%d failed tries)", self.what, seconds, self.failures
        )
        self.since, self.failures = None, 0


def unavailable(exc: Exception) -> bool:
    """The default test of what to retry: the backend said "not right now"."""
    return isinstance(exc, DriverUnavailable)


async def pause(delay: float, stop: asyncio.Event | None) -> None:
    """Sleep ``delay`` seconds; :class:`Stopped` at once when ``stop`` is (or becomes) set."""
    if stop is None:
        await asyncio.sleep(delay)
        return
    if not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
    if stop.is_set():
        raise Stopped("stopped while waiting to retry")


async def retry(
    op: Callable[[], Awaitable[T]],
    *,
    outage: Outage,
    policy: RetryPolicy = RetryPolicy(),
    retry_if: Callable[[Exception], bool] = unavailable,
    stop: asyncio.Event | None = None,
    budget: float | None = None,
) -> T:
    """Run ``op`` until it succeeds, waiting per ``policy`` after each error ``retry_if`` accepts.

    Other errors propagate at once. After ``budget`` seconds the last error propagates;
    with ``stop`` set, :class:`Stopped` is raised instead of waiting.
    """
    started = time.monotonic()
    attempt = 0
    while True:
        try:
            result = await op()
        except Exception as exc:
            if not retry_if(exc):
                raise
            delay = policy.delay(attempt)
            attempt += 1
            if budget is not None and time.monotonic() - started + delay > budget:
                raise
            outage.failed(exc, delay)
            await pause(delay, stop)
            continue
        outage.recovered()
        return result


def retry_sync(
    op: Callable[[], T],
    *,
    policy: RetryPolicy,
    retry_if: Callable[[Exception], bool],
    budget: float,
) -> T:
    """Blocking :func:`retry` for code on its own thread (no outage lines: its caller decides).

    The last error propagates once ``budget`` seconds have passed since the first failure.
    """
    deadline: float | None = None
    attempt = 0
    while True:
        try:
            return op()
        except Exception as exc:
            if not retry_if(exc):
                raise
            now = time.monotonic()
            if deadline is None:
                deadline = now + budget
            elif now >= deadline:
                raise
            time.sleep(policy.delay(attempt))
            attempt += 1
