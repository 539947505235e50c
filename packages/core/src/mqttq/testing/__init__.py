"""The conformance kit: test suites that travel with mqttq's interfaces.

Needs the ``mqttq[testing]`` extra (pytest, pytest-asyncio). See docs/conformance.md.
"""

from __future__ import annotations

import pytest

# Detailed assert messages in the suites, as in the user's own test modules.
pytest.register_assert_rewrite(
    "mqttq.testing._lifecycle", "mqttq.testing._registry", "mqttq.testing.plugins"
)

from mqttq.testing._support import DriverFactory, eventually, make_job, unique_name  # noqa: E402
from mqttq.testing.plugins import PluginPackageSuite  # noqa: E402
from mqttq.testing.queue_drivers import QueueDriverSuite  # noqa: E402

__all__ = [
    "DriverFactory",
    "PluginPackageSuite",
    "QueueDriverSuite",
    "eventually",
    "make_job",
    "unique_name",
]
