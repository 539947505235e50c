"""redis-py exceptions -> mqttq errors, with messages that say what to do."""

from __future__ import annotations

import errno
import re
import ssl

from redis import exceptions as rx

from mqttq.plugin import DriverError, DriverUnavailable

#: errors after which retrying the same operation later is safe. Redis refuses a write for
#: want of memory only before a script or command wrote anything (later writes of a script go
#: through, so a script never stops half way): an out-of-memory refusal is an outage like a
#: full disk, over once memory is freed
RETRYABLE: tuple[type[BaseException], ...] = (
    rx.OutOfMemoryError,
    rx.ConnectionError,
    rx.TimeoutError,
    rx.BusyLoadingError,
    rx.TryAgainError,
    rx.ClusterDownError,
    ConnectionError,
    TimeoutError,
    OSError,
)


class RedisDriverError(DriverError):
    """A Redis command failed (not a connectivity problem)."""


class RedisUnavailable(RedisDriverError, DriverUnavailable):
    """Redis cannot be reached right now; retrying later is safe."""


def _root(exc: BaseException) -> BaseException:
    seen = {id(exc)}
    while True:
        nxt = exc.__cause__ or exc.__context__
        if nxt is None or id(nxt) in seen:
            return exc
        seen.add(id(nxt))
        exc = nxt


def _busy(exc: BaseException) -> bool:
    """Redis refused the command while a long script runs (a queue moved from the list layout
    of earlier versions, or another client's script): nothing ran, so it can be retried."""
    return isinstance(exc, rx.ResponseError) and str(exc).startswith("BUSY ")


def reason(exc: BaseException) -> str:
    """A few words on why a connection failed."""
    if isinstance(exc, rx.BusyLoadingError):
        return "still loading its data"
    if _busy(exc):
        return "busy running a script"
    root = _root(exc)
    text = str(exc).lower() + " " + str(root).lower()
    code = getattr(root, "errno", None)
    if isinstance(root, ConnectionRefusedError) or code == errno.ECONNREFUSED or "refused" in text:
        return "connection refused"
    if isinstance(root, TimeoutError | rx.TimeoutError) or "timed out" in text or "timeout" in text:
        return "timed out"
    if (
        "name or service not known" in text
        or "nodename nor servname" in text
        or ("temporary failure in name resolution" in text)
    ):
        return "unknown host"
    if isinstance(root, FileNotFoundError) or "no such file" in text:
        return "no such socket"
    if "reset by peer" in text or "closed" in text or "broken pipe" in text:
        return "connection lost"
    if isinstance(root, PermissionError) or "permission denied" in text:
        return "permission denied"
    detail = str(root) or type(root).__name__
    return detail.strip().rstrip(".")


def _untrusted(exc: BaseException) -> str | None:
    """The certificate problem, when ``exc`` is a failed TLS certificate check."""
    root = _root(exc)
    if isinstance(root, ssl.SSLCertVerificationError):
        return root.verify_message or "certificate verify failed"
    if "CERTIFICATE_VERIFY_FAILED" in str(exc):
        return "certificate verify failed"
    return None


def _tls_setup(exc: BaseException, url: str) -> str | None:
    """What is wrong with the TLS options, when ``exc`` comes from setting up TLS."""
    if not url.startswith("rediss:"):
        return None
    root = _root(exc)
    if isinstance(root, FileNotFoundError | PermissionError | IsADirectoryError):
        what = reason(root) if isinstance(root, PermissionError) else "no such file"
        return f"cannot read a TLS file given in the URL ({what}); check ssl_ca_certs, " + (
            "ssl_ca_path, ssl_certfile and ssl_keyfile"
        )
    if isinstance(root, ssl.SSLError) and not isinstance(root, ssl.SSLCertVerificationError):
        detail = getattr(root, "reason", None) or (root.args[-1] if root.args else "")
        detail = str(detail).strip().rstrip(".") or type(root).__name__
        return f"TLS set-up failed ({detail}); check the ssl_* options in the URL"
    return None


def _denied(exc: BaseException) -> bool:
    if isinstance(exc, rx.NoPermissionError):
        return True
    text = str(exc)
    return isinstance(exc, rx.ResponseError) and (
        text.startswith("NOPERM") or "can't access" in text or "no permissions" in text
    )


def unavailable(exc: BaseException, url: str) -> RedisUnavailable:
    if isinstance(exc, rx.OutOfMemoryError):
        return RedisUnavailable(
            f"Redis at {url} is out of memory (maxmemory reached) — free memory (drain or "
            "purge queues) or raise maxmemory; nothing was written"
        )
    return RedisUnavailable(
        f"cannot reach Redis at {url} ({reason(exc)}) — is redis-server running?"
    )


def translate(exc: BaseException, url: str) -> DriverError:
    """The mqttq error for a redis-py (or socket) exception raised while talking to ``url``."""
    if isinstance(exc, rx.AuthenticationError | rx.AuthenticationWrongNumberOfArgsError):
        return RedisDriverError(
            f"Redis at {url} refused the credentials ({exc}); "
            "check the user and password in the URL"
        )
    if (problem := _untrusted(exc)) is not None:
        return RedisDriverError(
            f"Redis at {url} has a TLS certificate this client does not trust ({problem}); "
            "give its CA with ?ssl_ca_certs=/path/to/ca.pem"
        )
    if (setup := _tls_setup(exc, url)) is not None:
        return RedisDriverError(f"Redis at {url}: {setup}")
    if _denied(exc):
        detail = str(exc).split(" script: ")[0]
        return RedisDriverError(
            f"the Redis user at {url} has no permission for a command or key ({detail}); "
            "its ACL must allow scripting (EVALSHA) on the keys under the driver's prefix"
        )
    if isinstance(exc, RETRYABLE) or _busy(exc):
        return unavailable(exc, url)
    if isinstance(exc, rx.ReadOnlyError):
        return RedisDriverError(
            f"Redis at {url} is a read-only replica; point the URL at the primary"
        )
    return RedisDriverError(f"Redis error at {url}: {exc}")


def bad_option(exc: BaseException, url: str) -> DriverError:
    """The mqttq error for a URL option redis-py refused while building a connection."""
    unknown = re.search(r"unexpected keyword argument '(\w+)'", str(exc))
    if unknown:
        return RedisDriverError(f"the Redis URL for {url} has an unknown option {unknown[1]!r}")
    detail = (str(exc).splitlines() or [type(exc).__name__])[0].strip().rstrip(".")
    return RedisDriverError(f"the Redis URL for {url} has an option redis-py refuses ({detail})")


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, rx.AuthenticationError | rx.AuthenticationWrongNumberOfArgsError):
        return False
    if _untrusted(exc) is not None:
        return False
    return isinstance(exc, RETRYABLE) or _busy(exc)
