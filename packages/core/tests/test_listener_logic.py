"""The listener's own logic with a fake transport and the memory driver: what it acks, when,
and what happens when the queue backend fails. (The real transport and broker are tested in
``tests/test_listener_*.py``.)"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from mqttq import App, DriverError, DriverUnavailable, Envelope
from mqttq.config import structure
from mqttq.listener import Listener
from mqttq.testing import eventually
from mqttq.testing.fakes import FakeTransport


async def wait(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    await eventually(predicate, timeout=timeout, what="the listener")


@pytest.fixture
async def setup() -> Any:
    app = App(
        structure(
            {
                "queue": {"url": f"memory://listener-{uuid.uuid4().hex}"},
                "routes": [{"topic": "s/{device_id}/t", "job": "mqttq_testjobs:add"}],
            }
        )
    )
    await app.open()
    transport = FakeTransport()
    listener = Listener(app, transport=transport)
    task = asyncio.create_task(listener.run())
    await wait(listener.running.is_set)
    yield app, transport, listener, task
    listener.stop()
    await asyncio.wait_for(task, 5)
    await app.aclose()


async def test_one_push_per_batch_and_acks_after_it(setup: Any) -> None:
    app, transport, listener, _ = setup
    assert [s.filter for s in transport.subscribed] == ["s/+/t"]
    transport.feed(b"1", b"2", b"3")
    transport.feed(b"4", topic="other/topic")  # nothing routes it: acked, counted
    await wait(lambda: len(transport.acked) == 4)
    assert await app.queue.size("default") == 3
    stats = listener.stats
    assert (stats.received, stats.enqueued, stats.unmatched, stats.batches) == (4, 3, 1, 2)


async def test_queue_unavailable_holds_the_messages_until_it_is_back(setup: Any) -> None:
    app, transport, _, _ = setup
    real_push = app.driver.push
    failures = 2

    async def flaky_push(jobs: Sequence[Envelope]) -> list[str]:
        nonlocal failures
        if failures:
            failures -= 1
            assert transport.acked == []  # nothing acked while the push fails
            raise DriverUnavailable("backend down")
        return await real_push(jobs)

    app.driver.push = flaky_push
    transport.feed(b"1", b"2")
    await wait(lambda: len(transport.acked) == 2)
    assert failures == 0
    assert await app.queue.size("default") == 2


async def test_a_job_the_driver_refuses_is_failed_and_the_rest_pushed(setup: Any) -> None:
    app, transport, _, _ = setup
    real_push = app.driver.push

    async def picky_push(jobs: Sequence[Envelope]) -> list[str]:
        if any(j.kwargs["message"]["$message"]["payload"] == 13 for j in jobs):
            raise DriverError("cannot store 13")
        return await real_push(jobs)

    app.driver.push = picky_push
    transport.feed(*(str(i).encode() for i in range(20)))
    await wait(lambda: len(transport.acked) == 20)
    assert await app.queue.size("default") == 19
    (failed,) = await app.driver.failed_list()
    assert failed.error == "cannot enqueue: cannot store 13"


async def test_stop_while_the_queue_is_down_leaves_messages_unacked(setup: Any) -> None:
    app, transport, listener, task = setup

    async def down(jobs: Sequence[Envelope]) -> list[str]:
        raise DriverUnavailable("backend down")

    app.driver.push = down
    transport.feed(b"1")
    await wait(lambda: listener.stats.received == 1)
    listener.stop()
    await asyncio.wait_for(task, 5)
    assert transport.acked == []  # the broker will deliver it again
    assert transport.closed


async def test_a_message_with_sync_and_async_routes_is_acked_after_both() -> None:
    app = App(
        structure(
            {
                "queue": {"url": f"memory://listener-{uuid.uuid4().hex}"},
                "routes": [
                    {"topic": "s/{device_id}/t", "job": "sync-record", "mode": "sync"},
                    {"topic": "s/#", "job": "sync-record", "queue": "later"},
                ],
            }
        )
    )
    ran: list[Any] = []
    app.job(lambda **kw: ran.append(kw), name="sync-record")
    await app.open()
    real_push = app.driver.push
    release = asyncio.Event()

    async def slow_push(jobs: Sequence[Envelope]) -> list[str]:
        await release.wait()
        return await real_push(jobs)

    app.driver.push = slow_push
    transport = FakeTransport()
    listener = Listener(app, transport=transport)
    task = asyncio.create_task(listener.run())
    await wait(listener.running.is_set)
    transport.feed(b"1")
    await wait(lambda: listener.stats.received == 1)
    assert (ran, transport.acked) == ([], [])  # the queued job is not safe yet: no ack, no run
    release.set()
    await wait(lambda: transport.acked == [b"1"])
    assert len(ran) == 1
    assert ran[0]["device_id"] == "d1"
    assert await app.queue.size("later") == 1
    listener.stop()
    await asyncio.wait_for(task, 5)
    await app.aclose()


async def test_a_failing_sync_lane_stops_the_listener_with_its_error() -> None:
    """Anything but an unavailable backend that breaks the sync lane stops the listener, which
    raises it; the message stays unacked for the broker to deliver again."""
    app = App(
        structure(
            {
                "queue": {"url": f"memory://listener-{uuid.uuid4().hex}"},
                "routes": [{"topic": "s/{device_id}/t", "job": "sync-job", "mode": "sync"}],
            }
        )
    )
    app.job(lambda **kw: None, name="sync-job")
    await app.open()

    class BrokenExecutor:
        async def run_inline(self, job: Envelope) -> bool:
            raise RuntimeError("executor bug")

    transport = FakeTransport()
    listener = Listener(app, transport=transport, executor=BrokenExecutor())  # type: ignore[arg-type]
    task = asyncio.create_task(listener.run())
    await wait(listener.running.is_set)
    transport.feed(b"1")
    with pytest.raises(RuntimeError, match="executor bug"):
        await asyncio.wait_for(task, 10)
    assert transport.acked == []
    assert transport.closed
    await app.aclose()
