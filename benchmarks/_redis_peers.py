"""The systems ``bench_redis.py`` compares, each with the same no-op job, enqueue calls and worker.

Imported by the parent (to enqueue) and by the worker processes (``python bench_redis.py --worker
SYSTEM``), so task names resolve to the same module on both sides. Each library is imported only
when its system is used. Settings come from the environment the parent sets:

* ``BENCH_REDIS_URL``: the private redis-server (never the one on port 6379).
* ``BENCH_RECORD_DIR``: each worker process appends ``<i> <sent> <started>`` per job to
  ``<dir>/<pid>.txt`` (one ``os.write`` per job: the same small cost for every system).
* ``BENCH_CONCURRENCY``: jobs run at once per worker process (threads for sync systems).
"""

from __future__ import annotations

import asyncio
import functools
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

URL = os.environ.get("BENCH_REDIS_URL", "")
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "10"))
QUEUE = "default"

_fd: int | None = None


def record(i: int, sent: float) -> None:
    global _fd
    now = time.time()
    if _fd is None:
        path = os.path.join(os.environ["BENCH_RECORD_DIR"], f"{os.getpid()}.txt")
        _fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(_fd, f"{i} {sent:.6f} {now:.6f}\n".encode())


# -- mqttq-redis -----------------------------------------------------------------------------------


async def mqttq_noop(i: int, sent: float) -> None:
    record(i, sent)


MQTTQ_JOB = "_redis_peers:mqttq_noop"


def mqttq_toml(url: str, concurrency: int) -> str:
    return f"""
[queue]
url = "{url}"

[worker]
concurrency = {concurrency}
lease = 30

[jobs]
register = ["{MQTTQ_JOB}"]
"""


# -- huey (RedisHuey) ------------------------------------------------------------------------------


@functools.cache
def huey_app() -> Any:
    from huey import RedisHuey

    huey = RedisHuey("bench", url=URL, results=False)

    @huey.task(name="noop")
    def noop(i: int, sent: float) -> None:
        record(i, sent)

    huey.bench_noop = noop  # type: ignore[attr-defined]
    return huey


def huey_enqueue(i: int, sent: float) -> None:
    huey_app().bench_noop(i, sent)


def huey_worker() -> None:
    consumer = huey_app().create_consumer(
        workers=CONCURRENCY, worker_type="thread", periodic=False, initial_delay=0.001
    )
    consumer.run()


# -- RQ --------------------------------------------------------------------------------------------


def rq_noop(i: int, sent: float) -> None:
    record(i, sent)


@functools.cache
def rq_queue() -> Any:
    from redis import Redis
    from rq import Queue

    return Queue(QUEUE, connection=Redis.from_url(URL))


def rq_enqueue(i: int, sent: float) -> None:
    rq_queue().enqueue(rq_noop, i, sent)


def rq_bulk(n: int) -> None:
    from rq import Queue

    q = rq_queue()
    now = time.time()
    q.enqueue_many([Queue.prepare_data(rq_noop, (i, now)) for i in range(n)])


def rq_worker(kind: str) -> None:
    from rq import SimpleWorker, Worker

    cls = SimpleWorker if kind == "simple" else Worker
    q = rq_queue()
    cls([q], connection=q.connection).work(logging_level="WARNING")


# -- arq -------------------------------------------------------------------------------------------


async def arq_noop(ctx: dict[str, Any], i: int, sent: float) -> None:
    record(i, sent)


async def arq_producer() -> tuple[Callable[[int, float], Awaitable[Any]], Callable[[], Any]]:
    from arq import create_pool
    from arq.connections import RedisSettings

    pool = await create_pool(RedisSettings.from_dsn(URL))

    async def push(i: int, sent: float) -> None:
        await pool.enqueue_job("arq_noop", i, sent)

    return push, pool.aclose


def arq_worker() -> None:
    from arq.connections import RedisSettings
    from arq.worker import Worker

    worker = Worker(
        functions=[arq_noop],  # type: ignore[list-item]
        redis_settings=RedisSettings.from_dsn(URL),
        max_jobs=CONCURRENCY,
        handle_signals=True,
    )
    worker.run()


# -- saq -------------------------------------------------------------------------------------------


async def saq_noop(ctx: Any, *, i: int, sent: float) -> None:
    record(i, sent)


async def saq_producer() -> tuple[Callable[[int, float], Awaitable[Any]], Callable[[], Any]]:
    from saq import Queue

    queue = Queue.from_url(URL)
    await queue.connect()

    async def push(i: int, sent: float) -> None:
        await queue.enqueue("saq_noop", i=i, sent=sent)

    return push, queue.disconnect


def saq_worker() -> None:
    from saq import Queue, Worker

    async def main() -> None:
        queue = Queue.from_url(URL)
        worker = Worker(queue, functions=[saq_noop], concurrency=CONCURRENCY)
        await worker.start()

    asyncio.run(main())


# -- taskiq (taskiq-redis ListQueueBroker) ---------------------------------------------------------


@functools.cache
def taskiq_broker() -> Any:
    from taskiq_redis import ListQueueBroker

    broker = ListQueueBroker(URL)

    @broker.task(task_name="noop")
    async def noop(i: int, sent: float) -> None:
        record(i, sent)

    broker.bench_noop = noop
    return broker


async def taskiq_producer() -> tuple[Callable[[int, float], Awaitable[Any]], Callable[[], Any]]:
    broker = taskiq_broker()
    await broker.startup()

    async def push(i: int, sent: float) -> None:
        await broker.bench_noop.kiq(i, sent)

    return push, broker.shutdown


def taskiq_worker() -> None:
    from taskiq.api import run_receiver_task

    async def main() -> None:
        broker = taskiq_broker()
        broker.is_worker_process = True
        await broker.startup()
        await run_receiver_task(broker, max_async_tasks=CONCURRENCY)

    asyncio.run(main())


# -- dramatiq --------------------------------------------------------------------------------------


@functools.cache
def dramatiq_actor() -> Any:
    import dramatiq
    from dramatiq.brokers.redis import RedisBroker

    broker = RedisBroker(url=URL)
    dramatiq.set_broker(broker)

    @dramatiq.actor(actor_name="noop", queue_name=QUEUE, max_retries=0)
    def noop(i: int, sent: float) -> None:
        record(i, sent)

    return noop


def dramatiq_enqueue(i: int, sent: float) -> None:
    dramatiq_actor().send(i, sent)


def dramatiq_worker() -> None:
    import signal
    import threading

    from dramatiq import Worker

    actor = dramatiq_actor()
    worker = Worker(actor.broker, worker_threads=CONCURRENCY)
    worker.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    worker.stop()


WORKERS: dict[str, Callable[[], None]] = {
    "huey": huey_worker,
    "rq-simple": lambda: rq_worker("simple"),
    "rq-fork": lambda: rq_worker("fork"),
    "arq": arq_worker,
    "saq": saq_worker,
    "taskiq": taskiq_worker,
    "dramatiq": dramatiq_worker,
}
