"""The conformance kit: test suites and helpers that travel with mqttq's interfaces.

Needs the ``mqttq[testing]`` extra (pytest, pytest-asyncio). See docs/plugins/conformance.md.

* :class:`QueueDriverSuite`: the QueueDriver contract, test by test.
* :class:`WorkerProcessSuite`: real ``mqttq worker`` processes on a driver (kill -9, retries,
  SIGTERM, delayed jobs across restarts, unknown job names), with :class:`WorkerEnv`.
* :class:`PluginPackageSuite`: the packaging of a plugin distribution.
* :func:`eventually` / :func:`eventually_sync`: bounded waits on an observable condition.
* :mod:`mqttq.testing.services` (private mosquitto and redis-server), :mod:`.fixtures` (their
  pytest fixtures), :mod:`.fakes` (a scripted transport for unit tests of core logic),
  :mod:`.jobs` (recording jobs for process tests).
"""

from __future__ import annotations

import pytest

# Detailed assert messages in the suites, as in the user's own test modules.
pytest.register_assert_rewrite(
    "mqttq.testing._lifecycle",
    "mqttq.testing._inspection",
    "mqttq.testing._contracts",
    "mqttq.testing.plugins",
    "mqttq.testing.processes",
)

from mqttq.testing._support import DriverFactory, make_job, unique_name  # noqa: E402
from mqttq.testing.plugins import PluginPackageSuite  # noqa: E402
from mqttq.testing.processes import WorkerEnv, WorkerProcessSuite  # noqa: E402
from mqttq.testing.queue_drivers import QueueDriverSuite  # noqa: E402
from mqttq.testing.waiting import eventually, eventually_sync  # noqa: E402

__all__ = [
    "DriverFactory",
    "PluginPackageSuite",
    "QueueDriverSuite",
    "WorkerEnv",
    "WorkerProcessSuite",
    "eventually",
    "eventually_sync",
    "make_job",
    "unique_name",
]
