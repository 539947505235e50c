"""A pytest plugin check.py loads into each plugin's test run (``-p mqttq_wheels_guard``).

* Before any test is collected, the packages named in ``WHEELS_GUARD_IMPORTS`` (comma-separated)
  are imported and must come from this environment's site-packages: the run stops with a usage
  error if one is found anywhere else (the checkout's ``src`` above all). Imported once, they are
  the modules every test gets.
* With ``WHEELS_GUARD_SELECT=suites`` only the tests of classes built on the kit's
  ``QueueDriverSuite`` and ``PluginPackageSuite`` run (the conformance suite and the
  plugin-package checks); the others are deselected.
"""

from __future__ import annotations

import importlib
import os
import sysconfig
from pathlib import Path

import pytest


def pytest_configure(config: pytest.Config) -> None:
    site = Path(sysconfig.get_paths()["purelib"]).resolve()
    for name in filter(None, os.environ.get("WHEELS_GUARD_IMPORTS", "").split(",")):
        module = importlib.import_module(name)
        where = Path(module.__file__ or "").resolve()
        if not where.is_relative_to(site):
            raise pytest.UsageError(f"{name} is imported from {where}, not from {site}")


def pytest_report_header(config: pytest.Config) -> str:
    site = sysconfig.get_paths()["purelib"]
    return f"packages under test imported from {site}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("WHEELS_GUARD_SELECT") != "suites":
        return
    from mqttq.testing import PluginPackageSuite, QueueDriverSuite

    suites = (QueueDriverSuite, PluginPackageSuite)
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        cls = getattr(item, "cls", None)
        (keep if cls is not None and issubclass(cls, suites) else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep
