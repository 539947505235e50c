"""``sqlite:///commands.db``: the durable store of the device command queue.

Commands that are not settled yet live in table ``mqttq_commands`` (same schema and file rules as
the queue: WAL, one connection on a thread of its own, busy retries, full-disk handling), so a
new process sends what the last one left, in order. It may be the queue's own file.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, Self, TypeVar

import attrs

from mqttq.plugin import Command, CommandStore, PayloadError, StoredCommand, dumps, loads
from mqttq_sqlite._db import Database, chunks, marks
from mqttq_sqlite._options import SqliteOptions, build_options, parse_url
from mqttq_sqlite._thread import DbThread
from mqttq_sqlite.errors import SqliteQueueError

T = TypeVar("T")


class _Commands(Database):
    def load(self) -> list[tuple[str, int, bytes]]:
        rows = self.read(
            lambda c: c.execute(
                "SELECT id, seq, body FROM mqttq_commands ORDER BY device, seq"
            ).fetchall()
        )
        return [(r[0], int(r[1]), bytes(r[2])) for r in rows]

    def put(self, rows: list[tuple[str, str, int, bytes]]) -> None:
        self.write(
            lambda c: c.executemany(
                "INSERT OR REPLACE INTO mqttq_commands (id, device, seq, body) VALUES (?,?,?,?)",
                rows,
            )
        )

    def delete(self, ids: Sequence[str]) -> None:
        def tx(conn: sqlite3.Connection) -> None:
            for chunk in chunks(ids):
                conn.execute(
                    f"DELETE FROM mqttq_commands WHERE id IN ({marks(len(chunk))})", tuple(chunk)
                )

        self.write(tx)


class SqliteCommandStore(CommandStore):
    """Commands in one SQLite file; the options are the queue driver's (``synchronous``...)."""

    schemes = ("sqlite",)
    durable = True

    def __init__(self, path: str | os.PathLike[str], **options: Any) -> None:
        self.options: SqliteOptions = build_options(os.fspath(path), options)
        self._db = _Commands(self.options)
        self._thread: DbThread | None = None

    @classmethod
    def from_url(cls, url: str, /, **options: Any) -> Self:
        opts = parse_url(url, options)
        return cls(opts.path, **attrs.asdict(opts, filter=lambda a, _: a.name != "path"))

    @property
    def path(self) -> str:
        return self.options.path

    async def open(self) -> None:
        if self._thread is not None:
            return
        thread = DbThread(f"mqttq-sqlite-commands:{self.path}")
        try:
            await thread.call(self._db.open)
        except BaseException:
            thread.stop()
            raise
        self._thread = thread

    async def aclose(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            try:
                await thread.call(self._db.close)
            finally:
                thread.stop()

    async def _call(self, fn: Callable[[], T]) -> T:
        if self._thread is None:
            raise SqliteQueueError(f"SQLite command store {self.path} is not open")
        return await self._thread.call(fn)

    async def load(self) -> list[StoredCommand]:
        out = []
        for command_id, seq, body in await self._call(self._db.load):
            try:
                command = loads(body, Command)
            except PayloadError as exc:  # written by an incompatible version: say so, go on
                raise SqliteQueueError(
                    f"command {command_id} in {self.path} cannot be read: {exc}"
                ) from None
            out.append(StoredCommand(command=command, seq=seq))
        return out

    async def put(self, entries: Sequence[StoredCommand]) -> None:
        rows = [(e.command.id, e.command.device, e.seq, dumps(e.command)) for e in entries]
        if rows:
            await self._call(partial(self._db.put, rows))

    async def delete(self, ids: Sequence[str]) -> None:
        if ids:
            await self._call(partial(self._db.delete, list(ids)))
