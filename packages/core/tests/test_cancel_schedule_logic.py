"""Cancelling jobs in a worker, and the schedule logic with a fixed clock (in-memory driver)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

import mqttq
from mqttq.config import ScheduleConfig, structure
from mqttq.retry import Outage
from mqttq.schedules import GRACE, Schedule, Scheduler, check_schedules, unique_key
from mqttq.testing import eventually
from mqttq.worker import Worker


def make_app(**sections: Any) -> mqttq.App:
    config = structure({"queue": {"url": f"memory://{uuid.uuid4().hex}"}, **sections})
    return mqttq.App(config, host=mqttq.make_plugin_manager(autoload=False))


# -- cancellation -------------------------------------------------------------------------------


async def test_cancelling_a_running_job_stops_it_without_retry_or_failure() -> None:
    app = make_app(worker={"max_tries": 5, "prefetch": 0})
    started, events, failures = asyncio.Event(), [], []

    @app.job(on_failure=lambda job, error: failures.append(error))
    async def long() -> None:
        started.set()
        await asyncio.sleep(10)

    @app.job
    async def stubborn() -> None:  # swallows the cancellation and returns
        started.set()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            events.append("swallowed")

    async with app:
        for job in (long, stubborn):
            started.clear()
            job_id = await app.queue.push(job)
            worker = Worker(app, concurrency=1)
            task = asyncio.create_task(worker.run())
            await asyncio.wait_for(started.wait(), 10)
            assert await app.queue.cancel(job_id) == "stopping"
            await eventually(lambda w=worker: w.executor and w.executor.cancelled, timeout=5)
            worker.stop()
            assert await task == 0
            record = await app.driver.get_job(job_id)
            assert record is not None
            assert record.state == "cancelled"
            assert await app.driver.failed_ids() == []
            assert (await app.queue.stats())["default"].ready == 0
    assert failures == []
    assert events == ["swallowed"]


async def test_cancelling_a_held_job_drops_it() -> None:
    app = make_app(worker={"concurrency": 1})
    gate = asyncio.Event()
    ran: list[int] = []

    @app.job
    async def step(i: int) -> None:
        ran.append(i)
        await gate.wait()

    async with app:
        worker = Worker(app, concurrency=1)
        worker.prefetch = 0
        first = await app.queue.push(step, kwargs={"i": 1})
        task = asyncio.create_task(worker.run())
        await eventually(lambda: ran == [1], timeout=5)
        # a job claimed and held (as prefetch holds them) while the first one runs
        second = await app.queue.push(step, kwargs={"i": 2})
        [held] = await app.driver.claim(["default"], 1, lease=30)
        worker._held.append((held, asyncio.get_running_loop().time()))
        assert await app.queue.cancel(second) == "stopping"
        await eventually(lambda: not worker._held, timeout=5, what="the held job to be dropped")
        gate.set()
        await eventually(lambda: worker.executor and worker.executor.processed == 1, timeout=5)
        worker.stop()
        await task
        assert ran == [1]
        assert (await app.driver.get_job(first)) is None


async def test_cancel_errors_and_outcomes() -> None:
    app = make_app()

    @app.job
    async def noop() -> None: ...

    async with app:
        waiting = await app.queue.later(60, noop)
        assert await app.queue.cancel(waiting) == "cancelled"
        with pytest.raises(mqttq.JobFinishedError, match="cancelled already"):
            await app.queue.cancel(waiting)
        with pytest.raises(mqttq.JobNotFoundError, match="finished"):
            await app.queue.cancel(uuid.uuid4().hex)
        job = app.queue.make_job(mqttq.Call(app.jobs.name_for(noop)))
        await app.driver.fail(job, error="boom")
        with pytest.raises(mqttq.JobFinishedError, match="already failed"):
            await app.queue.cancel(job.id)


# -- schedules: slots with a fixed clock --------------------------------------------------------


def ts(*args: int, tz: str = "UTC") -> float:
    return datetime(*args, tzinfo=ZoneInfo(tz)).timestamp()  # type: ignore[misc]


def test_cron_in_a_time_zone_falls_on_its_wall_clock() -> None:
    paris = Schedule(name="s", job="j", cron="0 9 * * *", timezone="Europe/Paris")
    # winter: 09:00 in Paris is 08:00 UTC; summer: 07:00 UTC
    assert paris.next_after(ts(2024, 1, 15, 7, 0)) == ts(2024, 1, 15, 8, 0)
    assert paris.next_after(ts(2024, 7, 15, 6, 0)) == ts(2024, 7, 15, 7, 0)
    kathmandu = Schedule(name="s", job="j", cron="30 6 * * *", timezone="Asia/Kathmandu")
    assert kathmandu.next_after(ts(2024, 1, 1, 0, 0)) == ts(2024, 1, 1, 0, 45)
    utc = Schedule(name="s", job="j", cron="30 6 * * *")
    assert utc.next_after(ts(2024, 1, 1, 0, 0)) == ts(2024, 1, 1, 6, 30)


def test_cron_across_daylight_saving_changes() -> None:
    daily = Schedule(name="s", job="j", cron="30 2 * * *", timezone="Europe/Paris")
    # 2024-03-31 02:30 does not exist in Paris: the slot is 03:00 CEST
    assert daily.next_after(ts(2024, 3, 30, 12, 0, tz="Europe/Paris")) == ts(2024, 3, 31, 1, 0)
    # 2024-10-27 02:30 happens twice: a fixed-hour job fires once
    first = daily.next_after(ts(2024, 10, 26, 12, 0, tz="Europe/Paris"))
    assert first == ts(2024, 10, 27, 0, 30)
    assert daily.next_after(first) == ts(2024, 10, 28, 1, 30)
    hourly = Schedule(name="s", job="j", cron="0 * * * *", timezone="Europe/Paris")
    slots = [ts(2024, 10, 26, 23, 30)]
    for _ in range(3):
        slots.append(hourly.next_after(slots[-1]))
    assert slots[1:] == [ts(2024, 10, 27, 0), ts(2024, 10, 27, 1), ts(2024, 10, 27, 2)]


def test_due_slots_on_time_missed_and_catch_up() -> None:
    every = Schedule(name="s", job="j", every=10.0)
    now = 1_000_005.0
    assert every.due(None, now) == [1_000_000.0], "a new schedule: only slots on time"
    assert every.due(1_000_000.0, now) == []
    late = now + GRACE - 1  # a late scheduler still fires each slot on time, one by one
    assert every.due(1_000_000.0, late) == [1_000_010.0]
    assert every.due(990_000.0, now) == [999_990.0, 1_000_000.0], "one catch-up, then on time"
    none = Schedule(name="s", job="j", every=10.0, catch_up="none")
    assert none.due(990_000.0, now) == [1_000_000.0]


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_the_scheduler_fires_each_slot_once_across_schedulers() -> None:
    app = make_app(schedules=[{"job": "tick", "every": 5, "name": "tick", "kwargs": {"n": 1}}])

    @app.job(name="tick")
    async def tick(n: int) -> None: ...

    clock = Clock(1_000_001.0)
    stop = asyncio.Event()
    async with app:
        [schedule] = check_schedules(app)
        schedulers = [
            Scheduler(app, [schedule], outage=Outage("q", logging.getLogger()), clock=clock)
            for _ in range(3)
        ]
        for s in schedulers:
            await s.start(stop)
        for _step in range(12):
            clock.now += 2.5
            for s in schedulers:
                wake = await s.tick(stop)
                assert wake > clock.now
        jobs = await app.driver.claim(["default"], 100, lease=30)
        marks = await app.driver.schedule_marks()
    slots = sorted(float(j.unique_key.rsplit(":", 1)[1]) for j in jobs if j.unique_key)
    # a new schedule starts with the slots still on time, then fires each slot once
    assert slots == [999_995.0 + 5 * i for i in range(8)]
    assert sum(s.fired for s in schedulers) == 8
    assert marks == {"tick": 1_000_030.0}
    assert {j.kwargs["n"] for j in jobs} == {1}
    assert unique_key("tick", 1_000_005.0) in {j.unique_key for j in jobs}


def test_schedule_checks() -> None:
    app = make_app(schedules=[{"job": "nope", "every": 5}])
    with pytest.raises(mqttq.ConfigError, match=r"schedules\[0\]\.job: unknown job 'nope'"):
        check_schedules(app)
    bad = ScheduleConfig(job="x", cron="61 * * * *")
    with pytest.raises(mqttq.ConfigError, match="not a valid cron"):
        Schedule.from_config(bad)
    with pytest.raises(mqttq.ConfigError, match="exactly one of cron and every"):
        structure({"schedules": [{"job": "x"}]})
    with pytest.raises(mqttq.ConfigError, match="unknown time zone"):
        structure({"schedules": [{"job": "x", "cron": "* * * * *", "timezone": "Mars/Base"}]})


def test_a_driver_without_schedule_marks_refuses_schedules() -> None:
    app = make_app(schedules=[{"job": "j", "every": 5}])
    app.job(lambda: None, name="j")

    class NoMarks(app.driver_class()):  # type: ignore[misc]
        capabilities = frozenset(mqttq.Capability) - {mqttq.Capability.SCHEDULES}

    app.driver_class = lambda: NoMarks  # type: ignore[method-assign]
    with pytest.raises(mqttq.NotSupportedError, match=r"Capability\.SCHEDULES"):
        Worker(app).check()
    Worker(app, schedules=False).check()


def test_utc_formatting_of_slots() -> None:
    assert datetime.fromtimestamp(ts(2024, 1, 1, 0, 0), UTC).hour == 0
