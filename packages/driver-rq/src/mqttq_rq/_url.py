"""``rq+redis://`` URLs: mqttq-rq's own options split off, the rest checked as redis-py reads it,
all without I/O, so that a mistake is one clear line from ``mqttq config check``."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import attrs

from mqttq.plugin import ConfigError

#: scheme -> the redis-py scheme it wraps
SCHEMES = {"rq+redis": "redis", "rq+rediss": "rediss", "rq+unix": "unix"}
#: RQ's own default for keeping finished jobs (seconds)
RESULT_TTL = 500


def _seconds(name: str, *, minimum: float = 0.0, whole: bool = False) -> Callable[[Any], Any]:
    def convert(value: Any) -> float | int:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"rq option {name!r} must be a number, got {value!r}") from None
        if not math.isfinite(number) or number < minimum:
            raise ConfigError(f"rq option {name!r} must be >= {minimum:g}, got {value!r}")
        if whole:
            if number != int(number):
                raise ConfigError(f"rq option {name!r} must be a whole number, got {value!r}")
            return int(number)
        return number

    return convert


@attrs.frozen(kw_only=True)
class Settings:
    """Everything the driver and the worker pool need from the URL (no I/O)."""

    redis_url: str  #: the URL redis-py reads (``redis://...``)
    display_url: str  #: for messages: the ``rq+`` URL without options, password as ``***``
    failed_ttl: float = 7 * 86400.0
    #: seconds RQ keeps a finished job (its result); 0 deletes it at once
    result_ttl: int = RESULT_TTL
    #: seconds between the maintenance runs of mqttq-rq's RQ workers (registry clean-up, taking
    #: over the scheduler of a worker that died)
    maintenance_interval: int = 60


_OPTIONS: dict[str, Callable[[Any], Any]] = {
    "failed_ttl": _seconds("failed_ttl", minimum=1.0),
    "result_ttl": _seconds("result_ttl", whole=True),
    "maintenance_interval": _seconds("maintenance_interval", minimum=1.0, whole=True),
    # mqttq passes create=False for commands that only look; Redis has no storage to create
    "create": lambda v: v,
}
_IGNORED = frozenset({"create"})
#: redis-py options the driver cannot work with
_REFUSED = {
    "decode_responses": "RQ reads replies as bytes",
    "encoding": "RQ encodes its own data",
    "encoding_errors": "RQ encodes its own data",
}


def redact(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def parse(url: str, options: dict[str, Any]) -> Settings:
    """Split ``url`` into redis-py's URL and mqttq-rq's options; validate both without I/O."""
    parts = urlsplit(url)
    scheme = SCHEMES.get(parts.scheme)
    if scheme is None:
        raise ConfigError(
            f"not an RQ queue URL (rq+redis://, rq+rediss://, rq+unix://): {redact(url)!r}"
        )
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        known = ", ".join(sorted(_OPTIONS))
        raise ConfigError(f"unknown rq option(s) {', '.join(unknown)} (known: {known})")
    values: dict[str, Any] = {}
    query = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in _OPTIONS:
            values[key] = value
        elif key in _REFUSED:
            raise ConfigError(f"Redis URL option {key!r} is not supported: {_REFUSED[key]}")
        else:
            query.append((key, value))
    values.update(options)  # keyword options win over the URL
    settings = {k: _OPTIONS[k](v) for k, v in values.items() if k not in _IGNORED}
    where = f"{parts.netloc}{parts.path}"
    redis_url = f"{scheme}://{where}" + (f"?{urlencode(query)}" if query else "")
    display = redact(f"{parts.scheme}://{where}")
    _check_redis_url(redis_url, display)
    return Settings(redis_url=redis_url, display_url=display, **settings)


def _check_redis_url(url: str, shown: str) -> None:
    """Build (never connect) a redis-py connection from ``url``: a malformed URL, a bad value
    or an option redis-py does not know fails here, in one line."""
    import redis

    parts = urlsplit(url)
    if parts.scheme == "unix" and not parts.path:
        raise ConfigError(f"rq+unix:// URL needs a socket path: {shown!r}")
    if parts.scheme != "unix":
        db = parts.path.strip("/")
        if db and not db.isdigit():
            raise ConfigError(f"Redis database must be a number: {shown!r}")
        try:
            _ = parts.port
        except ValueError as exc:
            raise ConfigError(f"bad port in {shown!r}: {exc}") from None
    try:
        pool = redis.ConnectionPool.from_url(url)
        pool.make_connection()  # builds the connection object; connects only on first use
    except TypeError as exc:
        detail = str(exc).rpartition("argument ")[2].strip() or str(exc)
        ours = ", ".join(sorted(set(_OPTIONS) - _IGNORED))
        raise ConfigError(
            f"unknown Redis URL option {detail} in {shown!r} (mqttq-rq's own: {ours})"
        ) from None
    except (ValueError, redis.RedisError) as exc:
        raise ConfigError(f"bad Redis URL {shown!r}: {exc}") from None
