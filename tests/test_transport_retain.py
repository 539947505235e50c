"""Retained messages and reconnects against a real Mosquitto: MQTT 5 ``retain_handling`` in every
SUBSCRIBE, and no SUBSCRIBE over MQTT 3.1.1 for what a kept session already holds (the broker
would resend every retained message)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from test_listener_transport import publish, transport

from mqttq.interfaces import Delivery, Subscription
from mqttq.testing import eventually
from mqttq.testing.services import Mosquitto
from mqttq.transports.mqtt import MqttTransport


async def publish_retained(url: str, topic: str, payload: bytes) -> None:
    async with transport(url, "t-retainer") as pub:
        await pub.publish(topic, payload, qos=1, retain=True)


async def until_sentinel(t: MqttTransport, url: str, topic: str) -> list[Delivery]:
    """What arrives before a fresh message to ``topic``: the broker delivers in order, so
    anything it sent for the last SUBSCRIBE comes first."""
    await publish(url, topic, [b"sentinel"])
    got: list[Delivery] = []
    async with asyncio.timeout(30):
        while not got or got[-1].payload != b"sentinel":
            batch = await t.receive(100)
            await t.ack(batch)
            got += batch
    await t.publish("elsewhere", b"", qos=1)  # a round trip: the broker has handled our acks
    return got[:-1]


async def listening(
    url: str, subs: list[Subscription], **kw: Any
) -> tuple[MqttTransport, list[int]]:
    """A connected, subscribed transport and the list its on_connect callback appends to
    (once subscriptions are restored after each reconnect)."""
    t = transport(url, reconnect_min=0.05, reconnect_max=0.2, **kw)
    restored: list[int] = []
    t.on_connect(lambda: restored.append(t.connections))
    await t.connect()
    await t.subscribe(subs)
    return t, restored


async def reconnect(broker: Mosquitto, t: MqttTransport, restored: list[int]) -> None:
    """Restart the broker (SIGTERM: it saves sessions and retained messages) and wait until
    the transport is back with its subscriptions restored."""
    n = t.connections
    broker.restart()
    await eventually(lambda: restored[-1:] == [n + 1], timeout=20, what="a reconnect")


@pytest.mark.parametrize(
    ("handling", "at_subscribe", "after_reconnect"),
    [(0, 1, 1), (1, 1, 0), (2, 0, 0)],
    ids=["send-always", "send-if-new", "never"],
)
async def test_retain_handling_over_mqtt5(
    mosquitto: Mosquitto, handling: int, at_subscribe: int, after_reconnect: int
) -> None:
    await publish_retained(mosquitto.url, "ret/x", b"kept")
    sub = Subscription(topic="ret/#", qos=1, retain_handling=handling)
    t, restored = await listening(mosquitto.url, [sub])
    first = await until_sentinel(t, mosquitto.url, "ret/s")
    assert [(d.payload, d.retain) for d in first] == [(b"kept", True)] * at_subscribe
    await reconnect(mosquitto, t, restored)
    again = await until_sentinel(t, mosquitto.url, "ret/s")
    assert [(d.payload, d.retain) for d in again] == [(b"kept", True)] * after_reconnect
    await t.aclose()


async def test_mqtt311_kept_session_is_not_subscribed_again(mosquitto: Mosquitto) -> None:
    await publish_retained(mosquitto.url, "ret/x", b"kept")
    t, restored = await listening(
        mosquitto.url, [Subscription(topic="ret/#", qos=1)], protocol="3.1.1"
    )
    first = await until_sentinel(t, mosquitto.url, "ret/s")
    assert [d.payload for d in first] == [b"kept"]
    await reconnect(mosquitto, t, restored)
    assert t._client is not None
    assert t._client.session_present
    assert await until_sentinel(t, mosquitto.url, "ret/s") == []  # no retained copy again
    await t.aclose()


async def test_mqtt311_subscribes_what_the_session_lacks(mosquitto: Mosquitto) -> None:
    """A filter added while disconnected, and everything after the broker lost the session."""
    t, restored = await listening(
        mosquitto.url, [Subscription(topic="old/#", qos=1)], protocol="3.1.1"
    )
    mosquitto.stop()
    await eventually(lambda: not t.connected, timeout=10, what="the transport to notice")
    await t.subscribe([Subscription(topic="new/#", qos=1)])  # only remembered for now
    mosquitto.start()
    await eventually(lambda: restored[-1:] == [2], timeout=20, what="a reconnect")
    assert await until_sentinel(t, mosquitto.url, "old/s") == []
    assert await until_sentinel(t, mosquitto.url, "new/s") == []

    mosquitto.stop()
    (mosquitto.dir / "mosquitto.db").unlink()  # the broker forgets every session
    mosquitto.start()
    await eventually(lambda: restored[-1:] == [3], timeout=20, what="a second reconnect")
    assert t._client is not None
    assert not t._client.session_present
    assert await until_sentinel(t, mosquitto.url, "old/s") == []
    assert await until_sentinel(t, mosquitto.url, "new/s") == []
    await t.aclose()
