"""The mqtt transport against a real Mosquitto: sessions, manual acks, the window, reconnects,
TLS and credentials."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from mqttq import NotConnectedError, TransportError
from mqttq.config import MqttConfig
from mqttq.interfaces import Delivery, Subscription
from mqttq.retry import RetryPolicy
from mqttq.testing import eventually
from mqttq.testing.services import Mosquitto, free_port
from mqttq.transports.mqtt import Endpoint, MqttTransport


def transport(url: str, client_id: str = "t-listener", **kw: Any) -> MqttTransport:
    options = {k: kw.pop(k) for k in ("manual_ack", "inflight") if k in kw}
    return MqttTransport(MqttConfig(url=url, client_id=client_id, **kw), **options)


async def publish(url: str, topic: str, payloads: list[bytes], qos: int = 1) -> None:
    async with transport(url, "t-publisher") as pub:
        await asyncio.gather(*(pub.publish(topic, p, qos=qos) for p in payloads))


async def take(t: MqttTransport, n: int, ack: bool = True) -> list[Delivery]:
    got: list[Delivery] = []
    async with asyncio.timeout(30):
        while len(got) < n:
            batch = await t.receive(n - len(got))
            got += batch
            if ack:
                await t.ack(batch)
    return got


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_session_survives_the_client_being_away(mosquitto: Mosquitto, protocol: str) -> None:
    sub = transport(mosquitto.url, protocol=protocol)
    await sub.connect()
    await sub.subscribe([Subscription(topic="s/#", qos=1)])
    await sub.aclose()
    await publish(mosquitto.url, "s/1", [b"while away %d" % i for i in range(20)])
    again = transport(mosquitto.url, protocol=protocol)
    async with again:  # no subscribe: the broker kept the subscription and the messages
        got = await take(again, 20)
    assert [d.payload for d in got] == [b"while away %d" % i for i in range(20)]


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
@pytest.mark.parametrize("manual_ack", [True, False], ids=["manual", "auto"])
async def test_unacked_messages_come_again_only_with_manual_acks(
    mosquitto: Mosquitto, manual_ack: bool, protocol: str
) -> None:
    first = transport(mosquitto.url, manual_ack=manual_ack, protocol=protocol)
    await first.connect()
    await first.subscribe([Subscription(topic="m/#", qos=1)])
    await publish(mosquitto.url, "m/x", [b"a", b"b", b"c"])
    got = await take(first, 3, ack=False)
    await first.ack(got[:1])  # only "a" is safe
    await eventually(lambda: first.outstanding == 2, timeout=5, what="the ack to be recorded")
    await first.aclose()
    second = transport(mosquitto.url, manual_ack=manual_ack, protocol=protocol)
    async with second:
        await publish(mosquitto.url, "m/x", [b"after"])
        again = await take(second, 3 if manual_ack else 1)
    if manual_ack:
        assert [(d.payload, d.dup) for d in again] == [
            (b"b", True),
            (b"c", True),
            (b"after", False),
        ]
        assert [d.mid for d in again[:2]] == [d.mid for d in got[1:]]
    else:
        assert [d.payload for d in again] == [b"after"]


async def test_the_window_stops_reading_with_a_slow_consumer(mosquitto: Mosquitto) -> None:
    sub = transport(mosquitto.url, inflight=5)
    await sub.connect()
    await sub.subscribe([Subscription(topic="w/#", qos=0)])
    payloads = [b"%d" % i for i in range(200)]
    await publish(mosquitto.url, "w/x", payloads, qos=0)
    got: list[Delivery] = []
    async with transport(mosquitto.url, "t-pinger") as pinger, asyncio.timeout(60):
        while len(got) < 200:
            batch = await sub.receive(1000)
            assert len(batch) <= 5
            assert sub.outstanding <= 5
            got += batch
            await pinger.publish("elsewhere", b"", qos=1)  # a broker round trip: slow consumer
            await sub.ack(batch)
    assert [d.payload for d in got] == payloads  # QoS 0, yet nothing dropped
    await sub.aclose()


async def test_reconnects_with_backoff_and_resubscribes(mosquitto: Mosquitto) -> None:
    sub = transport(mosquitto.url, reconnect_min=0.05, reconnect_max=0.2)
    await sub.connect()
    await sub.subscribe([Subscription(topic="r/#", qos=1)])
    mosquitto.stop()
    await eventually(lambda: not sub.connected, timeout=10, what="the transport to notice")
    with pytest.raises(NotConnectedError):
        await sub.publish("r/x", b"nobody hears")
    mosquitto.start()
    await eventually(lambda: sub.connections == 2, timeout=20, what="a reconnect")
    await publish(mosquitto.url, "r/new", [b"after restart"])
    (d,) = await take(sub, 1)
    assert (d.topic, d.payload, d.connection) == ("r/new", b"after restart", 2)
    await sub.aclose()


async def test_first_connect_retries_until_the_broker_starts(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path)
    url = broker.url
    with pytest.raises(TransportError, match="cannot reach the MQTT broker"):
        await transport(url).connect(retry=False)
    t = transport(url, reconnect_min=0.05, reconnect_max=0.2)
    connecting = asyncio.create_task(t.connect())
    await eventually(lambda: t.failed_attempts >= 2, timeout=10, what="two failed attempts")
    assert not connecting.done()
    broker.start()
    try:
        await asyncio.wait_for(connecting, 20)
        assert t.connected
        await t.aclose()
    finally:
        broker.stop()


def test_backoff_doubles_to_the_cap_with_jitter() -> None:
    policy = RetryPolicy(first=1.0, max=60.0)
    delays = [policy.delay(n, lambda: 0.0) for n in range(8)]
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60]
    assert policy.delay(3, lambda: 1.0) == 4.0  # jitter takes up to half away


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mqtt://h", Endpoint(host="h", port=1883, tls=False)),
        (
            "mqtts://u:p%40ss@h:9",
            Endpoint(host="h", port=9, tls=True, username="u", password="p@ss"),
        ),
        ("mqtts://h", Endpoint(host="h", port=8883, tls=True)),
    ],
)
def test_urls(url: str, expected: Endpoint) -> None:
    assert Endpoint.parse(url) == expected


@pytest.fixture
def secured(tmp_path: Path) -> Any:
    """A Mosquitto with TLS (a private CA) and a password file."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("openssl is not installed: apt-get install -y openssl")
    d = tmp_path / "tls"
    d.mkdir()

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=d, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
        "-days", "2", "-subj", "/CN=mqttq test CA")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=127.0.0.1")  # fmt: skip
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "ext.cnf")  # fmt: skip
    passwd = d / "passwd"
    passwd.write_text("alice:wonderland\n")
    subprocess.run(["mosquitto_passwd", "-U", str(passwd)], check=True, capture_output=True)
    tls_port = free_port()
    broker = Mosquitto(
        tmp_path,
        extra=f"""
per_listener_settings false
password_file {passwd}
listener {tls_port} 127.0.0.1
cafile {d / "ca.crt"}
certfile {d / "server.crt"}
keyfile {d / "server.key"}
""",
    )
    text = broker.conf.read_text().replace("allow_anonymous true", "allow_anonymous false")
    broker.conf.write_text(text)
    broker.start()
    try:
        yield broker, tls_port, str(d / "ca.crt")
    finally:
        broker.stop()


async def test_tls_with_credentials_and_refusals(secured: Any) -> None:
    broker, tls_port, ca = secured
    good = MqttTransport(
        MqttConfig(
            url=f"mqtts://alice:wonderland@127.0.0.1:{tls_port}", client_id="tls", ca_certs=ca
        )
    )
    async with good:
        await good.subscribe([Subscription(topic="tls/#")])
        await good.publish("tls/x", b"secret")
        (d,) = await take(good, 1)
        assert d.payload == b"secret"
    bad = MqttTransport(MqttConfig(url=f"mqtt://alice:nope@127.0.0.1:{broker.port}"))
    with pytest.raises(TransportError, match="refused the connection"):
        await bad.connect()  # retry=True, yet bad credentials fail at once
    untrusted = MqttTransport(MqttConfig(url=f"mqtts://alice:wonderland@127.0.0.1:{tls_port}"))
    with pytest.raises(TransportError, match=r"cannot reach|certificate"):
        await untrusted.connect(retry=False)
