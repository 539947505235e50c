"""``CommandHandle``: what :meth:`DeviceClient.send` returns; the life of one command."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Generator
from typing import Any, Self

from mqttq.devices.models import FINAL, Command, CommandState, Reply, Transition


class CommandHandle:
    """One command, followed from ``queued`` to where it ends.

    Await it (``await handle``, or :meth:`wait` with a timeout) to wait until it is settled:
    final, or ``sent`` for a command no device acknowledges. ``int(handle)`` and
    :attr:`packet_id` are the MQTT packet id of its last publish, 0 while it was never sent (as a
    queued command's id is 0 for nwp500 callers). :attr:`history` holds every state it went
    through, with when and why.
    """

    def __init__(self, command: Command, reason: str = "") -> None:
        self.command = command
        self.history: list[Transition] = [
            Transition(state=CommandState.QUEUED, at=time.time(), reason=reason)
        ]
        self.packet_id = 0
        #: the device's answer, once there is one
        self.reply: Reply | None = None
        #: how many times it was published
        self.sends = 0
        self._settled: asyncio.Future[None] | None = None

    def __repr__(self) -> str:
        return f"<CommandHandle {self.command.kind} to {self.command.device}: {self.state}>"

    def __int__(self) -> int:
        return self.packet_id

    @property
    def id(self) -> str:
        return self.command.id

    @property
    def state(self) -> CommandState:
        return self.history[-1].state

    @property
    def reason(self) -> str:
        return self.history[-1].reason

    @property
    def possible_duplicate(self) -> bool:
        """Sent more than once: the device may have got it twice."""
        return self.sends > 1

    @property
    def settled(self) -> bool:
        state = self.state
        return state in FINAL or (
            state == CommandState.SENT and not self.command.acknowledged_by_device
        )

    def move(self, state: CommandState, reason: str = "") -> None:
        """Record a new state (the device client's job)."""
        self.history.append(Transition(state=state, at=time.time(), reason=reason))
        if self.settled and self._settled is not None and not self._settled.done():
            self._settled.set_result(None)

    async def wait(self, timeout: float | None = None) -> Self:
        """Wait until the command is settled; ``TimeoutError`` after ``timeout`` seconds."""
        if not self.settled:
            if self._settled is None:
                self._settled = asyncio.get_running_loop().create_future()
            await asyncio.wait_for(asyncio.shield(self._settled), timeout)
        return self

    def __await__(self) -> Generator[Any, None, Self]:
        return self.wait().__await__()

    def as_dict(self) -> dict[str, Any]:
        """Plain values (``--json`` output)."""
        return {
            "id": self.command.id,
            "device": self.command.device,
            "kind": self.command.kind,
            "state": str(self.state),
            "reason": self.reason,
            "packet_id": self.packet_id,
            "sends": self.sends,
            "history": [
                {"state": str(t.state), "at": t.at, "reason": t.reason} for t in self.history
            ],
        }
