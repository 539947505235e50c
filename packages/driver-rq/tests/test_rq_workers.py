"""The kit's worker-process scenarios on real ``mqttq worker`` processes, which for an
``rq+redis://`` queue run supervised RQ workers (each test on a redis-server of its own)."""

from __future__ import annotations

import pytest
from rq_helpers import rq_url

from mqttq.testing import WorkerProcessSuite
from mqttq.testing.services import RedisServer


@pytest.mark.slow
class TestRqWorkerProcesses(WorkerProcessSuite):
    # RQ forks a work-horse per job: fewer jobs than the kit's default, each a little longer
    kill_jobs = 600
    kill_job_seconds = 0.005

    @pytest.fixture
    def queue_url(self, own_redis: RedisServer) -> str:
        return rq_url(own_redis)
