"""The ``mqtt`` / ``mqtts`` transport: aiomqtt and paho 2 behind mqttq's ``Transport``.

Only this package imports aiomqtt or paho; their exceptions become ``TransportError`` here. The
private corners of aiomqtt it needs (manual acks, a pausable reader) live in ``_client.py``.

Setting ``MQTTQ_UNSAFE_AUTO_ACK=1`` makes paho acknowledge messages as soon as they arrive, before
they are safe: it exists to show (in tests and benchmarks) what manual acks protect against.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import random
import re
import ssl
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Self
from urllib.parse import unquote, urlsplit

import aiomqtt
import attrs
import paho.mqtt.client as paho
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from mqttq.config import MqttConfig
from mqttq.errors import ConfigError, NotConnectedError, TransportError
from mqttq.interfaces import Delivery, Subscription, Transport, Will
from mqttq.retry import RetryPolicy
from mqttq.tasks import cancel_and_wait
from mqttq.transports._client import ClosedBeforeConnack, ConnectionDropped, PahoClient

log = logging.getLogger("mqttq.transport")

#: CONNACK refusals that no retry can heal (MQTT 5 reason names and MQTT 3.1.1 return codes)
_FATAL_REASONS = frozenset(
    {
        "Unsupported protocol version",
        "Client identifier not valid",
        "Bad user name or password",
        "Not authorized",
        "Banned",
        "Bad authentication method",
    }
)
_FATAL_V311 = frozenset({1, 2, 4, 5})
#: an alert the peer sent during the TLS handshake (OpenSSL's reason: SSLV3_ALERT_BAD_CERTIFICATE)
_TLS_ALERT = re.compile(r"^(?:SSLV3|TLSV1|TLSV13)_ALERT_(\w+)$")
_PROPERTY_INTERNALS = frozenset({"packetType", "types", "names", "properties"})


@attrs.frozen(kw_only=True)
class Endpoint:
    """Where the broker is, from ``mqtt.url`` (``mqtt://user:pass@host:1883``, ``mqtts://``)."""

    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts"):
            raise ConfigError(
                f"mqtt.url {url!r}: scheme must be mqtt:// or mqtts://", [("mqtt.url", "scheme")]
            )
        try:
            port = parts.port
        except ValueError:
            raise ConfigError(f"mqtt.url {url!r}: invalid port", [("mqtt.url", "port")]) from None
        if not parts.hostname:
            raise ConfigError(f"mqtt.url {url!r} has no host", [("mqtt.url", "host")])
        tls = parts.scheme == "mqtts"
        return cls(
            host=parts.hostname,
            port=port or (8883 if tls else 1883),
            tls=tls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )

    def __str__(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


class _Refused(TransportError):
    """The broker refused the connection for a reason retrying cannot fix."""


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


@functools.cache
def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


_SNAKE: dict[str, str] = {}


def properties_to_dict(props: Properties | None) -> dict[str, Any]:
    """MQTT 5 properties as plain values, snake_case names (``user_property``: pairs)."""
    if props is None:
        return {}
    out: dict[str, Any] = {}
    for key, value in vars(props).items():
        if key in _PROPERTY_INTERNALS:
            continue
        name = _SNAKE.get(key) or _SNAKE.setdefault(key, _snake(key))
        out[name] = [list(pair) for pair in value] if name == "user_property" else value
    return out


def dict_to_properties(values: Mapping[str, Any], packet_type: int) -> Properties:
    props = Properties(packet_type)  # type: ignore[no-untyped-call]
    try:
        for name, value in values.items():
            if name == "user_property":
                value = [tuple(pair) for pair in value]
            setattr(props, _camel(name), value)
    except (AttributeError, TypeError, ValueError) as exc:
        raise TransportError(f"invalid MQTT property {name!r}: {exc}") from None
    return props


class MqttTransport(Transport):
    """MQTT 3.1.1 / 5 over TCP or TLS with manual acks, a persistent session and reconnects."""

    schemes = ("mqtt", "mqtts")

    def __init__(
        self,
        config: MqttConfig,
        *,
        manual_ack: bool | None = None,
        client_id: str | None = None,
        inflight: int | None = None,
        timeout: float = 10.0,
        rand: Callable[[], float] = random.random,
        will: Will | None = None,
    ) -> None:
        self.config = config
        #: published by the broker when this client's connection dies without a DISCONNECT
        self.will = will
        self.endpoint = Endpoint.parse(config.url)
        if manual_ack is None:
            manual_ack = os.environ.get("MQTTQ_UNSAFE_AUTO_ACK", "") not in ("1", "true", "yes")
        self.manual_ack = manual_ack
        self.client_id = config.client_id if client_id is None else client_id
        self.inflight = inflight or config.inflight
        self.timeout = timeout
        #: reconnect delays: ``mqtt.reconnect_min`` doubling to ``reconnect_max``, 50-100% of it
        self.reconnect = RetryPolicy(first=config.reconnect_min, max=config.reconnect_max)
        self._rand = rand
        self._queue: deque[Delivery] = deque()
        self._available = asyncio.Event()
        self._outstanding = 0
        self._generation = 0
        self._client: PahoClient | None = None
        self._subscriptions: dict[str, Subscription] = {}
        #: what the broker's session holds, as far as we know (SUBACKed, session kept since)
        self._subscribed: dict[str, Subscription] = {}
        self._callbacks: list[Callable[[], Any]] = []
        self._task: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()
        self._reading = True
        self._failure: TransportError | None = None
        #: successful connections so far (the first one included), and failed attempts
        self.connections = 0
        self.failed_attempts = 0

    @classmethod
    def from_config(cls, config: MqttConfig, /, **options: Any) -> Self:
        return cls(config, **options)

    # -- state ------------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        client = self._client
        return client is not None and not client.is_disconnected

    @property
    def outstanding(self) -> int:
        """Deliveries received and not yet acked (the in-flight window in use)."""
        return self._outstanding

    def on_connect(self, callback: Callable[[], Any]) -> None:
        self._callbacks.append(callback)

    # -- connection -------------------------------------------------------------------------------

    async def connect(self, *, retry: bool = True) -> None:
        if self._task is not None:
            return
        if not self.manual_ack:
            log.warning("MQTTQ_UNSAFE_AUTO_ACK is set: messages are acked before they are safe")
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._maintain(ready, retry), name="mqttq-mqtt")
        self._task.add_done_callback(self._maintainer_done)
        try:
            await asyncio.shield(ready)
        except BaseException:
            await self.aclose()
            raise

    def _maintainer_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("the MQTT connection task failed: %r", task.exception())
            self._failure = TransportError(f"the MQTT connection task failed: {task.exception()}")
        self._available.set()

    def _make_client(self, generation: int) -> PahoClient:
        cfg = self.config
        v5 = cfg.protocol == "5"
        persistent = bool(self.client_id)
        props = None
        if v5:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = cfg.session_expiry if persistent else 0
            props.ReceiveMaximum = min(self.inflight, 65535)
        tls = None
        if self.endpoint.tls:
            tls = aiomqtt.TLSParameters(
                ca_certs=cfg.ca_certs, certfile=cfg.certfile, keyfile=cfg.keyfile
            )
        client: PahoClient
        client = PahoClient(
            self.endpoint.host,
            self.endpoint.port,
            sink=lambda message: self._on_message(generation, client, message),
            manual_ack=self.manual_ack,
            identifier=self.client_id or f"mqttq-{uuid.uuid4().hex[:12]}",
            username=cfg.username if cfg.username is not None else self.endpoint.username,
            password=cfg.password if cfg.password is not None else self.endpoint.password,
            protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
            clean_session=None if v5 else not persistent,
            clean_start=not persistent if v5 else paho.MQTT_CLEAN_START_FIRST_ONLY,
            keepalive=cfg.keepalive,
            properties=props,
            tls_params=tls,
            timeout=self.timeout,
            logger=logging.getLogger("mqttq.transport.paho"),
            will=None
            if self.will is None
            else aiomqtt.Will(self.will.topic, self.will.payload, self.will.qos, self.will.retain),
        )
        if not self._reading or self._outstanding >= self.inflight:
            client.pause_reading()
        return client

    async def _connect_once(self, generation: int) -> PahoClient:
        try:
            client = self._make_client(generation)
        except (ValueError, OSError) as exc:  # paho checks TLS files and options eagerly
            raise _Refused(f"cannot configure the MQTT client: {exc}") from None
        try:
            await client.__aenter__()
        except MqttConnectError as exc:
            client.force_close()
            reason = f"the MQTT broker at {self.endpoint} refused the connection ({exc.rc})"
            name = getattr(exc.rc, "getName", lambda: "")()
            if name in _FATAL_REASONS or exc.rc in _FATAL_V311:
                raise _Refused(reason) from None
            raise TransportError(reason) from None
        except ValueError as exc:  # an option paho refuses: retrying cannot help
            client.force_close()
            raise _Refused(f"cannot connect to the MQTT broker at {self.endpoint}: {exc}") from None
        except (aiomqtt.MqttError, OSError) as exc:
            client.force_close()
            cause: BaseException | None = exc
            if isinstance(exc, ClosedBeforeConnack):
                cause = exc.error
            elif isinstance(exc, aiomqtt.MqttError):  # aiomqtt wraps connect()'s OSError
                cause = exc.__context__
            if isinstance(cause, ssl.SSLError):
                refusal = self._tls_refusal(cause)
                if refusal is not None:
                    raise refusal from None
            raise TransportError(
                f"cannot reach the MQTT broker at {self.endpoint} ({exc or type(exc).__name__})"
            ) from None
        return client

    def _tls_refusal(self, exc: ssl.SSLError) -> _Refused | None:
        """A failed TLS handshake that no retry heals, in one line; None for a dropped one."""
        if isinstance(exc, ssl.SSLCertVerificationError):
            why = exc.verify_message or exc.reason or str(exc)
            return _Refused(
                f"the MQTT broker at {self.endpoint} presented a TLS certificate that is not "
                f"trusted ({why}) — check mqtt.ca_certs"
            )
        if isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError | ssl.SSLSyscallError):
            return None  # closed mid-handshake: a broker restarting, a proxy, a network glitch
        reason = exc.reason or str(exc)
        alert = _TLS_ALERT.match(reason)
        if alert is None:
            why = reason.replace("_", " ").lower()
            return _Refused(
                f"the TLS handshake with the MQTT broker at {self.endpoint} failed ({why})"
            )
        why = re.sub(r"\bca\b", "CA", alert.group(1).replace("_", " ").lower())
        if why == "certificate required" and not self.config.certfile:
            hint = "set mqtt.certfile and mqtt.keyfile"
        else:
            hint = "check mqtt.certfile/keyfile/ca_certs"
        return _Refused(
            f"the MQTT broker at {self.endpoint} refused the TLS handshake ({why}) — {hint}"
        )

    async def _maintain(self, ready: asyncio.Future[None], retry: bool) -> None:
        """Connect, subscribe, wait for the connection to drop; again, forever."""
        attempt = 0
        failing = False
        while not self._closing.is_set():
            generation = self._generation + 1
            try:
                client = await self._connect_once(generation)
            except TransportError as exc:
                self.failed_attempts += 1
                if not ready.done() and (isinstance(exc, _Refused) or not retry):
                    ready.set_exception(exc)
                    return
                if isinstance(exc, _Refused):
                    attempt = max(attempt, 64)  # keep trying, slowly: credentials may be fixed
                delay = self.reconnect.delay(attempt, self._rand)
                # one warning per outage; the attempts after it are logged at debug level
                log.log(logging.DEBUG if failing else logging.WARNING,
                        "%s; retrying in %.1fs", exc, delay)  # fmt: skip
                failing = True
            else:
                failing = False
                try:
                    await self._connected(client, generation, ready)
                except TransportError as exc:
                    if not ready.done():
                        ready.set_exception(exc)
                        return
                    log.warning("%s; reconnecting", exc)
                else:
                    attempt = 0
                reason = await client.wait_disconnected()
                self._client = None
                client.force_close()
                if self._closing.is_set():
                    return
                delay = self.reconnect.delay(attempt, self._rand)
                log.warning(
                    "lost the connection to the MQTT broker at %s (%s); reconnecting in %.1fs",
                    self.endpoint,
                    reason or "closed",
                    delay,
                )
            attempt += 1
            await self._pause(delay)

    async def _connected(
        self, client: PahoClient, generation: int, ready: asyncio.Future[None]
    ) -> None:
        self._generation = generation
        self._client = client
        self.connections += 1
        if self.client_id and self.connections > 1 and not client.session_present:
            log.warning(
                "the broker did not keep session %r: messages published while away are lost "
                "(raise mqtt.session_expiry?)",
                self.client_id,
            )
        if not client.session_present:
            self._subscribed.clear()
        subs = list(self._subscriptions.values())
        if self.config.protocol != "5":
            # a 3.1.1 SUBSCRIBE of a filter the session holds makes the broker resend every
            # retained message (MQTT 5 has retain_handling for that): skip what it kept
            subs = [s for s in subs if self._subscribed.get(s.filter) != s]
        try:
            await self._subscribe_on(client, subs)
        except TransportError:
            client.force_close()
            raise
        log.info("connected to %s as %r", self.endpoint, self.client_id)
        if not ready.done():
            ready.set_result(None)
        for callback in self._callbacks:
            try:
                result = callback()
                if asyncio.iscoroutine(result):
                    await result
            except Exception:
                log.exception("an on_connect callback failed")

    async def _pause(self, delay: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                while not self._closing.is_set():
                    self._available.clear()
                    await self._available.wait()

    async def aclose(self) -> None:
        self._closing.set()
        self._available.set()
        client, self._client = self._client, None
        if client is not None and not client.is_disconnected:
            try:
                async with asyncio.timeout(self.timeout):
                    await self._flush(client)
                    await client.__aexit__(None, None, None)
            except (aiomqtt.MqttError, TimeoutError, OSError) as exc:
                log.debug("unclean disconnect: %s", exc)
            client.force_close()
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait([task])

    async def _flush(self, client: PahoClient) -> None:
        """A round trip the broker answers only after handling every packet we sent before it.

        Closing a socket that still holds unread data (messages the broker sent while we had
        stopped reading) makes the kernel send a reset, and the broker may then drop our last
        acks unread. Once this unsubscribe (from a filter we never used) is answered, they are in.
        """
        with client.reading_held():
            await client.unsubscribe(f"mqttq/flush/{uuid.uuid4().hex}", timeout=self.timeout)

    # -- subscriptions ----------------------------------------------------------------------------

    async def subscribe(self, subscriptions: Sequence[Subscription]) -> None:
        for sub in subscriptions:
            self._subscriptions[sub.filter] = sub
        client = self._client
        if client is not None and not client.is_disconnected:
            await self._subscribe_on(client, subscriptions)

    async def _subscribe_on(self, client: PahoClient, subs: Sequence[Subscription]) -> None:
        if not subs:
            return
        if self.config.protocol == "5" and any(s.identifier for s in subs):
            # a subscription identifier is a property of the whole SUBSCRIBE packet
            for sub in subs:
                props = None
                if sub.identifier:
                    props = Properties(PacketTypes.SUBSCRIBE)  # type: ignore[no-untyped-call]
                    props.SubscriptionIdentifier = sub.identifier
                await self._send_subscribe(client, [sub], props)
        else:
            await self._send_subscribe(client, subs, None)

    async def _send_subscribe(
        self, client: PahoClient, subs: Sequence[Subscription], props: Properties | None
    ) -> None:
        topics: list[tuple[str, SubscribeOptions]] | list[tuple[str, int]]
        if self.config.protocol == "5":
            topics = [
                (s.filter, SubscribeOptions(qos=s.qos, retainHandling=s.retain_handling))
                for s in subs
            ]
        else:
            topics = [(s.filter, s.qos) for s in subs]
        try:
            with client.reading_held():
                codes = await client.subscribe(topics, properties=props, timeout=self.timeout)
        except (aiomqtt.MqttError, ValueError) as exc:
            raise TransportError(f"subscribing at {self.endpoint} failed: {exc}") from None
        for sub, code in zip(subs, codes, strict=False):
            failed = code.is_failure if isinstance(code, ReasonCode) else int(str(code)) >= 0x80
            if failed and props is not None and "identifier" in str(code).lower():
                await self._send_subscribe(client, [sub], None)  # broker lacks them: fine
            elif failed:
                raise TransportError(
                    f"the broker refused the subscription to {sub.filter!r}: {code}"
                )
            else:
                self._subscribed[sub.filter] = sub

    # -- receiving --------------------------------------------------------------------------------

    def _on_message(self, generation: int, client: PahoClient, message: paho.MQTTMessage) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:  # brokers reject these; never let one stop the reader
            topic = message._topic.decode("utf-8", "replace")
        props = getattr(message, "properties", None)
        self._queue.append(
            Delivery(
                topic=topic,
                payload=bytes(message.payload),
                qos=message.qos,
                retain=bool(message.retain),
                mid=message.mid,
                dup=bool(message.dup),
                properties=properties_to_dict(props) if props is not None else {},
                received_at=time.time(),
                connection=generation,
            )
        )
        self._outstanding += 1
        if self._outstanding >= self.inflight:
            client.pause_reading()
        self._available.set()

    async def receive(self, max_messages: int) -> list[Delivery]:
        queue = self._queue
        while not queue:
            if self._failure is not None:
                raise self._failure
            if self._closing.is_set() or not self._reading:
                return []
            self._available.clear()
            await self._available.wait()
        n = min(max_messages, len(queue))
        return [queue.popleft() for _ in range(n)]

    def stop_reading(self) -> None:
        self._reading = False
        if self._client is not None:
            self._client.pause_reading()
        self._available.set()

    async def ack(self, deliveries: Iterable[Delivery]) -> None:
        client = self._client
        current = self._generation if client is not None else -1
        manual = self.manual_ack
        for d in deliveries:
            self._outstanding -= 1
            if manual and d.qos and d.connection == current:
                client.ack(d.mid, d.qos)  # type: ignore[union-attr]
        if client is not None and self._reading and self._outstanding < self.inflight:
            client.resume_reading()

    # -- publishing -------------------------------------------------------------------------------

    async def publish(
        self,
        topic: str,
        payload: bytes | str,
        *,
        qos: int = 1,
        retain: bool = False,
        properties: Mapping[str, Any] | None = None,
    ) -> int:
        client = self._client
        if client is None or client.is_disconnected:
            raise NotConnectedError(f"not connected to the MQTT broker at {self.endpoint}")
        props = None
        if properties and self.config.protocol == "5":
            props = dict_to_properties(properties, PacketTypes.PUBLISH)
        try:
            return await client.publish_mid(topic, payload, qos, retain, props, self.timeout)
        except ConnectionDropped:
            raise NotConnectedError(
                f"the connection to {self.endpoint} dropped before the broker acknowledged "
                f"the message to {topic!r}"
            ) from None
        except (aiomqtt.MqttError, ValueError, TypeError) as exc:
            raise TransportError(f"publishing to {topic!r} failed: {exc}") from None
