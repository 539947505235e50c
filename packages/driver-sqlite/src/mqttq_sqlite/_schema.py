"""The database schema and its migrations.

Tables are prefixed ``mqttq_`` so the queue can share a file with an application's own tables.
The schema version lives in ``mqttq_meta`` (not ``PRAGMA user_version``, which belongs to
whoever owns the file). To change the schema, append a step to ``MIGRATIONS``; a database is
brought forward one step at a time inside one ``BEGIN IMMEDIATE`` transaction, so several
processes opening a new file at once are safe. A database written by a newer version is refused.

Job states: 0 = waiting (ready or delayed, by ``available_at``), 1 = reserved (``lease_until``).
State values are literals in every query so the partial indexes below stay usable.
"""

from __future__ import annotations

import sqlite3

from mqttq_sqlite.errors import SchemaVersionError

_V1 = (
    "CREATE TABLE IF NOT EXISTS mqttq_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    # seq is the rowid: always above every live row's, so ordering by it is push order (FIFO).
    """CREATE TABLE mqttq_jobs (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        queue TEXT NOT NULL,
        state INTEGER NOT NULL,
        available_at REAL NOT NULL,
        lease_until REAL,
        attempts INTEGER NOT NULL,
        unique_key TEXT,
        envelope BLOB NOT NULL
    )""",
    # claim: seek to (queue, available_at <= now) in order, O(log n + k)
    "CREATE INDEX mqttq_jobs_waiting ON mqttq_jobs (queue, available_at, seq) WHERE state = 0",
    # reap expired leases per queue, count reserved jobs
    "CREATE INDEX mqttq_jobs_reserved ON mqttq_jobs (queue, lease_until) WHERE state = 1",
    # at most one live job per unique key (every row of mqttq_jobs is live)
    """CREATE UNIQUE INDEX mqttq_jobs_unique ON mqttq_jobs (unique_key)
        WHERE unique_key IS NOT NULL""",
    """CREATE TABLE mqttq_failed (
        id TEXT PRIMARY KEY,
        queue TEXT NOT NULL,
        failed_at REAL NOT NULL,
        attempts INTEGER NOT NULL,
        error TEXT NOT NULL,
        traceback TEXT NOT NULL,
        envelope BLOB NOT NULL
    )""",
    "CREATE INDEX mqttq_failed_time ON mqttq_failed (failed_at)",
    "CREATE INDEX mqttq_failed_queue ON mqttq_failed (queue, failed_at)",
    # every queue that holds or held jobs, for stats()
    "CREATE TABLE mqttq_queues (name TEXT PRIMARY KEY) WITHOUT ROWID",
    """CREATE TABLE mqttq_workers (
        id TEXT PRIMARY KEY,
        expires_at REAL NOT NULL,
        info BLOB NOT NULL
    )""",
)

#: store one waiting job (state 0); the values of ``_store._row``
INSERT_JOB = (
    "INSERT INTO mqttq_jobs (id, queue, state, available_at, attempts, unique_key, envelope) "
    "VALUES (?, ?, 0, ?, ?, ?, ?)"
)

# the device command store (mqttq_sqlite.commands): every command not settled yet, per device in
# lane order (seq)
_V2 = (
    """CREATE TABLE mqttq_commands (
        id TEXT PRIMARY KEY,
        device TEXT NOT NULL,
        seq INTEGER NOT NULL,
        body BLOB NOT NULL
    )""",
    "CREATE INDEX mqttq_commands_lane ON mqttq_commands (device, seq)",
)

# cancelled jobs (kept for get_job until failed_ttl) and the last fired slot of each schedule
_V3 = (
    """CREATE TABLE mqttq_cancelled (
        id TEXT PRIMARY KEY,
        queue TEXT NOT NULL,
        cancelled_at REAL NOT NULL,
        attempts INTEGER NOT NULL,
        envelope BLOB NOT NULL
    )""",
    "CREATE INDEX mqttq_cancelled_time ON mqttq_cancelled (cancelled_at)",
    """CREATE TABLE mqttq_schedules (
        name TEXT PRIMARY KEY,
        slot REAL NOT NULL,
        fired_at REAL NOT NULL
    ) WITHOUT ROWID""",
)

#: ``MIGRATIONS[i]`` takes a database from version ``i`` to ``i + 1``.
MIGRATIONS: tuple[tuple[str, ...], ...] = (_V1, _V2, _V3)
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(conn: sqlite3.Connection) -> int:
    """The version recorded in the file; 0 for a database mqttq has never touched."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'mqttq_meta'"
    ).fetchone()
    if exists is None:
        return 0
    row = conn.execute("SELECT value FROM mqttq_meta WHERE key = 'schema_version'").fetchone()
    return 0 if row is None else int(row[0])


def check_version(version: int, path: str) -> None:
    if version > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"SQLite queue database {path} has schema version {version}, newer than this "
            f"mqttq-sqlite understands ({SCHEMA_VERSION}); upgrade mqttq-sqlite"
        )


def migrate(conn: sqlite3.Connection, path: str) -> None:
    """Bring the schema up to date. Called inside ``BEGIN IMMEDIATE``."""
    version = schema_version(conn)
    check_version(version, path)
    for step in MIGRATIONS[version:]:
        for statement in step:
            conn.execute(statement)
    if version < SCHEMA_VERSION:
        conn.execute(
            "INSERT OR REPLACE INTO mqttq_meta (key, value) VALUES ('schema_version', ?)",
            (str(SCHEMA_VERSION),),
        )
