"""``template://<store>``: the smallest queue driver that passes mqttq's conformance kit.

It keeps jobs in the process (drivers opened on one store name share it) and declares no
optional capability: it stores jobs and counts them, and the kit skips the tests of everything
else. Make it yours by storing jobs in your backend and adding capabilities one at a time
(``Capability.CLAIM`` first: claim, ack, extend, retry, release), each once the kit's tests of
it pass. The contract is in ``mqttq/interfaces.py``; the guide is docs/plugins/writing-a-driver.md
in the mqttq repository.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, ClassVar, Self
from urllib.parse import urlsplit

from mqttq.plugin import (
    Capability,
    ConfigError,
    DriverError,
    Envelope,
    QueueDriver,
    QueueStats,
    encode_job,
)

#: the options mqttq passes to every driver: failed_ttl, and create=False for the commands that
#: only look (nothing to create here)
OPTIONS = frozenset({"failed_ttl", "create"})


class TemplateQueueDriver(QueueDriver):
    schemes = ("template",)
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    #: per store, job id -> (queue, available_at, the envelope as encode_job wrote it)
    _stores: ClassVar[dict[str, dict[str, tuple[str, float, bytes]]]] = {}

    def __init__(self, store: str = "", *, failed_ttl: float = 7 * 86400) -> None:
        self.failed_ttl = failed_ttl
        self._jobs = self._stores.setdefault(store, {})

    @classmethod
    def from_url(cls, url: str, /, **options: Any) -> Self:
        """No I/O here: parse and check, then :meth:`open` connects."""
        parts = urlsplit(url)
        if parts.scheme != "template":
            raise ConfigError(f"not a template:// URL: {url!r}")
        unknown = sorted(set(options) - OPTIONS)
        if unknown:
            raise ConfigError(f"unknown template driver option(s): {', '.join(unknown)}")
        return cls(parts.netloc + parts.path, failed_ttl=float(options.get("failed_ttl", 604800)))

    async def push(self, jobs: Sequence[Envelope]) -> list[str]:
        """All or nothing; an id that is already stored (or twice in the batch) is refused, and
        so is a job that cannot be encoded (``encode_job`` raises ``PayloadError``)."""
        ids = [job.id for job in jobs]
        if len(set(ids)) != len(ids) or any(job_id in self._jobs for job_id in ids):
            raise DriverError("a job with one of these ids is already queued: nothing was pushed")
        bodies = [encode_job(job) for job in jobs]  # all of them before storing any
        for job, body in zip(jobs, bodies, strict=True):
            self._jobs[job.id] = (job.queue, job.available_at, body)
        return ids

    async def stats(self) -> dict[str, QueueStats]:
        now = time.time()
        out: dict[str, QueueStats] = {}
        for queue in sorted({q for q, _, _ in self._jobs.values()}):
            times = [at for q, at, _ in self._jobs.values() if q == queue]
            due = [at for at in times if at <= now]
            out[queue] = QueueStats(
                ready=len(due),
                delayed=len(times) - len(due),
                oldest_ready_age=now - min(due) if due else None,
            )
        return out
