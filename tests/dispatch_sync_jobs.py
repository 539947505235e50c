"""Jobs for ``test_jobs_dispatch_sync``: a sync route's job that dispatches follow-up jobs.

Every run is recorded with :func:`mqttq.testing.jobs.record` (``<event> <key> <pid> <time>`` in
``$MQTTQ_TEST_RECORD``), so the test sees which process ran what.
"""

from __future__ import annotations

import mqttq
from mqttq.testing.jobs import record


class FollowUp(mqttq.Job):
    """The follow-up, a class job: records who dispatched it and the reading it carries."""

    def __init__(self) -> None:
        super().__init__()
        self.device = ""
        self.celsius: float | None = None
        self.via = ""

    async def handle(self) -> None:
        record("follow-up", f"{self.via}:{self.device}:{self.celsius}")


@mqttq.job
async def alert(device: str, celsius: float) -> None:
    """The other follow-up, a function job."""
    record("alert", f"{device}:{celsius}")


async def on_reading(device_id: str, message: mqttq.Message) -> None:
    """The sync route's job: runs inline in the listener, dispatches two follow-ups."""
    record("inline", f"{device_id}:{mqttq.current_job() is not None}")
    celsius = message.payload["celsius"]
    job = FollowUp()
    job.device, job.celsius, job.via = device_id, celsius, "dispatch"
    await mqttq.dispatch(job)
    await mqttq.current_queue().push(alert, kwargs={"device": device_id, "celsius": celsius})


class OnReading(mqttq.Job):
    """The same route job as a class job: the route sets its ``device_id`` and ``message``."""

    def __init__(self) -> None:
        super().__init__()
        self.device_id = ""
        self.message: mqttq.Message | None = None

    async def handle(self) -> None:
        assert self.message is not None
        await on_reading(self.device_id, self.message)
