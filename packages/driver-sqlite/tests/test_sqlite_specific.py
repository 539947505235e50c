"""What the conformance suite cannot see: the file, the schema, several processes, bad data."""

from __future__ import annotations

import asyncio
import importlib
import multiprocessing
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType

import pytest

from mqttq.codec import decode_job
from mqttq.errors import (
    ConfigError,
    DriverError,
    DriverUnavailable,
    PayloadError,
    QueueNotFoundError,
)
from mqttq.models import Envelope
from mqttq.testing import eventually, make_job
from mqttq_sqlite import SchemaVersionError
from mqttq_sqlite._schema import SCHEMA_VERSION
from mqttq_sqlite.driver import SqliteQueueDriver

SPAWN = multiprocessing.get_context("spawn")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "queue.db"


@pytest.fixture
def url(db: Path) -> str:
    return f"sqlite:///{db}"  # an absolute path: sqlite:////tmp/.../queue.db


@pytest.fixture
async def driver(url: str) -> AsyncIterator[SqliteQueueDriver]:
    async with SqliteQueueDriver.from_url(url) as d:
        yield d


@pytest.fixture
def children(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The child-process entry points, importable by spawned interpreters (they get sys.path)."""
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    return importlib.import_module("sqlite_children")


def _sql(db: Path, statement: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(statement, params).fetchall()


def _run(procs: list[multiprocessing.process.BaseProcess], errors: list[Path]) -> None:
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    for p in procs:
        if p.is_alive():
            p.kill()
    problems = [e.read_text() for e in errors if e.exists()]
    assert problems == [], "a child process failed:\n" + "\n".join(problems)
    assert [p.exitcode for p in procs] == [0] * len(procs)


# -- URL and options ------------------------------------------------------------------------------


def test_url_forms_and_options(tmp_path: Path) -> None:
    assert SqliteQueueDriver.from_url("sqlite:///rel/q.db").path == "rel/q.db"
    absolute = SqliteQueueDriver.from_url(f"sqlite:///{tmp_path}/q.db?synchronous=FULL")
    assert absolute.path == f"{tmp_path}/q.db"
    assert absolute.options.synchronous == "full"
    d = SqliteQueueDriver.from_url("sqlite:///q.db?busy_timeout=2", failed_ttl=60, poll_max=0.05)
    assert (d.options.busy_timeout, d.options.failed_ttl, d.options.poll_max) == (2.0, 60.0, 0.05)
    assert SqliteQueueDriver.from_url("sqlite:///q.db").options.poll_idle == 0.05
    slow = SqliteQueueDriver.from_url("sqlite:///q.db?poll_max=0.2")  # poll_idle follows it
    assert (slow.options.poll_max, slow.options.poll_idle) == (0.2, 0.2)
    assert not (tmp_path / "q.db").exists(), "from_url must not touch the file"


@pytest.mark.parametrize(
    ("url", "options", "message"),
    [
        ("redis://x/0", {}, "not a sqlite"),
        ("sqlite://host/q.db", {}, "has a host"),
        ("sqlite:///", {}, "names no database"),
        ("sqlite:///:memory:", {}, "memory://"),
        ("sqlite:///q.db?colour=red", {}, "unknown sqlite driver option"),
        ("sqlite:///q.db", {"failed_ttl": -1}, "must be positive"),
        ("sqlite:///q.db?busy_timeout=soon", {}, "not a number"),
        ("sqlite:///q.db", {"synchronous": "off"}, "choose one of"),
        ("sqlite:///q.db?create=maybe", {}, "use true or false"),
        ("sqlite:///q.db?journal_size_limit=-1", {}, "must not be negative"),
        ("sqlite:///q.db?journal_size_limit=big", {}, "not a whole number"),
        ("sqlite:///q.db?poll_min=0.02", {}, "poll_min <= poll_max <= poll_idle"),
        ("sqlite:///q.db?poll_idle=0.005", {}, "poll_min <= poll_max <= poll_idle"),
    ],
)
def test_bad_urls_and_options_are_config_errors(
    url: str, options: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        SqliteQueueDriver.from_url(url, **options)


# -- the file -------------------------------------------------------------------------------------


async def test_wal_and_schema_version_are_recorded(db: Path, url: str) -> None:
    async with SqliteQueueDriver.from_url(url, synchronous="full", wal_autocheckpoint=500) as d:
        await d.push([make_job("q")])

        def pragma(name: str) -> object:
            return d._store.conn.execute(f"PRAGMA {name}").fetchone()[0]

        assert await d._call(lambda: pragma("synchronous")) == 2  # FULL
        assert await d._call(lambda: pragma("wal_autocheckpoint")) == 500
        assert await d._call(lambda: pragma("journal_size_limit")) == 500 * 4096
    assert _sql(db, "PRAGMA journal_mode") == [("wal",)]
    version = _sql(db, "SELECT value FROM mqttq_meta WHERE key = 'schema_version'")
    assert version == [(str(SCHEMA_VERSION),)]


@pytest.mark.parametrize(
    ("options", "checkpoint", "limit"),
    [({}, 1000, 1000 * 4096), ({"journal_size_limit": "65536"}, 1000, 65536)],
)
async def test_the_wal_is_kept_small(
    db: Path, url: str, options: dict[str, object], checkpoint: int, limit: int
) -> None:
    async with SqliteQueueDriver.from_url(url, **options) as d:

        def pragma(name: str) -> object:
            return d._store.conn.execute(f"PRAGMA {name}").fetchone()[0]

        assert await d._call(lambda: pragma("wal_autocheckpoint")) == checkpoint
        assert await d._call(lambda: pragma("journal_size_limit")) == limit
        # one huge transaction grows the WAL; the next checkpoint cuts it back to the limit
        await d.push([make_job("q", kwargs={"pad": "x" * 1000}) for _ in range(20_000)])
        assert Path(f"{db}-wal").stat().st_size > 20 * 2**20
        for _ in range(2):  # the WAL restarts at the first write after a checkpoint
            await d.push([make_job("q")])
            await d._call(lambda: pragma("wal_checkpoint"))
        await d.push([make_job("q")])
        assert Path(f"{db}-wal").stat().st_size <= limit


async def test_newer_schema_is_refused(db: Path, url: str) -> None:
    async with SqliteQueueDriver.from_url(url):
        pass
    _sql(db, "UPDATE mqttq_meta SET value = ? WHERE key = 'schema_version'", (SCHEMA_VERSION + 1,))
    d = SqliteQueueDriver.from_url(url)
    with pytest.raises(SchemaVersionError, match="newer than this mqttq-sqlite") as info:
        await d.open()
    assert isinstance(info.value, DriverError)
    with pytest.raises(DriverError, match="not open"):
        await d.stats()


async def test_a_file_shared_with_other_tables_keeps_them(db: Path, url: str) -> None:
    _sql(db, "CREATE TABLE jobs (id INTEGER PRIMARY KEY, mine TEXT)")
    async with SqliteQueueDriver.from_url(url) as d:
        assert await d.push([make_job("q")])
    assert _sql(db, "SELECT count(*) FROM jobs") == [(0,)]


async def test_several_instances_create_one_file_at_once(url: str) -> None:
    drivers = [SqliteQueueDriver.from_url(url) for _ in range(4)]
    await asyncio.gather(*(d.open() for d in drivers))
    try:
        await asyncio.gather(*(d.push([make_job("q")]) for d in drivers))
        assert await drivers[0].size("q") == 4
    finally:
        await asyncio.gather(*(d.aclose() for d in drivers))


@pytest.mark.parametrize("where", ["queue.db", "missing-dir/queue.db"])
async def test_create_false_never_creates_a_database(tmp_path: Path, where: str) -> None:
    url = f"sqlite:///{tmp_path / where}?busy_timeout=2"
    driver = SqliteQueueDriver.from_url(url, create=False)
    with pytest.raises(QueueNotFoundError) as info:
        await driver.open()
    message = str(info.value)
    assert message == (
        f"no SQLite queue database at {tmp_path / where}: nothing has been queued there yet "
        f"(queue.url = sqlite:///{tmp_path / where})"
    )
    assert isinstance(info.value, DriverError)
    assert sorted(p.name for p in tmp_path.rglob("*")) == [], "open() created files"
    with pytest.raises(DriverError, match="not open"):
        await driver.stats()


async def test_create_false_opens_an_existing_database(db: Path, url: str) -> None:
    async with SqliteQueueDriver.from_url(url) as d:
        first = make_job("q")
        await d.push([first])
    assert not Path(f"{db}-wal").exists()  # the last connection to close removed it
    async with SqliteQueueDriver.from_url(f"{url}?create=false") as d:
        assert d.options.create is False
        assert await d.size("q") == 1
        second = make_job("q")
        await d.push([second])
        claimed = await d.claim(["q"], 5, lease=30)
        assert [j.id for j in claimed] == [first.id, second.id]
        await d.ack([j.id for j in claimed])
        assert (await d.stats())["q"].ready == 0


async def test_create_false_on_a_directory_is_not_a_missing_queue(tmp_path: Path) -> None:
    (tmp_path / "is-a-dir").mkdir()
    driver = SqliteQueueDriver.from_url(f"sqlite:///{tmp_path / 'is-a-dir'}", create=False)
    with pytest.raises(DriverError, match="cannot open SQLite database") as info:
        await driver.open()
    assert not isinstance(info.value, QueueNotFoundError)


async def test_a_path_with_uri_characters_is_the_file_it_names(tmp_path: Path) -> None:
    odd = tmp_path / "a dir%20?#x"
    odd.mkdir()
    async with SqliteQueueDriver(odd / "q?.db") as d:
        await d.push([make_job("q")])
    assert _sql(odd / "q?.db", "SELECT count(*) FROM mqttq_jobs") == [(1,)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a dir%20?#x"]


async def test_corrupt_file_is_a_clear_driver_error(db: Path, url: str) -> None:
    db.write_bytes(b"this is not a database, just some text " * 100)
    with pytest.raises(DriverError, match="unreadable"):
        await SqliteQueueDriver.from_url(url).open()


@pytest.mark.parametrize("where", ["missing-dir/queue.db", "is-a-dir"])
async def test_unopenable_path_is_a_clear_driver_error(tmp_path: Path, where: str) -> None:
    (tmp_path / "is-a-dir").mkdir()
    with pytest.raises(DriverError, match="cannot open SQLite database"):
        await SqliteQueueDriver.from_url(f"sqlite:///{tmp_path / where}").open()


async def test_a_held_write_lock_is_waited_out_then_reported(db: Path, url: str) -> None:
    async with SqliteQueueDriver.from_url(url, busy_timeout=0.2) as d:
        blocker = sqlite3.connect(db, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(DriverUnavailable, match="stayed locked"):
                await d.push([make_job("q")])
            task = asyncio.ensure_future(
                SqliteQueueDriver.from_url(url, busy_timeout=60).__aenter__()
            )
            done, _ = await asyncio.wait({task}, timeout=0.3)
            assert not done, "opened although another connection held the write lock"
        finally:
            blocker.execute("COMMIT")
            blocker.close()
        other = await asyncio.wait_for(task, 30)
        try:
            await other.push([make_job("q")])
            assert await d.size("q") == 1
        finally:
            await other.aclose()


# -- batches --------------------------------------------------------------------------------------


async def test_large_batches_span_statement_chunks(driver: SqliteQueueDriver) -> None:
    jobs = [make_job("big", kwargs={"i": i}) for i in range(1234)]
    await driver.push(jobs)
    claimed = await driver.claim(["big"], 2000, lease=30)
    assert [j.id for j in claimed] == [j.id for j in jobs]
    await driver.extend([j.id for j in claimed], lease=60)
    await driver.release([j.id for j in claimed[:600]])
    stats = (await driver.stats())["big"]
    assert (stats.ready, stats.reserved) == (600, 634)
    await driver.ack([j.id for j in claimed])
    stats = (await driver.stats())["big"]
    assert (stats.ready, stats.reserved) == (0, 0)


async def test_push_of_an_id_already_queued_stores_nothing(driver: SqliteQueueDriver) -> None:
    first = make_job("q")
    await driver.push([first])
    with pytest.raises(DriverError, match="already queued"):
        await driver.push([make_job("q"), first])
    assert await driver.size("q") == 1


# -- waiting claims -------------------------------------------------------------------------------


async def test_waiting_claim_sees_a_push_from_another_connection(url: str) -> None:
    async with SqliteQueueDriver.from_url(url) as worker, SqliteQueueDriver.from_url(url) as api:
        task = asyncio.ensure_future(worker.claim(["q"], 1, lease=30, wait=60))
        await asyncio.sleep(0)
        job = make_job("q")
        await api.push([job])
        got = await asyncio.wait_for(task, 10)
        assert [j.id for j in got] == [job.id]


async def test_an_idle_claim_looks_at_most_every_poll_idle(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An idle worker does not spin: a claim that finds nothing looks for other processes' work
    about 1/poll_idle times a second (a machine under load only makes that fewer), and still
    takes a job another connection pushes meanwhile."""
    async with SqliteQueueDriver.from_url(url) as worker, SqliteQueueDriver.from_url(url) as api:
        looks = 0
        change_mark = worker._store.change_mark

        def counted() -> int | None:
            nonlocal looks
            looks += 1
            return change_mark()

        monkeypatch.setattr(worker._store, "change_mark", counted)
        monkeypatch.setattr(worker, "_claimed_at", 0.0)  # nothing claimed for a long while
        assert await worker.claim(["q"], 1, lease=30, wait=0.5) == []
        assert 1 <= looks <= 0.5 / worker.options.poll_idle + 2

        task = asyncio.ensure_future(worker.claim(["q"], 1, lease=30, wait=60))
        job = make_job("q")
        await api.push([job])
        assert [j.id for j in await asyncio.wait_for(task, 10)] == [job.id]


async def test_cancelled_claim_gives_its_jobs_back(driver: SqliteQueueDriver) -> None:
    job = make_job("q")
    await driver.push([job])
    task = asyncio.ensure_future(driver.claim(["q"], 1, lease=60))
    await asyncio.sleep(0)  # the claim is now running on the database thread
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    async def ready_again() -> bool:
        rec = await driver.get_job(job.id)
        return rec is not None and rec.state == "ready"

    await eventually(ready_again, timeout=10, what="the orphaned claim to be released")
    [again] = await driver.claim(["q"], 1, lease=30)
    assert (again.id, again.attempts) == (job.id, 1)


# -- undecodable envelopes ------------------------------------------------------------------------


async def test_undecodable_envelope_is_failed_not_handed_out(
    db: Path, driver: SqliteQueueDriver
) -> None:
    future, good = make_job("q", name="app:future"), make_job("q")
    await driver.push([future, good])
    envelope = _sql(db, "SELECT envelope FROM mqttq_jobs WHERE id = ?", (future.id,))[0][0]
    assert isinstance(envelope, bytes)
    newer = envelope.replace(b'"v":1', b'"v":99')
    _sql(db, "UPDATE mqttq_jobs SET envelope = ? WHERE id = ?", (newer, future.id))
    with pytest.raises(PayloadError, match="newer"):
        decode_job(newer)

    record = await driver.get_job(future.id)
    assert record is not None
    assert record.error is not None
    assert record.error.startswith("cannot decode job envelope:")

    claimed = await driver.claim(["q"], 5, lease=30)
    assert [j.id for j in claimed] == [good.id]
    entry = await driver.failed_get(future.id)
    assert entry is not None
    assert entry.error.startswith("cannot decode job envelope:")
    assert (entry.job.name, entry.job.queue, entry.job.attempts) == ("app:future", "q", 1)
    assert await driver.claim(["q"], 5, lease=30, wait=0.05) == []
    stats = (await driver.stats())["q"]
    assert (stats.ready, stats.reserved, stats.failed) == (0, 1, 1)
    assert entry.raw == newer  # the original bytes, for a newer mqttq to look at
    # no worker could read it: requeue leaves it in the registry
    assert await driver.failed_requeue([future.id]) == 0
    assert await driver.failed_ids() == [future.id]
    assert _sql(db, "SELECT count(*) FROM mqttq_jobs WHERE id = ?", (future.id,)) == [(0,)]


# -- several processes ----------------------------------------------------------------------------


async def test_processes_never_claim_a_job_twice(
    tmp_path: Path, url: str, driver: SqliteQueueDriver, children: ModuleType
) -> None:
    """One producer and three consumer processes on one file: every job exactly once."""
    queue, consumers = "mp", 3
    before = [Envelope(id=f"a{i:05d}", name="tests:noop", queue=queue) for i in range(1500)]
    await driver.push(before)
    barrier, producer_done = SPAWN.Barrier(consumers + 1), SPAWN.Event()
    outs = [tmp_path / f"consumer-{i}.txt" for i in range(consumers)]
    procs = [
        SPAWN.Process(target=children.consume, args=(url, queue, str(out), barrier, producer_done))
        for out in outs
    ]
    produced = tmp_path / "producer.txt"
    procs.append(
        SPAWN.Process(
            target=children.produce,
            args=(url, queue, str(produced), 1500, barrier, producer_done),
        )
    )
    errors = [Path(f"{p}.error") for p in [*outs, produced]]
    await asyncio.to_thread(_run, procs, errors)

    per_child = [out.read_text().split() if out.exists() else [] for out in outs]
    claimed = [i for ids in per_child for i in ids]
    twice = [i for i, n in Counter(claimed).items() if n > 1]
    assert twice == [], f"claimed more than once: {twice[:10]}"
    expected = {j.id for j in before} | {f"p{i:05d}" for i in range(1500)}
    assert set(claimed) == expected, f"per child: {[len(ids) for ids in per_child]}"
    stats = (await driver.stats())[queue]
    assert (stats.ready, stats.reserved, stats.delayed) == (0, 0, 0)


async def test_expired_lease_of_a_dead_process_is_reclaimed(
    tmp_path: Path, url: str, driver: SqliteQueueDriver, children: ModuleType
) -> None:
    job = make_job("crash")
    await driver.push([job])
    out = tmp_path / "vanished.txt"
    proc = SPAWN.Process(target=children.claim_and_vanish, args=(url, "crash", str(out), 0.5))
    await asyncio.to_thread(_run, [proc], [Path(f"{out}.error")])
    assert out.read_text().split() == [job.id, "1"]

    async def reclaim() -> list[Envelope]:
        return await driver.claim(["crash"], 1, lease=30, wait=0.2)

    [again] = await eventually(reclaim, timeout=10, what="the dead process's job")
    assert (again.id, again.attempts) == (job.id, 2)


async def test_an_expired_lease_is_reported_as_ready(driver: SqliteQueueDriver) -> None:
    """Before any claim reaps it, a job whose lease ran out already counts as ready."""
    held, expiring, waiting = make_job("q"), make_job("q"), make_job("q")
    await driver.push([held, expiring, waiting])
    assert [j.id for j in await driver.claim(["q"], 1, lease=60)] == [held.id]
    assert [j.id for j in await driver.claim(["q"], 1, lease=0.2)] == [expiring.id]

    async def expired() -> bool:
        rec = await driver.get_job(expiring.id)
        return rec is not None and rec.state == "ready"

    await eventually(expired, timeout=10, what="the lease to run out")
    stats = (await driver.stats())["q"]
    assert (stats.ready, stats.reserved, stats.delayed) == (2, 1, 0)
    assert stats.oldest_ready_age is not None
    assert stats.oldest_ready_age >= 0.2
    assert await driver.size("q") == 2


async def test_an_empty_unique_key_means_no_key(driver: SqliteQueueDriver) -> None:
    jobs = [make_job("q", unique_key="") for _ in range(3)]
    assert await driver.push(jobs) == [j.id for j in jobs]
    assert await driver.size("q") == 3
