"""Errors of the SQLite driver. Each subclasses both this plugin's base and mqttq's semantic class,
so callers can catch ``mqttq.DriverError`` / ``mqttq.DriverUnavailable`` without knowing SQLite.
No ``sqlite3`` exception ever leaves the driver: :func:`translate` turns them into these."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mqttq.plugin import DriverError, DriverUnavailable, QueueNotFoundError

if TYPE_CHECKING:
    import sqlite3

# primary result codes (https://www.sqlite.org/rescode.html)
SQLITE_PERM = 3
SQLITE_BUSY = 5
SQLITE_LOCKED = 6
SQLITE_READONLY = 8
SQLITE_IOERR = 10
SQLITE_CORRUPT = 11
SQLITE_FULL = 13
SQLITE_CANTOPEN = 14
SQLITE_NOTADB = 26


class SqliteQueueError(DriverError):
    """The SQLite queue driver failed."""


class SqliteQueueUnavailable(SqliteQueueError, DriverUnavailable):
    """The database cannot be used right now (locked for too long, I/O error, disk full)."""


class SqliteQueueNotFound(SqliteQueueError, QueueNotFoundError):
    """``create=False`` and there is no database file yet."""


class SchemaVersionError(SqliteQueueError):
    """The database was written by a newer mqttq-sqlite."""


def result_code(exc: sqlite3.Error) -> int:
    return int(getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF


def is_busy(exc: sqlite3.Error) -> bool:
    """Another connection holds a lock: retrying soon is the cure."""
    code = result_code(exc)
    if code:
        return code in (SQLITE_BUSY, SQLITE_LOCKED)
    text = str(exc)
    return "database is locked" in text or "database table is locked" in text


def translate(exc: sqlite3.Error, path: str) -> SqliteQueueError:
    """One clear line for a user, the SQLite message kept for context."""
    code = result_code(exc)
    detail = str(exc) or type(exc).__name__
    if code == SQLITE_CANTOPEN:
        return SqliteQueueError(
            f"cannot open SQLite database {path} ({detail}): does its directory exist and "
            "is it writable?"
        )
    if code in (SQLITE_NOTADB, SQLITE_CORRUPT):
        return SqliteQueueError(
            f"SQLite database {path} is unreadable ({detail}): is it an mqttq queue database?"
        )
    if code in (SQLITE_READONLY, SQLITE_PERM):
        return SqliteQueueError(f"SQLite database {path} is read-only ({detail})")
    if code == SQLITE_FULL:
        return SqliteQueueUnavailable(
            f"SQLite database {path} cannot grow: its disk is full ({detail})"
        )
    if code in (SQLITE_IOERR, SQLITE_BUSY, SQLITE_LOCKED):
        return SqliteQueueUnavailable(f"SQLite database {path} is unavailable ({detail})")
    return SqliteQueueError(f"SQLite database {path}: {detail}")
