"""Real ``mqttq worker`` processes on a real SQLite file: the kit's process scenarios."""

from __future__ import annotations

from pathlib import Path

import pytest

from mqttq.testing import WorkerProcessSuite


class TestSqliteWorkerProcesses(WorkerProcessSuite):
    @pytest.fixture
    def queue_url(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path / 'q.db'}"
