"""Jobs for the real-process tests. Each run appends one line to $MQTTQ_TEST_RECORD.

A line is ``<event> <key> <pid> <unix time>``; O_APPEND writes of one short line are atomic, so
several worker processes can share the file, and a kill -9 never leaves half a line.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import mqttq


def _record(event: str, key: str) -> None:
    line = f"{event} {key} {os.getpid()} {time.time():.6f}\n".encode()
    fd = os.open(os.environ["MQTTQ_TEST_RECORD"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def work(key: str, seconds: float = 0.0) -> None:
    """Records its start, sleeps ``seconds`` (the job's work), records its end."""
    _record("start", key)
    time.sleep(seconds)
    _record("end", key)


@mqttq.job(max_tries=3, backoff=mqttq.Backoff(base=0.3, factor=2, jitter=0))
def flaky(key: str, flag: str) -> None:
    """Fails until the file ``flag`` exists."""
    _record("start", key)
    if not Path(flag).exists():
        raise RuntimeError(f"flag {flag} missing")
    _record("end", key)


def read_records(path: Path) -> list[tuple[str, str, int, float]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        event, key, pid, when = line.split()
        out.append((event, key, int(pid), float(when)))
    return out
