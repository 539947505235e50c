"""The demo's embedded MQTT broker (amqtt, pure Python, in this process, on a free port)."""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import AsyncIterator

from mqttq.errors import MqttqError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def embedded_broker() -> AsyncIterator[str]:
    """An amqtt broker on a free local port, for the duration of the block; yields its URL."""
    try:
        from amqtt.broker import Broker  # type: ignore[import-untyped]
    except ImportError:
        raise MqttqError(
            "the demo's embedded MQTT broker needs amqtt: pip install 'mqttq[demo]' "
            "(or give a broker of your own with --broker mqtt://host:1883)"
        ) from None

    for name in ("amqtt", "transitions"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    port = free_port()
    broker = Broker(
        {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }
    )
    try:
        await broker.start()
    except Exception as exc:
        raise MqttqError(f"cannot start the embedded MQTT broker: {exc}") from None
    try:
        yield f"mqtt://127.0.0.1:{port}"
    finally:
        with contextlib.suppress(Exception):
            await broker.shutdown()
