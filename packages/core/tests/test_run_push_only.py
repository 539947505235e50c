"""``serve()`` (``mqttq run``) with a push-only driver: the worker pool its plugin registers runs
the jobs; without one, one line says what to run instead. (The pool running beside the listener
is tested end to end with mqttq-rq's RQ workers.)"""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

import pytest

import mqttq
from mqttq import Capability, MqttqError
from mqttq.builtin.memory import MemoryQueueDriver
from mqttq.config import structure
from mqttq.plugin import Register, WorkerPool
from mqttq.run import serve, worker_pool


class PushOnlyDriver(MemoryQueueDriver):
    """A memory store that does not claim: someone else's workers would run its jobs."""

    schemes = ("pushonly",)
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.FAILED_REGISTRY})

    @classmethod
    def from_url(cls, url: str, /, **options: Any) -> Any:
        options.pop("create", None)
        return cls(url.removeprefix("pushonly://"), **options)


class Pool(WorkerPool):
    async def run(self) -> int:  # pragma: no cover - never started by these tests
        return 0


class DriverPlugin:
    @mqttq.hookimpl
    def mqttq_register_queue_drivers(self, register: Register) -> None:
        register("pushonly", PushOnlyDriver)


class PoolPlugin:
    @mqttq.hookimpl
    def mqttq_register_worker_pools(self, register: Register) -> None:
        register("pushonly", Pool)


def push_only_app(*plugins: object) -> mqttq.App:
    data = {
        "queue": {"url": f"pushonly://{uuid.uuid4().hex}"},
        "routes": [{"topic": "s/+/t", "job": "noop"}],
    }
    extra = [(type(p).__name__, p) for p in (DriverPlugin(), *plugins)]
    app = mqttq.App(structure(data), host=mqttq.make_plugin_manager(autoload=False, extra=extra))
    app.job(lambda **kw: None, name="noop")
    return app


async def test_a_push_only_driver_without_a_worker_pool_is_one_line_saying_what_to_run() -> None:
    app = push_only_app()
    with pytest.raises(MqttqError) as caught:
        await serve(app, install_signals=False)
    assert str(caught.value) == (
        "the pushonly queue driver only queues jobs (no Capability.CLAIM) and no plugin runs "
        "workers for it: run its own workers, with `mqttq listen` for the MQTT side"
    )
    assert not app.is_open


def test_the_registered_pool_runs_a_push_only_drivers_jobs() -> None:
    assert worker_pool(push_only_app(PoolPlugin())) is Pool
    claiming = mqttq.App(structure({"queue": {"url": "memory://"}}))
    assert worker_pool(claiming) is None, "mqttq's own worker runs a claiming driver's jobs"


async def test_the_pool_is_forked_before_the_app_opens() -> None:
    app = push_only_app(PoolPlugin())
    async with app:
        with pytest.raises(MqttqError, match="pass an app that is not open"):
            await serve(app, install_signals=False)


async def test_options_of_mqttqs_own_worker_are_refused_with_a_pool() -> None:
    with pytest.raises(MqttqError, match=r"^concurrency and runner are for mqttq's own worker"):
        await serve(push_only_app(PoolPlugin()), concurrency=4, install_signals=False)
