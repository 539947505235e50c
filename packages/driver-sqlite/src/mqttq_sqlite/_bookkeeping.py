"""The failed registry and worker heartbeats (tables ``mqttq_failed`` and ``mqttq_workers``)."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Sequence

import attrs

from mqttq.plugin import (
    Envelope,
    FailedJob,
    PayloadError,
    WorkerInfo,
    decode_job,
    dumps,
    encode_job,
    loads,
)
from mqttq_sqlite._db import Database, Row, chunks, marks
from mqttq_sqlite._schema import INSERT_JOB

FAILED_COLS = "id, queue, failed_at, attempts, error, traceback, envelope"


def stub_job(job_id: str, queue: str, attempts: int, envelope: bytes, when: float) -> Envelope:
    """Stands in for a job whose envelope cannot be decoded (e.g. from a newer mqttq)."""
    name = "<undecodable>"
    with contextlib.suppress(ValueError, UnicodeDecodeError):
        raw = json.loads(envelope)
        if isinstance(raw, dict) and isinstance(raw.get("name"), str):
            name = raw["name"]
    return Envelope(
        id=job_id, name=name, queue=queue, attempts=attempts, enqueued_at=when, available_at=when
    )


class Bookkeeping(Database):
    """Failed jobs (expiring after ``failed_ttl``) and live workers, as blocking calls."""

    def _failed_cutoff(self) -> float:
        return time.time() - self.opts.failed_ttl

    def _expire_failed(self, conn: sqlite3.Connection) -> None:
        conn.execute("DELETE FROM mqttq_failed WHERE failed_at < ?", (self._failed_cutoff(),))

    # -- failed registry ------------------------------------------------------------------------

    @staticmethod
    def _failed_entry(row: Row) -> FailedJob:
        job_id, queue, failed_at, attempts, error, traceback, envelope = row
        raw = None
        try:
            job = decode_job(envelope)
        except PayloadError:
            job, raw = stub_job(job_id, queue, attempts, envelope, failed_at), bytes(envelope)
        return FailedJob(job=job, error=error, traceback=traceback, failed_at=failed_at, raw=raw)

    def _failed_where(self, queue: str | None) -> tuple[str, Row]:
        if queue is None:
            return "failed_at >= ?", (self._failed_cutoff(),)
        return "queue = ? AND failed_at >= ?", (queue, self._failed_cutoff())

    def failed_list(self, queue: str | None, offset: int, limit: int) -> list[FailedJob]:
        where, params = self._failed_where(queue)
        rows = self._retrying(
            lambda: self.conn.execute(
                f"SELECT {FAILED_COLS} FROM mqttq_failed WHERE {where} "
                "ORDER BY failed_at DESC, rowid DESC LIMIT ? OFFSET ?",
                (*params, max(0, limit), max(0, offset)),
            ).fetchall()
        )
        return [self._failed_entry(r) for r in rows]

    def failed_get(self, job_id: str) -> FailedJob | None:
        row = self._retrying(
            lambda: self.conn.execute(
                f"SELECT {FAILED_COLS} FROM mqttq_failed WHERE id = ? AND failed_at >= ?",
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
                    f"SELECT {FAILED_COLS} FROM mqttq_failed WHERE id = ?", (job_id,)
                ).fetchone()
                if row is None:
                    continue
                queue, envelope = row[1], row[6]
                try:
                    job = attrs.evolve(decode_job(envelope), attempts=0, available_at=now)
                except PayloadError:
                    continue  # no worker could read it: it stays where it can be looked at
                envelope, key = encode_job(job), job.unique_key or None
                if (
                    key is not None
                    and conn.execute(
                        "SELECT 1 FROM mqttq_jobs WHERE unique_key = ?", (key,)
                    ).fetchone()
                ):
                    key = None  # a live job holds the key: requeue anyway, as a plain job
                try:
                    conn.execute(INSERT_JOB, (job_id, queue, now, 0, key, envelope))
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
            for chunk in chunks(ids):
                changed += conn.execute(
                    f"DELETE FROM mqttq_failed WHERE id IN ({marks(len(chunk))})", tuple(chunk)
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
