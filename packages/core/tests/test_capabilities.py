"""Optional driver behaviour is checked where it is used: one NotSupportedError naming the
capability and the driver, never a silently ignored unique key or delay."""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

import pytest

import mqttq
from mqttq import Capability, NotSupportedError
from mqttq.builtin.memory import MemoryQueueDriver
from mqttq.config import structure
from mqttq.listener import Listener
from mqttq.plugin import Register
from mqttq.testing.fakes import FakeTransport
from mqttq.worker import Worker


class LeanDriver(MemoryQueueDriver):
    """A memory store that declares only what the test class asks for."""

    schemes = ("lean",)
    capabilities: ClassVar[frozenset[Capability]] = frozenset()

    @classmethod
    def from_url(cls, url: str, /, **options: Any) -> Any:
        options.pop("create", None)
        return cls(url.removeprefix("lean://"), **options)


class Plugin:
    @mqttq.hookimpl
    def mqttq_register_queue_drivers(self, register: Register) -> None:
        register("lean", LeanDriver)


def lean_app(*caps: Capability, **sections: Any) -> mqttq.App:
    LeanDriver.capabilities = frozenset(caps)
    data = {"queue": {"url": f"lean://{uuid.uuid4().hex}"}, **sections}
    host = mqttq.make_plugin_manager(autoload=False, extra=[("lean", Plugin())])
    app = mqttq.App(structure(data), host=host)
    app.job(lambda **kw: None, name="noop")
    return app


async def test_a_unique_key_without_unique_support_is_refused() -> None:
    app = lean_app(Capability.CLAIM)
    async with app:
        with pytest.raises(NotSupportedError, match=r"lean queue driver .*unique keys.*UNIQUE"):
            await app.queue.push("noop", unique_key="k")
        assert await app.queue.size() == 0


async def test_a_delay_without_delay_support_is_refused() -> None:
    app = lean_app(Capability.CLAIM, Capability.UNIQUE)
    async with app:
        with pytest.raises(NotSupportedError, match=r"delayed jobs.*DELAY.*delayed by 5s"):
            await app.queue.later(5, "noop")
        with pytest.raises(NotSupportedError, match="DELAY"):
            await app.queue.bulk([mqttq.Call("noop"), mqttq.Call("noop", delay=1)])
        assert await app.queue.size() == 0  # the whole batch was refused
        await app.queue.push("noop")  # a plain push is fine


async def test_a_worker_refuses_a_push_only_driver_at_start_up() -> None:
    app = lean_app(Capability.DELAY)
    with pytest.raises(NotSupportedError, match=r"claiming jobs.*CLAIM.*mqttq worker"):
        await Worker(app, burst=True, install_signals=False).run()


async def test_a_listener_refuses_a_driver_that_cannot_record_poison() -> None:
    app = lean_app(Capability.CLAIM, Capability.DELAY, routes=[{"topic": "s/+/t", "job": "noop"}])
    async with app:
        listener = Listener(app, transport=FakeTransport())
        with pytest.raises(NotSupportedError, match=r"failed-job registry.*poison"):
            await listener.run()


async def test_a_sync_route_needs_delayed_jobs_for_its_retries() -> None:
    app = lean_app(
        Capability.CLAIM,
        Capability.FAILED_REGISTRY,
        routes=[{"topic": "s/+/t", "job": "noop", "mode": "sync"}],
    )
    async with app:
        with pytest.raises(NotSupportedError, match=r"routes\[0\] in sync mode"):
            await Listener(app, transport=FakeTransport()).run()


async def test_base_methods_name_the_missing_capability() -> None:
    app = lean_app()
    async with app:
        with pytest.raises(NotSupportedError, match="FAILED_REGISTRY"):
            await mqttq.QueueDriver.failed_list(app.driver)
        with pytest.raises(NotSupportedError, match="CLAIM"):
            await mqttq.QueueDriver.claim(app.driver, ["q"], 1, lease=1)
