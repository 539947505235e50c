"""The one place that reaches inside aiomqtt and paho. Everything here exists for a reason:

* **Manual acknowledgement.** paho 2 can hold back the PUBACK (QoS 1) of a received message
  until ``Client.ack(mid, qos)`` (``manual_ack``), but aiomqtt 2.x builds its paho client without
  that option and offers no ack call. We switch it on with paho's public ``manual_ack_set`` on the
  paho client aiomqtt owns (``aiomqtt.Client._client``), and ack there.
* **QoS 2: PUBREC at ack.** Even under ``manual_ack`` paho sends PUBREC on receipt and hands the
  message over only at PUBREL: the broker then considers it delivered, and a crash before the
  job is stored loses it. We hand a QoS 2 message over when its PUBLISH arrives and send its
  PUBREC only at ``ack`` (paho's ``_send_pubrec`` is silenced for the PUBLISH it handles), then
  answer the broker's PUBREL with PUBCOMP. Unacked, the broker sends the PUBLISH again after a
  reconnect, as for QoS 1.
* **PUBREL for an unknown packet id.** Under ``manual_ack`` paho answers nothing to a PUBREL for
  an id it does not hold, which would pin that id on the broker forever; we answer PUBCOMP as
  the MQTT spec asks. With PUBREC at ack every PUBREL is such a one (also those resent after a
  crash for messages that were already safe).
* **Stop reading.** aiomqtt reads the socket whenever it is readable and queues every message.
  We install our own reader so the transport can pause it (backpressure: the broker then holds
  the messages) and we hand each message straight to the transport, skipping aiomqtt's queue.
  While we wait for a SUBACK or PUBACK the reader runs even if paused, or a full window would
  deadlock (a resumed session floods us with messages right after CONNACK).
* **Fewer system calls.** paho reads each packet with several tiny ``recv`` calls; a buffered
  socket wrapper (``BufferedSocket``) serves them from one large read.
* **A connection that dies before CONNACK** fails the connect at once with what the socket said
  (``ClosedBeforeConnack``), instead of aiomqtt's timeout: with TLS 1.3 a broker refuses a client
  certificate only after the handshake, with an alert that arrives at the first read.
* **paho's log lines at DEBUG.** paho logs a failed read at ERROR (a TLS refusal, a reset); the
  transport says what happened itself, in one line, so paho's own lines go to DEBUG.
* **Write registration.** aiomqtt registers the writer through ``call_soon_threadsafe``; when the
  socket closed meanwhile we skip it (its fd is gone, or already reused).
* **Publish returning the packet id**, and knowing whether the broker kept our session.

These touch private names of aiomqtt 2.x (pinned ``<3``); a new major must be re-checked here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import struct
from collections.abc import Callable, Iterator
from typing import Any

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

Sink = Callable[[paho.MQTTMessage], None]


class ClosedBeforeConnack(aiomqtt.MqttError):
    """The connection closed before the broker's CONNACK; ``error`` is what the socket raised."""

    def __init__(self, error: OSError | None) -> None:
        super().__init__(f"the connection closed before CONNACK ({error or 'by the broker'})")
        self.error = error


class ConnectionDropped(Exception):
    """The connection went before the broker acknowledged a publish."""


class _Settle:
    """What aiomqtt's ``on_publish`` sets: resolves a future instead of an ``asyncio.Event``."""

    __slots__ = ("future",)

    def __init__(self, future: asyncio.Future[None]) -> None:
        self.future = future

    def set(self) -> None:
        if not self.future.done():
            self.future.set_result(None)


class PahoClient(aiomqtt.Client):
    """``aiomqtt.Client`` with manual acks, a pausable reader and a direct message sink."""

    #: False brings back paho's PUBREC on receipt (the crash test's control shows the loss)
    HOLD_PUBREC = True

    def __init__(self, *args: Any, sink: Sink, manual_ack: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sink = sink
        self._paused = False
        self._holds = 0
        self._reading = False
        self._reader: tuple[int, Callable[[], None]] | None = None
        self._socket: BufferedSocket | None = None
        self.pending_calls_threshold = 1 << 30  # aiomqtt warns past 10 concurrent publishes
        self.session_present = False
        self.manual_ack = manual_ack
        self.hold_pubrec = manual_ack and self.HOLD_PUBREC
        client = self._client
        client.enable_logger(_AtDebug(self._logger, {}))  # type: ignore[arg-type]
        client.manual_ack_set(manual_ack)
        if self.hold_pubrec:
            self._deliver_qos2_on_publish(client)
        if manual_ack:
            handle_pubrel = client._handle_pubrel

            def pubrel_answering_unknown() -> MQTTErrorCode:
                (mid,) = struct.unpack("!H", client._in_packet["packet"][:2])
                known = mid in client._in_messages
                rc = handle_pubrel()
                if not known and rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
                    rc = client._send_pubcomp(mid)
                return rc

            client._handle_pubrel = pubrel_answering_unknown  # type: ignore[method-assign]

    @staticmethod
    def _deliver_qos2_on_publish(client: paho.Client) -> None:
        handle_publish = client._handle_publish
        held: list[int] = []

        def pubrec_held(mid: int) -> MQTTErrorCode:
            held.append(mid)  # paho calls this only from _handle_publish, for QoS 2
            return MQTTErrorCode.MQTT_ERR_SUCCESS

        def publish_delivered_at_once() -> MQTTErrorCode:
            rc = handle_publish()
            while held:  # paho stored the message to hand over at PUBREL: hand it over now
                with client._in_message_mutex:
                    message = client._in_messages.pop(held.pop(), None)
                if message is not None:
                    client._handle_on_message(message)
            return rc

        client._send_pubrec = pubrec_held  # type: ignore[method-assign]
        client._handle_publish = publish_delivered_at_once  # type: ignore[method-assign]

    # -- acks and publishing ----------------------------------------------------------------------

    def ack(self, mid: int, qos: int) -> bool:
        """Send the PUBACK (QoS 1) or PUBREC (QoS 2) of a received message; False when the
        connection is gone."""
        client = self._client
        if qos == 2 and self.hold_pubrec:
            rc = paho.Client._send_pubrec(client, mid)  # the instance's is silenced
        else:
            rc = client.ack(mid, qos)
        return rc == MQTTErrorCode.MQTT_ERR_SUCCESS

    async def publish_mid(
        self,
        topic: str,
        payload: bytes | str,
        qos: int,
        retain: bool,
        properties: Properties | None,
        timeout: float,
    ) -> int:
        """Publish and wait for the broker's acknowledgement (QoS 1/2); the packet id. Raises
        :class:`ConnectionDropped` when the connection goes first, ``aiomqtt.MqttError`` else.

        In the caller's task, with no task of its own: aiomqtt's publish spawns none either,
        but counts every pending call on each publish, which many concurrent publishes pay for.
        """
        info = self._client.publish(topic, payload, qos, retain, properties)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise aiomqtt.MqttCodeError(info.rc, "Could not publish message")
        if info.is_published():
            return info.mid
        acked: asyncio.Future[None] = self._loop.create_future()
        # aiomqtt's on_publish calls .set() on what it finds there
        self._pending_publishes[info.mid] = _Settle(acked)  # type: ignore[assignment]

        def dropped(_: object) -> None:
            if not acked.done():
                acked.set_exception(ConnectionDropped())

        self._disconnected.add_done_callback(dropped)
        try:
            with self.reading_held():
                async with asyncio.timeout(timeout):
                    await acked
        except TimeoutError:
            raise aiomqtt.MqttError("Operation timed out") from None
        finally:
            self._disconnected.remove_done_callback(dropped)
            self._pending_publishes.pop(info.mid, None)
        return info.mid

    async def wait_disconnected(self) -> BaseException | None:
        """Wait until the connection drops; the reason (what the socket raised, if it did), or
        None for a clean disconnect."""
        try:
            await asyncio.shield(self._disconnected)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = self._socket.error if self._socket is not None else None
            return error or exc
        return None

    @property
    def is_disconnected(self) -> bool:
        return self._disconnected.done()

    def force_close(self) -> None:
        """Drop the socket without a DISCONNECT (the connection is already broken)."""
        self._client._sock_close()
        if not self._disconnected.done():
            self._disconnected.set_result(None)

    # -- reading ----------------------------------------------------------------------------------

    def pause_reading(self) -> None:
        self._paused = True
        self._sync_reader()

    def resume_reading(self) -> None:
        if self._paused:
            self._paused = False
            self._sync_reader()

    @contextlib.contextmanager
    def reading_held(self) -> Iterator[None]:
        """Read even while paused, for the duration of a control exchange (SUBACK, PUBACK):
        a full window must not keep the answer we wait for unread."""
        self._holds += 1
        self._sync_reader()
        try:
            yield
        finally:
            self._holds -= 1
            self._sync_reader()

    def _may_read(self) -> bool:
        return not self._paused or self._holds > 0

    def _sync_reader(self) -> None:
        if self._reader is None:
            return
        fd, callback = self._reader
        if self._may_read() and not self._reading:
            self._reading = True
            self._loop.add_reader(fd, callback)
            self._loop.call_soon(callback)  # TLS may hold decrypted bytes the fd won't signal
        elif not self._may_read() and self._reading:
            self._reading = False
            self._loop.remove_reader(fd)

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        self._sink(message)

    def _on_connect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None = None,
    ) -> None:
        self.session_present = bool(flags.session_present)
        super()._on_connect(client, userdata, flags, reason_code, properties)

    def _on_disconnect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None = None,
    ) -> None:
        if not self._connected.done():  # aiomqtt would wait for its timeout
            # only on the loop (our reader); in the thread that connects, aiomqtt's error or
            # timeout still applies
            if _running_loop() is self._loop:
                error = self._socket.error if self._socket is not None else None
                self._connected.set_exception(ClosedBeforeConnack(error))
            return
        super()._on_disconnect(client, userdata, flags, reason_code, properties)

    def _on_socket_open(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        # Replaces aiomqtt's reader (same body) so that it can be paused.
        if not isinstance(client._sock, BufferedSocket):
            client._sock = self._socket = BufferedSocket(client._sock)
        fd = sock.fileno()

        def on_readable() -> None:
            try:
                while self._may_read():
                    client.loop_read()
                    pending = getattr(client._sock, "pending", None)
                    if pending is None or pending() <= 0:
                        break  # the rest waits for the next readable event
            except Exception as exc:
                if not self._disconnected.done():
                    self._disconnected.set_exception(exc)

        def start() -> None:  # paho calls us from the executor thread that connects
            self._reader = (fd, on_readable)
            self._reading = False
            self._sync_reader()
            self._misc_task = self._loop.create_task(self._misc_loop())

        self._loop.call_soon_threadsafe(start)

    def _on_socket_close(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        self._reader = None
        self._reading = False
        super()._on_socket_close(client, userdata, sock)

    def _on_socket_register_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        fd = sock.fileno()

        def on_writable() -> None:
            try:
                client.loop_write()
            except Exception as exc:
                if not self._disconnected.done():
                    self._disconnected.set_exception(exc)

        def register() -> None:  # paho may call us from the executor thread that connects
            if client._sock is not None:
                self._loop.add_writer(fd, on_writable)

        self._loop.call_soon_threadsafe(register)


class _AtDebug(logging.LoggerAdapter[logging.Logger]):
    """Every line at DEBUG, whatever level paho gives it."""

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        super().log(logging.DEBUG, msg, *args, **kwargs)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class BufferedSocket:
    """The socket as paho sees it: one large ``recv`` serves many of paho's small ones.

    paho reads a packet in three or more ``recv`` calls (header byte, length, body); through this
    buffer a burst of packets costs one system call, and the reader keeps going while
    :meth:`pending` says bytes are buffered. Everything else goes to the real socket.
    """

    CHUNK = 65536

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._data = b""
        self._pos = 0
        #: the error a read raised (paho only logs it): a TLS alert says why the broker refused
        self.error: OSError | None = None

    def recv(self, bufsize: int) -> bytes:
        if self._pos >= len(self._data):
            try:
                data = self._sock.recv(max(bufsize, self.CHUNK))
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                raise
            except OSError as exc:
                self.error = exc
                raise
            if len(data) <= bufsize:
                return bytes(data)
            self._data, self._pos = data, 0
        chunk = self._data[self._pos : self._pos + bufsize]
        self._pos += len(chunk)
        return chunk

    def pending(self) -> int:
        inner = getattr(self._sock, "pending", None)
        return len(self._data) - self._pos + (inner() if inner is not None else 0)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)
