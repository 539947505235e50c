"""Jobs the kit's process scenarios run. Each run appends ``<event> <key> <pid> <unix time>`` to
the file named by ``$MQTTQ_TEST_RECORD``: one short ``O_APPEND`` write, so several worker
processes can share the file and a kill -9 never leaves half a line.

Register them with ``[jobs] modules = ["mqttq.testing.jobs"]``.
"""

from __future__ import annotations

import collections
import os
import time
from pathlib import Path
from typing import Any

from mqttq.jobs import job
from mqttq.models import Backoff

RECORD = "MQTTQ_TEST_RECORD"

Record = tuple[str, str, int, float]


def record(event: str, key: str) -> None:
    line = f"{event} {key} {os.getpid()} {time.time():.6f}\n".encode()
    fd = os.open(os.environ[RECORD], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


@job
def work(key: str, seconds: float = 0.0) -> None:
    """Records its start, sleeps ``seconds`` (the job's work), records its end."""
    record("start", key)
    time.sleep(seconds)
    record("end", key)


@job(max_tries=3, backoff=Backoff(base=0.3, factor=2, jitter=0))
def flaky(key: str, flag: str) -> None:
    """Fails until the file ``flag`` exists."""
    record("start", key)
    if not Path(flag).exists():
        raise RuntimeError(f"flag {flag} missing")
    record("end", key)


@job
def reading(message: Any, **params: str) -> None:
    """A route job: records ``reading <payload["i"]>``."""
    record("reading", str(message.payload["i"]))


def read_records(path: Path) -> list[Record]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        event, key, pid, when = line.split()
        out.append((event, key, int(pid), float(when)))
    return out


def ends(path: Path) -> collections.Counter[str]:
    """How many times each key's job ran to its end."""
    return collections.Counter(k for e, k, _, _ in read_records(path) if e == "end")
