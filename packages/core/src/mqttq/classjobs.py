"""Class-based jobs: subclass :class:`Job`, write ``handle()``, set data attributes, dispatch.

A class job's public instance attributes are its data. At dispatch they are checked (JSON
values only, see :func:`job_data`) and become the envelope's ``kwargs``; a value that is not
JSON data is an error there, naming the attribute, and nothing is queued. The worker looks the
class up by its registered name (never by a name from the payload), builds it with no
arguments, sets the data attributes back and calls ``handle()``.

Attributes named like the options (``max_tries``, ``timeout``, ``retry_after``, ``backoff``,
``queue``) are not data: on the class they are the job's defaults, set on an instance they
override them for that one job. ``job_id`` and ``attempts`` are read-only, set by the worker.
"""

from __future__ import annotations

import abc
import asyncio
import inspect
import math
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from mqttq.context import current_job
from mqttq.errors import ConfigError, JobFailedError, PayloadError
from mqttq.models import Backoff, Call

if TYPE_CHECKING:
    from mqttq.models import Envelope

#: attributes that set a job's options rather than carry its data
OPTIONS = frozenset({"max_tries", "timeout", "retry_after", "backoff", "queue"})
#: read-only attributes the worker sets
META = frozenset({"job_id", "attempts"})
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1  # what JSON (orjson) writes exactly
_PLAIN = frozenset({str, bool, type(None), bytes})


class Job(abc.ABC):
    """Base class of class-based jobs (see the module docstring)::

    class SendNotificationJob(mqttq.Job):
        max_tries = 3
        retry_after = 10

        def __init__(self) -> None:
            super().__init__()
            self.user_id = None

        async def handle(self) -> None: ...

        async def failed(self, exception: Exception) -> None: ...  # when it fails for good
    """

    #: tries before the job fails for good (default: ``[worker] max_tries``)
    max_tries: int | None = None
    #: seconds the job may run (default: ``[worker] timeout``)
    timeout: float | None = None
    #: a fixed delay in seconds before each retry (or give ``backoff``)
    retry_after: float | None = None
    #: exponential backoff between retries (default: mqttq's)
    backoff: Backoff | None = None
    #: queue of the job (default: ``[queue] default``)
    queue: str | None = None

    def __init__(self) -> None:
        """Subclasses set their data attributes here, calling ``super().__init__()`` first."""

    @property
    def job_id(self) -> str | None:
        """The id of the job being run (``None`` before the worker runs it)."""
        value: str | None = self.__dict__.get("_mqttq_job_id")
        return value

    @property
    def attempts(self) -> int:
        """Which try this is (1 for the first run), 0 before the worker runs it."""
        value: int = self.__dict__.get("_mqttq_attempts", 0)
        return value

    @abc.abstractmethod
    def handle(self) -> Any:
        """The job's work: ``async def handle(self)`` (or a plain ``def``, run on a thread)."""

    def failed(self, exception: Exception) -> Any:
        """Called once when the job has failed for good (its last try raised ``exception``).

        Override it as ``async def`` (or a plain ``def``, run on a thread)."""
        return None


def is_job_class(obj: object) -> bool:
    return isinstance(obj, type) and issubclass(obj, Job)


# -- data out: checked at dispatch --------------------------------------------------------------


def _not_json(where: str, value: object, why: str = "") -> PayloadError:
    detail = why or f"is a {type(value).__name__}, which is not JSON data"
    return PayloadError(
        f"cannot dispatch: {where} {detail} (job data is str, int, float, bool, None, bytes, "
        "lists and dicts with str keys); nothing was queued"
    )


def _check(value: object, where: str, path: tuple[int, ...] = ()) -> None:
    """Raise :class:`PayloadError` naming ``where`` unless ``value`` survives a JSON round trip
    (tuples come back as lists; ``bytes`` travel tagged, as everywhere in mqttq)."""
    kind = type(value)
    if kind in _PLAIN:
        return
    if kind is int:
        if not _INT_MIN <= value <= _INT_MAX:  # type: ignore[operator]
            raise _not_json(where, value, "is an integer too large for JSON")
        return
    if kind is float:
        if not math.isfinite(value):  # type: ignore[arg-type]
            raise _not_json(where, value, f"is {value}, which JSON cannot hold")
        return
    if kind is list or kind is tuple or kind is dict:
        if id(value) in path:
            raise _not_json(where, value, "contains itself")
        inner = (*path, id(value))
        if kind is dict:
            for key, item in value.items():  # type: ignore[attr-defined]
                if type(key) is not str:
                    raise _not_json(where, key, f"has a key {key!r} that is not a str")
                _check(item, f"{where}[{key!r}]", inner)
        elif not all(type(item) in _PLAIN for item in value):  # type: ignore[attr-defined]
            for i, item in enumerate(value):  # type: ignore[arg-type]
                _check(item, f"{where}[{i}]", inner)
        return
    raise _not_json(where, value)


def _simple(value: object) -> bool:
    """A fast yes for the usual data: a scalar, or a list or dict of scalars (else
    :func:`_check` looks closer, and names what is wrong)."""
    kind = type(value)
    if kind in _PLAIN:
        return True
    if kind is int:
        return _INT_MIN <= value <= _INT_MAX  # type: ignore[operator]
    if kind is list or kind is tuple:
        items: Any = value
    elif kind is dict:
        for key in value:  # type: ignore[attr-defined]
            if type(key) is not str:
                return False
        items = value.values()  # type: ignore[attr-defined]
    else:
        return False
    for item in items:
        inner = type(item)
        if inner is int:
            if not _INT_MIN <= item <= _INT_MAX:
                return False
        elif inner not in _PLAIN:
            return False
    return True


def job_data(job: Job) -> dict[str, Any]:
    """The data of ``job``: its public instance attributes, each checked to be JSON data.

    When every attribute is data (the usual case) this is the instance's own ``__dict__``, not
    a copy (one allocation less per dispatch): drivers encode it at once, and the in-process
    driver stores a copy, so nothing queued aliases the instance."""
    own = vars(job)
    data = own
    for key, value in own.items():
        if key[0] == "_" or key in OPTIONS:
            if data is own:
                data = {k: v for k, v in own.items() if k[0] != "_" and k not in OPTIONS}
            continue
        # a plain scalar is taken at a glance, a list or dict of them by _simple, and only
        # what those doubt is walked by _check (which names what is wrong)
        kind = type(value)
        if not (
            kind in _PLAIN or (kind is int and _INT_MIN <= value <= _INT_MAX) or _simple(value)
        ):
            _check(value, f"{type(job).__name__}.{key}")
    return data


def own_backoff(job: Job) -> Backoff | None:
    """The backoff that ``job`` sets on itself (``retry_after`` or ``backoff``), if any."""
    own = vars(job)
    if "retry_after" in own:
        return fixed_backoff(own["retry_after"], f"{type(job).__name__}.retry_after")
    backoff: Backoff | None = own.get("backoff")
    return backoff


def job_call(
    job: Job,
    name: str,
    *,
    queue: str | None = None,
    delay: float | None = None,
    unique_key: str | None = None,
    max_tries: int | None = None,
    timeout: float | None = None,
) -> Call:
    """The :class:`Call` pushing ``job`` under its registered ``name``. Options given here win
    over the instance's own option attributes (which win over the class's, at the worker)."""
    own = vars(job)
    return Call(
        name,
        kwargs=job_data(job),
        queue=queue or own.get("queue"),
        delay=delay,
        unique_key=unique_key,
        max_tries=max_tries or own.get("max_tries"),
        timeout=timeout or own.get("timeout"),
        backoff=own_backoff(job),
    )


def fixed_backoff(seconds: Any, where: str) -> Backoff:
    """``retry_after``: the same delay before every retry."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
        raise ConfigError(f"{where} must be a number of seconds >= 0, not {seconds!r}")
    return Backoff(base=float(seconds), factor=1.0, max=float(seconds), jitter=0.0)


# -- data in: at the worker ---------------------------------------------------------------------


#: per class, data keys already found settable (bounded: payloads choose keys)
_SETTABLE: dict[type, set[str]] = {}
_SETTABLE_MAX = 1024


def _settable(cls: type[Job], key: str) -> bool:
    """Whether a payload may set ``key`` on ``cls``: a public data attribute, never a method,
    property, option or anything private."""
    if not key.isidentifier() or key[0] == "_" or key in OPTIONS or key in META:
        return False
    return not any(key in vars(base) and _is_behaviour(vars(base)[key]) for base in cls.__mro__)


def _is_behaviour(attr: object) -> bool:
    return callable(attr) or inspect.isdatadescriptor(attr) or isinstance(attr, classmethod)


def restore(cls: type[Job], data: dict[str, Any], job: Envelope | None) -> Job:
    """A new ``cls()`` with its data attributes set from ``data`` (and ``job_id``/``attempts``
    from ``job``). A key that is not a data attribute of ``cls`` is a :class:`PayloadError`."""
    instance = cls()
    state = instance.__dict__
    known = _SETTABLE.get(cls)
    if known is None:
        known = _SETTABLE.setdefault(cls, set())
    if not known.issuperset(data):
        for key in data:
            if key in known:
                continue
            if not _settable(cls, key):
                raise PayloadError(f"{cls.__name__}: its data names {key!r}, not a data attribute")
            if len(known) < _SETTABLE_MAX:
                known.add(key)
    state.update(data)
    if job is not None:
        state["_mqttq_job_id"] = job.id
        state["_mqttq_attempts"] = job.attempts
    return instance


def runner_for(cls: type[Job]) -> Callable[..., Any]:
    """What the runners call for a class job: ``f(**data)`` builds the instance and runs
    ``handle()``; a coroutine function when ``handle`` is ``async def``, a plain one otherwise
    (so that runners put it on a thread)."""

    positional = f"{cls.__name__} takes no positional arguments (its data is kwargs)"

    if inspect.iscoroutinefunction(cls.handle):

        async def run_async(*args: Any, **data: Any) -> None:
            if args:
                raise PayloadError(positional)
            await restore(cls, data, current_job()).handle()

        return run_async

    def run_sync(*args: Any, **data: Any) -> None:
        if args:
            raise PayloadError(positional)
        result = restore(cls, data, current_job()).handle()
        if inspect.isawaitable(result):  # a plain def returning a coroutine
            asyncio.run(_await(result))

    return run_sync


async def _await(awaitable: Any) -> Any:
    return await awaitable


def has_failed(cls: type[Job]) -> bool:
    return cls.failed is not Job.failed


def failed_callback(cls: type[Job]) -> Callable[..., Coroutine[Any, Any, None]]:
    """The spec's ``on_failure`` of a class job: ``failed(exception)`` on an instance restored
    from the envelope (as Laravel does: the data as dispatched, not as ``handle()`` left it).
    ``exc`` is the exception of the last try when the caller has it; otherwise (another process
    ran the job) a :class:`JobFailedError` with its error text stands in."""

    async def on_failure(job: Envelope, error: str, exc: BaseException | None = None) -> None:
        from mqttq.routing import restore_kwargs

        instance = restore(cls, restore_kwargs(job.kwargs), job)
        exception = exc if isinstance(exc, Exception) else JobFailedError(error)
        if inspect.iscoroutinefunction(cls.failed):
            await instance.failed(exception)
        else:
            result = await asyncio.to_thread(instance.failed, exception)
            if inspect.isawaitable(result):
                await result

    return on_failure


def check_class(cls: type[Job], where: str) -> None:
    """Registration checks: a concrete subclass that the worker can build with ``cls()``."""
    if inspect.isabstract(cls):
        raise ConfigError(f"job class {where} has no handle() method")
    try:
        inspect.signature(cls).bind()
    except TypeError:
        raise ConfigError(
            f"job class {where}: __init__ must take no arguments (the worker builds it with "
            f"{cls.__name__}() and sets its data attributes)"
        ) from None
    except ValueError:  # no signature to read: let the worker find out
        pass
    if cls.retry_after is not None and cls.backoff is not None:
        raise ConfigError(f"job class {where}: set retry_after or backoff, not both")
