"""Synchronous queue operations on one ``sqlite3`` connection; each runs on the driver's thread.

Every write is one ``BEGIN IMMEDIATE`` transaction (never a deferred read upgraded to a write,
which WAL answers with an immediate SQLITE_BUSY). SQLite's own busy handler is off: a locked
database is retried here with short, jittered, bounded backoff, so waiting writers pick the lock
up within a fraction of a millisecond instead of SQLite's coarse 1-100 ms sleeps.
"""

from __future__ import annotations

import contextlib
import json
import random
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

import attrs

from mqttq.codec import decode_job, dumps, encode_job, loads
from mqttq.errors import DriverError, PayloadError
from mqttq.models import FailedJob, Job, JobRecord, QueueStats, WorkerInfo
from mqttq_sqlite import _schema
from mqttq_sqlite._options import SqliteOptions
from mqttq_sqlite.errors import SqliteQueueError, SqliteQueueUnavailable, is_busy, translate

T = TypeVar("T")
Row = tuple[Any, ...]

CHUNK = 500  # ids per statement, well below SQLite's parameter limit
_BACKOFF_FIRST = 0.0002
_BACKOFF_MAX = 0.005

_INSERT = (
    "INSERT INTO mqttq_jobs (id, queue, state, available_at, attempts, unique_key, envelope) "
    "VALUES (?, ?, 0, ?, ?, ?, ?)"
)
_CLAIM = (
    "UPDATE mqttq_jobs SET state = 1, lease_until = ?, attempts = attempts + 1 "
    "WHERE seq IN (SELECT seq FROM mqttq_jobs WHERE state = 0 AND queue = ? AND available_at <= ? "
    "ORDER BY available_at, seq LIMIT ?) "
    "RETURNING available_at, seq, id, queue, attempts, envelope"
)
_FAILED_COLS = "id, queue, failed_at, attempts, error, traceback, envelope"


def _chunks(ids: Sequence[str]) -> Iterator[Sequence[str]]:
    for i in range(0, len(ids), CHUNK):
        yield ids[i : i + CHUNK]


def _marks(n: int) -> str:
    return ",".join("?" * n)


def stub_job(job_id: str, queue: str, attempts: int, envelope: bytes, when: float) -> Job:
    """Stands in for a job whose envelope cannot be decoded (e.g. from a newer mqttq)."""
    name = "<undecodable>"
    with contextlib.suppress(ValueError, UnicodeDecodeError):
        raw = json.loads(envelope)
        if isinstance(raw, dict) and isinstance(raw.get("name"), str):
            name = raw["name"]
    return Job(
        id=job_id, name=name, queue=queue, attempts=attempts, enqueued_at=when, available_at=when
    )


def _decode(job_id: str, queue: str, attempts: int, envelope: bytes) -> tuple[Job, str | None]:
    """The stored job with its current attempt count, or a stub and the reason it is unreadable."""
    try:
        job = decode_job(envelope)
    except PayloadError as exc:
        return stub_job(job_id, queue, attempts, envelope, time.time()), str(exc)
    if job.attempts != attempts:
        # ``job`` was just decoded and nobody else holds it: set the field in place, as attrs'
        # own __init__ does, instead of attrs.evolve (which rebuilds the job and would cost a
        # third of a claim's decoding time).
        object.__setattr__(job, "attempts", attempts)
    return job, None


def _row(job: Job) -> Row:
    """The values of ``_INSERT`` (an empty unique key means none)."""
    return (
        job.id,
        job.queue,
        job.available_at,
        job.attempts,
        job.unique_key or None,
        encode_job(job),
    )


class Store:
    """The queue, as plain blocking calls. Not thread-safe: one thread uses it."""

    def __init__(self, opts: SqliteOptions) -> None:
        self.opts = opts
        self._conn: sqlite3.Connection | None = None
        self._watch: sqlite3.Connection | None = None  # change_mark() only
        self._queues: set[str] = set()  # queue names known to be in mqttq_queues

    # -- connection -----------------------------------------------------------------------------

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise SqliteQueueError(f"SQLite queue driver for {self.opts.path} is not open")
        return self._conn

    def _connect(self) -> sqlite3.Connection:
        try:
            # timeout=0: busy waits are ours (see the module docstring)
            return sqlite3.connect(
                self.opts.path,
                timeout=0,
                isolation_level=None,
                check_same_thread=False,
                cached_statements=256,
            )
        except sqlite3.Error as exc:
            raise translate(exc, self.opts.path) from None

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
        # after a checkpoint, trim a WAL grown by a huge transaction back to this size
        conn.execute(f"PRAGMA journal_size_limit = {8192 * self.opts.wal_autocheckpoint}")
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
        """Run ``fn``, retrying while the database is locked, at most ``busy_timeout`` seconds."""
        deadline: float | None = None
        delay = _BACKOFF_FIRST
        while True:
            try:
                return fn()
            except sqlite3.Error as exc:
                if not is_busy(exc):
                    raise translate(exc, self.opts.path) from None
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self.opts.busy_timeout
                elif now >= deadline:
                    raise SqliteQueueUnavailable(
                        f"SQLite database {self.opts.path} stayed locked for "
                        f"{self.opts.busy_timeout:g} s; is another program holding a transaction?"
                    ) from None
                time.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, _BACKOFF_MAX)

    def _tx(self, fn: Callable[[sqlite3.Connection], T], begin: str) -> T:
        conn = self.conn

        def attempt() -> T:
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

    def _note_queues(self, conn: sqlite3.Connection, queues: Iterable[str]) -> None:
        new = set(queues) - self._queues
        if new:
            conn.executemany(
                "INSERT OR IGNORE INTO mqttq_queues (name) VALUES (?)", [(q,) for q in new]
            )

    def _commit_queues(self, queues: Iterable[str]) -> None:
        self._queues.update(queues)

    # -- producing ------------------------------------------------------------------------------

    def push(self, jobs: Sequence[Job]) -> list[str]:
        ids = [job.id for job in jobs]
        if len(set(ids)) != len(ids):
            dupes = sorted({i for i in ids if ids.count(i) > 1})
            raise DriverError(f"a pushed batch repeats job id(s) {', '.join(dupes[:5])}")
        rows = [_row(j) for j in jobs]
        queues = {j.queue for j in jobs}
        keyed = any(j.unique_key for j in jobs)

        def tx(conn: sqlite3.Connection) -> list[str]:
            try:
                return insert(conn)
            except sqlite3.IntegrityError:
                raise SqliteQueueError(
                    "cannot push: a job with one of these ids is already queued"
                ) from None

        def insert(conn: sqlite3.Connection) -> list[str]:
            self._note_queues(conn, queues)
            if not keyed:
                conn.executemany(_INSERT, rows)
                return ids
            out: list[str] = []
            plain: list[Row] = []
            for row in rows:
                if not row[4]:
                    plain.append(row)
                    out.append(row[0])
                    continue
                if plain:  # keep push order (seq) across keyed and plain jobs
                    conn.executemany(_INSERT, plain)
                    plain = []
                live = conn.execute(
                    "SELECT id FROM mqttq_jobs WHERE unique_key = ?", (row[4],)
                ).fetchone()
                if live is None:
                    conn.execute(_INSERT, row)
                out.append(row[0] if live is None else live[0])
            if plain:
                conn.executemany(_INSERT, plain)
            return out

        out = self.write(tx)
        self._commit_queues(queues)
        return out

    # -- consuming ------------------------------------------------------------------------------

    def probe(self, queues: Sequence[str]) -> tuple[bool, bool, float | None]:
        """Without locking: (a job is ready, a lease has expired, when the next one is due)."""
        conn = self.conn
        now = time.time()
        due: list[float] = []
        ready = expired = False

        def look() -> None:
            nonlocal ready, expired
            for queue in queues:
                row = conn.execute(
                    "SELECT available_at FROM mqttq_jobs WHERE state = 0 AND queue = ? "
                    "ORDER BY available_at LIMIT 1",
                    (queue,),
                ).fetchone()
                if row is not None:
                    ready = ready or row[0] <= now
                    due.append(row[0])
                row = conn.execute(
                    "SELECT lease_until FROM mqttq_jobs WHERE state = 1 AND queue = ? "
                    "ORDER BY lease_until LIMIT 1",
                    (queue,),
                ).fetchone()
                if row is not None:
                    expired = expired or row[0] <= now
                    due.append(row[0])

        self._retrying(look)
        return ready, expired, min(due) if due else None

    def claim(self, queues: Sequence[str], n: int, lease: float, reap: bool) -> list[Job]:
        def tx(conn: sqlite3.Connection) -> list[Row]:
            now = time.time()
            if reap:
                conn.execute(
                    "UPDATE mqttq_jobs SET state = 0, lease_until = NULL "
                    f"WHERE state = 1 AND queue IN ({_marks(len(queues))}) AND lease_until <= ?",
                    (*queues, now),
                )
            rows: list[Row] = []
            for queue in queues:
                if len(rows) >= n:
                    break
                got = conn.execute(_CLAIM, (now + lease, queue, now, n - len(rows))).fetchall()
                got.sort()  # RETURNING has no order: (available_at, seq) is FIFO
                rows += got
            return rows

        jobs: list[Job] = []
        bad: list[tuple[Row, str]] = []
        for row in self.write(tx):
            job, problem = _decode(row[2], row[3], row[4], row[5])
            if problem is None:
                jobs.append(job)
            else:
                bad.append((row, problem))
        if bad:
            self._fail_undecodable(bad)
        return jobs

    def _fail_undecodable(self, bad: list[tuple[Row, str]]) -> None:
        """Never hand out, and never loop on, a job no worker can read: park it as failed."""
        now = time.time()

        def tx(conn: sqlite3.Connection) -> None:
            for (_, _, job_id, queue, attempts, envelope), problem in bad:
                conn.execute("DELETE FROM mqttq_jobs WHERE id = ?", (job_id,))
                conn.execute(
                    f"INSERT OR REPLACE INTO mqttq_failed ({_FAILED_COLS}) VALUES (?,?,?,?,?,?,?)",
                    (
                        job_id,
                        queue,
                        now,
                        attempts,
                        f"cannot decode job envelope: {problem}",
                        "",
                        envelope,
                    ),
                )

        self.write(tx)

    def ack(self, ids: Sequence[str]) -> None:
        self._by_ids("DELETE FROM mqttq_jobs WHERE id IN ({})", (), ids)

    def extend(self, ids: Sequence[str], lease: float) -> None:
        until = time.time() + lease
        self._by_ids(
            "UPDATE mqttq_jobs SET lease_until = ? WHERE state = 1 AND id IN ({})", (until,), ids
        )

    def release(self, ids: Sequence[str]) -> int:
        return self._by_ids(
            "UPDATE mqttq_jobs SET state = 0, lease_until = NULL, attempts = max(attempts - 1, 0) "
            "WHERE state = 1 AND id IN ({})",
            (),
            ids,
        )

    def _by_ids(self, sql: str, params: Row, ids: Sequence[str]) -> int:
        if not ids:
            return 0

        def tx(conn: sqlite3.Connection) -> int:
            changed = 0
            for chunk in _chunks(ids):
                changed += conn.execute(sql.format(_marks(len(chunk))), (*params, *chunk)).rowcount
            return changed

        return self.write(tx)

    def retry(self, job: Job, delay: float, error: str) -> None:
        job = attrs.evolve(job, available_at=time.time() + delay, last_error=error)
        row = _row(job)
        upsert = (
            _INSERT + " ON CONFLICT (id) DO UPDATE SET queue = excluded.queue, state = 0, "
            "available_at = excluded.available_at, lease_until = NULL, "
            "attempts = excluded.attempts, unique_key = excluded.unique_key, "
            "envelope = excluded.envelope"
        )

        def tx(conn: sqlite3.Connection) -> None:
            self._note_queues(conn, (job.queue,))
            try:
                conn.execute(upsert, row)
            except sqlite3.IntegrityError:
                # a new live job took the key after this one was acked: keep both, like push
                conn.execute(upsert, (*row[:4], None, row[5]))

        self.write(tx)
        self._commit_queues((job.queue,))

    def fail(self, job: Job, error: str, traceback: str) -> None:
        now = time.time()
        envelope = encode_job(attrs.evolve(job, last_error=error))

        def tx(conn: sqlite3.Connection) -> None:
            self._note_queues(conn, (job.queue,))
            conn.execute("DELETE FROM mqttq_jobs WHERE id = ?", (job.id,))
            conn.execute(
                f"INSERT OR REPLACE INTO mqttq_failed ({_FAILED_COLS}) VALUES (?,?,?,?,?,?,?)",
                (job.id, job.queue, now, job.attempts, error, traceback, envelope),
            )
            self._expire_failed(conn)

        self.write(tx)
        self._commit_queues((job.queue,))

    # -- inspecting -----------------------------------------------------------------------------

    def _failed_cutoff(self) -> float:
        return time.time() - self.opts.failed_ttl

    def _expire_failed(self, conn: sqlite3.Connection) -> None:
        conn.execute("DELETE FROM mqttq_failed WHERE failed_at < ?", (self._failed_cutoff(),))

    def stats(self) -> dict[str, QueueStats]:
        def tx(conn: sqlite3.Connection) -> dict[str, QueueStats]:
            now = time.time()
            names = [r[0] for r in conn.execute("SELECT name FROM mqttq_queues ORDER BY name")]
            waiting = {
                r[0]: r[1:]
                for r in conn.execute(
                    "SELECT queue, count(*), sum(available_at <= ?), min(available_at) "
                    "FROM mqttq_jobs WHERE state = 0 GROUP BY queue",
                    (now,),
                )
            }
            # a reserved job whose lease ran out counts as ready: the next claim takes it
            reserved = {
                r[0]: r[1:]
                for r in conn.execute(
                    "SELECT queue, count(*), sum(lease_until <= ?1), "
                    "min(CASE WHEN lease_until <= ?1 THEN available_at END) "
                    "FROM mqttq_jobs WHERE state = 1 GROUP BY queue",
                    (now,),
                )
            }
            failed = dict(
                conn.execute(
                    "SELECT queue, count(*) FROM mqttq_failed WHERE failed_at >= ? GROUP BY queue",
                    (self._failed_cutoff(),),
                ).fetchall()
            )
            out = {}
            for name in names:
                total, ready, oldest = waiting.get(name, (0, 0, None))
                leased, expired, oldest_expired = reserved.get(name, (0, 0, None))
                if not ready:
                    oldest = None
                if expired:
                    oldest = min(oldest_expired, oldest or oldest_expired)
                out[name] = QueueStats(
                    ready=ready + expired,
                    delayed=total - ready,
                    reserved=leased - expired,
                    failed=failed.get(name, 0),
                    oldest_ready_age=None if oldest is None else now - oldest,
                )
            return out

        return self.read(tx)

    def size(self, queue: str) -> int:
        def tx(conn: sqlite3.Connection) -> int:
            waiting = conn.execute(
                "SELECT count(*) FROM mqttq_jobs WHERE state = 0 AND queue = ?", (queue,)
            ).fetchone()[0]
            expired = conn.execute(
                "SELECT count(*) FROM mqttq_jobs WHERE state = 1 AND queue = ? "
                "AND lease_until <= ?",
                (queue, time.time()),
            ).fetchone()[0]
            return int(waiting + expired)

        return self.read(tx)

    def get_job(self, job_id: str) -> JobRecord | None:
        failed = self.failed_get(job_id)
        if failed is not None:
            return JobRecord(
                job=failed.job, state="failed", error=failed.error, traceback=failed.traceback
            )
        row = self._retrying(
            lambda: self.conn.execute(
                "SELECT queue, state, available_at, lease_until, attempts, envelope "
                "FROM mqttq_jobs WHERE id = ?",
                (job_id,),
            ).fetchone()
        )
        if row is None:
            return None
        queue, state, available_at, lease_until, attempts, envelope = row
        job, problem = _decode(job_id, queue, attempts, envelope)
        error = None if problem is None else f"cannot decode job envelope: {problem}"
        now = time.time()
        if state == 1 and lease_until > now:
            return JobRecord(job=job, state="reserved", lease_expires_at=lease_until, error=error)
        waiting = "ready" if available_at <= now else "delayed"
        return JobRecord(job=job, state=waiting, error=error)

    # -- failed registry ------------------------------------------------------------------------

    @staticmethod
    def _failed_entry(row: Row) -> FailedJob:
        job_id, queue, failed_at, attempts, error, traceback, envelope = row
        try:
            job = decode_job(envelope)
        except PayloadError:
            job = stub_job(job_id, queue, attempts, envelope, failed_at)
        return FailedJob(job=job, error=error, traceback=traceback, failed_at=failed_at)

    def _failed_where(self, queue: str | None) -> tuple[str, Row]:
        if queue is None:
            return "failed_at >= ?", (self._failed_cutoff(),)
        return "queue = ? AND failed_at >= ?", (queue, self._failed_cutoff())

    def failed_list(self, queue: str | None, offset: int, limit: int) -> list[FailedJob]:
        where, params = self._failed_where(queue)
        rows = self._retrying(
            lambda: self.conn.execute(
                f"SELECT {_FAILED_COLS} FROM mqttq_failed WHERE {where} "
                "ORDER BY failed_at DESC, rowid DESC LIMIT ? OFFSET ?",
                (*params, max(0, limit), max(0, offset)),
            ).fetchall()
        )
        return [self._failed_entry(r) for r in rows]

    def failed_get(self, job_id: str) -> FailedJob | None:
        row = self._retrying(
            lambda: self.conn.execute(
                f"SELECT {_FAILED_COLS} FROM mqttq_failed WHERE id = ? AND failed_at >= ?",
                (job_id, self._failed_cutoff()),
            ).fetchone()
        )
        return None if row is None else self._failed_entry(row)

    def failed_ids(self, queue: str | None) -> list[str]:
        where, params = self._failed_where(queue)
        rows = self._retrying(
            lambda: self.conn.execute(
                f"SELECT id FROM mqttq_failed WHERE {where} ORDER BY failed_at, rowid", params
            ).fetchall()
        )
        return [r[0] for r in rows]

    def failed_requeue(self, ids: Sequence[str]) -> int:
        def tx(conn: sqlite3.Connection) -> int:
            self._expire_failed(conn)
            now = time.time()
            moved = 0
            for job_id in dict.fromkeys(ids):
                row = conn.execute(
                    f"SELECT {_FAILED_COLS} FROM mqttq_failed WHERE id = ?", (job_id,)
                ).fetchone()
                if row is None:
                    continue
                queue, envelope = row[1], row[6]
                key: str | None = None
                with contextlib.suppress(PayloadError):
                    job = attrs.evolve(decode_job(envelope), attempts=0, available_at=now)
                    envelope, key = encode_job(job), job.unique_key or None
                if (
                    key is not None
                    and conn.execute(
                        "SELECT 1 FROM mqttq_jobs WHERE unique_key = ?", (key,)
                    ).fetchone()
                ):
                    key = None  # a live job holds the key: requeue anyway, as a plain job
                try:
                    conn.execute(_INSERT, (job_id, queue, now, 0, key, envelope))
                except sqlite3.IntegrityError:
                    continue  # a live job has this id: leave the failed entry alone
                conn.execute("DELETE FROM mqttq_failed WHERE id = ?", (job_id,))
                moved += 1
            return moved

        return self.write(tx)

    def failed_forget(self, ids: Sequence[str]) -> int:
        def tx(conn: sqlite3.Connection) -> int:
            self._expire_failed(conn)
            changed = 0
            for chunk in _chunks(ids):
                changed += conn.execute(
                    f"DELETE FROM mqttq_failed WHERE id IN ({_marks(len(chunk))})", tuple(chunk)
                ).rowcount
            return changed

        return self.write(tx) if ids else 0

    def failed_purge(self, queue: str | None) -> int:
        def tx(conn: sqlite3.Connection) -> int:
            self._expire_failed(conn)
            if queue is None:
                return conn.execute("DELETE FROM mqttq_failed").rowcount
            return conn.execute("DELETE FROM mqttq_failed WHERE queue = ?", (queue,)).rowcount

        return self.write(tx)

    # -- workers --------------------------------------------------------------------------------

    def worker_heartbeat(self, info: WorkerInfo, ttl: float) -> None:
        now = time.time()
        data = dumps(info)

        def tx(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM mqttq_workers WHERE expires_at <= ?", (now,))
            conn.execute(
                "INSERT OR REPLACE INTO mqttq_workers (id, expires_at, info) VALUES (?, ?, ?)",
                (info.id, now + ttl, data),
            )

        self.write(tx)

    def worker_gone(self, worker_id: str) -> None:
        self.write(lambda c: c.execute("DELETE FROM mqttq_workers WHERE id = ?", (worker_id,)))

    def workers(self) -> list[WorkerInfo]:
        rows = self._retrying(
            lambda: self.conn.execute(
                "SELECT info FROM mqttq_workers WHERE expires_at > ? ORDER BY id", (time.time(),)
            ).fetchall()
        )
        out = []
        for (data,) in rows:
            with contextlib.suppress(PayloadError):  # written by an incompatible version
                out.append(loads(data, WorkerInfo))
        return out
