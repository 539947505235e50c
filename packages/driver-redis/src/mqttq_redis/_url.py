"""Driver URL parsing: mqttq's own options are split off; the rest is redis-py's URL, whose
options are checked here too, so that a mistake is one clear line before any connection."""

from __future__ import annotations

import inspect
import math
import ssl
from collections.abc import Callable, Iterable
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
    # mqttq passes create=False for commands that only look; Redis has no storage to create
    "create": lambda v: v,
}
#: options that are accepted but change nothing
_IGNORED = frozenset({"create"})


# -- redis-py's URL options ---------------------------------------------------------------------


def _int(value: str) -> int | None:
    try:
        return int(value)
    except ValueError:
        return None


def _whole(low: int) -> Callable[[str], bool]:
    return lambda v: (n := _int(v)) is not None and n >= low


def _seconds(value: str) -> bool:
    try:
        number = float(value)
    except ValueError:
        return False
    return math.isfinite(number) and number > 0


def _flag(value: str) -> bool:  # what redis-py reads unambiguously (it takes "off" as true)
    return value.strip().lower() in {"1", "0", "true", "false", "t", "f", "yes", "no", "y", "n"}


def _tls_version(value: str) -> bool:
    return _int(value) in {v.value for v in ssl.TLSVersion}


def _verify_flags(value: str) -> bool:
    names = [f.strip() for f in value.replace("[", "").replace("]", "").split(",")]
    return all(name in ssl.VerifyFlags.__members__ for name in names)


def _text(value: str) -> bool:
    return True


def _name(value: str) -> bool:  # as Redis takes client names: printable ASCII, no spaces
    return all("!" <= c <= "~" for c in value)


_SECONDS = (_seconds, "a number of seconds > 0")
_NAME = (_name, "printable ASCII without spaces")
_CERT_REQS = ({"none", "optional", "required"}.__contains__, "none, optional or required")
_FLAG = (_flag, "true or false")
#: redis-py URL options the driver passes on: name -> (check of the value, what it must be)
_REDIS_OPTIONS: dict[str, tuple[Callable[[str], bool], str]] = {
    "db": (_whole(0), "a whole number >= 0"),
    "username": (_text, ""),
    "password": (_text, ""),
    "socket_timeout": _SECONDS,
    "socket_connect_timeout": _SECONDS,
    "retry_on_timeout": _FLAG,
    "health_check_interval": (_whole(0), "a whole number of seconds >= 0"),
    "socket_read_size": (_whole(1), "a whole number >= 1"),
    "max_connections": (_whole(1), "a whole number >= 1"),
    "protocol": (lambda v: v.strip() in {"2", "3"}, "2 or 3"),
    "client_name": _NAME,
    "lib_name": _NAME,
    "lib_version": _NAME,
}
_TCP_OPTIONS: dict[str, tuple[Callable[[str], bool], str]] = {"socket_keepalive": _FLAG}
_TLS_OPTIONS: dict[str, tuple[Callable[[str], bool], str]] = {
    "ssl_cert_reqs": _CERT_REQS,
    "ssl_check_hostname": _FLAG,
    "ssl_ca_certs": (_text, ""),
    "ssl_ca_path": (_text, ""),
    "ssl_ca_data": (_text, ""),
    "ssl_certfile": (_text, ""),
    "ssl_keyfile": (_text, ""),
    "ssl_password": (_text, ""),
    "ssl_ciphers": (_text, ""),
    "ssl_min_version": (_tls_version, "a TLS version number (771 = TLS 1.2, 772 = TLS 1.3)"),
    "ssl_include_verify_flags": (_verify_flags, "ssl.VerifyFlags names, comma-separated"),
    "ssl_exclude_verify_flags": (_verify_flags, "ssl.VerifyFlags names, comma-separated"),
}
#: redis-py options the driver cannot work with
_REFUSED = {
    "decode_responses": "the driver reads replies as bytes",
    "encoding": "the driver encodes its own data",
    "encoding_errors": "the driver encodes its own data",
}


def _redis_py_accepts(scheme: str) -> set[str]:
    """The keyword options the installed redis-py takes for ``scheme`` (no I/O)."""
    from redis.asyncio import connection as rc

    classes = {"rediss": rc.SSLConnection, "unix": rc.UnixDomainSocketConnection}
    names = {"max_connections"}
    for klass in classes.get(scheme, rc.Connection).__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            names.update(inspect.signature(init).parameters)
        except (TypeError, ValueError):  # a C-level __init__: nothing to learn
            continue
    return names


def _check_redis_options(scheme: str, query: Iterable[tuple[str, str]]) -> None:
    allowed = dict(_REDIS_OPTIONS)
    if scheme != "unix":
        allowed.update(_TCP_OPTIONS)
    if scheme == "rediss":
        allowed.update(_TLS_OPTIONS)
    accepted: set[str] | None = None
    for name, value in query:
        if name in _REFUSED:
            raise ConfigError(f"Redis URL option {name!r} is not supported: {_REFUSED[name]}")
        if name not in allowed:
            if name in _TLS_OPTIONS:
                raise ConfigError(f"Redis URL option {name!r} is for rediss:// URLs only")
            if name in _TCP_OPTIONS:
                raise ConfigError(f"Redis URL option {name!r} is not for unix:// URLs")
            known = ", ".join(sorted({*allowed, *_OPTIONS}))
            raise ConfigError(f"unknown Redis URL option {name!r} (known: {known})")
        if accepted is None:
            accepted = _redis_py_accepts(scheme)
        if name not in accepted:
            import redis

            raise ConfigError(
                f"Redis URL option {name!r} needs a newer redis-py than {redis.__version__}"
            )
        check, what = allowed[name]
        if value != "" and not check(value):
            shown = "***" if name in {"password", "ssl_password"} else repr(value)
            raise ConfigError(f"Redis URL option {name!r} must be {what}, got {shown}")


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
    settings = {k: _OPTIONS[k](v) for k, v in values.items() if k not in _IGNORED}
    prefix = settings.get("prefix", DEFAULT_PREFIX)
    if not isinstance(prefix, str) or not prefix:
        raise ConfigError("redis driver option 'prefix' must be a non-empty string")
    _check_redis_options(parts.scheme, query)
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
