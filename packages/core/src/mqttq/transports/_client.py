"""The one place that reaches inside aiomqtt and paho. Everything here exists for a reason:

* **Manual acknowledgement.** paho 2 can hold back the PUBACK (QoS 1) / PUBCOMP (QoS 2) of a
  received message until ``Client.ack(mid, qos)`` (``manual_ack``), but aiomqtt 2.x builds its
  paho client without that option and offers no ack call. We switch it on with paho's public
  ``manual_ack_set`` on the paho client aiomqtt owns (``aiomqtt.Client._client``), and ack there.
* **PUBREL for an unknown packet id.** After a crash the broker resends PUBREL for QoS 2 messages
  we had PUBREC'd. Under ``manual_ack`` paho answers nothing for an id it does not know, which
  would pin that id on the broker forever; we answer PUBCOMP as the MQTT spec asks.
* **Stop reading.** aiomqtt reads the socket whenever it is readable and queues every message.
  We install our own reader so the transport can pause it (backpressure: the broker then holds
  the messages) and we hand each message straight to the transport, skipping aiomqtt's queue.
  While we wait for a SUBACK or PUBACK the reader runs even if paused, or a full window would
  deadlock (a resumed session floods us with messages right after CONNACK).
* **Fewer system calls.** paho reads each packet with several tiny ``recv`` calls; a buffered
  socket wrapper (``BufferedSocket``) serves them from one large read.
* **Publish returning the packet id**, and knowing whether the broker kept our session.

These touch private names of aiomqtt 2.x (pinned ``<3``); a new major must be re-checked here.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import Callable, Iterator
from typing import Any

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

Sink = Callable[[paho.MQTTMessage], None]


class PahoClient(aiomqtt.Client):
    """``aiomqtt.Client`` with manual acks, a pausable reader and a direct message sink."""

    def __init__(self, *args: Any, sink: Sink, manual_ack: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sink = sink
        self._paused = False
        self._holds = 0
        self._reading = False
        self._reader: tuple[int, Callable[[], None]] | None = None
        self.pending_calls_threshold = 1 << 30  # aiomqtt warns past 10 concurrent publishes
        self.session_present = False
        self.manual_ack = manual_ack
        client = self._client
        client.manual_ack_set(manual_ack)
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

    # -- acks and publishing ----------------------------------------------------------------------

    def ack(self, mid: int, qos: int) -> bool:
        """Send the PUBACK/PUBCOMP of a received message; False when the connection is gone."""
        return self._client.ack(mid, qos) == MQTTErrorCode.MQTT_ERR_SUCCESS

    async def publish_mid(
        self,
        topic: str,
        payload: bytes | str,
        qos: int,
        retain: bool,
        properties: Properties | None,
        timeout: float,
    ) -> int:
        """aiomqtt's publish, returning the packet id (raises ``aiomqtt.MqttError``)."""
        info = self._client.publish(topic, payload, qos, retain, properties)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise aiomqtt.MqttCodeError(info.rc, "Could not publish message")
        if not info.is_published():
            confirmation = asyncio.Event()
            with (
                self._pending_call(info.mid, confirmation, self._pending_publishes),
                self.reading_held(),
            ):
                await self._wait_for(confirmation.wait(), timeout=timeout)
        return info.mid

    async def wait_disconnected(self) -> BaseException | None:
        """Wait until the connection drops; the reason, or None for a clean disconnect."""
        try:
            await asyncio.shield(self._disconnected)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return exc
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

    def _on_socket_open(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        # Replaces aiomqtt's reader (same body) so that it can be paused.
        if not isinstance(client._sock, BufferedSocket):
            client._sock = BufferedSocket(client._sock)
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

    def recv(self, bufsize: int) -> bytes:
        if self._pos >= len(self._data):
            data = self._sock.recv(max(bufsize, self.CHUNK))
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
