"""Where waiting commands are kept: ``CommandStore`` (the interface) and the built-in in-memory
store. A durable store (``mqttq-sqlite``: ``sqlite:///commands.db``) keeps them across a
restart of the process."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any, ClassVar, Self
from urllib.parse import urlsplit

import attrs

from mqttq.devices.models import Command
from mqttq.errors import ConfigError
from mqttq.interfaces import AsyncResource


@attrs.frozen(kw_only=True)
class StoredCommand:
    """A command waiting for its device, with its place in the device's lane (``seq``: larger
    is later, within one device)."""

    command: Command
    seq: int


class CommandStore(AsyncResource, abc.ABC):
    """Keeps every command that is not final yet, so a new process can send them.

    Built by :meth:`from_url` (no I/O), opened with ``async with``. The device client writes a
    command before it reports it queued or sends it, and deletes it once it is final; a command
    loaded at start-up may have been sent already (its device may see it twice). Calls come from
    one event loop; :meth:`put` and :meth:`delete` may batch many commands in one call and must
    be atomic per call.
    """

    #: URL schemes this class serves (informational; the plugin registers the names)
    schemes: ClassVar[tuple[str, ...]] = ()
    #: whether commands survive the process
    durable: ClassVar[bool] = False

    @classmethod
    @abc.abstractmethod
    def from_url(cls, url: str, /, **options: Any) -> Self:
        """Build a store from ``[devices] store``. ``ConfigError`` for a bad URL or option."""

    @abc.abstractmethod
    async def load(self) -> list[StoredCommand]:
        """Every stored command, ordered by device and ``seq``."""

    @abc.abstractmethod
    async def put(self, entries: Sequence[StoredCommand]) -> None:
        """Store commands (a command stored again replaces its entry)."""

    @abc.abstractmethod
    async def delete(self, ids: Sequence[str]) -> None:
        """Forget commands by id; unknown ids are ignored."""


class MemoryCommandStore(CommandStore):
    """``memory://``: commands live in the process that queued them (the default)."""

    schemes = ("memory",)

    @classmethod
    def from_url(cls, url: str, /, **options: Any) -> Self:
        if urlsplit(url).scheme != "memory" or options:
            raise ConfigError(f"not a memory:// command store URL: {url!r}")
        return cls()

    async def load(self) -> list[StoredCommand]:
        return []

    async def put(self, entries: Sequence[StoredCommand]) -> None:
        pass

    async def delete(self, ids: Sequence[str]) -> None:
        pass
