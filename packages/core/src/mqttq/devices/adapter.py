"""``DeviceAdapter``: what a device family speaks. Pure and synchronous: it builds commands,
names the topics to subscribe and decodes what devices send; the :class:`DeviceClient` does
every bit of I/O."""

from __future__ import annotations

import abc
from typing import Any, ClassVar

from mqttq.devices.models import Command, Reply
from mqttq.errors import ConfigError

#: the most a device id may take, in UTF-8 bytes
MAX_DEVICE_ID = 64
_FORBIDDEN = ("/", "+", "#", "\x00")


def check_device_id(device: str) -> str:
    """``device`` when it is safe inside a topic level; ``ConfigError`` naming the problem
    otherwise (so a command can never reach another device's topic)."""
    if not isinstance(device, str) or not device:
        raise ConfigError("a device id must be a non-empty string")
    if len(device.encode("utf-8")) > MAX_DEVICE_ID:
        raise ConfigError(f"device id {device[:20]!r}... is longer than {MAX_DEVICE_ID} bytes")
    bad = [c for c in _FORBIDDEN if c in device]
    if bad:
        shown = ", ".join("NUL" if c == "\x00" else repr(c) for c in bad)
        raise ConfigError(f"device id {device!r} contains {shown}: not allowed in a topic level")
    return device


class DeviceAdapter(abc.ABC):
    """One device family (``navien``), for one :class:`~mqttq.devices.DeviceClient`.

    Built as ``Adapter(client_id=...)``, one per :class:`~mqttq.devices.DeviceClient`, where
    ``client_id`` is the MQTT client id the device client connects with (protocols that address
    replies to a client need it). Must not do I/O.

    Class attributes set the delivery rules of its devices (a configuration may override them):
    """

    #: the family name, as registered (``mqttq_register_devices``)
    family: ClassVar[str] = ""
    #: least seconds between two controls to one device (0: no pacing)
    pacing: ClassVar[float] = 0.0
    #: seconds a sent command waits for the device's acknowledgement before it is sent again
    ack_timeout: ClassVar[float] = 10.0
    #: commands sent and not yet acknowledged, per device, at most
    in_flight: ClassVar[int] = 1

    def __init__(self, *, client_id: str) -> None:
        self.client_id = client_id

    def check_device(self, device: str) -> str:
        """The device id as this family writes it (``ConfigError`` for one it cannot be).
        The default only makes sure it is safe in a topic level."""
        return check_device_id(device)

    def add_device(self, device: str, **options: Any) -> str:
        """Make ``device`` known with its options (``[[devices.items]] options``); returns the
        id as this family writes it. ``ConfigError`` for a bad id or option. The default takes
        no options and calls :meth:`check_device`."""
        if options:
            name = self.family or type(self).__name__
            raise ConfigError(f"{name} devices take no options ({', '.join(sorted(options))})")
        return self.check_device(device)

    @abc.abstractmethod
    def subscriptions(self, device: str) -> list[str]:
        """Topic filters that carry what ``device`` sends to this client (replies, status,
        presence). Subscribed at QoS 1 on every (re)connect, before queued commands go out."""

    @abc.abstractmethod
    def interpret(self, topic: str, payload: bytes) -> Reply | None:
        """Decode a message received on one of the subscriptions; ``None`` for messages that
        are not for this client (the client's own requests echoed back, other clients'
        replies). Never raises for bad input: a payload it cannot decode is ``None`` too."""

    def answers(self, command: Command, reply: Reply) -> bool:
        """Whether ``reply`` (with an ``outcome``) answers ``command``, the oldest command in
        flight to the same device. By default: the reply names no request, or ``command``'s."""
        return reply.request_topic is None or reply.request_topic == command.topic
