"""A queue on a small file system that fills up: nothing is lost, and a few MB freed are enough.

Each test mounts its own 16 MiB tmpfs (root only) and fills most of it with a filler file, which
it then shrinks to free space.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sqlite3
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import orjson
import pytest

from mqttq.config import MqttConfig
from mqttq.testing import WorkerEnv, eventually, make_job
from mqttq.testing.jobs import read_records
from mqttq.testing.services import Mosquitto
from mqttq.transports.mqtt import MqttTransport
from mqttq_sqlite import SqliteQueueUnavailable
from mqttq_sqlite.driver import SqliteQueueDriver

MiB = 1 << 20
PAD = "x" * 1000  # ~1 KB per job: the disk fills after a few thousand
#: the WAL with default options: about 1000 pages (4 MiB), plus what accrues while the disk is
#: too full for a checkpoint to complete
WAL_BOUND = 6 * MiB


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.fail(
            "this test needs root to mount a 16 MiB tmpfs (mount -t tmpfs): "
            f"{mounted.stderr.strip()}"
        )
    try:
        yield disk
    finally:
        if subprocess.run(["umount", str(disk)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(disk)], check=False)


def free_bytes(disk: Path) -> int:
    st = os.statvfs(disk)
    return st.f_bavail * st.f_frsize


def fill(disk: Path, leave: int) -> Path:
    """A filler file taking all but ``leave`` bytes of the disk."""
    filler = disk / "filler"
    with filler.open("wb") as f:
        os.posix_fallocate(f.fileno(), 0, free_bytes(disk) - leave)
    return filler


def shrink(filler: Path, by: int) -> None:
    os.truncate(filler, filler.stat().st_size - by)


def file_size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


async def until_full(push: Callable[[], Awaitable[object]]) -> None:
    """Push until the disk is full (far fewer than 50,000 jobs fill it)."""
    for _ in range(50_000):
        try:
            await push()
        except SqliteQueueUnavailable as exc:
            assert "disk is full" in str(exc)  # noqa: PT017
            return
    pytest.fail("the disk never filled up")


def stored_ids(db: Path) -> set[str]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return {r[0] for r in conn.execute("SELECT id FROM mqttq_jobs")}


async def test_a_full_disk_loses_nothing_and_a_few_mb_freed_are_enough(small_disk: Path) -> None:
    db = small_disk / "queue.db"
    wal = Path(f"{db}-wal")
    stored: list[str] = []
    biggest_wal = 0
    async with SqliteQueueDriver.from_url(f"sqlite:///{db}") as driver:

        async def push_one() -> None:
            nonlocal biggest_wal
            job = make_job("q", kwargs={"pad": PAD})
            await driver.push([job])
            stored.append(job.id)
            biggest_wal = max(biggest_wal, file_size(wal))

        await push_one()
        filler = fill(small_disk, leave=10 * MiB)
        await until_full(push_one)
        before = len(stored)
        assert before > 1000, f"only {before} jobs of 1 KB fit in 10 MiB"
        refused = [make_job("q", kwargs={"pad": PAD}) for _ in range(50)]
        with pytest.raises(SqliteQueueUnavailable, match="disk is full"):
            await driver.push(refused)

        shrink(filler, by=3 * MiB)
        for _ in range(1000):  # ~1 MB more, one commit each: every push succeeds at once
            await push_one()

        assert await driver.size("q") == len(stored) == before + 1000
    assert stored_ids(db) == set(stored), "a job pushed before or after the full disk is missing"
    assert biggest_wal <= WAL_BOUND, f"the WAL grew to {biggest_wal / MiB:.1f} MiB"


async def counts(driver: SqliteQueueDriver) -> tuple[int, int, int, int]:
    s = (await driver.stats())["q"]
    return s.ready, s.delayed, s.reserved, s.failed


async def test_a_write_on_a_full_disk_changes_nothing(small_disk: Path) -> None:
    """Each kind of write fails whole on a full disk, and works again once space is back."""
    db = small_disk / "queue.db"
    async with SqliteQueueDriver.from_url(f"sqlite:///{db}") as driver:
        await driver.push([make_job("q", kwargs={"pad": PAD}) for _ in range(2000)])
        claimed = await driver.claim(["q"], 1500, lease=600)
        # to the brim, one small job at a time: the WAL has no reusable room left either
        filler = fill(small_disk, leave=MiB)
        await until_full(lambda: driver.push([make_job("q", kwargs={"pad": PAD})]))
        before = await counts(driver)
        big = "y" * 200_000  # every attempt needs far more than a page or two
        attempts: dict[str, Callable[[], Awaitable[object]]] = {
            "push": lambda: driver.push([make_job("q", kwargs={"pad": big}) for _ in range(3)]),
            "ack": lambda: driver.ack([j.id for j in claimed[:500]]),
            "fail": lambda: driver.fail(claimed[500], error="boom", traceback=big),
            "retry": lambda: driver.retry(claimed[501], delay=0, error=big),
            "release": lambda: driver.release([j.id for j in claimed[502:]]),
        }
        for name, attempt in attempts.items():
            try:
                await attempt()
            except SqliteQueueUnavailable as exc:
                assert "disk is full" in str(exc), name  # noqa: PT017
            else:
                pytest.fail(f"{name} succeeded on a full disk")
        assert await counts(driver) == before
        assert await driver.failed_list() == []
        record = await driver.get_job(claimed[501].id)
        assert record is not None
        assert record.state == "reserved"

        shrink(filler, by=4 * MiB)
        await driver.ack([j.id for j in claimed])
        assert await counts(driver) == (before[0], 0, 0, 0)


# -- a real listener ------------------------------------------------------------------------------


async def publish(url: str, first: int, n: int) -> None:
    """QoS 1, one at a time (the listener gets small batches: many small commits)."""
    async with MqttTransport(MqttConfig(url=url, client_id="full-disk-publisher")) as pub:
        for i in range(first, first + n):
            payload = orjson.dumps({"i": i, "pad": PAD})
            await pub.publish(f"fill/d{i % 4}/reading", payload, qos=1)


#: ``2026-01-01 12:00:00,000 WARNING mqttq.listener: message``
LOG_LINE = re.compile(r"\S+ \S+ (?P<level>[A-Z]+) (?P<logger>[\w.]+): (?P<message>.*)")


def log_records(log: Path) -> list[tuple[str, str, str]]:
    """(level, logger, message) of each log line (continuation lines are left out)."""
    return [
        (m["level"], m["logger"], m["message"])
        for m in map(LOG_LINE.match, log.read_text().splitlines())
        if m
    ]


def outage_lines(log: Path, level: str = "WARNING") -> list[str]:
    return [m for lv, _, m in log_records(log) if lv == level and "queue unavailable" in m]


async def test_the_listener_holds_messages_while_the_disk_is_full(
    small_disk: Path, tmp_path: Path
) -> None:
    """``mqttq listen`` on a disk that fills up: messages stay unacked, a few MB freed bring it
    back, every message becomes a job, and the log tells the outage in two lines."""
    db = small_disk / "queue.db"
    (tmp_path / "mosquitto").mkdir()
    broker = Mosquitto(tmp_path / "mosquitto")
    broker.start()
    env = WorkerEnv(tmp_path, f"sqlite:///{db}", lease=10)
    env.write_config(
        extra=f"""
[mqtt]
url = "{broker.url}"
client_id = "full-disk-listener"

[[routes]]
topic = "fill/{{device_id}}/reading"
job = "mqttq.testing.jobs:reading"
queue = "readings"
payload = "json"
"""
    )

    def queued() -> int:
        return len(stored_ids(db)) if db.exists() else 0

    def caught_up(sent: int, log: Path) -> Callable[[], bool]:
        return lambda: queued() == sent or bool(outage_lines(log))

    try:
        with env.start("--debug", "listen") as proc:  # retries show as debug lines
            log: Path = proc.log_path  # type: ignore[attr-defined]
            await eventually(
                lambda: "listening: " in log.read_text(), timeout=30, what="the listener"
            )
            await publish(broker.url, 0, 1)
            await eventually(lambda: queued() == 1, timeout=30, what="the first job")
            filler = fill(small_disk, leave=10 * MiB)
            sent = 1
            while not outage_lines(log):
                assert sent < 50_000, "the disk never filled up"
                await publish(broker.url, sent, 200)
                sent += 200
                await eventually(
                    caught_up(sent, log),
                    timeout=30,
                    what="the listener to queue what was sent, or to find the disk full",
                )
            await publish(broker.url, sent, 100)  # held by the broker while the disk is full
            sent += 100
            await eventually(
                lambda: len(outage_lines(log, "DEBUG")) >= 3,
                timeout=30,
                what="the listener to retry a few times",
            )
            assert queued() < sent
            assert proc.poll() is None, log.read_text()

            shrink(filler, by=3 * MiB)
            await eventually(lambda: queued() == sent, timeout=60, what="every message queued")
            await eventually(
                lambda: len(outage_lines(log)) >= 2, timeout=30, what="the end of the outage"
            )
            await publish(broker.url, sent, 500)  # ~0.5 MB more, in many small commits
            sent += 500
            await eventually(lambda: queued() == sent, timeout=60, what="the later messages")
            wal = file_size(Path(f"{db}-wal"))
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0, log.read_text()
    finally:
        broker.kill()
    start, end = outage_lines(log)  # exactly one outage, told in two warnings
    assert "further retries are logged at debug level" in start
    assert "disk is full" in start
    assert "back after" in end
    retries = outage_lines(log, "DEBUG")
    assert len(retries) >= 3
    assert f"({len(retries) + 1} failed tries)" in end
    records = log_records(log)
    # each failed try is one listener line, and the driver logs nothing of its own
    assert [m for _, _, m in records if "disk is full" in m] == [start, *retries]
    assert [r for r in records if "sqlite" in r[1]] == []
    assert [r for r in records if r[0] in ("ERROR", "CRITICAL")] == []
    assert "Traceback" not in log.read_text()
    assert wal <= WAL_BOUND, f"the WAL grew to {wal / MiB:.1f} MiB"

    result = await asyncio.to_thread(
        env.run, "worker", "--burst", "--queue", "readings", timeout=120
    )
    assert result.returncode == 0, result.stderr
    got = sorted(int(key) for event, key, _, _ in read_records(env.records) if event == "reading")
    assert got == list(range(sent)), "a message did not become exactly one job"
