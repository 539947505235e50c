"""Building the plugin manager: hook specs, built-ins, then entry points one at a time.

Nothing happens at import time. A plugin that fails to import, implements a hook mqttq does not
know, or whose hook raises or registers a name another plugin took, is recorded in
``host.plugins`` with a one-line error and reported by ``mqttq plugins``; it never breaks the CLI
(unless ``MQTTQ_STRICT_PLUGINS=1``).

Switches:

* ``MQTTQ_DISABLE_PLUGIN_AUTOLOAD=1``: load no entry points (built-ins only).
* ``MQTTQ_PLUGINS=sqlite,redis``: load only these entry points (an empty value loads none).
* ``MQTTQ_TRACE_PLUGINS=1``: print every hook call to stderr.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Collection
from importlib import metadata
from types import ModuleType
from typing import Any

import attrs
import pluggy

from mqttq import hookspecs
from mqttq.catalog import Catalog
from mqttq.errors import PluginConflictError, PluginLoadError

GROUP = "mqttq.plugins"
PROJECT = "mqttq"
BUILTIN = "mqttq.builtin.plugin"

log = logging.getLogger(__name__)

#: first-party names -> distribution to install, for "no queue driver 'redis'; install ..."
_HINTS: dict[str, dict[str, str]] = {
    "queue_drivers": {
        "sqlite": "mqttq-sqlite",
        "redis": "mqttq-redis",
        "rediss": "mqttq-redis",
        "unix": "mqttq-redis",
        "rq+redis": "mqttq-rq",
        "rq+rediss": "mqttq-rq",
        "rq+unix": "mqttq-rq",
    },
    "job_runners": {"rq": "mqttq-rq"},
    "worker_pools": {"rq+redis": "mqttq-rq", "rq+rediss": "mqttq-rq", "rq+unix": "mqttq-rq"},
    "devices": {"navien": "mqttq-navien"},
    "command_stores": {"sqlite": "mqttq-sqlite"},
}

_KINDS = {
    "transports": ("transport", "mqttq_register_transports"),
    "queue_drivers": ("queue driver", "mqttq_register_queue_drivers"),
    "job_runners": ("job runner", "mqttq_register_job_runners"),
    "worker_pools": ("worker pool", "mqttq_register_worker_pools"),
    "devices": ("device", "mqttq_register_devices"),
    "command_stores": ("command store", "mqttq_register_command_stores"),
}


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def _one_line(exc: BaseException) -> str:
    """``exc`` as one line (pluggy's validation messages span several)."""
    text = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return text or type(exc).__name__


@attrs.define
class PluginInfo:
    """One plugin as ``mqttq plugins`` reports it."""

    name: str
    distribution: str | None
    version: str | None
    module: str
    status: str = "loaded"  # loaded | error | blocked
    error: str | None = None
    provides: dict[str, list[str]] = attrs.field(factory=dict)


class PluginHost:
    """The plugin manager plus mqttq's own records: plugins loaded and what they registered."""

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm
        self.plugins: dict[str, PluginInfo] = {}
        self._catalogs: dict[str, Catalog] = {}
        #: kind -> the message of a name two plugins registered (that catalog cannot be used)
        self._conflicts: dict[str, str] = {}

    @property
    def hook(self) -> Any:
        return self.pm.hook

    def catalog(self, kind: str) -> Catalog:
        """The catalog of ``kind`` (``queue_drivers``...), filled on first use.

        Raises ``PluginConflictError`` when two plugins registered one of its names."""
        catalog = self._filled(kind)
        if kind in self._conflicts:
            raise PluginConflictError(self._conflicts[kind])
        return catalog

    def _filled(self, kind: str) -> Catalog:
        if kind not in self._catalogs:
            self._catalogs[kind] = self._collect(kind)
        return self._catalogs[kind]

    def _collect(self, kind: str) -> Catalog:
        label, hook_name = _KINDS[kind]
        catalog = Catalog(label, hints=_HINTS.get(kind, {}), defaults=frozenset({"builtin"}))
        caller = getattr(self.pm.hook, hook_name)
        # Two plugins registering one name is a conflict (the second one is in error); a plugin
        # may replace a built-in.
        for impl in reversed(caller.get_hookimpls()):
            provider = self.pm.get_name(impl.plugin) or repr(impl.plugin)
            info = self.plugins.get(provider)
            try:
                impl.function(register=catalog.register_for(provider))
            except PluginConflictError as exc:
                if info is not None:
                    info.status, info.error = "error", f"{hook_name}: {exc}"
                self._conflicts.setdefault(kind, str(exc))
            except Exception as exc:
                if _truthy(os.environ.get("MQTTQ_STRICT_PLUGINS")):
                    raise PluginLoadError(
                        f"plugin {provider!r} failed in {hook_name}: {_one_line(exc)}"
                    ) from exc
                log.warning("plugin %s failed in %s: %s", provider, hook_name, _one_line(exc))
                if info is not None:
                    info.status, info.error = "error", f"{hook_name}: {_one_line(exc)}"
        for entry in catalog.entries.values():
            info = self.plugins.get(entry.provider)
            if info is not None:
                info.provides.setdefault(kind, []).append(entry.name)
        return catalog

    def describe(self, *, load: bool = False) -> list[PluginInfo]:
        """Every plugin with what it provides (fills every catalog; a name two plugins
        registered fails the second one). ``load``: also import every registered target,
        failing the plugin that registered one that does not load (``mqttq plugins --check``).
        """
        for kind in _KINDS:
            catalog = self._filled(kind)
            if load:
                self._load_targets(catalog)
        return list(self.plugins.values())

    def _load_targets(self, catalog: Catalog) -> None:
        for entry in list(catalog.entries.values()):
            try:
                catalog.load(entry.name)
            except PluginLoadError as exc:
                info = self.plugins.get(entry.provider)
                if info is not None and info.status != "error":
                    info.status, info.error = "error", _one_line(exc)


def _entry_points() -> list[metadata.EntryPoint]:
    return sorted(metadata.entry_points(group=GROUP), key=lambda ep: ep.name)


def make_plugin_manager(
    *,
    autoload: bool | None = None,
    only: Collection[str] | None = None,
    extra: Collection[tuple[str, ModuleType | object]] = (),
) -> PluginHost:
    """Build a fresh plugin host.

    :param autoload: load ``mqttq.plugins`` entry points (default: unless
        ``MQTTQ_DISABLE_PLUGIN_AUTOLOAD`` is set).
    :param only: names of the entry points to load (default: ``MQTTQ_PLUGINS`` when set).
    :param extra: ``(name, plugin)`` pairs registered after the entry points (tests, apps).
    """
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    host = PluginHost(pm)

    from mqttq.builtin import plugin as builtin

    pm.register(builtin, name="builtin")
    version = _version("mqttq")
    host.plugins["builtin"] = PluginInfo("builtin", "mqttq", version, BUILTIN)

    if autoload is None:
        autoload = not _truthy(os.environ.get("MQTTQ_DISABLE_PLUGIN_AUTOLOAD"))
    if only is None and "MQTTQ_PLUGINS" in os.environ:
        only = [n.strip() for n in os.environ["MQTTQ_PLUGINS"].split(",") if n.strip()]
    strict = _truthy(os.environ.get("MQTTQ_STRICT_PLUGINS"))

    if autoload:
        for ep in _entry_points():
            dist = ep.dist.name if ep.dist else None
            info = PluginInfo(ep.name, dist, ep.dist.version if ep.dist else None, ep.value)
            host.plugins[ep.name] = info
            if only is not None and ep.name not in only:
                info.status = "blocked"
                continue
            try:
                _register(pm, ep.load(), ep.name)
            except Exception as exc:
                if strict:
                    raise PluginLoadError(f"plugin {ep.name!r} failed to load: {exc}") from exc
                log.warning("plugin %s (%s) failed to load: %s", ep.name, ep.value, _one_line(exc))
                info.status, info.error = "error", f"{type(exc).__name__}: {_one_line(exc)}"

    for name, plugin in extra:
        pm.register(plugin, name=name)
        host.plugins[name] = PluginInfo(name, None, None, getattr(plugin, "__name__", repr(plugin)))

    pm.check_pending()
    if _truthy(os.environ.get("MQTTQ_TRACE_PLUGINS")):
        pm.trace.root.setwriter(sys.stderr.write)
        pm.enable_tracing()
    return host


def _register(pm: pluggy.PluginManager, plugin: object, name: str) -> None:
    """Register ``plugin``; refuse it (and leave it out) when it implements a hook mqttq does
    not define, which would otherwise never be called."""
    pm.register(plugin, name=name)
    unknown = sorted(
        caller.name
        for caller in pm.get_hookcallers(plugin) or []
        if caller.spec is None
        and any(i.plugin is plugin and not i.optionalhook for i in caller.get_hookimpls())
    )
    if unknown:
        pm.unregister(plugin, name=name)
        raise PluginLoadError(
            f"{', '.join(unknown)}: not an mqttq hook (misspelt, or made for another version "
            "of mqttq)"
        )


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None
