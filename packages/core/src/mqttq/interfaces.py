"""The small interfaces plugins implement. Each docstring is the contract.

Optional behaviour is declared in ``capabilities``; the conformance kit (``mqttq.testing``) skips
what a driver does not claim. Backend exceptions must never escape an implementation: translate
them into :mod:`mqttq.errors` (``DriverUnavailable`` for "cannot reach the backend").
"""

from __future__ import annotations

import abc
import enum
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self

import attrs

from mqttq.errors import NotSupportedError
from mqttq.models import Envelope, FailedJob, JobRecord, QueueStats, WorkerInfo

if TYPE_CHECKING:
    from mqttq.config import MqttConfig
    from mqttq.jobs import JobSpec


class Capability(enum.Enum):
    """Optional behaviours a queue driver may declare."""

    #: pull-based: claim/ack/extend/retry/release (a push-only driver, like rq, lacks it)
    CLAIM = "claim"
    DELAY = "delay"  #: honours Envelope.available_at
    DURABLE = "durable"  #: jobs survive a process restart
    UNIQUE = "unique"  #: honours Envelope.unique_key
    FAILED_REGISTRY = "failed_registry"  #: fail() keeps jobs for list/show/requeue/forget/purge
    WORKERS = "workers"  #: worker heartbeats for ``mqttq workers``
    MULTI_PROCESS = "multi_process"  #: several processes may share one queue
    CANCEL = "cancel"  #: cancel() and cancelled(): cancelling waiting and running jobs
    SCHEDULES = "schedules"  #: fire_schedule() and schedule_marks(): periodic schedules


#: what each capability lets a user do, for error messages
_USES = {
    Capability.CLAIM: "claiming jobs (it is push-only)",
    Capability.DELAY: "delayed jobs",
    Capability.DURABLE: "keeping jobs across restarts",
    Capability.UNIQUE: "unique keys",
    Capability.FAILED_REGISTRY: "a failed-job registry",
    Capability.WORKERS: "worker heartbeats",
    Capability.MULTI_PROCESS: "several processes on one queue",
    Capability.CANCEL: "cancelling jobs",
    Capability.SCHEDULES: "periodic schedules",
}

#: what :meth:`QueueDriver.cancel` found
CancelOutcome = Literal["cancelled", "stopping", "failed", "already", "unknown"]


def require(driver: QueueDriver | type[QueueDriver], capability: Capability, why: str = "") -> None:
    """Raise :class:`NotSupportedError` naming the capability and the driver when ``driver``
    does not declare ``capability``. ``why`` says what needed it (``"a job with delay=5"``)."""
    if capability in driver.capabilities:
        return
    cls = driver if isinstance(driver, type) else type(driver)
    name = "/".join(cls.schemes) or cls.__name__
    needed = f" (needed for {why})" if why else ""
    raise NotSupportedError(
        f"the {name} queue driver does not support {_USES[capability]}: it does not declare "
        f"Capability.{capability.name}{needed}"
    )


class AsyncResource:
    """``open()`` once before use, ``aclose()`` after (safe twice); ``async with`` does both.
    Both do nothing by default: override them when you hold connections, threads or processes."""

    async def open(self) -> None:
        """Connect / start resources. Called once, before anything else."""

    async def aclose(self) -> None:
        """Release resources. Safe to call twice."""

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class QueueDriver(AsyncResource, abc.ABC):
    """Durable hand-off between producers (listener, API) and workers.

    One instance per process, built by :meth:`from_url` (no I/O) and opened with ``async with``.
    Every method may raise ``DriverUnavailable`` (the backend cannot be reached; retrying later
    is safe) or another ``DriverError``; no backend exception ever escapes. Each rule below is a
    test of ``mqttq.testing.QueueDriverSuite``.

    * ``push`` is atomic per batch and FIFO among ready jobs of a queue (by ``available_at``, then
      push order). Pushing an id that is already live raises ``DriverError`` and stores nothing
      of that batch.
    * A delayed job is not claimable before ``available_at`` and is claimable within 1 s after
      it, also by a claim that was already waiting.
    * ``claim`` never hands a job to two claimers while its lease is valid, within one instance
      or across instances on the same storage; each claim adds 1 to ``attempts``.
    * A job whose lease ran out is claimable again (by a reaper or on claim), its attempts kept.
      Until it is claimed again it counts as *ready* everywhere (``stats``, ``size``,
      ``get_job``): it is waiting for a worker, not held by one.
    * A stored entry that cannot be decoded (corrupt bytes, an envelope of a newer version) is
      never handed out and never stops a claim: it goes to the failed registry with its raw
      bytes (``FailedJob.raw``) and the reason, and the jobs behind it are claimed as usual.
    * ``ack`` forgets a job wherever it is (a slow worker may ack after its lease ran out and
      the job went back to ready); ``extend`` and ``release`` ignore ids that are not reserved.
      Unknown ids are ignored; calling any of them twice does nothing more.
    * A cancelled job (``Capability.CANCEL``) is not live: it is never claimed again, and
      ``ack``, ``extend``, ``release``, ``retry`` and ``fail`` of its id change nothing, so a
      worker that settles it late neither revives it nor records it as failed.
    """

    #: URL schemes this class serves (informational; the plugin registers the names).
    schemes: ClassVar[tuple[str, ...]] = ()
    capabilities: ClassVar[frozenset[Capability]] = frozenset()

    @classmethod
    @abc.abstractmethod
    def from_url(cls, url: str, /, **options: Any) -> Self:
        """Build a driver from its URL (``sqlite:///path.db``). Must not do I/O.

        mqttq always passes ``failed_ttl`` (seconds, from ``[queue] failed_ttl``) and, for
        commands that only look (``mqttq stats``, ``failed list``...), ``create=False``: then
        :meth:`open` must not create storage that does not exist yet, and raises
        ``QueueNotFoundError`` instead. Options in the URL's query string and keyword options
        mean the same; keywords win. Raise ``ConfigError`` for a malformed URL or an unknown
        option.
        """

    # -- producing ----------------------------------------------------------------------------

    @abc.abstractmethod
    async def push(self, jobs: Sequence[Envelope]) -> list[str]:
        """Store ``jobs`` atomically (all or none) and return their ids, in order.

        A job whose ``unique_key`` matches a live (ready, delayed or reserved) job, or an earlier
        job of the same batch, is not stored: the live job's id is returned in its place
        (``Capability.UNIQUE``). An empty key means no key.
        """

    # -- consuming (Capability.CLAIM) ---------------------------------------------------------

    async def claim(
        self, queues: Sequence[str], n: int, *, lease: float, wait: float = 0.0
    ) -> list[Envelope]:
        """Atomically reserve up to ``n`` ready jobs, taking ``queues`` in the order given
        (all ready jobs of the first before any of the second).

        Each claimed job gets a lease deadline ``now + lease`` and ``attempts + 1`` (the returned
        envelopes carry the new count). If nothing is ready, wait up to ``wait`` seconds for work
        (pushed by this instance or any other process, or a delayed job falling due) and return
        ``[]`` then. Waiting blocks or polls adaptively, never a fixed long sleep.
        """
        raise _unsupported(self, Capability.CLAIM)

    async def ack(self, ids: Sequence[str]) -> None:
        """The jobs are done: forget them, wherever they are, and free their unique keys."""
        raise _unsupported(self, Capability.CLAIM)

    async def extend(self, ids: Sequence[str], *, lease: float) -> None:
        """Heartbeat: move the lease deadline of reserved jobs to ``now + lease``."""
        raise _unsupported(self, Capability.CLAIM)

    async def retry(self, job: Envelope, *, delay: float, error: str) -> None:
        """Store ``job`` (as given, with its attempts) again, claimable after ``delay`` seconds,
        with ``last_error = error``; its lease ends. ``delay=0`` means ready now."""
        raise _unsupported(self, Capability.CLAIM)

    async def release(self, ids: Sequence[str]) -> None:
        """Graceful shutdown: reserved jobs go back to the front of ready, their attempt given
        back (``attempts - 1``)."""
        raise _unsupported(self, Capability.CLAIM)

    async def fail(self, job: Envelope, *, error: str, traceback: str = "") -> None:
        """Move ``job`` into the failed registry (``Capability.FAILED_REGISTRY``), whether it is
        reserved or was never stored (poison input from the listener), and free its unique key.

        The entry keeps the envelope as given with ``last_error = error``, the ``error``,
        ``traceback``, the job's ``attempts`` and ``failed_at`` = the time of this call. Failing an
        id that is already in the registry replaces that entry.
        """
        raise _unsupported(self, Capability.FAILED_REGISTRY)

    # -- inspecting -----------------------------------------------------------------------------

    @abc.abstractmethod
    async def stats(self) -> dict[str, QueueStats]:
        """Counts per queue name, for every queue that holds or held jobs (an emptied queue is
        listed with zeros). *ready*: claimable now (expired leases included); *delayed*: waiting
        for ``available_at``; *reserved*: under a valid lease; *failed*: in the failed registry.
        ``oldest_ready_age``: seconds since the longest-waiting ready job became ready."""

    async def size(self, queue: str) -> int:
        """Jobs waiting in ``queue`` (ready + delayed)."""
        s = (await self.stats()).get(queue)
        return 0 if s is None else s.ready + s.delayed

    async def get_job(self, job_id: str) -> JobRecord | None:
        """Where a job is now (``ready``, ``delayed``, ``reserved`` with its lease deadline,
        ``failed`` with error and traceback, or ``cancelled``), or ``None`` when it is done or
        unknown."""
        return None

    # -- cancellation (Capability.CANCEL) --------------------------------------------------------

    # Cancelled jobs are kept (for get_job) as long as failed ones: ``failed_ttl`` seconds.

    async def cancel(self, job_id: str) -> CancelOutcome:
        """Cancel a job, atomically, and say what was found:

        * ``"cancelled"``: it was waiting (ready or delayed; an expired lease counts as ready):
          it is removed, its unique key freed, and recorded as cancelled;
        * ``"stopping"``: it was reserved under a valid lease: the same, and the worker holding
          it learns it through :meth:`cancelled` and stops it;
        * ``"failed"``: it is in the failed registry (nothing changes);
        * ``"already"``: it was cancelled before (nothing changes);
        * ``"unknown"``: no such job: finished, or never pushed (nothing changes).
        """
        raise _unsupported(self, Capability.CANCEL)

    async def cancelled(self, ids: Sequence[str]) -> list[str]:
        """Those of ``ids`` that are recorded as cancelled (in the order given): how a worker
        learns which of the jobs it holds to stop. Seen by every instance on the storage."""
        raise _unsupported(self, Capability.CANCEL)

    # -- schedules (Capability.SCHEDULES) --------------------------------------------------------

    async def fire_schedule(self, name: str, slot: float, job: Envelope) -> str | None:
        """Fire one slot of the periodic schedule ``name``, at most once across every process.

        Atomically: when no slot of ``name`` fired yet, or ``slot`` is later than the last one
        that did, store ``job`` as :meth:`push` does (an id already live raises
        ``DriverError``, and then nothing changes; a live unique key stands in as in a push)
        and record ``slot`` as the schedule's last fired slot; return the job's id (or the live
        job's). Otherwise store nothing and return ``None``. The mark is durable like the jobs
        and independent of them: a slot fires once even after its job finished.
        """
        raise _unsupported(self, Capability.SCHEDULES)

    async def schedule_marks(self) -> dict[str, float]:
        """The last fired slot of every schedule that fired, by name."""
        raise _unsupported(self, Capability.SCHEDULES)

    # -- failed registry (Capability.FAILED_REGISTRY) -------------------------------------------

    # Entries disappear ``failed_ttl`` seconds after their ``failed_at``.

    async def failed_list(
        self, queue: str | None = None, *, offset: int = 0, limit: int = 100
    ) -> list[FailedJob]:
        """Failed jobs, newest first (ties: the later failure first), optionally of one queue."""
        raise _unsupported(self, Capability.FAILED_REGISTRY)

    async def failed_get(self, job_id: str) -> FailedJob | None:
        """One entry, or ``None``."""
        raise _unsupported(self, Capability.FAILED_REGISTRY)

    async def failed_requeue(self, ids: Sequence[str]) -> int:
        """Move failed jobs back to the end of ready with attempts 0; returns how many moved.

        Unknown ids count 0. An entry whose envelope cannot be decoded is not moved."""
        raise _unsupported(self, Capability.FAILED_REGISTRY)

    async def failed_forget(self, ids: Sequence[str]) -> int:
        """Delete entries; returns how many existed."""
        raise _unsupported(self, Capability.FAILED_REGISTRY)

    async def failed_purge(self, queue: str | None = None) -> int:
        """Delete every entry (of ``queue``); returns how many."""
        raise _unsupported(self, Capability.FAILED_REGISTRY)

    async def failed_ids(self, queue: str | None = None) -> list[str]:
        """Every failed job id (for ``failed retry --all``), oldest first."""
        raise _unsupported(self, Capability.FAILED_REGISTRY)

    # -- workers (Capability.WORKERS) -----------------------------------------------------------

    async def worker_heartbeat(self, info: WorkerInfo, *, ttl: float) -> None:
        """Publish ``info``; it disappears ``ttl`` seconds after the last heartbeat."""

    async def worker_gone(self, worker_id: str) -> None:
        """Remove a worker at clean shutdown."""

    async def workers(self) -> list[WorkerInfo]:
        """Live workers."""
        return []


def _unsupported(driver: QueueDriver, capability: Capability) -> NotSupportedError:
    try:
        require(driver, capability)
    except NotSupportedError as exc:
        return exc
    return NotSupportedError(f"{type(driver).__name__} declares {capability} but lacks the method")


class JobRunner(AsyncResource, abc.ABC):
    """Runs job functions for one worker: ``Runner(app=app, concurrency=n)``, then ``async with``.

    At most ``concurrency`` jobs run at once (the worker guarantees it).
    """

    def __init__(self, *, app: Any, concurrency: int) -> None:
        self.app = app
        self.concurrency = concurrency

    @classmethod
    def check_job(cls, spec: JobSpec) -> None:
        """Called at start-up for every registered job: raise ``ConfigError`` (one line saying
        what to change) when this runner cannot run ``spec``. Accepts everything by default."""

    @abc.abstractmethod
    async def run(
        self,
        func: Callable[..., Any],
        target: str,
        job: Envelope,
        *,
        timeout: float | None,
    ) -> Any:
        """Call ``func(*job.args, **job.kwargs)`` and return its result.

        ``target`` is the function's ``module:qualname`` (for runners in other processes, which
        look it up in the same registry). Raise ``JobTimeoutError`` after ``timeout`` seconds.
        Must never block the event loop.
        """


class WorkerPool(abc.ABC):
    """Runs the jobs of a push-only queue driver in worker processes of its own: what
    ``mqttq worker`` does when ``queue.url`` names such a driver (``rq+redis://``).

    Built as ``Pool(app, queues=[...], count=n, burst=..., simple=...)`` (no I/O); :meth:`run`
    starts ``count`` workers listening to ``queues`` in priority order, supervises them
    (restarting one that dies, with backoff) and returns the process exit code. The first
    SIGTERM/SIGINT asks every worker to finish its current job (warm shutdown), a second one
    stops them at once (cold); the pool installs those handlers itself. ``burst``: every worker
    exits once the queues are empty. ``simple``: run each job in the worker process itself
    instead of a forked child.
    """

    def __init__(
        self,
        app: Any,
        *,
        queues: Sequence[str],
        count: int = 1,
        burst: bool = False,
        simple: bool = False,
    ) -> None:
        self.app = app
        self.queues = list(queues)
        self.count = count
        self.burst = burst
        self.simple = simple

    @abc.abstractmethod
    async def run(self) -> int:
        """Run the workers until they stop (see the class); return the exit code."""


@attrs.frozen(kw_only=True)
class Subscription:
    """One topic filter to subscribe to. ``share_group`` subscribes as ``$share/<group>/<topic>``
    so that several clients split the messages between them. ``identifier`` (MQTT 5, > 0) comes
    back in each delivery's ``subscription_identifier`` property, naming the subscriptions that
    matched (a broker may send one copy per matching subscription).

    ``retain_handling`` is MQTT 5's subscription option: 0 = the broker sends retained messages
    at every SUBSCRIBE, 1 = only when the subscription is new (not already in the session),
    2 = never. MQTT 3.1.1 has no such option: the broker sends them at every SUBSCRIBE, and the
    listener filters by the route's policy.
    """

    topic: str
    qos: int = 1
    share_group: str = ""
    identifier: int = 0
    retain_handling: int = attrs.field(default=0, validator=attrs.validators.in_((0, 1, 2)))

    @property
    def filter(self) -> str:
        """The filter as sent to the broker."""
        return f"$share/{self.share_group}/{self.topic}" if self.share_group else self.topic


@attrs.frozen(kw_only=True)
class Will:
    """A Last Will: what the broker publishes for a client whose connection dies uncleanly."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False


@attrs.frozen(kw_only=True, eq=False)
class Delivery:
    """One message as received, before any decoding. Hand it back to ``Transport.ack``.

    ``mid`` is the packet id (0 for QoS 0); ``dup`` is set on a redelivery; ``properties`` holds
    MQTT 5 properties as plain values (``user_property`` is a list of ``[key, value]`` pairs).
    ``connection`` numbers the connection it arrived on (acks of older connections are void).
    """

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    mid: int = 0
    dup: bool = False
    properties: Mapping[str, Any] = attrs.field(factory=dict)
    received_at: float = 0.0
    connection: int = 0


class Transport(abc.ABC):
    """A connection to an MQTT broker, kept alive for as long as it is open.

    Built by :meth:`from_config` (no I/O) and opened with ``async with`` (or :meth:`connect`).
    Library exceptions never escape: failures are ``TransportError``, "not connected right now"
    is ``NotConnectedError``.

    * **Connection**: after the first connect, a lost connection is re-established forever with
      exponential backoff and jitter (``mqtt.reconnect_min`` doubling up to ``reconnect_max``),
      and every subscription is made again before messages flow (over MQTT 3.1.1, only those
      the kept session lacks: a 3.1.1 SUBSCRIBE of a filter it holds resends retained messages).
    * **Session**: a stable client id and a persistent session (``session_expiry``), so the broker
      keeps subscriptions and unacknowledged messages while the client is away.
    * **Manual acknowledgement**: the PUBACK (QoS 1) or PUBREC (QoS 2: the broker hands the
      message over at PUBREC) of a delivery is sent only when :meth:`ack` is called with it, so a
      message is never acknowledged before its owner made it safe. Acks of deliveries from an
      earlier connection are dropped: the broker redelivers those messages instead.
    * **Backpressure**: at most ``mqtt.inflight`` deliveries are out (received and not acked); at
      that limit the transport stops reading from the network until acks free room (except
      while it waits for the broker's answer to its own SUBSCRIBE or PUBLISH).
    """

    schemes: ClassVar[tuple[str, ...]] = ()

    @classmethod
    @abc.abstractmethod
    def from_config(cls, config: MqttConfig, /, **options: Any) -> Self:
        """Build a transport from the ``[mqtt]`` section. Must not do I/O.

        Options mqttq passes: ``client_id`` (overrides ``mqtt.client_id``: the device client and
        simulators connect as clients of their own), and ``will`` (a ``Will`` with ``topic``,
        ``payload``, ``qos``, ``retain``: the broker publishes it when the connection dies).
        """

    @abc.abstractmethod
    async def connect(self, *, retry: bool = True) -> None:
        """Connect, then stay connected until :meth:`aclose`.

        With ``retry``, an unreachable broker is retried with backoff until it answers; a refusal
        that cannot heal (bad credentials, not authorised) raises ``TransportError`` at once.
        """

    @abc.abstractmethod
    async def subscribe(self, subscriptions: Sequence[Subscription]) -> None:
        """Subscribe now (when connected) and again after every reconnect."""

    @abc.abstractmethod
    async def receive(self, max_messages: int) -> list[Delivery]:
        """Wait for at least one delivery and return up to ``max_messages`` already received.

        Returns ``[]`` once the transport is closed or :meth:`stop_reading` was called and nothing
        received is left.
        """

    async def messages(self) -> AsyncIterator[Delivery]:
        """Deliveries one at a time, across reconnects, until the transport is closed."""
        while batch := await self.receive(1):
            for delivery in batch:
                yield delivery

    @abc.abstractmethod
    async def ack(self, deliveries: Iterable[Delivery]) -> None:
        """Acknowledge deliveries to the broker (no-op for QoS 0) and free their window slots."""

    @abc.abstractmethod
    def stop_reading(self) -> None:
        """Take no more messages from the network; :meth:`receive` drains what was received."""

    @abc.abstractmethod
    async def publish(
        self,
        topic: str,
        payload: bytes | str,
        *,
        qos: int = 1,
        retain: bool = False,
        properties: Mapping[str, Any] | None = None,
    ) -> int:
        """Publish and return once the broker acknowledged it (QoS 1/2); returns the packet id.

        Raises ``NotConnectedError`` while disconnected.
        """

    @property
    @abc.abstractmethod
    def connected(self) -> bool:
        """True while a connection is up."""

    @abc.abstractmethod
    def on_connect(self, callback: Callable[[], Any]) -> None:
        """Call ``callback()`` after every (re)connect, once subscriptions are restored.

        It may return a coroutine, which is awaited; callbacks run in registration order and an
        exception in one is logged, never raised.
        """

    async def aclose(self) -> None:
        """Disconnect cleanly (the persistent session stays on the broker). Safe to call twice."""

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
