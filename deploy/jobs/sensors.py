"""The example deployment's job: one line per temperature reading, on the worker's output
(``docker compose logs worker`` or ``journalctl -u 'mqttq-worker@*'`` shows them)."""

from __future__ import annotations

from mqttq import Message


def record_temperature(device_id: str, message: Message) -> None:
    print(f"temperature of {device_id}: {message.payload}", flush=True)
