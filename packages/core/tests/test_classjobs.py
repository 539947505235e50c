"""Class-based jobs, dispatch and worker overrides, against the in-memory driver."""

from __future__ import annotations

import asyncio
import itertools
import math
import socket
import threading
import uuid
from typing import Any

import mqttq_classjobs
import pytest

import mqttq
from mqttq.classjobs import restore
from mqttq.config import structure
from mqttq.testing import eventually
from mqttq.worker import Worker


def make_app(**sections: Any) -> mqttq.App:
    config = structure({"queue": {"url": f"memory://{uuid.uuid4().hex}"}, **sections})
    return mqttq.App(config, host=mqttq.make_plugin_manager(autoload=False))


class Notify(mqttq.Job):
    max_tries = 3
    retry_after = 0.2
    queue = "notifications"

    def __init__(self) -> None:
        super().__init__()
        self.user_id: int | None = None
        self.message: str | None = None
        self.items: list[Any] = []
        self.meta: dict[str, Any] = {}

    async def handle(self) -> None:
        raise NotImplementedError  # replaced per test


async def test_data_attributes_travel_in_the_envelope_and_come_back() -> None:
    app = make_app()
    seen: list[Any] = []

    @app.job
    class Order(mqttq.Job):
        def __init__(self) -> None:
            super().__init__()
            self.order_id = None
            self.items: list[Any] = []
            self.metadata: dict[str, Any] = {}
            self._cache = "private: not data"

        async def handle(self) -> None:
            seen.append((self.order_id, self.items, self.metadata, self.attempts, self.job_id))

    async with app:
        order = Order()
        order.order_id = "A-1"
        order.items = [{"sku": "x", "qty": 2}, b"\x00raw"]
        order.metadata = {"nested": {"deep": [1.5, None, True]}}
        job_id = await app.queue.push(order, queue="orders")
        record = await app.driver.get_job(job_id)
        assert record is not None
        assert record.job.queue == "orders"
        assert record.job.name.endswith(".<locals>.Order")
        assert record.job.kwargs == {
            "order_id": "A-1",
            "items": [{"sku": "x", "qty": 2}, b"\x00raw"],
            "metadata": {"nested": {"deep": [1.5, None, True]}},
        }
        assert await Worker(app, queues=["orders"], burst=True).run() == 0
    assert seen == [("A-1", [{"sku": "x", "qty": 2}, b"\x00raw"], order.metadata, 1, job_id)]


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ({1, 2}, "Notify.items is a set"),
        ([1, {2, 3}], "Notify.items[1] is a set"),
        ({"ok": {"when": object()}}, "Notify.items['ok']['when'] is a object"),
        ({1: "x"}, "has a key 1 that is not a str"),
        (math.nan, "Notify.items is nan"),
        (2**70, "integer too large"),
    ],
)
async def test_a_non_json_attribute_fails_at_dispatch_naming_it(value: Any, named: str) -> None:
    app = make_app()
    app.job(Notify)
    async with app:
        job = Notify()
        job.items = value
        with pytest.raises(mqttq.PayloadError, match="cannot dispatch") as err:
            await app.queue.push(job)
        assert named in str(err.value)
        fine = Notify()
        with pytest.raises(mqttq.PayloadError):
            await app.queue.bulk([fine, job])  # the whole bulk, before anything is stored
        assert await app.queue.stats() == {}


async def test_a_socket_attribute_fails_at_dispatch() -> None:
    app = make_app()
    app.job(Notify)
    async with app:
        job = Notify()
        with socket.socket() as sock:
            job.conn = sock  # type: ignore[attr-defined]
            with pytest.raises(mqttq.PayloadError, match=r"Notify\.conn is a socket"):
                await app.queue.later(5, job)
        assert await app.queue.stats() == {}


def test_a_self_referencing_attribute_is_refused() -> None:
    app = make_app()
    app.job(Notify)
    job = Notify()
    job.items.append(job.items)
    with pytest.raises(mqttq.PayloadError, match="contains itself"):
        app.queue.call(job)


def test_a_payload_sets_data_attributes_only() -> None:
    for key in ("handle", "failed", "job_id", "attempts", "queue", "_secret", "__class__", "a b"):
        with pytest.raises(mqttq.PayloadError, match="not a data attribute"):
            restore(Notify, {key: 1}, None)
    job = restore(Notify, {"user_id": 7, "extra": [1]}, None)
    assert (job.user_id, job.message, vars(job)["extra"]) == (7, None, [1])


async def test_unregistered_classes_are_refused_at_dispatch() -> None:
    app = make_app()
    async with app:
        with pytest.raises(mqttq.UnknownJobError):
            await app.queue.push(Notify())


def test_registration_checks() -> None:
    app = make_app()

    class NoHandle(mqttq.Job):
        pass

    class NeedsArgs(mqttq.Job):
        def __init__(self, user_id: int) -> None:
            super().__init__()

        async def handle(self) -> None: ...

    class Both(mqttq.Job):
        retry_after = 1
        backoff = mqttq.Backoff()

        async def handle(self) -> None: ...

    class NotAJob:
        def handle(self) -> None: ...

    for cls, match in [
        (NoHandle, "has no handle"),
        (NeedsArgs, "must take no arguments"),
        (Both, "retry_after or backoff"),
        (NotAJob, "not a mqttq.Job subclass"),
    ]:
        with pytest.raises(mqttq.ConfigError, match=match):
            app.job(cls)


def test_register_and_modules_find_class_jobs() -> None:
    app = make_app(jobs={"register": ["mqttq_classjobs:Greet"]})
    spec = app.jobs.get("mqttq_classjobs:Greet")
    assert (spec.queue, spec.job_class) == ("greetings", mqttq_classjobs.Greet)
    app = make_app(jobs={"modules": ["mqttq_classjobs"]})
    names = {s.name for s in app.jobs.specs()}
    assert names == {"mqttq_classjobs:Greet", "mqttq_classjobs:Shout"}
    shout = app.jobs.get("mqttq_classjobs:Shout")
    assert (shout.backoff.base, shout.backoff.factor, shout.backoff.jitter) == (1.0, 1.0, 0.0)


async def test_retry_after_then_failed_once_with_the_exception() -> None:
    app = make_app()
    runs: list[float] = []
    failures: list[tuple[Any, ...]] = []
    loop_time = asyncio.get_running_loop().time

    @app.job
    class Flaky(Notify):
        async def handle(self) -> None:
            runs.append(loop_time())
            raise LookupError(f"user {self.user_id} not found")

        async def failed(self, exception: Exception) -> None:
            failures.append((self.user_id, self.attempts, exception))

    async with app:
        job = Flaky()
        job.user_id = 5
        job_id = await app.queue.push(job)
        worker = Worker(app, queues=["notifications"])
        task = asyncio.create_task(worker.run())
        await eventually(lambda: failures, timeout=10, what="failed()")
        worker.stop()
        assert await task == 0
        entry = await app.driver.failed_get(job_id)
    assert len(runs) == 3
    assert all(b - a >= 0.2 for a, b in itertools.pairwise(runs))
    [(user, attempts, exc)] = failures
    assert (user, attempts) == (5, 3)
    assert isinstance(exc, LookupError)
    assert str(exc) == "user 5 not found"
    assert entry is not None
    assert entry.error == "LookupError: user 5 not found"


async def test_instance_options_override_the_class_defaults() -> None:
    app = make_app()
    app.job(Notify)
    async with app:
        job = Notify()
        job.queue = "urgent"
        job.max_tries = 7
        job.retry_after = 2
        job_id = await app.queue.push(job)
        record = await app.driver.get_job(job_id)
    assert record is not None
    assert (record.job.queue, record.job.max_tries) == ("urgent", 7)
    assert record.job.backoff == mqttq.Backoff(base=2, factor=1, max=2, jitter=0)
    assert "queue" not in record.job.kwargs


async def test_bulk_queues_a_class_job_as_push_does() -> None:
    """bulk builds class-job envelopes on a path of its own: the same envelope as push's."""
    app = make_app(queue={"url": f"memory://{uuid.uuid4().hex}", "default": "fallback"})
    app.job(Notify)

    @app.job
    class Plain(mqttq.Job):
        async def handle(self) -> None: ...

    def jobs() -> list[mqttq.Job]:
        defaults = Notify()
        defaults.user_id, defaults.items = 1, [1, "two", None, 3.5, b"\x00"]
        own = Notify()
        own.meta = {"k": [1, {"deep": True}]}
        own.queue, own.max_tries, own.timeout, own.retry_after = "urgent", 7, 1.5, 2
        backoff = Notify()
        backoff.backoff = mqttq.Backoff(base=3)
        return [defaults, own, backoff, Plain()]

    def fields(job: mqttq.Envelope) -> tuple[Any, ...]:
        return (job.name, job.queue, job.args, job.kwargs, job.max_tries, job.timeout, job.backoff)

    async with app:
        pushed = [await app.queue.push(job) for job in jobs()]
        bulked = await app.queue.bulk(jobs())
        records = [await app.driver.get_job(job_id) for job_id in pushed + bulked]
    envelopes = [fields(r.job) for r in records if r is not None]
    assert envelopes[:4] == envelopes[4:]
    assert [e[1] for e in envelopes[:4]] == ["notifications", "urgent", "notifications", "fallback"]
    assert envelopes[1][3:] == (
        {"user_id": None, "message": None, "items": [], "meta": {"k": [1, {"deep": True}]}},
        7,
        1.5,
        mqttq.Backoff(base=2, factor=1, max=2, jitter=0),
    )
    assert envelopes[2][6] == mqttq.Backoff(base=3)


async def test_one_instance_dispatched_again_after_a_change_queues_each_value() -> None:
    """What is queued is the data at dispatch: changing the instance afterwards (to dispatch it
    again, say) changes no queued job, in place or nested."""
    app = make_app()
    app.job(Notify)
    job = Notify()
    ids = []
    async with app:
        for user_id in (1, 2):
            job.user_id = user_id
            job.items.append(user_id)
            ids.append(await app.queue.push(job))
        job.user_id = 3
        job.items.append(3)
        ids += await app.queue.bulk([job])
        job.user_id = 4
        job.meta["late"] = True
        records = [await app.driver.get_job(job_id) for job_id in ids]
    assert [(r.job.kwargs["user_id"], r.job.kwargs["items"]) for r in records if r] == [
        (1, [1]),
        (2, [1, 2]),
        (3, [1, 2, 3]),
    ]
    assert all(r.job.kwargs["meta"] == {} for r in records if r)


async def test_a_sync_handle_runs_off_the_event_loop_and_sees_its_job() -> None:
    app = make_app()
    seen: list[Any] = []

    @app.job
    class Blocking(mqttq.Job):
        def handle(self) -> None:
            job = mqttq.current_job()
            seen.append((threading.current_thread() is threading.main_thread(), job and job.id))

    async with app:
        job_id = await app.queue.push(Blocking())
        await Worker(app, burst=True).run()
    assert seen == [(False, job_id)]


async def test_jobs_dispatch_follow_ups_on_their_own_app() -> None:
    """Two apps in one process, running at once: each job's dispatch goes to its own app."""
    order: list[tuple[str, str]] = []

    def build(tag: str) -> mqttq.App:
        app = make_app()

        @app.job(name="first")
        async def first() -> None:
            order.append((tag, "first"))
            await asyncio.sleep(0.01)  # the other app's job runs meanwhile
            await mqttq.dispatch("second", kwargs={"n": 2})

        @app.job(name="second")
        async def second(n: int) -> None:
            order.append((tag, f"second {n}"))

        return app

    a, b = build("a"), build("b")
    async with a, b:
        await a.queue.push("first")
        await b.queue.push("first")
        await asyncio.gather(Worker(a, burst=True).run(), Worker(b, burst=True).run())
    assert sorted(order) == [("a", "first"), ("a", "second 2"), ("b", "first"), ("b", "second 2")]


async def test_dispatch_outside_a_job_is_a_clear_error() -> None:
    with pytest.raises(mqttq.MqttqError, match="inside a running job"):
        await mqttq.dispatch("anything")
    assert mqttq.current_job() is None


async def test_worker_overrides_beat_job_defaults_but_not_pushed_values() -> None:
    app = make_app(worker={"max_tries": 5})
    runs: dict[str, int] = {}

    @app.job(max_tries=4)
    async def fails(key: str) -> None:
        runs[key] = runs.get(key, 0) + 1
        raise RuntimeError(key)

    async with app:
        await app.queue.push(fails, kwargs={"key": "default"})
        await app.queue.push(fails, kwargs={"key": "pushed"}, max_tries=1)
        worker = Worker(app, max_tries=2, burst=False)
        task = asyncio.create_task(worker.run())

        async def settled() -> bool:
            return len(await app.driver.failed_ids()) == 2

        await eventually(settled, timeout=20, what="both jobs to fail")
        worker.stop()
        await task
    assert runs == {"default": 2, "pushed": 1}


def test_the_timeout_override_is_checked_against_the_lease() -> None:
    app = make_app(worker={"lease": 10})
    with pytest.raises(mqttq.ConfigError, match=r"--timeout 10s must be above 0 and below"):
        Worker(app, timeout=10).check()
    Worker(app, timeout=9).check()


async def test_the_timeout_override_applies() -> None:
    app = make_app()

    @app.job(timeout=20)
    async def slow() -> None:
        await asyncio.sleep(30)

    async with app:
        job_id = await app.queue.push(slow)
        await Worker(app, burst=True, timeout=0.2, max_tries=1).run()
        entry = await app.driver.failed_get(job_id)
    assert entry is not None
    assert entry.error.startswith("JobTimeoutError")
    assert entry.error.endswith("timed out after 0.2s")
