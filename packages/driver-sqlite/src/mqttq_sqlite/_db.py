"""One ``sqlite3`` connection and its transactions; everything here runs on the driver's thread.

Every write is one ``BEGIN IMMEDIATE`` transaction (never a deferred read upgraded to a write,
which WAL answers with an immediate SQLITE_BUSY). SQLite's own busy handler is off: a locked
database is retried here with short, jittered, bounded backoff, so waiting writers pick the lock
up within a fraction of a millisecond instead of SQLite's coarse 1-100 ms sleeps.

A full disk fails the operation as a whole (its transaction is rolled back) with
``SqliteQueueUnavailable``, after a ``wal_checkpoint(TRUNCATE)`` tried to hand the WAL's space back
to the file system (when it did, the operation runs once more). Until an operation succeeds, each
one starts with that checkpoint.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from mqttq.plugin import RetryPolicy, retry_sync
from mqttq_sqlite import _schema
from mqttq_sqlite._options import SqliteOptions
from mqttq_sqlite.errors import (
    SQLITE_FULL,
    SqliteQueueError,
    SqliteQueueNotFound,
    SqliteQueueUnavailable,
    is_busy,
    result_code,
    translate,
)

T = TypeVar("T")
Row = tuple[Any, ...]

CHUNK = 500  # ids per statement, well below SQLite's parameter limit
#: retries of a locked database: short, jittered waits so a writer picks the lock up quickly
BUSY = RetryPolicy(first=0.0002, max=0.005)


def _locked(exc: Exception) -> bool:
    return isinstance(exc, sqlite3.Error) and is_busy(exc)


def chunks(ids: Sequence[str]) -> Iterator[Sequence[str]]:
    for i in range(0, len(ids), CHUNK):
        yield ids[i : i + CHUNK]


def marks(n: int) -> str:
    """``?,?,?`` for ``n`` parameters."""
    return ",".join("?" * n)


class Database:
    """The connection, and a second, read-only one for :meth:`change_mark`.

    Everything but ``change_mark`` runs on the driver's database thread.
    """

    def __init__(self, opts: SqliteOptions) -> None:
        self.opts = opts
        self._conn: sqlite3.Connection | None = None
        self._watch: sqlite3.Connection | None = None  # change_mark() only
        self._full = False  # the last operation found the disk full

    # -- connection -----------------------------------------------------------------------------

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise SqliteQueueError(f"SQLite queue driver for {self.opts.path} is not open")
        return self._conn

    def _connect(self) -> sqlite3.Connection:
        path = self.opts.path
        # mode=rw: SQLite itself refuses to create a missing file (no check-then-create race)
        uri = Path(os.path.abspath(path)).as_uri() + ("" if self.opts.create else "?mode=rw")
        try:
            # timeout=0: busy waits are ours (see the module docstring)
            return sqlite3.connect(
                uri,
                uri=True,
                timeout=0,
                isolation_level=None,
                check_same_thread=False,
                cached_statements=256,
            )
        except sqlite3.Error as exc:
            if not self.opts.create and not os.path.lexists(path):
                raise SqliteQueueNotFound(
                    f"no SQLite queue database at {os.path.abspath(path)}: nothing has been "
                    f"queued there yet (queue.url = sqlite:///{path})"
                ) from None
            raise translate(exc, path) from None

    def open(self) -> None:
        self._conn = self._connect()
        try:
            self._retrying(self._setup)
            self.write(lambda c: _schema.migrate(c, self.opts.path))
            self._watch = self._connect()
            self._retrying(lambda: self._watch_conn().execute("PRAGMA query_only = 1"))
        except BaseException:
            self.close()
            raise

    def _setup(self) -> None:
        conn = self.conn
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise SqliteQueueError(
                f"SQLite database {self.opts.path} cannot use WAL journaling (got {mode!r}); "
                "put it on a local file system"
            )
        conn.execute(f"PRAGMA synchronous = {self.opts.synchronous.upper()}")
        conn.execute(f"PRAGMA cache_size = {-1024 * self.opts.cache_mb}")
        conn.execute("PRAGMA busy_timeout = 0")
        conn.execute("PRAGMA temp_store = MEMORY")
        conn.execute(f"PRAGMA wal_autocheckpoint = {self.opts.wal_autocheckpoint}")
        # once checkpointed, a WAL grown past this (a huge batch, a stalled checkpoint) is cut back
        limit = self.opts.journal_size_limit
        if limit is None:
            page = int(conn.execute("PRAGMA page_size").fetchone()[0])
            limit = page * self.opts.wal_autocheckpoint
        conn.execute(f"PRAGMA journal_size_limit = {limit}")
        _schema.check_version(_schema.schema_version(conn), self.opts.path)

    def close(self) -> None:
        for conn in (self._conn, self._watch):
            if conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
        self._conn = self._watch = None

    def _watch_conn(self) -> sqlite3.Connection:
        if self._watch is None:
            raise SqliteQueueError(f"SQLite queue driver for {self.opts.path} is not open")
        return self._watch

    def change_mark(self) -> int | None:
        """A number that changes whenever anyone commits, or ``None`` when it cannot tell.

        The one call made on the event loop thread: ``PRAGMA data_version`` on a private
        connection that never waits for a lock (busy timeout 0). It reads the WAL index in shared
        memory and takes microseconds, where a hop to the database thread costs far more; idle
        claims run it every few milliseconds.
        """
        watch = self._watch
        if watch is None:
            return None
        try:
            return int(watch.execute("PRAGMA data_version").fetchone()[0])
        except sqlite3.Error:
            return None  # busy or broken: the caller looks on the database thread instead

    # -- transactions ---------------------------------------------------------------------------

    def _retrying(self, fn: Callable[[], T]) -> T:
        """Run ``fn``, retrying while the database is locked, at most ``busy_timeout`` seconds;
        on a full disk, once more if a checkpoint gave the WAL's space back."""
        try:
            return self._run(fn)
        except sqlite3.Error as exc:
            if is_busy(exc):
                raise SqliteQueueUnavailable(
                    f"SQLite database {self.opts.path} stayed locked for "
                    f"{self.opts.busy_timeout:g} s; is another program holding a transaction?"
                ) from None
            raise translate(exc, self.opts.path) from None

    def _run(self, fn: Callable[[], T]) -> T:
        # after a full disk, the WAL's space is taken back first, before a write could use up
        # whatever was freed meanwhile (that would leave too little room for any checkpoint)
        if self._full and self._reclaim_wal():
            self._full = False
        try:
            result = self._while_locked(fn)
        except sqlite3.Error as exc:
            if result_code(exc) != SQLITE_FULL:
                raise
            self._full = True
            if not self._reclaim_wal():
                raise
            result = self._while_locked(fn)
        self._full = False
        return result

    def _while_locked(self, fn: Callable[[], T]) -> T:
        return retry_sync(fn, policy=BUSY, retry_if=_locked, budget=self.opts.busy_timeout)

    def _reclaim_wal(self) -> bool:
        """After SQLITE_FULL: copy the WAL into the database and truncate it to nothing, which
        frees its space. True when that happened (it needs room for the pages the database
        gains, and no other connection reading an older snapshot)."""
        conn = self._conn
        if conn is None or conn.in_transaction:
            return False
        try:
            busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        except sqlite3.Error:
            return False  # still full: the caller reports the original error
        return bool(busy == 0)

    def _tx(self, fn: Callable[[sqlite3.Connection], T], begin: str) -> T:
        conn = self.conn

        def attempt() -> T:
            if conn.in_transaction:  # left open by a ROLLBACK that failed
                conn.execute("ROLLBACK")
            conn.execute(begin)
            try:
                result = fn(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise
            return result

        return self._retrying(attempt)

    def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return self._tx(fn, "BEGIN IMMEDIATE")

    def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """A consistent snapshot for several SELECTs."""
        return self._tx(fn, "BEGIN")
