"""``DeviceClient``: commands to MQTT devices, delivered in order across outages and restarts.

One MQTT connection of its own (``[mqtt]`` broker, a client id of its own), one lane per device
(:mod:`mqttq.devices.lanes`), one adapter per device family. A command is *delivered* when its
device acknowledges it, as the adapter reads the device's replies: a command whose
acknowledgement does not come within the adapter's ack timeout (because the device missed it,
or the broker died after its PUBACK) is sent again, at most ``in_flight`` at a time per device,
so its device may see it twice. With a durable store (``[devices] store``), every waiting
command is written down before :meth:`DeviceClient.send` returns, and a new process sends what
the last one left.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import urlsplit

import attrs

from mqttq.devices.adapter import DeviceAdapter, check_device_id
from mqttq.devices.handle import CommandHandle
from mqttq.devices.lanes import Entry, Lane, Limits, Phase
from mqttq.devices.models import Command, CommandEvent, CommandState, Reply
from mqttq.devices.store import CommandStore, StoredCommand
from mqttq.errors import ConfigError, MqttqError, NotConnectedError, TransportError
from mqttq.interfaces import Delivery, Subscription, Transport
from mqttq.tasks import cancel_and_wait

if TYPE_CHECKING:
    from mqttq.app import App

log = logging.getLogger("mqttq.devices")

#: the longest a busy device makes its lane wait (seconds)
BUSY_MAX = 30.0


class CommandQueueFull(MqttqError):
    """A device's queue is full and ``[devices] overflow = "reject"``."""


class DeviceClient:
    """Sends commands to devices through their adapters; ``async with client:`` to run it.

    The connection is made in the background and kept forever (reconnecting with backoff and
    jitter); commands sent while it is down wait in their device's lane. After every
    (re)connect the subscriptions are restored first, then each lane sends what waits, in order,
    paced. See ``docs/devices.md``.
    """

    def __init__(
        self,
        app: App,
        *,
        transport: Transport | None = None,
        store: CommandStore | None = None,
        client_id: str | None = None,
    ) -> None:
        self.app = app
        self.config = cfg = app.config.devices
        self.store = store or make_store(app)
        #: devices address replies to it, so a durable store needs the same one after a restart
        self.client_id = client_id or cfg.client_id or default_client_id(self.store, cfg.store)
        self.transport = transport or app.make_transport(client_id=self.client_id)
        self._adapters: dict[str, DeviceAdapter] = {}
        self._lanes: dict[str, Lane] = {}
        self._ready = False  # connected, and subscriptions restored since
        self._closing = False
        self._tasks: list[asyncio.Task[None]] = []
        self._reply_callbacks: list[Callable[[Reply], Any]] = []
        self._coalesce = frozenset(cfg.coalesce)
        self._writes: list[StoredCommand] = []
        self._deletes: list[str] = []
        self._written: asyncio.Future[None] | None = None
        self._writer_wake = asyncio.Event()
        self._connected = asyncio.Event()
        self._subscriptions: list[Subscription] = []
        for item in cfg.items:
            self.add_device(item.adapter, item.id, **item.options)

    # -- devices ----------------------------------------------------------------------------------

    def adapter(self, family: str) -> DeviceAdapter:
        """The adapter of ``family`` (made on first use, for this client's client id)."""
        adapter = self._adapters.get(family)
        if adapter is None:
            cls = self.app.host.catalog("devices").load(family)
            adapter = self._adapters[family] = cls(client_id=self.client_id)
        return adapter

    def add_device(self, family: str, device: str, **options: Any) -> str:
        """Make ``device`` of ``family`` known (its adapter checks the id and takes its options);
        returns the id as its adapter writes it. Subscribes to what it sends."""
        adapter = self.adapter(family)
        device = check_device_id(adapter.add_device(device, **options))
        lane = self._lanes.get(device)
        if lane is None:
            lane = self._lanes[device] = Lane(device, adapter, self._limits(adapter))
            subscriptions = [Subscription(topic=t, qos=1) for t in adapter.subscriptions(device)]
            self._subscriptions += subscriptions
            if self._tasks:  # running: subscribe now, and start the lane
                self._spawn(self.transport.subscribe(subscriptions), f"subscribe-{device}")
                self._start_lane(lane)
        elif lane.adapter is not adapter:
            raise ConfigError(f"device {device!r} is already a {lane.adapter.family} device")
        return device

    def _limits(self, adapter: DeviceAdapter) -> Limits:
        cfg = self.config
        return Limits(
            pacing=adapter.pacing if cfg.pacing is None else cfg.pacing,
            ack_timeout=adapter.ack_timeout if cfg.ack_timeout is None else cfg.ack_timeout,
            in_flight=adapter.in_flight if cfg.in_flight is None else cfg.in_flight,
            max_queued=cfg.max_queued_commands,
            max_age=cfg.max_queued_command_age or None,
            max_sends=cfg.max_sends,
        )

    def devices(self) -> list[str]:
        return list(self._lanes)

    def on_reply(self, callback: Callable[[Reply], Any]) -> None:
        """Call ``callback(reply)`` for every message an adapter decoded (quick, no I/O)."""
        self._reply_callbacks.append(callback)

    # -- state ------------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._ready and self.transport.connected

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Until the client is connected with its subscriptions in place (``TimeoutError``
        after ``timeout`` seconds)."""
        async with asyncio.timeout(timeout):
            while not self.connected:
                self._connected.clear()
                await self._connected.wait()

    @property
    def queued_commands_count(self) -> int:
        """Commands waiting to be published, all devices together."""
        return sum(lane.waiting for lane in self._lanes.values())

    def pending(self, device: str | None = None) -> list[CommandHandle]:
        """Unsettled commands (waiting or waiting for their acknowledgement), in order."""
        lanes = [self._lanes[device]] if device is not None else self._lanes.values()
        return [e.handle for lane in lanes for e in lane.entries]

    # -- sending ----------------------------------------------------------------------------------

    async def send(self, command: Command, *, queue: bool = True) -> CommandHandle:
        """Send ``command``: published now when connected and nothing waits before it in its
        device's lane (the handle is ``sent``, with its packet id), else queued (packet id 0).

        ``queue=False`` (periodic requests): while disconnected the command is not queued; its
        handle comes back ``dropped``. With ``[devices] enable_command_queue = false`` sending
        while disconnected raises ``NotConnectedError``.
        """
        lane = self._lanes.get(command.device)
        if lane is None:
            family = command.family or next(iter(self._adapters), "")
            if not family:
                raise ConfigError(f"unknown device {command.device!r}: add it first")
            lane = self._lanes[self.add_device(family, command.device)]
        if command.kind in self._coalesce and not command.coalesce:
            command = _with(command, coalesce=True)
        handle = CommandHandle(command)
        if not self.connected:
            if not queue:
                self._finish(lane, None, handle, CommandState.DROPPED, "not connected")
                return handle
            if not self.config.enable_command_queue:
                raise NotConnectedError(
                    f"not connected to the MQTT broker at {self.app.config.mqtt.url} and the "
                    "command queue is off ([devices] enable_command_queue)"
                )
        if not self._make_room(lane, handle):
            return handle
        entry = Entry(handle=handle, seq=lane.seq())
        lane.add(entry)
        if self.store.durable:
            await self._write([StoredCommand(command=command, seq=entry.seq)])
        self._emit(handle, "queued")
        up, _ = lane.next_up(time.monotonic()) if self.connected else (None, 0.0)
        if up is entry:
            await self._publish(lane, entry)
        else:
            lane.wake()
        return handle

    def _make_room(self, lane: Lane, handle: CommandHandle) -> bool:
        """Coalesce and bound the lane for a new command; False when the new one is dropped."""
        command = handle.command
        if command.coalesce:
            for old in list(lane.in_phase(Phase.WAITING)):
                if old.handle.command.kind == command.kind:
                    self._finish(
                        lane, old, old.handle, CommandState.DROPPED,
                        f"superseded by a newer {command.kind} command ({command.id})",
                    )  # fmt: skip
        if len(lane.entries) < lane.limits.max_queued:
            return True
        policy = self.config.overflow
        if policy == "reject":
            raise CommandQueueFull(
                f"the command queue of {lane.device} is full ({lane.limits.max_queued}); "
                '[devices] overflow = "reject"'
            )
        oldest = next(lane.in_phase(Phase.WAITING), None)
        if policy == "drop_newest" or oldest is None:
            reason = f"the queue of {lane.device} is full ({lane.limits.max_queued})"
            self._finish(lane, None, handle, CommandState.DROPPED, reason)
            return False
        reason = f"dropped for a newer command: the queue of {lane.device} is full"
        self._finish(lane, oldest, oldest.handle, CommandState.DROPPED, reason)
        return True

    def clear_command_queue(self) -> int:
        """Drop every command waiting to be published (not those awaiting their device's
        acknowledgement); returns how many."""
        dropped = 0
        for lane in self._lanes.values():
            for entry in list(lane.in_phase(Phase.WAITING)):
                self._finish(lane, entry, entry.handle, CommandState.DROPPED, "queue cleared")
                dropped += 1
        return dropped

    # -- lifecycle --------------------------------------------------------------------------------

    async def open(self) -> None:
        """Open the store, load what it kept, start connecting (in the background) and the
        lanes. Returns at once: commands sent before the connection is up wait."""
        await self.store.open()
        for stored in await self.store.load():
            self._restore(stored)
        await self.transport.subscribe(self._subscriptions)  # made at every (re)connect
        self.transport.on_connect(self._on_connect)
        self._spawn(self._connect(), "connect")
        self._spawn(self._receive(), "receive")
        if self.store.durable:
            self._spawn(self._writer(), "store-writer")
        for lane in self._lanes.values():
            self._start_lane(lane)

    def _restore(self, stored: StoredCommand) -> None:
        command = stored.command
        lane = self._lanes.get(command.device)
        if lane is None:
            try:
                lane = self._lanes[self.add_device(command.family, command.device)]
            except MqttqError as exc:
                log.error("a stored command for %s cannot be sent: %s", command.device, exc)
                return
        handle = CommandHandle(command, "loaded from the command store")
        handle.sends = 1  # it may have gone out before the restart
        lane.add(Entry(handle=handle, seq=stored.seq))
        lane.next_seq = max(lane.next_seq, stored.seq)

    async def disconnect(self) -> None:
        """Close the connection on purpose. Commands waiting in memory are dropped (and the log
        says so); a durable store keeps them for the next client."""
        if self.store.durable:
            waiting = self.queued_commands_count
            if waiting:
                log.info("disconnect: %d waiting command(s) stay in the command store", waiting)
        else:
            dropped = sum(len(lane.entries) for lane in self._lanes.values())
            for lane in self._lanes.values():
                for entry in list(lane.entries):
                    reason = "the client disconnected (commands are kept in memory only)"
                    self._finish(lane, entry, entry.handle, CommandState.DROPPED, reason)
            if dropped:
                log.warning("disconnect: dropped %d unsent command(s) (in-memory store)", dropped)
        await self.aclose()

    async def aclose(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._ready = False
        for lane in self._lanes.values():
            lane.wake()
        with contextlib.suppress(Exception):
            await self._flush_writes()
        await cancel_and_wait(self._tasks)
        await self.transport.aclose()
        await self.store.aclose()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(f"mqttq-devices-{name}")
        task.add_done_callback(self._task_done)
        self._tasks.append(task)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None and not self._closing:
            log.error("%s failed", task.get_name(), exc_info=task.exception())

    def _start_lane(self, lane: Lane) -> None:
        if lane.task is None:
            self._spawn(self._run_lane(lane), f"lane-{lane.device}")
            lane.task = self._tasks[-1]

    async def _connect(self) -> None:
        try:
            await self.transport.connect()
        except TransportError as exc:
            log.error("the device client cannot connect: %s", exc)
            raise

    async def _on_connect(self) -> None:
        self._ready = True
        self._connected.set()
        for lane in self._lanes.values():
            lane.wake()

    def _lost(self) -> None:
        self._ready = False
        self._connected.clear()

    # -- receiving --------------------------------------------------------------------------------

    async def _receive(self) -> None:
        while batch := await self.transport.receive(500):
            for delivery in batch:
                self._handle_delivery(delivery)
            await self.transport.ack(batch)

    def _handle_delivery(self, delivery: Delivery) -> None:
        reply = None
        for adapter in self._adapters.values():
            reply = adapter.interpret(delivery.topic, delivery.payload)
            if reply is not None:
                break
        if reply is None:
            return
        for callback in self._reply_callbacks:
            try:
                callback(reply)
            except Exception:
                log.exception("a reply callback failed")
        lane = self._lanes.get(reply.device)
        if lane is None:
            return
        if reply.online is not None and reply.online != lane.online:
            lane.online = reply.online
            lane.wake()
            log.info("device %s is %s", lane.device, "online" if reply.online else "offline")
        if reply.outcome is not None:
            self._settle(lane, reply)

    def _settle(self, lane: Lane, reply: Reply) -> None:
        entry = next(
            (
                e
                for e in lane.in_phase(Phase.SENDING, Phase.SENT)
                if lane.adapter.answers(e.handle.command, reply)
            ),
            None,
        )
        if entry is None:
            return
        handle = entry.handle
        handle.reply = reply
        if reply.outcome == "ok":
            lane.busy_streak = 0
            self._finish(lane, entry, handle, CommandState.ACKNOWLEDGED, reply.reason)
        elif reply.outcome == "rejected":
            self._finish(lane, entry, handle, CommandState.REJECTED, reply.reason)
        else:  # busy: to the front again, and the lane waits
            lane.busy_streak += 1
            wait = reply.retry_after
            if wait is None:
                wait = min(BUSY_MAX, max(lane.limits.pacing, 0.1) * 2**lane.busy_streak)
            lane.paused_until = time.monotonic() + wait
            lane.mark(entry, Phase.WAITING)
            handle.move(CommandState.QUEUED, f"the device is busy ({reply.reason}); again in "
                        f"{wait:.1f}s")  # fmt: skip
            self._emit(handle, "queued")
            lane.wake()

    # -- a lane's work ----------------------------------------------------------------------------

    async def _run_lane(self, lane: Lane) -> None:
        while not self._closing:
            now = time.monotonic()
            for entry in lane.expired(time.time()):
                sent = "sent but never acknowledged" if entry.phase is Phase.SENT else "not sent"
                reason = f"{sent} within {lane.limits.max_age:g}s"
                self._finish(lane, entry, entry.handle, CommandState.EXPIRED, reason)
            deadline = lane.next_expiry()
            if self.connected and lane.online:
                if lane.unanswered(now):
                    self._send_again(lane)
                up, ready_at = lane.next_up(now)
                if up is not None:
                    self._spawn_publish(lane, up)
                    continue
                deadline = min(deadline, ready_at, lane.next_ack_deadline())
            timeout = None if deadline == float("inf") else max(0.0, deadline - time.monotonic())
            await lane.sleep(timeout)

    def _send_again(self, lane: Lane) -> None:
        """An acknowledgement is overdue: every command in flight goes out again, in order (so
        the device never applies a later one before an earlier one it missed); one sent too
        often expires instead."""
        for entry in list(lane.in_phase(Phase.SENT)):
            if entry.handle.sends >= lane.limits.max_sends:
                reason = f"not acknowledged after {entry.handle.sends} sends"
                self._finish(lane, entry, entry.handle, CommandState.EXPIRED, reason)
            else:
                lane.mark(entry, Phase.WAITING)

    def _spawn_publish(self, lane: Lane, entry: Entry) -> None:
        """Publish without waiting for the PUBACK (the lane goes on while its window allows);
        publishes start in the order they were spawned."""
        lane.mark(entry, Phase.SENDING)
        task = asyncio.ensure_future(self._publish(lane, entry))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def _publish(self, lane: Lane, entry: Entry) -> None:
        handle, command = entry.handle, entry.handle.command
        if entry.phase is not Phase.SENDING:
            lane.mark(entry, Phase.SENDING)
        if command.control:
            lane.next_control_at = time.monotonic() + lane.limits.pacing
        handle.sends += 1
        try:
            mid = await self.transport.publish(command.topic, command.payload, qos=command.qos)
        except NotConnectedError:
            self._lost()
            self._back(lane, entry, "the connection dropped before the broker had it")
            return
        except TransportError as exc:
            self._back(lane, entry, str(exc))
            lane.paused_until = time.monotonic() + 1.0
            return
        handle.packet_id = mid
        if not entry.live:  # settled meanwhile (an answer beat the PUBACK)
            return
        lane.mark(entry, Phase.SENT)
        entry.sent_at = time.monotonic()
        again = handle.sends > 1
        reason = "sent again: the earlier send was not acknowledged" if again else ""
        handle.move(CommandState.SENT, reason)
        self._emit(handle, "resent" if again else "sent")
        if command.acknowledged_by_device:
            lane.wake()  # its acknowledgement's deadline starts now
        else:
            self._forget(lane, entry)

    def _back(self, lane: Lane, entry: Entry, reason: str) -> None:
        if entry.live:
            lane.mark(entry, Phase.WAITING)
            if entry.handle.state is not CommandState.QUEUED:
                entry.handle.move(CommandState.QUEUED, reason)
        lane.wake()

    # -- settling ---------------------------------------------------------------------------------

    def _finish(
        self,
        lane: Lane,
        entry: Entry | None,
        handle: CommandHandle,
        state: CommandState,
        reason: str,
    ) -> None:
        handle.move(state, reason)
        if state in (CommandState.EXPIRED, CommandState.DROPPED):
            log.warning(
                "command %s (%s) to %s %s: %s",
                handle.id, handle.command.kind, lane.device, state, reason,
            )  # fmt: skip
        self._emit(handle, str(state))
        if entry is not None:
            self._forget(lane, entry)

    def _forget(self, lane: Lane, entry: Entry) -> None:
        lane.remove(entry)
        if self.store.durable:
            self._deletes.append(entry.handle.id)
            self._writer_wake.set()

    def _emit(self, handle: CommandHandle, what: str) -> None:
        if self.app.observed:
            self.app.emit(
                CommandEvent(
                    kind=f"command.{what}",
                    command=handle.command,
                    state=handle.state,
                    reason=handle.reason,
                    attempt=handle.sends,
                )
            )

    # -- the durable store ------------------------------------------------------------------------

    async def _write(self, entries: Sequence[StoredCommand]) -> None:
        """Store commands; returns once they are committed (one commit for concurrent sends)."""
        self._writes += entries
        if self._written is None or self._written.done():
            self._written = asyncio.get_running_loop().create_future()
        written = self._written
        self._writer_wake.set()
        await asyncio.shield(written)

    async def _writer(self) -> None:
        while True:
            await self._writer_wake.wait()
            self._writer_wake.clear()
            await self._flush_writes()

    async def _flush_writes(self) -> None:
        writes, self._writes = self._writes, []
        written, self._written = self._written, None
        deletes, self._deletes = self._deletes, []
        try:
            if writes:
                await self.store.put(writes)
            if written is not None and not written.done():
                written.set_result(None)
        except Exception as exc:
            if written is not None and not written.done():
                written.set_exception(exc)
            raise
        if deletes:
            await self.store.delete(deletes)


def default_client_id(store: CommandStore, url: str) -> str:
    """``mqttq-devices-<8 hex>``: random with a store that forgets, and for a durable store the
    same for the same store on the same host (commands it kept name it as their reply address)."""
    if not store.durable:
        return f"mqttq-devices-{uuid.uuid4().hex[:8]}"
    place = f"{socket.gethostname()} {url}".encode()
    return f"mqttq-devices-{hashlib.blake2b(place, digest_size=4).hexdigest()}"


def make_store(app: App, *, create: bool = True) -> CommandStore:
    """The command store of ``[devices] store``; ``create=False`` to only look (a durable store
    that does not exist yet then raises ``QueueNotFoundError`` when opened)."""
    url = app.config.devices.store
    scheme = urlsplit(url).scheme
    if not scheme:
        raise ConfigError(f"devices.store {url!r} has no scheme (memory://, sqlite:///...)")
    cls: type[CommandStore] = app.host.catalog("command_stores").load(scheme)
    return cls.from_url(url) if create or not cls.durable else cls.from_url(url, create=False)


def _with(command: Command, **changes: Any) -> Command:
    return attrs.evolve(command, **changes)
