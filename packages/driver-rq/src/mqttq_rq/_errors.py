"""redis-py exceptions -> mqttq errors, in one line that says what to do."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from redis import exceptions as rx

from mqttq.plugin import DriverError, DriverUnavailable

T = TypeVar("T")


class RqDriverError(DriverError):
    """A Redis command failed (not a connectivity problem)."""


class RqUnavailable(RqDriverError, DriverUnavailable):
    """Redis cannot be reached right now; retrying later is safe."""


def _reason(exc: BaseException) -> str:
    text = str(exc).lower()
    if "refused" in text:
        return "connection refused"
    if "timeout" in text or "timed out" in text:
        return "timed out"
    if "no such file" in text:
        return "no such socket"
    return str(exc).strip().rstrip(".") or type(exc).__name__


def translate(exc: BaseException, url: str) -> DriverError:
    """The mqttq error for a redis-py (or socket) exception raised while talking to ``url``."""
    if isinstance(exc, rx.AuthenticationError | rx.AuthenticationWrongNumberOfArgsError):
        return RqDriverError(
            f"Redis at {url} refused the credentials ({exc}); check the user and password"
        )
    if isinstance(exc, rx.OutOfMemoryError):  # refused before anything was written
        return RqUnavailable(
            f"Redis at {url} is out of memory (maxmemory reached) — free memory (drain or purge "
            "queues) or raise maxmemory; nothing was written"
        )
    if isinstance(exc, rx.ConnectionError | rx.TimeoutError | rx.BusyLoadingError | OSError):
        return RqUnavailable(f"cannot reach Redis at {url} ({_reason(exc)}): is it running?")
    if isinstance(exc, rx.ReadOnlyError):
        return RqDriverError(f"Redis at {url} is a read-only replica; use the primary")
    if isinstance(exc, rx.NoPermissionError):
        return RqDriverError(f"the Redis user at {url} lacks a permission RQ needs ({exc})")
    return RqDriverError(f"Redis error at {url}: {exc}")


def translated(url: Callable[[Any], str]) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Decorate a method so that redis-py errors leave it as mqttq errors (``url(self)``)."""

    def wrap(fn: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(fn)
        def call(self: Any, *args: Any, **kwargs: Any) -> T:
            try:
                return fn(self, *args, **kwargs)
            except (rx.RedisError, OSError) as exc:
                raise translate(exc, url(self)) from exc

        return call

    return wrap
