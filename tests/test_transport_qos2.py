"""QoS 2 against a real Mosquitto: a message is handed over when its PUBLISH arrives, its PUBREC
waits for ``ack``, and the broker's PUBREL is answered with PUBCOMP, also after a crash."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from test_listener_transport import publish, take, transport

from mqttq.interfaces import Subscription
from mqttq.testing import eventually
from mqttq.testing.services import Mosquitto
from mqttq.transports._client import PahoClient
from mqttq.transports.mqtt import MqttTransport


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A Mosquitto that logs every packet (``Received PUBREC from t-listener (Mid: 1)``)."""
    b = Mosquitto(tmp_path, extra="log_type debug\n")
    b.start()
    try:
        yield b
    finally:
        b.stop()


async def logged(broker: Mosquitto, text: str) -> None:
    await eventually(lambda: text in broker.log.read_text(), timeout=10, what=repr(text))


async def listening(url: str) -> MqttTransport:
    t = transport(url)
    await t.connect()
    await t.subscribe([Subscription(topic="q2/#", qos=2)])
    return t


async def crash(t: MqttTransport) -> None:
    """Drop the connection without a word, like a killed process, and close the transport."""
    assert t._client is not None
    t._client.force_close()
    await t.aclose()


async def test_the_pubrec_waits_for_the_ack(broker: Mosquitto) -> None:
    t = await listening(broker.url)
    await publish(broker.url, "q2/x", [b"one"], qos=2)
    (d,) = await take(t, 1, ack=False)
    assert (d.payload, d.qos) == (b"one", 2)
    await t.publish("elsewhere", b"", qos=1)  # the broker has read all we sent before it
    await logged(broker, "Sending PUBACK to t-listener")
    assert "Received PUBREC from t-listener" not in broker.log.read_text()
    await t.ack([d])
    await logged(broker, f"Received PUBREC from t-listener (Mid: {d.mid})")
    await logged(broker, f"Received PUBCOMP from t-listener (Mid: {d.mid},")
    await t.aclose()


@pytest.mark.parametrize("hold", [True, False], ids=["pubrec-at-ack", "pubrec-on-receipt"])
async def test_unacked_qos2_messages_come_again(
    broker: Mosquitto, hold: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(PahoClient, "HOLD_PUBREC", hold)
    first = await listening(broker.url)
    await publish(broker.url, "q2/x", [b"a", b"b", b"c"], qos=2)
    got = await take(first, 3, ack=False)
    await first.ack(got[:1])  # only "a" is safe
    await logged(broker, f"Received PUBCOMP from t-listener (Mid: {got[0].mid},")
    await crash(first)
    second = transport(broker.url)
    async with second:
        await publish(broker.url, "q2/x", [b"after"], qos=2)
        again = await take(second, 3 if hold else 1)
    if hold:
        assert [(d.payload, d.dup, d.mid) for d in again[:2]] == [
            (b"b", True, got[1].mid),
            (b"c", True, got[2].mid),
        ]
        assert again[2].payload == b"after"
    else:  # the control: PUBREC on receipt told the broker "b" and "c" were safe; they are gone
        assert [d.payload for d in again] == [b"after"]


async def test_a_pubrel_after_a_crash_is_answered(broker: Mosquitto) -> None:
    first = await listening(broker.url)
    await publish(broker.url, "q2/x", [b"exactly"], qos=2)
    (d,) = await take(first, 1, ack=False)
    first.stop_reading()  # the PUBREL that answers our PUBREC stays unread
    await first.ack([d])
    await logged(broker, f"Sending PUBREL to t-listener (m{d.mid})")
    await crash(first)  # the broker resends the PUBREL on reconnect: an id the client never saw
    second = transport(broker.url)
    async with second:
        await publish(broker.url, "q2/x", [b"next"], qos=2)
        (n,) = await take(second, 1)
        assert n.payload == b"next"  # "exactly" was safe: not delivered again
        await logged(broker, f"Received PUBCOMP from t-listener (Mid: {d.mid},")


async def test_a_crash_brings_back_at_most_the_window(broker: Mosquitto) -> None:
    first = transport(broker.url, inflight=5)
    await first.connect()
    await first.subscribe([Subscription(topic="q2/#", qos=2)])
    payloads = [b"%d" % i for i in range(20)]
    await publish(broker.url, "q2/x", payloads, qos=2)
    await take(first, 5, ack=False)  # the window is full: the broker holds the rest
    await crash(first)
    second = transport(broker.url, inflight=5)
    async with second:
        again = await take(second, 20)
    assert [d.payload for d in again] == payloads  # nothing lost, nothing twice
    assert sum(d.dup for d in again) <= 5  # only what the dead client held comes as a resend
