"""Driver URL parsing: mqttq's own options are split off; the rest is redis-py's URL."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import attrs

from mqttq.plugin import ConfigError

SCHEMES = ("redis", "rediss", "unix")
DEFAULT_PREFIX = "mqttq:"


def _positive(name: str, value: object) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"redis driver option {name!r} must be a number, got {value!r}") from None
    if not math.isfinite(number) or number < 0:
        raise ConfigError(f"redis driver option {name!r} must be >= 0, got {value!r}")
    return number


@attrs.frozen(kw_only=True)
class Settings:
    """Everything the driver needs, parsed from the URL and keyword options (no I/O)."""

    redis_url: str  #: the URL without mqttq's options, as redis-py reads it
    display_url: str  #: for messages: password replaced by ``***``
    prefix: str = DEFAULT_PREFIX
    failed_ttl: float = 7 * 86400.0
    #: how long an operation keeps retrying while Redis is unreachable before raising
    retry_for: float = 30.0
    #: longest single blocking wait (BLPOP), below the socket timeout
    max_block: float = 10.0


#: option name -> converter; accepted both as ``?name=`` in the URL and as keyword options
_OPTIONS: dict[str, Callable[[Any], Any]] = {
    "prefix": str,
    "failed_ttl": lambda v: _positive("failed_ttl", v),
    "retry_for": lambda v: _positive("retry_for", v),
    "max_block": lambda v: _positive("max_block", v),
}


def redact(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def parse(url: str, options: dict[str, Any]) -> Settings:
    """Split ``url`` into redis-py's URL and mqttq's options; validate both without I/O."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise ConfigError(f"not a Redis URL (redis://, rediss://, unix://): {redact(url)!r}")
    unknown = set(options) - set(_OPTIONS)
    if unknown:
        raise ConfigError(f"unknown redis driver option(s): {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {}
    query = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in _OPTIONS:
            values[key] = value
        else:
            query.append((key, value))
    values.update(options)  # keyword options win over the URL
    settings = {k: _OPTIONS[k](v) for k, v in values.items()}
    prefix = settings.get("prefix", DEFAULT_PREFIX)
    if not isinstance(prefix, str) or not prefix:
        raise ConfigError("redis driver option 'prefix' must be a non-empty string")
    redis_url = urlunsplit(parts._replace(query=urlencode(query)))
    _check_redis_url(redis_url)
    display = urlunsplit(parts._replace(query=""))
    return Settings(redis_url=redis_url, display_url=redact(display), **settings)


def _check_redis_url(url: str) -> None:
    from redis.asyncio.connection import parse_url

    parts = urlsplit(url)
    if parts.scheme in ("redis", "rediss"):
        db = parts.path.strip("/")
        if db and not db.isdigit():
            raise ConfigError(f"Redis database must be a number: {redact(url)!r}")
        try:
            _ = parts.port
        except ValueError as exc:
            raise ConfigError(f"bad port in Redis URL {redact(url)!r}: {exc}") from None
    elif not parts.path:
        raise ConfigError(f"unix:// Redis URL needs a socket path: {redact(url)!r}")
    try:
        parse_url(url)
    except ValueError as exc:
        raise ConfigError(f"bad Redis URL {redact(url)!r}: {exc}") from None
