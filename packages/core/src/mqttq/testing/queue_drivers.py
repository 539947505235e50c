"""``QueueDriverSuite``: the QueueDriver contract (``mqttq/interfaces.py``) as tests to subclass.

Usage, in a driver package's tests::

    from mqttq.testing import QueueDriverSuite

    class TestMyQueueDriver(QueueDriverSuite):
        @pytest_asyncio.fixture
        async def driver(self, tmp_path):
            async with MyQueueDriver.from_url(f"my://{tmp_path}/q") as d:
                yield d

Optional fixtures (``make_driver``, ``reopen``), methods (``store_raw``, ``failed_ttl_options``)
and knobs (``lease``, ``delay``, ``timeout``, ``grace``) are described on
:class:`mqttq.testing._support.SuiteBase`. Tests needing a capability (or a fixture) the driver
does not provide are skipped, saying which. See docs/plugins/conformance.md, which also explains
the mutation harness (``tools/mutants``) that checks the suite catches realistic driver bugs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from mqttq.testing._contracts import ContractTests
from mqttq.testing._inspection import InspectionTests
from mqttq.testing._lifecycle import LifecycleTests


def _standard_tests() -> dict[str, Callable[..., Any]]:
    return {
        name: getattr(QueueDriverSuite, name)
        for name in dir(QueueDriverSuite)
        if name.startswith("test_")
    }


def _xfail_reason(func: object) -> str | None:
    for mark in getattr(func, "pytestmark", []):
        if getattr(mark, "name", None) == "xfail":
            reason = mark.kwargs.get("reason")
            return str(reason) if reason else None
    return None


def weakened_tests(cls: type) -> list[str]:
    """Standard tests that ``cls`` removed or replaced without ``xfail(reason=...)``."""
    return [
        name
        for name, original in _standard_tests().items()
        if (mine := getattr(cls, name, None)) is not original and not _xfail_reason(mine)
    ]


@pytest.mark.asyncio
class QueueDriverSuite(LifecycleTests, InspectionTests, ContractTests):
    """Subclass me and override the ``driver`` fixture. Every test names what to fix."""

    async def test_suite_is_not_weakened(self) -> None:
        """Every standard test still runs, or is overridden with xfail(reason=...).

        Troubleshooting: do not delete or override conformance tests to make a driver pass.
        Leave a Capability out of ``capabilities`` if the driver lacks a feature; mark a known
        bug with ``@pytest.mark.xfail(reason=..., strict=True)`` on an override that calls
        ``super()``.
        """
        weakened = weakened_tests(type(self))
        if weakened:
            pytest.fail(
                f"{type(self).__name__} overrides conformance tests without "
                f"@pytest.mark.xfail(reason=...): {', '.join(weakened)}"
            )
