"""``sqlite:///path.db?option=value``: URL parsing and driver options (no I/O)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import attrs

from mqttq.plugin import ConfigError

SYNCHRONOUS = ("normal", "full", "extra")


#: the default of ``poll_idle``
POLL_IDLE = 0.05


@attrs.frozen(kw_only=True)
class SqliteOptions:
    """Everything the driver can be told. Times are seconds."""

    path: str
    #: failed-registry entries older than this disappear (the App passes ``queue.failed_ttl``)
    failed_ttl: float = 7 * 86400
    #: ``normal`` survives a process crash under WAL; ``full`` also survives a power loss
    synchronous: str = "normal"
    #: how long one operation keeps retrying a locked database before ``DriverUnavailable``
    busy_timeout: float = 10.0
    #: adaptive polling for jobs pushed by other processes: first and longest interval, and the
    #: longest once no claim got jobs for a second (an idle worker looks 20 times a second,
    #: not 100)
    poll_min: float = 0.001
    poll_max: float = 0.01
    poll_idle: float = POLL_IDLE
    #: page cache per connection, in MiB
    cache_mb: int = 16
    #: WAL pages before an automatic checkpoint (SQLite's default): the WAL stays near 4 MiB
    wal_autocheckpoint: int = 1000
    #: bytes the WAL file is cut back to after a checkpoint; ``None``: ``wal_autocheckpoint`` pages
    journal_size_limit: int | None = None
    #: ``False`` (commands that only look): never create the database, ``QueueNotFoundError``
    create: bool = True


def _positive(kind: Callable[[Any], Any]) -> Callable[[str, Any], Any]:
    def convert(name: str, value: Any) -> Any:
        try:
            out = kind(value)
        except (TypeError, ValueError):
            raise ConfigError(f"sqlite option {name}={value!r} is not a number") from None
        if out <= 0:
            raise ConfigError(f"sqlite option {name}={value!r} must be positive")
        return out

    return convert


def _size(name: str, value: Any) -> int | None:
    if value is None:
        return None
    try:
        out = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"sqlite option {name}={value!r} is not a whole number") from None
    if out < 0:
        raise ConfigError(f"sqlite option {name}={value!r} must not be negative")
    return out


_FLAGS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _flag(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    out = _FLAGS.get(str(value).lower())
    if out is None:
        raise ConfigError(f"sqlite option {name}={value!r}: use true or false")
    return out


def _synchronous(name: str, value: Any) -> str:
    out = str(value).lower()
    if out not in SYNCHRONOUS:
        raise ConfigError(f"sqlite option {name}={value!r}: choose one of {', '.join(SYNCHRONOUS)}")
    return out


_CONVERTERS: dict[str, Callable[[str, Any], Any]] = {
    "failed_ttl": _positive(float),
    "synchronous": _synchronous,
    "busy_timeout": _positive(float),
    "poll_min": _positive(float),
    "poll_max": _positive(float),
    "poll_idle": _positive(float),
    "cache_mb": _positive(int),
    "wal_autocheckpoint": _positive(int),
    "journal_size_limit": _size,
    "create": _flag,
}


def parse_url(url: str, options: Mapping[str, Any]) -> SqliteOptions:
    """``sqlite:///relative.db`` or ``sqlite:////abs/path.db``; query and keyword options merge
    (keywords win). Raises ``ConfigError``."""
    parts = urlsplit(url)
    if parts.scheme != "sqlite":
        raise ConfigError(f"not a sqlite:// URL: {url!r}")
    if parts.netloc:
        raise ConfigError(
            f"sqlite URL {url!r} has a host; use sqlite:///relative.db or sqlite:////abs/path.db"
        )
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    if not path or path.endswith("/"):
        raise ConfigError(f"sqlite URL {url!r} names no database file (sqlite:///mqttq.db)")
    if path == ":memory:":
        raise ConfigError("sqlite:///:memory: is not shared between connections; use memory://")
    merged: dict[str, Any] = dict(parse_qsl(parts.query, keep_blank_values=True))
    merged.update(options)
    return build_options(path, merged)


def build_options(path: str, options: Mapping[str, Any]) -> SqliteOptions:
    """Validate and convert options (strings from a URL query are accepted)."""
    merged = dict(options)
    unknown = sorted(set(merged) - set(_CONVERTERS))
    if unknown:
        known = ", ".join(sorted(_CONVERTERS))
        raise ConfigError(f"unknown sqlite driver option(s): {', '.join(unknown)} (known: {known})")
    values = {name: _CONVERTERS[name](name, value) for name, value in merged.items()}
    if "poll_idle" not in values and "poll_max" in values:  # never below a poll_max given
        values["poll_idle"] = max(values["poll_max"], POLL_IDLE)
    opts = SqliteOptions(path=path, **values)
    if not opts.poll_min <= opts.poll_max <= opts.poll_idle:
        raise ConfigError("sqlite options: poll_min <= poll_max <= poll_idle is required")
    return opts
