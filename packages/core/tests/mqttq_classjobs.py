"""Class jobs for tests that register them by name (``[jobs] register`` / ``modules``)."""

from __future__ import annotations

from typing import Any

import mqttq

RAN: list[tuple[str, Any]] = []


class Greet(mqttq.Job):
    queue = "greetings"

    def __init__(self) -> None:
        super().__init__()
        self.who = "world"

    async def handle(self) -> None:
        RAN.append(("greet", self.who))


class Base(mqttq.Job):
    """Abstract (no handle): never registered by [jobs] modules."""

    retry_after = 1


class Shout(Base):
    def handle(self) -> None:
        RAN.append(("shout", vars(self)))


def helper() -> None:
    """Not a job: no decorator."""
