"""Jobs for the RQ process tests. Each run appends one JSON line to ``$RQ_TEST_RECORD``
(one ``O_APPEND`` write: several processes share the file)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import orjson
from rq.job import get_current_job

import mqttq
from mqttq import Backoff, Message, job


def record(event: str, **fields: Any) -> None:
    current = get_current_job()
    line = {
        "event": event,
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "at": time.time(),
        "rq_queue": current.origin if current is not None else None,
        "rq_id": current.id if current is not None else None,
        **fields,
    }
    fd = os.open(os.environ["RQ_TEST_RECORD"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, orjson.dumps(line, default=lambda b: b.hex()) + b"\n")
    finally:
        os.close(fd)


def records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


@job
def reading(message: Message, device_id: str) -> None:
    """A route job: records what it was given."""
    record(
        "reading",
        device_id=device_id,
        is_message=isinstance(message, Message),
        topic=message.topic,
        payload=message.payload,
    )


@job
def slow_reading(message: Message, device_id: str) -> None:
    """A route job that takes 2 s."""
    record("start", key=device_id)
    time.sleep(2.0)
    record("end", key=device_id)


@job
def sleepy(key: str, seconds: float = 0.0) -> None:
    record("start", key=key)
    time.sleep(seconds)
    record("end", key=key)


@job(max_tries=3, backoff=Backoff(base=1.0, factor=2.0, jitter=0.0))
def twice_then_ok(key: str) -> None:
    """Fails on its first two runs, succeeds on the third."""
    runs = sum(1 for r in records(Path(os.environ["RQ_TEST_RECORD"])) if r.get("key") == key)
    record("start", key=key)
    if runs < 2:
        raise RuntimeError(f"run {runs + 1} of {key} fails on purpose")
    record("end", key=key)


@job(max_tries=2, backoff=Backoff(base=0.5, jitter=0.0))
def always_fails(key: str) -> None:
    record("start", key=key)
    raise ValueError(f"{key} always fails")


@job(max_tries=3, backoff=Backoff(base=0.5, jitter=0.0))
def slow_with_retries(key: str, seconds: float) -> None:
    record("start", key=key)
    time.sleep(seconds)
    record("end", key=key)


def failed_for_good(job: Any, error: str) -> None:
    record("on_failure", key=job.kwargs.get("key"), error=error, attempts=job.attempts)


@job(max_tries=2, backoff=Backoff(base=0.2, jitter=0.0), on_failure=failed_for_good)
def fails_with_callback(key: str) -> None:
    record("start", key=key)
    raise RuntimeError("nope")


@job
async def fan_out(key: str, n: int) -> None:
    """Pushes ``n`` follow-up jobs from inside the job (``mqttq.dispatch``)."""
    current = mqttq.current_job()
    record("fan_out", key=key, job_id=current.id if current is not None else None)
    for i in range(n):
        await mqttq.dispatch("rq_testjobs:sleepy", kwargs={"key": f"{key}-{i}"})
