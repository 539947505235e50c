"""``App``: configuration, the plugin host and the job registry, opened as one async resource."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any, Self
from urllib.parse import urlsplit

from mqttq.config import Config, load_config
from mqttq.errors import ConfigError, MqttqError
from mqttq.interfaces import QueueDriver
from mqttq.jobs import JobRegistry, JobSpec
from mqttq.models import JobEvent
from mqttq.plugins import PluginHost, make_plugin_manager
from mqttq.queue import Queue

log = logging.getLogger(__name__)


def driver_scheme(url: str) -> str:
    scheme = urlsplit(url).scheme
    if not scheme:
        raise ConfigError(f"queue.url {url!r} has no scheme (sqlite:///path.db, redis://host/0)")
    return scheme


class App:
    """Everything a process (``mqttq run``, ``listen``, ``worker``) is built from.

    ``async with app:`` opens the queue driver; ``app.queue`` pushes jobs.
    """

    def __init__(self, config: Config | None = None, *, host: PluginHost | None = None) -> None:
        self.config = config or Config()
        self.host = host or make_plugin_manager()
        self.jobs = JobRegistry()
        self.jobs.add_all(self.config.jobs.register, self.config.jobs.modules)
        for route in self.config.routes:
            if route.job not in self.jobs and ":" in route.job:
                self.jobs.add_target(route.job)
        self.queue = Queue(self)
        self._driver: QueueDriver | None = None
        self._observed = bool(self.host.hook.mqttq_job_event.get_hookimpls())

    @classmethod
    def from_config(cls, path: str | os.PathLike[str] | None = None, **kw: Any) -> Self:
        """Load ``mqttq.toml`` (``--config`` > ``MQTTQ_CONFIG`` > ``./mqttq.toml``)."""
        return cls(load_config(path), **kw)

    # -- jobs -------------------------------------------------------------------------------------

    def job(self, func: Callable[..., Any] | None = None, /, **options: Any) -> Any:
        """Register a function as a job: ``@app.job`` or ``@app.job(max_tries=5, queue="q")``."""

        def register(f: Callable[..., Any]) -> Callable[..., Any]:
            self.jobs.add_function(f, **options)
            return f

        return register(func) if func is not None else register

    def spec(self, name: str) -> JobSpec:
        return self.jobs.get(name)

    # -- driver -----------------------------------------------------------------------------------

    def make_driver(self) -> QueueDriver:
        url = self.config.queue.url
        cls = self.host.registry("queue_drivers").load(driver_scheme(url))
        driver: QueueDriver = cls.from_url(url, failed_ttl=self.config.queue.failed_ttl)
        return driver

    @property
    def driver(self) -> QueueDriver:
        if self._driver is None:
            raise MqttqError("the app is not open: use `async with app:`")
        return self._driver

    async def open(self) -> None:
        if self._driver is None:
            driver = self.make_driver()
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
        return self._observed

    def emit(self, event: JobEvent) -> None:
        """Tell observers; an observer's exception is logged and never reaches the job."""
        try:
            self.host.hook.mqttq_job_event(event=event)
        except Exception:
            log.exception("a mqttq_job_event observer failed on %s", event.kind)
