"""The job registry, the decorators, the queue API and the backoff."""

from __future__ import annotations

import sys
import time
import uuid
from datetime import datetime, timedelta

import pytest

import mqttq
from mqttq.config import structure
from mqttq.jobs import JobRegistry, retry_delay


@mqttq.job(name="decorated", max_tries=7, queue="q1")
def decorated() -> None: ...


def test_module_scan_registers_marked_functions_under_both_names() -> None:
    registry = JobRegistry()
    [spec] = registry.add_module(__name__)
    assert spec.max_tries == 7
    assert registry.get("decorated") is spec
    assert registry.get(f"{__name__}:decorated") is spec


def test_unknown_targets_and_modules_are_config_errors() -> None:
    registry = JobRegistry()
    with pytest.raises(mqttq.ConfigError, match="cannot load job"):
        registry.add_target("no_such_module_xyz:f")
    with pytest.raises(mqttq.ConfigError, match="cannot import job module"):
        registry.add_module("no_such_module_xyz")


def test_lookup_never_imports() -> None:
    registry = JobRegistry()
    module = f"never_{uuid.uuid4().hex}"
    with pytest.raises(mqttq.UnknownJobError):
        registry.get(f"{module}:f")
    assert module not in sys.modules


def test_two_functions_cannot_share_a_name() -> None:
    registry = JobRegistry()
    registry.add_function(decorated)

    def other() -> None: ...

    with pytest.raises(mqttq.ConfigError, match="registered twice"):
        registry.add_function(other, name="decorated")


def test_backoff_grows_caps_and_jitters_only_upwards() -> None:
    backoff = mqttq.Backoff(base=1, factor=2, max=5, jitter=0.5)
    assert [retry_delay(backoff, n, rand=lambda: 0.0) for n in (1, 2, 3, 4)] == [1, 2, 4, 5]
    assert retry_delay(backoff, 2, rand=lambda: 1.0) == 3.0


async def test_queue_api_push_later_at_bulk_size_stats() -> None:
    config = structure({"queue": {"url": f"memory://{uuid.uuid4().hex}"}})
    app = mqttq.App(config, host=mqttq.make_plugin_manager(autoload=False))
    app.job(decorated)
    async with app:
        now = time.time()
        first = await app.queue.push("decorated")
        later = await app.queue.later(60, decorated)
        at = await app.queue.at(datetime.now() + timedelta(hours=1), "decorated", queue="q2")
        ids = await app.queue.bulk([mqttq.Call("decorated", kwargs={"i": i}) for i in range(5)])
        assert len({first, later, at, *ids}) == 8
        assert await app.queue.size("q1") == 7  # the decorator's queue
        stats = await app.queue.stats()
        assert (stats["q1"].ready, stats["q1"].delayed) == (6, 1)
        assert stats["q2"].delayed == 1
        record = await app.driver.get_job(at)
        assert record is not None
        assert record.job.available_at >= now + 3500
        with pytest.raises(mqttq.UnknownJobError):
            await app.queue.bulk([mqttq.Call("decorated"), mqttq.Call("os:system")])
        assert await app.queue.size("q1") == 7  # nothing of the refused batch was stored


async def test_unique_key_keeps_one_live_job() -> None:
    config = structure({"queue": {"url": f"memory://{uuid.uuid4().hex}"}})
    app = mqttq.App(config, host=mqttq.make_plugin_manager(autoload=False))
    app.job(decorated)
    async with app:
        a = await app.queue.push("decorated", unique_key="k")
        b = await app.queue.push("decorated", unique_key="k")
        assert a == b
        assert await app.queue.size("q1") == 1
