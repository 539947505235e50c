"""Catalogs filled by the ``mqttq_register_*`` hooks, with lazy ``"module:attr"`` targets."""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import Any, Protocol

import attrs

from mqttq.errors import PluginConflictError, PluginLoadError, UnknownPluginError


class Register(Protocol):
    """The callable passed to registration hooks."""

    def __call__(self, name: str, target: object, aliases: Iterable[str] = ()) -> None: ...


def import_target(target: str) -> Any:
    """Import ``"package.module:attr.sub"`` and return the attribute."""
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"{target!r} is not of the form 'module:attribute'")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


@attrs.define
class Entry:
    name: str
    target: object
    provider: str
    alias_of: str | None = None


@attrs.define
class Catalog:
    """Things of one kind (``queue driver``) by name, remembering which plugin provided each."""

    kind: str
    #: first-party names and the distribution that provides them, for install hints
    hints: dict[str, str] = attrs.field(factory=dict)
    entries: dict[str, Entry] = attrs.field(factory=dict)
    #: providers of defaults (the built-ins): any plugin may replace their entries
    defaults: frozenset[str] = frozenset()

    def register_for(self, provider: str) -> Register:
        def register(name: str, target: object, aliases: Iterable[str] = ()) -> None:
            self.add(name, target, provider)
            for alias in aliases:
                self.add(alias, target, provider, alias_of=name)

        return register

    def add(self, name: str, target: object, provider: str, alias_of: str | None = None) -> None:
        existing = self.entries.get(name)
        if existing is not None and existing.provider != provider:
            if provider in self.defaults:
                return  # a plugin already replaced this default
            if existing.provider not in self.defaults:
                raise PluginConflictError(
                    f"{self.kind} {name!r} is registered by both {existing.provider!r} and "
                    f"{provider!r}; block one with MQTTQ_PLUGINS or uninstall it"
                )
        self.entries[name] = Entry(name, target, provider, alias_of)

    def names(self) -> list[str]:
        return sorted(self.entries)

    def load(self, name: str) -> Any:
        """The registered object, importing a ``"module:attr"`` target on first use."""
        entry = self.entries.get(name)
        if entry is None:
            hint = self.hints.get(name)
            known = ", ".join(self.names()) or "none"
            more = f"; install {hint}" if hint else f" (known: {known})"
            raise UnknownPluginError(f"no {self.kind} named {name!r}{more}")
        if isinstance(entry.target, str):
            try:
                entry.target = import_target(entry.target)
            except Exception as exc:
                raise PluginLoadError(
                    f"{self.kind} {name!r} from plugin {entry.provider!r} failed to load: {exc}"
                ) from exc
        return entry.target
