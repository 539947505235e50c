"""Mutual TLS against a real Mosquitto that requires client certificates: a good certificate
connects and ingest works (``mqttq run`` as a real process); a refused handshake makes
``python -m mqttq listen`` fail at once with one line, after one connection attempt; after a
first connection, a refusal is retried slowly."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import attrs
import orjson
import pytest

from mqttq.config import MqttConfig
from mqttq.testing import eventually
from mqttq.testing.services import Mosquitto, make_certificates
from mqttq.transports.mqtt import MqttTransport

TESTS = Path(__file__).parent


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The broker's CA (a good and an expired client certificate) and another CA."""
    ours = make_certificates(tmp_path_factory.mktemp("ca"), clients={"good": 2, "expired": -1})
    other = make_certificates(
        tmp_path_factory.mktemp("other-ca"), clients={"stranger": 2}, ca_name="another CA"
    )
    return {"ours": ours, "other": other}


@pytest.fixture
def broker(tmp_path: Path, pki: dict[str, Path]) -> Iterator[Mosquitto]:
    directory = tmp_path / "mosquitto"
    directory.mkdir()
    b = Mosquitto(directory, tls=pki["ours"], require_certificate=True)
    b.start()
    try:
        yield b
    finally:
        b.stop()


def config(broker: Mosquitto, ca: Path, cert: Path | None, **extra: float) -> MqttConfig:
    """TLS settings: ``ca`` to trust the broker, ``cert`` (and its ``.key``) as the client's."""
    return MqttConfig(
        url=broker.url,
        client_id="tls-listener",
        ca_certs=str(ca),
        certfile=str(cert) if cert else None,
        keyfile=str(cert.with_suffix(".key")) if cert else None,
        **extra,  # type: ignore[arg-type]
    )


def write_config(path: Path, mqtt: MqttConfig) -> Path:
    tls = "".join(
        f'{key} = "{value}"\n'
        for key in ("ca_certs", "certfile", "keyfile")
        if (value := getattr(mqtt, key))
    )
    path.write_text(
        f"""
[mqtt]
url = "{mqtt.url}"
client_id = "{mqtt.client_id}"
{tls}
[queue]
url = "sqlite:///{path.parent / "queue.db"}"

[worker]
concurrency = 2

[[routes]]
topic = "tls/{{device_id}}/reading"
job = "ingest_jobs:temperature"
"""
    )
    return path


def env(**extra: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MQTTQ_")}
    return {**clean, "PYTHONPATH": str(TESTS), **extra}


class CountingRelay:
    """A TCP relay to the broker that counts the connections made through it (the broker's log
    has no single line per attempt: a handshake that fails at once logs only OpenSSL errors)."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> CountingRelay:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


async def test_a_good_client_certificate_connects_and_ingest_works(
    tmp_path: Path, broker: Mosquitto, pki: dict[str, Path]
) -> None:
    good = config(broker, pki["ours"] / "ca.crt", pki["ours"] / "good.crt")
    path = write_config(tmp_path / "mqttq.toml", good)
    record = tmp_path / "runs.jsonl"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mqttq", "--config", str(path), "run",
        stderr=asyncio.subprocess.PIPE, env=env(INGEST_RECORD=str(record)),
    )  # fmt: skip
    err: list[str] = []

    async def read() -> None:
        assert proc.stderr is not None
        async for line in proc.stderr:
            err.append(line.decode().rstrip())

    reader = asyncio.create_task(read())
    try:
        await eventually(
            lambda: any("listening: " in line for line in err) or proc.returncode is not None,
            timeout=30,
            what="the listener to subscribe",
        )
        assert proc.returncode is None, err
        publisher = MqttTransport(
            config(broker, pki["ours"] / "ca.crt", pki["ours"] / "good.crt"),
            client_id="tls-publisher",
        )
        async with publisher:
            await publisher.publish("tls/d1/reading", orjson.dumps({"t": 21.5}))
        await eventually(record.exists, timeout=30, what="the job to run")
        (run,) = [orjson.loads(line) for line in record.read_text().splitlines()]
        assert run["params"] == {"device_id": "d1"}
        assert run["payload"] == {"t": 21.5}
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 60)
        await reader
    assert code == 0, err


@pytest.mark.parametrize(
    ("cert", "ca", "expected"),
    [
        (
            "ours/expired",
            "ours",
            "refused the TLS handshake (certificate expired) — check mqtt.certfile/keyfile",
        ),
        ("other/stranger", "ours", "refused the TLS handshake (unknown CA) — check mqtt."),
        (
            None,
            "ours",
            "refused the TLS handshake (certificate required) — set mqtt.certfile and mqtt.keyfile",
        ),
        ("ours/good", "other", "presented a TLS certificate that is not trusted ("),
    ],
    ids=["expired", "another-ca", "no-certificate", "untrusted-broker"],
)
async def test_a_refused_handshake_is_one_line_and_one_attempt(
    tmp_path: Path,
    broker: Mosquitto,
    pki: dict[str, Path],
    cert: str | None,
    ca: str,
    expected: str,
) -> None:
    client_cert = None
    if cert is not None:
        where, name = cert.split("/")
        client_cert = pki[where] / f"{name}.crt"
    async with CountingRelay(broker.port) as relay:
        url = f"mqtts://127.0.0.1:{relay.port}"
        mqtt = attrs.evolve(config(broker, pki[ca] / "ca.crt", client_cert), url=url)
        path = write_config(tmp_path / "mqttq.toml", mqtt)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mqttq", "--config", str(path), "listen",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env(),
        )  # fmt: skip
        try:
            out, err = await asyncio.wait_for(proc.communicate(), 60)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert proc.returncode == 1, err
    assert out == b""
    lines = err.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"mqttq: the MQTT broker at {url} "), lines[0]
    assert expected in lines[0], lines[0]
    assert relay.connections == 1  # no retry


async def test_a_refusal_after_the_first_connection_is_retried_slowly(
    tmp_path: Path, broker: Mosquitto, pki: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "mqttq.transport")
    mqtt = config(
        broker,
        pki["ours"] / "ca.crt",
        pki["ours"] / "good.crt",
        reconnect_min=0.01,
        reconnect_max=600.0,
    )
    t = MqttTransport(mqtt, rand=lambda: 0.0)  # no jitter: the delays are the policy's own
    await t.connect()
    broker.stop()
    # the broker comes back (same certificate) accepting only clients of another CA
    swapped = tmp_path / "swapped"
    swapped.mkdir()
    for name in ("server.crt", "server.key"):
        shutil.copy(pki["ours"] / name, swapped / name)
    shutil.copy(pki["other"] / "ca.crt", swapped / "ca.crt")
    strict = Mosquitto(broker.dir, port=broker.port, tls=swapped, require_certificate=True)
    strict.start()
    try:

        def refusals() -> list[str]:
            return [m for r in caplog.records if "TLS handshake" in (m := r.getMessage())]

        (refusal,) = await eventually(refusals, timeout=20, what="a refused handshake")
        assert "refused the TLS handshake (unknown CA)" in refusal
        assert refusal.endswith("; retrying in 600.0s"), refusal  # reconnect_max, not 0.01 s
        assert t.failed_attempts >= 1
        await t.aclose()
    finally:
        strict.stop()
