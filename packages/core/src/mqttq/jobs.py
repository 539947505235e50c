"""The job registry: the only way a name in a queue becomes code that runs.

Functions get in by ``@mqttq.job`` (found through ``[jobs] modules``), ``@app.job``,
``[jobs] register = ["pkg.mod:func"]`` or a route's ``job``; class jobs (:class:`mqttq.Job`
subclasses) the same ways, and every concrete ``Job`` subclass a ``[jobs] modules`` module defines.
Those come from the application's own code and configuration; a name read from a queued payload
is only ever *looked up*, never imported.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import random
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, overload

import attrs

from mqttq import classjobs
from mqttq.catalog import import_target
from mqttq.errors import ConfigError, UnknownJobError
from mqttq.models import Backoff, Envelope

if TYPE_CHECKING:
    from mqttq.config import Config

P = ParamSpec("P")
R = TypeVar("R")

#: attribute ``@mqttq.job`` leaves on a function
MARKER = "__mqttq_job__"

OnFailure = Callable[[Envelope, str], Any]


def target_of(func: Callable[..., Any]) -> str:
    """``module:qualname`` of a function: its canonical job name."""
    return f"{func.__module__}:{func.__qualname__}"


@attrs.frozen(kw_only=True)
class JobSpec:
    """A registered job function and its defaults (a pushed job or a route may override them).

    For a class job, ``job_class`` is the class and ``func`` the function that builds it from the
    job's data and runs its ``handle()``; ``on_failure`` then calls its ``failed()`` (and also
    takes the exception of the last try as a third argument)."""

    name: str
    func: Callable[..., Any]
    max_tries: int | None = None
    timeout: float | None = None
    backoff: Backoff = attrs.field(factory=Backoff)
    queue: str | None = None
    on_failure: OnFailure | None = None
    job_class: type[classjobs.Job] | None = None

    @property
    def target(self) -> str:
        return target_of(self.job_class or self.func)

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.func)


def _describe(exc: Exception) -> str:
    text = str(exc)
    return (
        text if isinstance(exc, ImportError | AttributeError) else f"{type(exc).__name__}: {text}"
    )


def _attempt(key: str, step: Callable[[], object], problems: list[tuple[str, str]] | None) -> None:
    """Run one loading step; record its failure in ``problems``, or raise it without a list."""
    try:
        step()
    except ConfigError as exc:
        if problems is None:
            raise
        problems.append((key, str(exc).removeprefix(f"{key}: ")))


def retry_delay(backoff: Backoff, attempt: int, rand: Callable[[], float] = random.random) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based): exponential, capped, jittered."""
    base = min(backoff.max, backoff.base * backoff.factor ** max(0, attempt - 1))
    return base * (1 + backoff.jitter * rand())


@overload
def job(func: Callable[P, R], /) -> Callable[P, R]: ...
@overload
def job(
    *,
    name: str | None = None,
    max_tries: int | None = None,
    timeout: float | None = None,
    backoff: Backoff | None = None,
    queue: str | None = None,
    on_failure: OnFailure | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]: ...
def job(func: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """Mark a function as a job, with its defaults. Registered when its module is listed in
    ``[jobs] modules`` (or passed to :meth:`JobRegistry.add_module`). The function is unchanged."""

    def mark(f: Callable[..., Any]) -> Callable[..., Any]:
        setattr(f, MARKER, options)
        return f

    return mark(func) if func is not None else mark


def make_spec(func: Callable[..., Any], **options: Any) -> JobSpec:
    if isinstance(func, type):
        return make_class_spec(func, **options)
    name = options.pop("name", None) or target_of(func)
    backoff = options.pop("backoff", None) or Backoff()
    return JobSpec(name=name, func=func, backoff=backoff, **options)


def make_class_spec(cls: type, **options: Any) -> JobSpec:
    """The spec of a :class:`mqttq.Job` subclass: its class attributes are its defaults (options
    given to the decorator win)."""
    where = target_of(cls)
    if not issubclass(cls, classjobs.Job):
        raise ConfigError(f"job {where} is a class but not a mqttq.Job subclass")
    classjobs.check_class(cls, where)
    if "on_failure" in options:
        raise ConfigError(f"job class {where}: define failed() instead of on_failure")
    name = options.pop("name", None) or where
    backoff = options.pop("backoff", None) or cls.backoff
    retry_after = options.pop("retry_after", None)
    if retry_after is None and backoff is None:
        retry_after = cls.retry_after
    if retry_after is not None:
        backoff = classjobs.fixed_backoff(retry_after, f"{where}.retry_after")
    return JobSpec(
        name=name,
        func=classjobs.runner_for(cls),
        job_class=cls,
        max_tries=options.pop("max_tries", cls.max_tries),
        timeout=options.pop("timeout", cls.timeout),
        queue=options.pop("queue", cls.queue),
        backoff=backoff or Backoff(),
        on_failure=classjobs.failed_callback(cls) if classjobs.has_failed(cls) else None,
        **options,
    )


def _marked(obj: object) -> dict[str, Any] | None:
    """The ``@mqttq.job`` options of a function or class (a class's own, not inherited)."""
    if isinstance(obj, type):
        options: dict[str, Any] | None = vars(obj).get(MARKER)
        return options
    return getattr(obj, MARKER, None)


class JobRegistry:
    """Job specs by name. Each spec is reachable by its own name and by ``module:qualname``."""

    def __init__(self) -> None:
        self._specs: dict[str, JobSpec] = {}
        self._names: dict[object, str] = {}  # function or class -> its registered name

    @classmethod
    def from_config(
        cls, config: Config, problems: list[tuple[str, str]] | None = None
    ) -> JobRegistry:
        """The jobs ``config`` names: ``[jobs] register``, ``[jobs] modules``, then each route's
        ``module:function``. The one place configured jobs are imported.

        Without ``problems`` the first failure raises ``ConfigError``; with it, every failure is
        appended as ``(key path, message)`` and loading goes on (``mqttq config check``, which
        also reports route jobs named by a name nothing registered: an app may still register
        those with ``@app.job`` before it builds its listener).
        """
        registry = cls()
        steps: list[tuple[str, Callable[[], object]]] = []
        for i, target in enumerate(config.jobs.register):
            steps.append((f"jobs.register[{i}]", functools.partial(registry.add_target, target)))
        for i, module in enumerate(config.jobs.modules):
            steps.append((f"jobs.modules[{i}]", functools.partial(registry.add_module, module)))
        for key, step in steps:
            _attempt(key, step, problems)
        for i, route in enumerate(config.routes):
            key = f"routes[{i}].job"
            if route.job in registry:
                continue
            if ":" in route.job:
                _attempt(key, functools.partial(registry.add_target, route.job), problems)
            elif problems is not None:  # an app may still register it with @app.job
                problems.append((key, f"unknown job {route.job!r}: not registered by [jobs]"))
        return registry

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __len__(self) -> int:
        return len({id(s) for s in self._specs.values()})

    def specs(self) -> list[JobSpec]:
        """Each registered spec once."""
        return list({id(s): s for s in self._specs.values()}.values())

    def add(self, spec: JobSpec) -> JobSpec:
        for key in {spec.name, spec.target}:
            existing = self._specs.get(key)
            if existing is not None and _code(existing) is not _code(spec):
                raise ConfigError(
                    f"job name {key!r} is registered twice: {existing.target} and {spec.target}"
                )
            self._specs[key] = spec
        self._names[_code(spec)] = spec.name
        return spec

    def add_function(self, func: Callable[..., Any], **options: Any) -> JobSpec:
        """Register a function, or a :class:`mqttq.Job` subclass."""
        marked = _marked(func) or {}
        return self.add(make_spec(func, **{**marked, **options}))

    def add_target(self, target: str) -> JobSpec:
        """Register ``"module:function"`` from the application's configuration."""
        if target in self._specs:
            return self._specs[target]
        try:
            func = import_target(target)
        except Exception as exc:  # a job module may fail in any way while importing
            raise ConfigError(f"cannot load job {target!r}: {_describe(exc)}") from exc
        if not callable(func):
            raise ConfigError(f"job {target!r} is not callable")
        return self.add_function(func)

    def add_module(self, module_name: str) -> list[JobSpec]:
        """Register every ``@mqttq.job`` function and every concrete :class:`mqttq.Job` subclass
        defined in a module."""
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            raise ConfigError(
                f"cannot import job module {module_name!r}: {_describe(exc)}"
            ) from exc
        return [
            self.add_function(obj)
            for obj in vars(module).values()
            if callable(obj)
            and getattr(obj, "__module__", None) == module.__name__
            and (_marked(obj) is not None or _concrete_job_class(obj))
        ]

    def add_all(self, targets: Iterable[str] = (), modules: Iterable[str] = ()) -> None:
        for target in targets:
            self.add_target(target)
        for module_name in modules:
            self.add_module(module_name)

    def get(self, name: str) -> JobSpec:
        """The spec registered under ``name``; :class:`UnknownJobError` otherwise (no import)."""
        spec = self._specs.get(name)
        if spec is None:
            raise UnknownJobError(
                f"unknown job {name!r}: register it with @app.job, [jobs] register or a route"
            )
        return spec

    def spec_for(self, code: object) -> JobSpec | None:
        """The spec registered for this very function or class, or ``None``."""
        name = self._names.get(code)
        return None if name is None else self._specs[name]

    def name_for(self, func_or_name: str | Callable[..., Any]) -> str:
        """The registered name for a function or a name, checking it is registered."""
        if isinstance(func_or_name, str):
            return self.get(func_or_name).name
        name = self._names.get(func_or_name)
        return name if name is not None else self.get(target_of(func_or_name)).name


def _code(spec: JobSpec) -> object:
    """What a spec runs: its class, or its function."""
    return spec.job_class or spec.func


def _concrete_job_class(obj: object) -> bool:
    return classjobs.is_job_class(obj) and not inspect.isabstract(obj)
