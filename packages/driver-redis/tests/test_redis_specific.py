"""What only the Redis driver shows: races across processes, Redis restarts, errors, prefixes."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from redis_raw_entries import queue_raw_job

from mqttq.errors import ConfigError, DriverError, DriverUnavailable
from mqttq.models import Envelope
from mqttq.testing import WorkerEnv
from mqttq.testing.services import (
    ACL_PASSWORD,
    ACL_PREFIX,
    ACL_USER,
    RedisServer,
    free_port,
    make_certificates,
)
from mqttq.testing.waiting import eventually
from mqttq_redis.driver import RedisQueueDriver

CLAIMER = Path(__file__).with_name("_claimer.py")


def job(queue: str = "default", **fields: object) -> Envelope:
    return Envelope(name="tests:noop", queue=queue, **fields)  # type: ignore[arg-type]


# -- URLs and options ---------------------------------------------------------------------------


def test_url_options_and_redaction() -> None:
    d = RedisQueueDriver.from_url("redis://bob:hunter2@example.com:6380/3?prefix=app1:")
    assert d.prefix == "app1:"
    assert d.url == "redis://bob:***@example.com:6380/3"
    assert "prefix" not in d.settings.redis_url
    assert "hunter2" in d.settings.redis_url  # redis-py still gets the password
    d = RedisQueueDriver.from_url("redis://h/0?prefix=a:&socket_timeout=3", prefix="b:")
    assert d.prefix == "b:"  # a keyword option wins over the URL
    assert "socket_timeout=3" in d.settings.redis_url
    assert RedisQueueDriver.from_url("unix:///run/redis.sock?db=2").prefix == "mqttq:"
    assert RedisQueueDriver.from_url("rediss://h:6380/0").settings.display_url.startswith("rediss")


@pytest.mark.parametrize(
    ("url", "options", "message"),
    [
        ("sqlite:///x.db", {}, "not a Redis URL"),
        ("redis://h/0", {"bogus": 1}, "unknown redis driver option"),
        ("redis://h/zero", {}, "database must be a number"),
        ("redis://h:port/0", {}, "bad port"),
        ("redis://h/0?failed_ttl=soon", {}, "must be a number"),
        ("redis://h/0", {"prefix": ""}, "non-empty"),
        ("unix://", {}, "socket path"),
        ("redis://h/0?socket_timeout=abc", {}, "'socket_timeout' must be a number of seconds"),
        ("redis://h/0?socket_timeout=-1", {}, "'socket_timeout' must be a number of seconds"),
        ("redis://h/0?health_check_interval=x", {}, "'health_check_interval' must be a whole"),
        ("redis://h/0?max_connections=0", {}, "'max_connections' must be a whole number >= 1"),
        ("redis://h/0?socket_keepalive=maybe", {}, "'socket_keepalive' must be true or false"),
        ("redis://h/0?protocol=9", {}, "'protocol' must be 2 or 3"),
        ("redis://h/0?client_name=a%20b", {}, "'client_name' must be printable ASCII"),
        ("redis://h/0?no_such_option=1", {}, "unknown Redis URL option 'no_such_option'"),
        ("redis://h/0?ssl_cert_reqs=none", {}, "'ssl_cert_reqs' is for rediss:// URLs only"),
        ("rediss://h/0?ssl_cert_reqs=bogus", {}, "'ssl_cert_reqs' must be none, optional or"),
        ("rediss://h/0?ssl_min_version=1.3", {}, "'ssl_min_version' must be a TLS version"),
        ("unix:///r.sock?socket_keepalive=1", {}, "'socket_keepalive' is not for unix://"),
        ("redis://h/0?decode_responses=1", {}, "'decode_responses' is not supported"),
    ],
)
def test_bad_urls_are_config_errors(url: str, options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        RedisQueueDriver.from_url(url, **options)
    assert "\n" not in str(info.value)


def test_redis_py_options_that_are_fine() -> None:
    url = (
        "rediss://h:6380/1?socket_timeout=2.5&socket_connect_timeout=1&socket_keepalive=false"
        "&health_check_interval=0&max_connections=4&protocol=3&client_name=app1&ssl_cert_reqs=none"
        "&ssl_min_version=772&ssl_check_hostname=no&retry_on_timeout=yes&socket_timeout="
    )
    settings = RedisQueueDriver.from_url(url).settings
    assert "max_connections=4" in settings.redis_url
    assert settings.display_url == "rediss://h:6380/1"


def test_create_is_accepted_and_means_nothing() -> None:
    """mqttq passes create=False for commands that only look; a Redis queue has no storage to
    create, so the option changes nothing and never reaches redis-py."""
    plain = RedisQueueDriver.from_url("redis://h/0").settings
    for driver in (
        RedisQueueDriver.from_url("redis://h/0", create=False),
        RedisQueueDriver.from_url("redis://h/0?create=false"),
        RedisQueueDriver.from_url("redis://h/0?create=1", create=True),
    ):
        assert driver.settings == plain


async def test_a_tls_file_that_cannot_be_read_is_a_driver_error(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """Only ``open()`` finds out: one line naming the TLS options, not "cannot reach Redis"."""
    missing = tmp_path / "missing-ca.pem"
    driver = RedisQueueDriver.from_url(
        f"rediss://127.0.0.1:{redis_server.port}/0?ssl_ca_certs={missing}"
    )
    with pytest.raises(DriverError, match="cannot read a TLS file given in the URL") as info:
        await driver.open()
    assert not isinstance(info.value, DriverUnavailable)
    assert "ssl_ca_certs" in str(info.value)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("socket_timeout=abc", "Redis URL option 'socket_timeout' must be a number of seconds"),
        ("health_check_interval=x", "Redis URL option 'health_check_interval' must be a whole"),
        ("no_such_option=1", "unknown Redis URL option 'no_such_option'"),
        ("ssl_cert_reqs=required", "'ssl_cert_reqs' is for rediss:// URLs only"),  # no TLS here
        ("decode_responses=true", "'decode_responses' is not supported"),
    ],
)
def test_cli_reports_a_bad_redis_py_option_in_one_line(
    redis_server: RedisServer, tmp_path: Path, options: str, message: str
) -> None:
    workers = WorkerEnv(tmp_path, f"{redis_server.url}?{options}", lease=5)
    result = workers.run("stats")
    assert result.returncode != 0
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("mqttq: "), result.stderr
    assert message in lines[0]


def test_cli_reports_an_unreadable_tls_file_in_one_line(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    url = f"rediss://127.0.0.1:{redis_server.port}/0?ssl_ca_certs={tmp_path / 'missing-ca.pem'}"
    result = WorkerEnv(tmp_path, url, lease=5).run("stats")
    assert result.returncode != 0
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("mqttq: Redis at rediss://"), result.stderr
    assert "cannot read a TLS file" in lines[0]


# -- errors users see ----------------------------------------------------------------------------


async def test_unreachable_redis_is_driver_unavailable_with_a_readable_message() -> None:
    port = free_port()  # nothing listens there
    driver = RedisQueueDriver.from_url(f"redis://user:topsecret@127.0.0.1:{port}/0")
    with pytest.raises(DriverUnavailable) as info:
        await driver.open()
    assert str(info.value) == (
        f"cannot reach Redis at redis://user:***@127.0.0.1:{port}/0 (connection refused)"
        " — is redis-server running?"
    )
    assert "topsecret" not in str(info.value)
    assert isinstance(info.value, DriverError)
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


async def test_operations_give_up_after_retry_for(own_redis: RedisServer) -> None:
    """Once open, a vanished Redis is retried for ``retry_for`` seconds, then DriverUnavailable."""
    async with RedisQueueDriver.from_url(own_redis.url, retry_for=0.3) as driver:
        await driver.push([job()])
        own_redis.kill()
        with pytest.raises(DriverUnavailable, match=r"cannot reach Redis at .*is redis-server"):
            await driver.push([job()])
        with pytest.raises(DriverUnavailable):
            await driver.claim(["default"], 1, lease=30, wait=0.5)


async def test_acl_user_limited_to_its_prefix(redis_server: RedisServer) -> None:
    base = f"redis://{ACL_USER}:{ACL_PASSWORD}@127.0.0.1:{redis_server.port}/0"
    async with RedisQueueDriver.from_url(f"{base}?prefix={ACL_PREFIX}") as driver:
        [pushed] = await driver.push([job("acl")])
        [claimed] = await driver.claim(["acl"], 1, lease=30)
        assert claimed.id == pushed
        await driver.ack([pushed])
        assert (await driver.stats())["acl"].ready == 0
    async with RedisQueueDriver.from_url(f"{base}?prefix=other:") as driver:
        with pytest.raises(DriverError, match="has no permission") as info:
            await driver.push([job("acl")])
        assert not isinstance(info.value, DriverUnavailable)
    wrong = f"redis://{ACL_USER}:wrong@127.0.0.1:{redis_server.port}/0"
    with pytest.raises(DriverError, match="refused the credentials") as auth:
        await RedisQueueDriver.from_url(wrong).open()
    assert not isinstance(auth.value, DriverUnavailable)
    assert "wrong" not in str(auth.value)


async def test_unix_socket_url(redis_server: RedisServer, prefix: str) -> None:
    url = f"unix://{redis_server.socket}?db=0&prefix={prefix}"
    async with RedisQueueDriver.from_url(url) as driver:
        [pushed] = await driver.push([job("unix")])
        assert [j.id for j in await driver.claim(["unix"], 1, lease=30)] == [pushed]
    async with RedisQueueDriver.from_url(redis_server.url, prefix=prefix) as tcp:
        assert (await tcp.stats())["unix"].reserved == 1  # the same data over TCP


# -- prefixes ------------------------------------------------------------------------------------


async def test_prefixes_isolate_apps_on_one_redis(redis_server: RedisServer, prefix: str) -> None:
    url = redis_server.url
    async with (
        RedisQueueDriver.from_url(f"{url}?prefix={prefix}a:") as app1,
        RedisQueueDriver.from_url(url, prefix=f"{prefix}b:") as app2,
    ):
        one, two = job(kwargs={"app": 1}), job(kwargs={"app": 2}, unique_key="k")
        await app1.push([one, job(unique_key="k")])
        assert await app2.push([two]) == [two.id]  # app1's unique key is not app2's
        assert (await app1.stats())["default"].ready == 2
        assert (await app2.stats())["default"].ready == 1
        [got] = await app2.claim(["default"], 5, lease=30)
        assert got.id == two.id
        await app2.fail(got, error="x")
        assert await app1.failed_ids() == []
        assert await app2.failed_ids() == [two.id]
        client = redis.Redis.from_url(url)
        try:
            keys = [k.decode() for k in client.scan_iter(match=f"{prefix}*")]
        finally:
            client.close()
        assert keys, "the drivers wrote no keys under their prefixes"
        assert all(k.startswith((f"{prefix}a:", f"{prefix}b:")) for k in keys)


# -- races ---------------------------------------------------------------------------------------


async def test_eight_claimer_processes_claim_each_job_exactly_once(
    redis_url: str, tmp_path: Path
) -> None:
    n, queue = 20_000, "race"
    async with RedisQueueDriver.from_url(redis_url) as driver:
        pushed: list[str] = []
        for start in range(0, n, 5000):
            pushed += await driver.push(
                [job(queue, kwargs={"i": i}) for i in range(start, start + 5000)]
            )
        procs = [
            subprocess.Popen(
                [sys.executable, str(CLAIMER), redis_url, queue, str(tmp_path / f"c{i}.txt")],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for i in range(8)
        ]
        try:
            for p in procs:  # every claimer connected before any starts
                assert p.stdout is not None
                assert p.stdout.readline().strip() == "ready"
            for p in procs:
                assert p.stdin is not None
                p.stdin.write("go\n")
                p.stdin.close()
            codes = [p.wait(120) for p in procs]
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
        assert codes == [0] * 8
        lines = [
            line.split()
            for i in range(8)
            for line in (tmp_path / f"c{i}.txt").read_text().splitlines()
        ]
        claimed = [job_id for job_id, _ in lines]
        assert len(claimed) == len(set(claimed)) == n, "a job was claimed twice or not at all"
        assert set(claimed) == set(pushed)
        assert {attempts for _, attempts in lines} == {"1"}
        s = (await driver.stats())[queue]
        assert (s.ready, s.reserved, s.delayed) == (0, 0, 0)


# -- Redis restart -------------------------------------------------------------------------------


async def test_redis_restart_mid_load_loses_nothing(own_redis: RedisServer) -> None:
    """kill -9 Redis (AOF, fsync always) while producers push and claimers work: every job
    pushed is processed, and producers and claimers resume by themselves."""
    total, batch, queue = 4000, 50, "restart"
    url = own_redis.url
    pushed: list[str] = []
    done: set[str] = set()
    restarted = asyncio.Event()

    async def producer(driver: RedisQueueDriver) -> None:
        for start in range(0, total, batch):
            pushed.extend(
                await driver.push(
                    [job(queue, kwargs={"i": i}) for i in range(start, start + batch)]
                )
            )
            await asyncio.sleep(0)

    async def claimer(driver: RedisQueueDriver) -> None:
        while len(done) < total:
            jobs = await driver.claim([queue], 20, lease=2.0, wait=0.5)
            await driver.ack([j.id for j in jobs])
            done.update(j.id for j in jobs)

    async def chaos() -> None:
        while len(done) < total // 4:
            await asyncio.sleep(0.005)
        own_redis.kill()
        await asyncio.to_thread(own_redis.start)  # same port, same AOF
        restarted.set()

    drivers = [RedisQueueDriver.from_url(url, retry_for=60) for _ in range(4)]
    for d in drivers:
        await d.open()
    try:
        tasks = [producer(drivers[0]), *(claimer(d) for d in drivers[1:]), chaos()]
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=120)
        assert restarted.is_set()
        assert len(pushed) == total
        assert set(pushed) <= done, f"{len(set(pushed) - done)} pushed jobs were never processed"
        s = (await drivers[0].stats())[queue]
        assert (s.ready, s.reserved, s.delayed) == (0, 0, 0)
    finally:
        for d in drivers:
            await d.aclose()


async def test_blocked_claim_survives_a_restart(own_redis: RedisServer) -> None:
    """A claim blocked in BLPOP when Redis dies waits for it and returns the job pushed after."""
    async with (
        RedisQueueDriver.from_url(own_redis.url) as waiter,
        RedisQueueDriver.from_url(own_redis.url) as pusher,
    ):
        task = asyncio.ensure_future(waiter.claim(["w"], 1, lease=30, wait=60))
        await asyncio.sleep(0.05)  # give the claim time to block; the outcome is the same if not
        own_redis.kill()
        await asyncio.to_thread(own_redis.start)
        pushed = job("w")
        await pusher.push([pushed])
        got = await asyncio.wait_for(task, 30)
        assert [j.id for j in got] == [pushed.id]


async def test_a_long_script_is_a_pause(
    own_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """While another script runs past Redis's busy threshold (as moving a large queue from the
    list layout can), Redis answers BUSY: the driver retries, and goes on once it has ended."""
    client = redis.Redis.from_url(own_redis.url)
    try:
        client.config_set("lua-time-limit", 10)

        def busy() -> None:
            with contextlib.suppress(redis.ResponseError):  # "killed by user"
                client.eval("while true do end", 0)

        async with RedisQueueDriver.from_url(own_redis.url, retry_for=60) as driver:
            runner = asyncio.ensure_future(asyncio.to_thread(busy))

            def refused() -> bool:
                with redis.Redis.from_url(own_redis.url) as other:
                    try:
                        other.ping()
                    except redis.ResponseError as exc:
                        return str(exc).startswith("BUSY ")
                    return False

            await eventually(refused, timeout=10, what="Redis to answer BUSY")
            pushed = job("busy")
            push = asyncio.ensure_future(driver.push([pushed]))
            await eventually(
                lambda: "busy running a script" in caplog.text,
                timeout=10,
                what="the push to be refused and retried",
            )
            assert not push.done()
            with redis.Redis.from_url(own_redis.url) as other:
                other.script_kill()
            assert await asyncio.wait_for(push, 30) == [pushed.id]
            await asyncio.wait_for(runner, 30)
            assert [j.id for j in await driver.claim(["busy"], 1, lease=30)] == [pushed.id]
    finally:
        client.close()


async def test_out_of_memory_is_an_outage_that_ends_when_memory_is_freed(
    own_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """At maxmemory (noeviction) Redis refuses writes: a push is refused whole and retried (one
    warning that says what to do), a worker can still claim and ack what is queued, and the
    push goes through once memory is freed; past ``retry_for`` it is DriverUnavailable."""
    client = redis.Redis.from_url(own_redis.url)
    try:
        client.config_set("maxmemory-policy", "noeviction")
        async with (
            RedisQueueDriver.from_url(own_redis.url, retry_for=60) as driver,
            RedisQueueDriver.from_url(own_redis.url, retry_for=0.3) as impatient,
        ):
            queued = [job("oom", kwargs={"i": i, "pad": "x" * 1000}) for i in range(200)]
            await driver.push(queued)
            used = int(client.info("memory")["used_memory"])
            client.config_set("maxmemory", used - 100_000)

            late = job("oom", kwargs={"i": "late"})
            with pytest.raises(DriverUnavailable, match=r"out of memory .* raise maxmemory"):
                await impatient.push([late])
            push = asyncio.ensure_future(driver.push([late]))
            await eventually(
                lambda: "out of memory" in caplog.text, timeout=10, what="the refused push"
            )
            assert not push.done()
            assert await driver.get_job(late.id) is None
            claimed = await driver.claim(["oom"], 10, lease=30)  # draining still works
            assert [j.kwargs["i"] for j in claimed] == list(range(10))
            await driver.ack([j.id for j in claimed])

            client.config_set("maxmemory", 0)
            assert await asyncio.wait_for(push, 30) == [late.id]
            assert await driver.size("oom") == 191
            assert "Redis queue: back after" in caplog.text
    finally:
        client.close()


# -- details of the Redis layout -----------------------------------------------------------------


async def test_push_of_an_already_queued_id_fails_whole_batch(driver: RedisQueueDriver) -> None:
    first = job("dup")
    await driver.push([first])
    fresh = job("dup")
    with pytest.raises(DriverError, match="already queued"):
        await driver.push([fresh, first])
    assert await driver.get_job(fresh.id) is None
    assert await driver.size("dup") == 1


async def test_bulk_push_and_batched_claim_keep_fifo(driver: RedisQueueDriver) -> None:
    jobs = [job("bulk", kwargs={"i": i}) for i in range(3000)]
    assert await driver.push(jobs) == [j.id for j in jobs]
    got: list[Envelope] = []
    while batch := await driver.claim(["bulk"], 700, lease=30):
        got += batch
    assert [j.kwargs["i"] for j in got] == list(range(3000))
    await driver.ack([j.id for j in got])
    assert await driver.size("bulk") == 0


async def test_expired_leases_come_back_first_with_attempts_kept(driver: RedisQueueDriver) -> None:
    a, b, c = job("lease"), job("lease"), job("lease")
    await driver.push([a, b])
    await driver.claim(["lease"], 2, lease=0.2)
    await driver.push([c])
    records = [await driver.get_job(x.id) for x in (a, b)]
    expiry = max(r.lease_expires_at or 0.0 for r in records if r is not None)
    deadline = time.monotonic() + 10
    while time.time() <= expiry:  # both leases have run out (same clock as redis-server's)
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    got = await driver.claim(["lease"], 3, lease=30)
    assert [(j.id, j.attempts) for j in got] == [(a.id, 2), (b.id, 2), (c.id, 1)]


async def test_a_delayed_job_keeps_its_place_once_due(driver: RedisQueueDriver) -> None:
    """A delayed job that fell due goes before a job pushed after its due time, although no claim
    touched it while it was delayed (nothing promotes it to the back of a list)."""
    soon = job("place", available_at=time.time() + 0.2)
    await driver.push([soon])

    async def due() -> bool:
        record = await driver.get_job(soon.id)
        return record is not None and record.state == "ready"

    await eventually(due, timeout=10, what="the delayed job to fall due")
    later = job("place")
    assert later.available_at > soon.available_at
    await driver.push([later])
    assert [j.id for j in await driver.claim(["place"], 2, lease=30)] == [soon.id, later.id]


async def test_push_order_holds_past_a_power_of_ten(driver: RedisQueueDriver) -> None:
    """Sequence numbers are compared as fixed-width text: 10 sorts after 9."""
    await driver.redis.set(f"{driver.prefix}seq", 8)
    tie = time.time() - 1
    first, second = job("seq", available_at=tie), job("seq", available_at=tie)
    await driver.push([first])  # 9
    await driver.push([second])  # 10
    assert [j.id for j in await driver.claim(["seq"], 2, lease=30)] == [first.id, second.id]


async def test_a_nan_available_at_is_refused_and_nothing_stored(driver: RedisQueueDriver) -> None:
    good, bad = job("nan"), job("nan", available_at=float("nan"))
    with pytest.raises(DriverError, match="available_at NaN"):
        await driver.push([good, bad])
    assert await driver.size("nan") == 0
    assert await driver.get_job(good.id) is None


async def test_get_job_of_a_delayed_job_that_is_due_says_ready(driver: RedisQueueDriver) -> None:
    soon = job("due", available_at=time.time() + 0.2)
    await driver.push([soon])
    record = await driver.get_job(soon.id)
    assert record is not None
    assert record.state == "delayed"
    deadline = time.monotonic() + 10
    while (record := await driver.get_job(soon.id)) is not None and record.state != "ready":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    assert record is not None
    assert record.job == soon


async def test_undecodable_entries_before_and_after_a_claim(driver: RedisQueueDriver) -> None:
    """A stored entry that cannot be decoded shows as a stand-in while queued; a claim of one
    job skips any number of them; the failed entry keeps the bytes and cannot be requeued."""
    newer = b'{"id": "other", "name": "tests:newer", "v": 999}'
    deep = b'{"name": "tests:deep", "args": ' + b"[" * 900 + b'{"$bytes": "AA=="}' + b"]" * 900
    bad = {
        "bad-newer": newer,
        "bad-empty": b"",
        "bad-text": "caf\u00e9".encode("latin-1"),
        "bad-deep": deep + b"}",
    }
    async with driver.redis.pipeline(transaction=True) as pipe:
        for job_id, raw in bad.items():
            queue_raw_job(pipe, driver.prefix, "poison", job_id, raw)
        await pipe.execute()
    good = job("poison")
    await driver.push([good])
    record = await driver.get_job("bad-newer")
    assert record is not None
    assert (record.state, record.job.id, record.job.queue) == ("ready", "bad-newer", "poison")
    assert record.job.name == "tests:newer"
    assert (record.error or "").startswith("cannot decode job envelope")
    assert await driver.size("poison") == len(bad) + 1
    assert [j.id for j in await driver.claim(["poison"], 1, lease=30)] == [good.id]
    entries = {e.id: e for e in await driver.failed_list("poison")}
    assert {k: e.raw for k, e in entries.items()} == bad
    assert (entries["bad-newer"].job.name, entries["bad-newer"].job.attempts) == ("tests:newer", 1)
    assert entries["bad-text"].job.name == "<undecodable>"
    record = await driver.get_job("bad-newer")
    assert record is not None
    assert (record.state, record.job.name) == ("failed", "tests:newer")
    assert await driver.failed_requeue(list(bad)) == 0
    assert await driver.redis.hget(f"{driver.prefix}f:bad-newer", "b") == newer
    assert await driver.failed_forget(list(bad)) == len(bad)


async def test_failed_purge_of_everything(driver: RedisQueueDriver) -> None:
    for q in ("p1", "p2"):
        for _ in range(3):
            await driver.fail(job(q), error="x")
    assert await driver.failed_purge() == 6
    assert await driver.failed_list() == []
    stats = await driver.stats()
    assert (stats["p1"].failed, stats["p2"].failed) == (0, 0)


async def test_cancel_and_schedule_keys_are_as_documented(driver: RedisQueueDriver) -> None:
    """A cancelled job leaves its hash for ``P c:<id>`` (expiring with the failed TTL); a fired
    slot is the schedule's field in ``P schedules``."""
    waiting = job("keys", unique_key="k")
    await driver.push([waiting])
    assert await driver.cancel(waiting.id) == "cancelled"
    p = driver.prefix
    assert await driver.redis.exists(f"{p}j:{waiting.id}") == 0
    assert await driver.redis.hget(f"{p}unique", "k") is None
    record = await driver.redis.hgetall(f"{p}c:{waiting.id}")
    assert (record[b"q"], record[b"w"]) == (b"keys", b"cancelled")
    assert 3500_000 < await driver.redis.pttl(f"{p}c:{waiting.id}") <= 3600_000  # failed_ttl
    fired = job("keys")
    assert await driver.fire_schedule("every 5", 1_700_000_005.0, fired) == fired.id
    assert await driver.redis.hgetall(f"{p}schedules") == {b"every 5": b"1700000005.0"}


async def test_a_cancel_repeated_after_a_lost_reply_gets_its_first_answer(
    driver: RedisQueueDriver,
) -> None:
    """The driver retries a script whose reply was lost; the cancel script run again with the
    same call's token answers as the first run did, another call "already"."""
    await driver.push([waiting := job("lost")])
    await driver.push([running := job("lost")])
    await driver.claim(["lost"], 1, lease=30)
    await driver.claim(["lost"], 1, lease=30)
    for held, answer in ((waiting, "cancelled"), (running, "stopping")):
        if answer == "cancelled":
            await driver.release([held.id])
        args = [held.id, 60_000, f"token-{held.id}"]
        assert await driver._run("cancel", args) == answer.encode()
        assert await driver._run("cancel", args) == answer.encode(), "a retry is not 'already'"
        assert await driver.cancel(held.id) == "already"


async def test_an_undecodable_job_can_be_cancelled(driver: RedisQueueDriver) -> None:
    """Its record keeps the stored bytes; get_job shows a stand-in with the reason."""
    async with driver.redis.pipeline(transaction=True) as pipe:
        queue_raw_job(pipe, driver.prefix, "undecodable", "bad-one", b"\xff not json")
        await pipe.execute()
    assert await driver.cancel("bad-one") == "cancelled"
    record = await driver.get_job("bad-one")
    assert record is not None
    assert (record.state, record.job.id, record.job.queue) == (
        "cancelled",
        "bad-one",
        "undecodable",
    )
    assert (record.error or "").startswith("cannot decode job envelope")
    assert await driver.redis.hget(f"{driver.prefix}c:bad-one", "b") == b"\xff not json"
    assert await driver.size("undecodable") == 0


async def test_a_slot_that_is_not_a_time_is_refused(driver: RedisQueueDriver) -> None:
    for slot in (float("nan"), float("inf")):
        with pytest.raises(DriverError, match="not a time"):
            await driver.fire_schedule("odd", slot, job("odd"))
    assert await driver.schedule_marks() == {}
    assert await driver.size("odd") == 0


# -- TLS -----------------------------------------------------------------------------------------


async def test_rediss_url_with_a_private_ca(tmp_path: Path) -> None:
    certs = make_certificates(tmp_path)
    server = RedisServer(tmp_path, tls=certs)
    server.start()
    try:
        trusted = f"{server.url}?ssl_ca_certs={certs / 'ca.crt'}&prefix=tls:"
        async with RedisQueueDriver.from_url(trusted) as driver:
            [pushed] = await driver.push([job("tls")])
            [claimed] = await driver.claim(["tls"], 1, lease=30)
            assert claimed.id == pushed
        untrusted = RedisQueueDriver.from_url(server.url)  # system CAs do not know ours
        with pytest.raises(DriverError, match="certificate") as info:
            await untrusted.open()
        assert not isinstance(info.value, DriverUnavailable)
    finally:
        server.stop()
