"""Real ``mqttq worker`` processes on a private redis-server: the kit's process scenarios."""

from __future__ import annotations

import pytest

from mqttq.testing import WorkerProcessSuite


@pytest.mark.slow
class TestRedisWorkerProcesses(WorkerProcessSuite):
    kill_jobs = 5000
    kill_job_seconds = 0.01

    @pytest.fixture
    def queue_url(self, redis_url: str) -> str:
        return redis_url
