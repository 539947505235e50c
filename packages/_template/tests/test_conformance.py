"""mqttq's conformance kit: the driver contract, and the packaging of the plugin."""

from collections.abc import AsyncIterator
from typing import Any

import pytest
from mqttq.plugin import QueueDriver
from mqttq.testing import DriverFactory, PluginPackageSuite, QueueDriverSuite, unique_name

from mqttq_template.driver import TemplateQueueDriver


class TestTemplateQueueDriver(QueueDriverSuite):
    @pytest.fixture
    async def make_driver(self) -> AsyncIterator[DriverFactory]:
        """New, open drivers on one store (one per test), with extra from_url options."""
        url = f"template://{unique_name('store')}"
        made: list[QueueDriver] = []

        async def make(**options: Any) -> QueueDriver:
            driver = TemplateQueueDriver.from_url(url, **options)
            await driver.open()
            made.append(driver)
            return driver

        yield make
        for driver in made:
            await driver.aclose()

    @pytest.fixture
    async def driver(self, make_driver: DriverFactory) -> QueueDriver:
        return await make_driver()


class TestTemplatePlugin(PluginPackageSuite):
    distribution = "mqttq-template"
    plugin_name = "template"
    provides = {"queue_drivers": {"template"}}
    heavy_imports = {"mqttq_template.driver"}
