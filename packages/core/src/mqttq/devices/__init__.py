"""Sending commands to MQTT devices reliably: :class:`DeviceClient`, per-device command lanes,
and the :class:`DeviceAdapter` interface device families implement."""

from __future__ import annotations

from mqttq.devices.adapter import MAX_DEVICE_ID, DeviceAdapter, check_device_id
from mqttq.devices.client import CommandQueueFull, DeviceClient, make_store
from mqttq.devices.handle import CommandHandle
from mqttq.devices.models import (
    FINAL,
    Command,
    CommandEvent,
    CommandState,
    Reply,
    Transition,
    new_command_id,
)
from mqttq.devices.store import CommandStore, MemoryCommandStore, StoredCommand

__all__ = [
    "FINAL",
    "MAX_DEVICE_ID",
    "Command",
    "CommandEvent",
    "CommandHandle",
    "CommandQueueFull",
    "CommandState",
    "CommandStore",
    "DeviceAdapter",
    "DeviceClient",
    "MemoryCommandStore",
    "Reply",
    "StoredCommand",
    "Transition",
    "check_device_id",
    "make_store",
    "new_command_id",
]
