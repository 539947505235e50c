"""Helpers of the RQ process tests."""

from __future__ import annotations

from pathlib import Path

from mqttq.testing.services import RedisServer


def rq_url(server: RedisServer) -> str:
    """The ``rq+redis://`` URL of a test server."""
    return "rq+" + server.url


def _stat(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/stat").read_bytes().rpartition(b")")[2].split()
    except OSError:
        return []


def parent_of(pid: int) -> int:
    """The parent of running process ``pid`` (0 when it is gone)."""
    fields = _stat(pid)
    return int(fields[1]) if fields else 0


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie does not)."""
    fields = _stat(pid)
    return bool(fields) and fields[0] != b"Z"
