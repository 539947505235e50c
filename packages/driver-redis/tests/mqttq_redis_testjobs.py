"""Jobs for the worker-process tests. Each run appends ``<event> <key> <pid> <time>`` to the
file named by $MQTTQ_TEST_RECORD (one short O_APPEND write: atomic, even across a kill -9)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any


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


def read_records(path: Path) -> list[tuple[str, str, int, float]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        event, key, pid, when = line.split()
        out.append((event, key, int(pid), float(when)))
    return out


def reading(device_id: str, message: Any) -> None:
    """Route job of the end-to-end test: records ``reading <i> <pid> <time>``."""
    _record("reading", str(message.payload["i"]))
