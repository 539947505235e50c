"""``App``: configuration, the plugin host and the job registry, opened as one async resource.

Everything a process builds from its configuration is made here: the queue driver, the MQTT
transport and job runners (each looked up in the plugin catalogs), and the job registry.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import urlsplit, urlunsplit

from mqttq.config import Config, load_config
from mqttq.errors import ConfigError, MqttqError
from mqttq.interfaces import JobRunner, QueueDriver, Transport, WorkerPool
from mqttq.jobs import JobRegistry
from mqttq.models import JobEvent
from mqttq.plugins import PluginHost, make_plugin_manager
from mqttq.queue import Queue

if TYPE_CHECKING:
    from mqttq.catalog import Catalog
    from mqttq.devices.models import CommandEvent

log = logging.getLogger(__name__)


def redact(url: str) -> str:
    """``url`` with its password, if any, replaced by ``***`` (for logs and messages)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def url_scheme(url: str, key: str) -> str:
    scheme = urlsplit(url).scheme
    if not scheme:
        raise ConfigError(f"{key} {url!r} has no scheme", [(key, "no scheme")])
    return scheme


class App:
    """Everything a process (``mqttq run``, ``listen``, ``worker``) is built from.

    ``async with app:`` opens the queue driver; ``app.queue`` pushes jobs.
    """

    def __init__(
        self,
        config: Config | None = None,
        *,
        host: PluginHost | None = None,
        jobs: JobRegistry | None = None,
    ) -> None:
        self.config = config or Config()
        self.host = host or make_plugin_manager()
        self._jobs = jobs
        self.queue = Queue(self)
        self._driver: QueueDriver | None = None
        #: ``mqttq_job_event`` implementations, in pluggy's calling order
        self._observers = list(reversed(self.host.hook.mqttq_job_event.get_hookimpls()))
        self._observer_errors: set[tuple[str, type[BaseException]]] = set()

    @classmethod
    def from_config(cls, path: str | os.PathLike[str] | None = None, **kw: Any) -> Self:
        """Load ``mqttq.toml`` (``--config`` > ``MQTTQ_CONFIG`` > ``./mqttq.toml``)."""
        return cls(load_config(path), **kw)

    # -- jobs -------------------------------------------------------------------------------------

    @property
    def jobs(self) -> JobRegistry:
        """The jobs this app may run (default: those the configuration names). Imported on first
        use, so commands that only look at the queue never import the application's code."""
        if self._jobs is None:
            self._jobs = JobRegistry.from_config(self.config)
        return self._jobs

    def job(self, func: Callable[..., Any] | None = None, /, **options: Any) -> Any:
        """Register a function as a job: ``@app.job`` or ``@app.job(max_tries=5, queue="q")``."""

        def register(f: Callable[..., Any]) -> Callable[..., Any]:
            self.jobs.add_function(f, **options)
            return f

        return register(func) if func is not None else register

    # -- what the configuration names -------------------------------------------------------------

    def driver_class(self) -> type[QueueDriver]:
        url = self.config.queue.url
        cls: type[QueueDriver] = self._catalog("queue_drivers").load(url_scheme(url, "queue.url"))
        return cls

    def make_driver(self, *, create: bool = True) -> QueueDriver:
        """The queue driver for ``queue.url`` (not opened). ``create=False``: for commands that
        only look, which must not create a queue that does not exist yet."""
        options: dict[str, Any] = {"failed_ttl": self.config.queue.failed_ttl}
        if not create:
            options["create"] = False
        return self.driver_class().from_url(self.config.queue.url, **options)

    def make_transport(self, **options: Any) -> Transport:
        """The MQTT transport for ``mqtt.url`` (not connected)."""
        cls = self._catalog("transports").load(url_scheme(self.config.mqtt.url, "mqtt.url"))
        transport: Transport = cls.from_config(self.config.mqtt, **options)
        return transport

    def worker_pool_class(self) -> type[WorkerPool] | None:
        """The worker pool registered for ``queue.url``'s scheme (push-only drivers), if any."""
        catalog = self._catalog("worker_pools")
        scheme = url_scheme(self.config.queue.url, "queue.url")
        if scheme not in catalog.entries:
            return None
        cls: type[WorkerPool] = catalog.load(scheme)
        return cls

    def runner_class(self, name: str | None = None) -> type[JobRunner]:
        cls: type[JobRunner] = self._catalog("job_runners").load(name or self.config.worker.runner)
        return cls

    def make_runner(self, name: str | None = None, *, concurrency: int | None = None) -> JobRunner:
        """A job runner (``worker.runner`` by default), not opened."""
        cls = self.runner_class(name)
        return cls(app=self, concurrency=concurrency or self.config.worker.concurrency)

    def _catalog(self, kind: str) -> Catalog:
        return self.host.catalog(kind)

    # -- driver -----------------------------------------------------------------------------------

    @property
    def driver(self) -> QueueDriver:
        if self._driver is None:
            raise MqttqError("the app is not open: use `async with app:`")
        return self._driver

    @property
    def is_open(self) -> bool:
        return self._driver is not None

    async def open(self, *, create: bool = True) -> None:
        if self._driver is None:
            driver = self.make_driver(create=create)
            await driver.open()
            self._driver = driver

    async def aclose(self) -> None:
        driver, self._driver = self._driver, None
        if driver is not None:
            await driver.aclose()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- events -----------------------------------------------------------------------------------

    @property
    def observed(self) -> bool:
        """True when some plugin implements ``mqttq_job_event`` (events are skipped otherwise)."""
        return bool(self._observers)

    def emit(self, event: JobEvent | CommandEvent) -> None:
        """Tell each observer in turn; one that raises is logged (once per plugin and kind of
        error) and never keeps the others, or the job, from going on."""
        for impl in self._observers:
            try:
                impl.function(**({"event": event} if "event" in impl.argnames else {}))
            except Exception as exc:
                name = self.host.pm.get_name(impl.plugin) or repr(impl.plugin)
                if (name, type(exc)) not in self._observer_errors:
                    self._observer_errors.add((name, type(exc)))
                    log.exception(
                        "mqttq_job_event observer %s failed on a %s event (further %s errors "
                        "of this observer are not logged)",
                        name,
                        event.kind,
                        type(exc).__name__,
                    )
