"""The queue itself: push, claim, settle and cancel jobs, fire schedules, and count them. Runs on
the driver's thread."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence

import attrs

from mqttq.plugin import (
    CancelOutcome,
    DriverError,
    Envelope,
    JobRecord,
    PayloadError,
    QueueStats,
    decode_job,
    encode_job,
)
from mqttq_sqlite._bookkeeping import FAILED_COLS, Bookkeeping, stub_job
from mqttq_sqlite._db import Row, chunks, marks
from mqttq_sqlite._options import SqliteOptions
from mqttq_sqlite._schema import INSERT_JOB
from mqttq_sqlite.errors import SqliteQueueError

_CLAIM = (
    "UPDATE mqttq_jobs SET state = 1, lease_until = ?, attempts = attempts + 1 "
    "WHERE seq IN (SELECT seq FROM mqttq_jobs WHERE state = 0 AND queue = ? AND available_at <= ? "
    "ORDER BY available_at, seq LIMIT ?) "
    "RETURNING available_at, seq, id, queue, attempts, envelope"
)


def _decode(job_id: str, queue: str, attempts: int, envelope: bytes) -> tuple[Envelope, str | None]:
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


def _row(job: Envelope) -> Row:
    """The values of ``INSERT_JOB`` (an empty unique key means none)."""
    return (
        job.id,
        job.queue,
        job.available_at,
        job.attempts,
        job.unique_key or None,
        encode_job(job),
    )


class Store(Bookkeeping):
    """The whole queue, as plain blocking calls. Not thread-safe: one thread uses it."""

    def __init__(self, opts: SqliteOptions) -> None:
        super().__init__(opts)
        self._queues: set[str] = set()  # queue names known to be in mqttq_queues

    def _note_queues(self, conn: sqlite3.Connection, queues: Iterable[str]) -> None:
        new = set(queues) - self._queues
        if new:
            conn.executemany(
                "INSERT OR IGNORE INTO mqttq_queues (name) VALUES (?)", [(q,) for q in new]
            )

    def _commit_queues(self, queues: Iterable[str]) -> None:
        self._queues.update(queues)

    # -- producing ------------------------------------------------------------------------------

    def push(self, jobs: Sequence[Envelope]) -> list[str]:
        insert, queues = self._inserter(jobs)
        out = self.write(insert)
        self._commit_queues(queues)
        return out

    def _inserter(
        self, jobs: Sequence[Envelope]
    ) -> tuple[Callable[[sqlite3.Connection], list[str]], set[str]]:
        """What ``push`` runs inside its transaction (and ``fire_schedule`` inside its own)."""
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
                conn.executemany(INSERT_JOB, rows)
                return ids
            out: list[str] = []
            plain: list[Row] = []
            for row in rows:
                if not row[4]:
                    plain.append(row)
                    out.append(row[0])
                    continue
                if plain:  # keep push order (seq) across keyed and plain jobs
                    conn.executemany(INSERT_JOB, plain)
                    plain = []
                live = conn.execute(
                    "SELECT id FROM mqttq_jobs WHERE unique_key = ?", (row[4],)
                ).fetchone()
                if live is None:
                    conn.execute(INSERT_JOB, row)
                out.append(row[0] if live is None else live[0])
            if plain:
                conn.executemany(INSERT_JOB, plain)
            return out

        return tx, queues

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

    def claim(self, queues: Sequence[str], n: int, lease: float, reap: bool) -> list[Envelope]:
        def tx(conn: sqlite3.Connection) -> list[Row]:
            now = time.time()
            if reap:
                conn.execute(
                    "UPDATE mqttq_jobs SET state = 0, lease_until = NULL "
                    f"WHERE state = 1 AND queue IN ({marks(len(queues))}) AND lease_until <= ?",
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

        jobs: list[Envelope] = []
        bad: list[tuple[Row, str]] = []
        for row in self.write(tx):
            job, problem = _decode(row[2], row[3], row[4], row[5])
            if problem is None:
                jobs.append(job)
            else:
                bad.append((row, problem))
        if bad:
            # the claim is committed: if this fails too (disk full...), those jobs stay reserved
            # until their lease runs out and the claim that meets them next tries again
            with contextlib.suppress(SqliteQueueError):
                self._fail_undecodable(bad)
        return jobs

    def _fail_undecodable(self, bad: list[tuple[Row, str]]) -> None:
        """Never hand out, and never loop on, a job no worker can read: park it as failed."""
        now = time.time()

        def tx(conn: sqlite3.Connection) -> None:
            for (_, _, job_id, queue, attempts, envelope), problem in bad:
                conn.execute("DELETE FROM mqttq_jobs WHERE id = ?", (job_id,))
                conn.execute(
                    f"INSERT OR REPLACE INTO mqttq_failed ({FAILED_COLS}) VALUES (?,?,?,?,?,?,?)",
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
            for chunk in chunks(ids):
                changed += conn.execute(sql.format(marks(len(chunk))), (*params, *chunk)).rowcount
            return changed

        return self.write(tx)

    def retry(self, job: Envelope, delay: float, error: str) -> None:
        job = attrs.evolve(job, available_at=time.time() + delay, last_error=error)
        row = _row(job)
        upsert = (
            INSERT_JOB + " ON CONFLICT (id) DO UPDATE SET queue = excluded.queue, state = 0, "
            "available_at = excluded.available_at, lease_until = NULL, "
            "attempts = excluded.attempts, unique_key = excluded.unique_key, "
            "envelope = excluded.envelope"
        )

        def tx(conn: sqlite3.Connection) -> None:
            if self._is_cancelled(conn, job.id):
                return  # a cancelled job is never stored again
            self._note_queues(conn, (job.queue,))
            try:
                conn.execute(upsert, row)
            except sqlite3.IntegrityError:
                # a new live job took the key after this one was acked: keep both, like push
                conn.execute(upsert, (*row[:4], None, row[5]))

        self.write(tx)
        self._commit_queues((job.queue,))

    def fail(self, job: Envelope, error: str, traceback: str) -> None:
        now = time.time()
        envelope = encode_job(attrs.evolve(job, last_error=error))

        def tx(conn: sqlite3.Connection) -> None:
            if self._is_cancelled(conn, job.id):
                return  # it stays cancelled
            self._note_queues(conn, (job.queue,))
            conn.execute("DELETE FROM mqttq_jobs WHERE id = ?", (job.id,))
            conn.execute(
                f"INSERT OR REPLACE INTO mqttq_failed ({FAILED_COLS}) VALUES (?,?,?,?,?,?,?)",
                (job.id, job.queue, now, job.attempts, error, traceback, envelope),
            )
            self._expire_failed(conn)

        self.write(tx)
        self._commit_queues((job.queue,))

    # -- inspecting -----------------------------------------------------------------------------

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
                    "SELECT queue, count(*), sum(lease_until <= ?), "
                    "min(CASE WHEN lease_until <= ? THEN available_at END) "
                    "FROM mqttq_jobs WHERE state = 1 GROUP BY queue",
                    (now, now),
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
            return self._cancelled_record(job_id)
        queue, state, available_at, lease_until, attempts, envelope = row
        job, problem = _decode(job_id, queue, attempts, envelope)
        error = None if problem is None else f"cannot decode job envelope: {problem}"
        now = time.time()
        if state == 1 and lease_until > now:
            return JobRecord(job=job, state="reserved", lease_expires_at=lease_until, error=error)
        waiting = "ready" if available_at <= now else "delayed"
        return JobRecord(job=job, state=waiting, error=error)

    # -- cancellation ---------------------------------------------------------------------------

    def _is_cancelled(self, conn: sqlite3.Connection, job_id: str) -> bool:
        row = conn.execute(
            "SELECT 1 FROM mqttq_cancelled WHERE id = ? AND cancelled_at >= ?",
            (job_id, self._failed_cutoff()),
        ).fetchone()
        return row is not None

    def cancel(self, job_id: str) -> CancelOutcome:
        def tx(conn: sqlite3.Connection) -> CancelOutcome:
            now = time.time()
            conn.execute(
                "DELETE FROM mqttq_cancelled WHERE cancelled_at < ?", (now - self.opts.failed_ttl,)
            )
            if self._is_cancelled(conn, job_id):
                return "already"
            row = conn.execute(
                "DELETE FROM mqttq_jobs WHERE id = ? RETURNING queue, state, lease_until, "
                "attempts, envelope",
                (job_id,),
            ).fetchone()
            if row is None:
                failed = conn.execute(
                    "SELECT 1 FROM mqttq_failed WHERE id = ? AND failed_at >= ?",
                    (job_id, self._failed_cutoff()),
                ).fetchone()
                return "failed" if failed else "unknown"
            queue, state, lease_until, attempts, envelope = row
            conn.execute(
                "INSERT OR REPLACE INTO mqttq_cancelled (id, queue, cancelled_at, attempts, "
                "envelope) VALUES (?, ?, ?, ?, ?)",
                (job_id, queue, now, attempts, envelope),
            )
            return "stopping" if state == 1 and lease_until > now else "cancelled"

        return self.write(tx)

    def cancelled(self, ids: Sequence[str]) -> list[str]:
        cutoff = self._failed_cutoff()
        found: set[str] = set()
        for chunk in chunks(ids):

            def look(chunk: Sequence[str] = chunk) -> list[Row]:
                return self.conn.execute(
                    f"SELECT id FROM mqttq_cancelled WHERE id IN ({marks(len(chunk))}) "
                    "AND cancelled_at >= ?",
                    (*chunk, cutoff),
                ).fetchall()

            found.update(r[0] for r in self._retrying(look))
        return [job_id for job_id in ids if job_id in found]

    def _cancelled_record(self, job_id: str) -> JobRecord | None:
        row = self._retrying(
            lambda: self.conn.execute(
                "SELECT queue, attempts, envelope FROM mqttq_cancelled "
                "WHERE id = ? AND cancelled_at >= ?",
                (job_id, self._failed_cutoff()),
            ).fetchone()
        )
        if row is None:
            return None
        job, _ = _decode(job_id, row[0], row[1], row[2])
        return JobRecord(job=job, state="cancelled")

    # -- schedules --------------------------------------------------------------------------------

    def fire_schedule(self, name: str, slot: float, job: Envelope) -> str | None:
        insert, queues = self._inserter([job])

        def tx(conn: sqlite3.Connection) -> str | None:
            mark = conn.execute(
                "SELECT slot FROM mqttq_schedules WHERE name = ?", (name,)
            ).fetchone()
            if mark is not None and slot <= mark[0]:
                return None
            [job_id] = insert(conn)
            conn.execute(
                "INSERT INTO mqttq_schedules (name, slot, fired_at) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET slot = excluded.slot, "
                "fired_at = excluded.fired_at",
                (name, slot, time.time()),
            )
            return job_id

        out = self.write(tx)
        self._commit_queues(queues)
        return out

    def schedule_marks(self) -> dict[str, float]:
        rows = self._retrying(
            lambda: self.conn.execute("SELECT name, slot FROM mqttq_schedules").fetchall()
        )
        return {name: float(slot) for name, slot in rows}
