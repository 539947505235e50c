"""The plugin host (mqttq.plugins, mqttq.catalog) and the PluginPackageSuite kit."""

from __future__ import annotations

import sys
import types
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

import mqttq.plugins
from mqttq import hookimpl
from mqttq.builtin.memory import MemoryQueueDriver
from mqttq.catalog import Register
from mqttq.errors import PluginConflictError, PluginLoadError, UnknownPluginError
from mqttq.plugins import GROUP, make_plugin_manager
from mqttq.testing import PluginPackageSuite


class FakeDriver(MemoryQueueDriver):
    schemes = ("fake",)


def plugin_module(name: str, **hooks: Callable[..., None]) -> types.ModuleType:
    module = types.ModuleType(name)
    for hook_name, func in hooks.items():
        setattr(module, hook_name, hookimpl(func))
    return module


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("MQTTQ_PLUGINS", "MQTTQ_DISABLE_PLUGIN_AUTOLOAD", "MQTTQ_STRICT_PLUGINS"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def entry_points(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Install fake entry points: ``entry_points(good=module, broken="no.such.module")``."""

    def install(**plugins: types.ModuleType | str) -> None:
        eps = []
        for name, plugin in plugins.items():
            if isinstance(plugin, types.ModuleType):
                monkeypatch.setitem(sys.modules, plugin.__name__, plugin)
                plugin = plugin.__name__
            eps.append(metadata.EntryPoint(name=name, value=plugin, group=GROUP))
        monkeypatch.setattr(mqttq.plugins, "_entry_points", lambda: eps)

    return install


def _register_good(register: Register) -> None:
    register("good", FakeDriver)


GOOD = plugin_module("mqttq_test_good", mqttq_register_queue_drivers=_register_good)


# -- discovery ------------------------------------------------------------------------------


def test_broken_plugin_is_recorded_not_fatal(entry_points: Callable[..., None]) -> None:
    entry_points(broken="mqttq_test_no_such_module", good=GOOD)
    host = make_plugin_manager()
    broken, good = host.plugins["broken"], host.plugins["good"]
    assert broken.status == "error"
    assert broken.error is not None
    assert "ModuleNotFoundError" in broken.error
    assert good.status == "loaded"
    assert host.catalog("queue_drivers").load("good") is FakeDriver


def test_strict_plugins_raise_on_a_broken_plugin(
    entry_points: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    entry_points(broken="mqttq_test_no_such_module")
    monkeypatch.setenv("MQTTQ_STRICT_PLUGINS", "1")
    with pytest.raises(PluginLoadError, match="'broken'"):
        make_plugin_manager()


def test_hook_that_raises_marks_its_plugin_failed(entry_points: Callable[..., None]) -> None:
    def explode(register: Register) -> None:
        raise RuntimeError("kaboom")

    entry_points(bad=plugin_module("mqttq_test_bad", mqttq_register_queue_drivers=explode))
    host = make_plugin_manager()
    drivers = host.catalog("queue_drivers")
    assert host.plugins["bad"].status == "error"
    assert "kaboom" in (host.plugins["bad"].error or "")
    assert drivers.load("memory") is MemoryQueueDriver


def test_allow_list_from_environment(
    entry_points: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    entry_points(broken="mqttq_test_no_such_module", good=GOOD)
    monkeypatch.setenv("MQTTQ_PLUGINS", " good ")
    host = make_plugin_manager()
    assert (host.plugins["broken"].status, host.plugins["good"].status) == ("blocked", "loaded")
    monkeypatch.setenv("MQTTQ_PLUGINS", "")
    host = make_plugin_manager()
    assert host.plugins["good"].status == "blocked"
    assert "good" not in host.catalog("queue_drivers").names()


def test_only_argument_overrides_environment(
    entry_points: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    entry_points(good=GOOD)
    monkeypatch.setenv("MQTTQ_PLUGINS", "other")
    assert make_plugin_manager(only=["good"]).plugins["good"].status == "loaded"


def test_disable_autoload(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden() -> list[metadata.EntryPoint]:
        raise AssertionError("entry points were read although autoload is disabled")

    monkeypatch.setattr(mqttq.plugins, "_entry_points", forbidden)
    monkeypatch.setenv("MQTTQ_DISABLE_PLUGIN_AUTOLOAD", "1")
    host = make_plugin_manager()
    assert list(host.plugins) == ["builtin"]
    assert host.catalog("queue_drivers").names() == ["memory"]
    monkeypatch.setattr(mqttq.plugins, "_entry_points", lambda: [])
    assert list(make_plugin_manager(autoload=True).plugins) == ["builtin"]


# -- registries -----------------------------------------------------------------------------


def test_conflict_names_both_providers() -> None:
    def one(register: Register) -> None:
        register("dup", FakeDriver)

    def two(register: Register) -> None:
        register("dup", "somewhere:Else")

    host = make_plugin_manager(
        autoload=False,
        extra=[
            ("first-plugin", plugin_module("p1", mqttq_register_queue_drivers=one)),
            ("second-plugin", plugin_module("p2", mqttq_register_queue_drivers=two)),
        ],
    )
    with pytest.raises(PluginConflictError) as info:
        host.catalog("queue_drivers")
    assert "first-plugin" in str(info.value)
    assert "second-plugin" in str(info.value)


def test_plugin_can_replace_a_builtin() -> None:
    def mine(register: Register) -> None:
        register("memory", FakeDriver)

    extra = [("better-memory", plugin_module("p3", mqttq_register_queue_drivers=mine))]
    host = make_plugin_manager(autoload=False, extra=extra)
    assert host.catalog("queue_drivers").load("memory") is FakeDriver
    provided = {info.name: info.provides for info in host.describe()}
    assert provided["better-memory"] == {"queue_drivers": ["memory"]}
    assert "queue_drivers" not in provided["builtin"]


def test_lazy_targets_import_on_first_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mqttq_test_lazy_target.py").write_text("class Thing:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    def lazy(register: Register) -> None:
        register("lazy", "mqttq_test_lazy_target:Thing", aliases=("lazy-alias",))
        register("missing", "mqttq_test_no_such_module:Thing")
        register("malformed", "no_colon_here")

    extra = [("lazy-plugin", plugin_module("p4", mqttq_register_job_runners=lazy))]
    runners = make_plugin_manager(autoload=False, extra=extra).catalog("job_runners")
    try:
        assert "mqttq_test_lazy_target" not in sys.modules
        thing = runners.load("lazy")
        assert sys.modules["mqttq_test_lazy_target"].Thing is thing
        assert runners.load("lazy-alias") is thing
        assert runners.entries["lazy-alias"].alias_of == "lazy"
    finally:
        sys.modules.pop("mqttq_test_lazy_target", None)
    with pytest.raises(PluginLoadError, match="'missing' from plugin 'lazy-plugin'"):
        runners.load("missing")
    with pytest.raises(PluginLoadError, match="malformed"):
        runners.load("malformed")


def test_unknown_names_get_install_hints() -> None:
    host = make_plugin_manager(autoload=False)
    drivers = host.catalog("queue_drivers")
    with pytest.raises(UnknownPluginError, match="install mqttq-redis"):
        drivers.load("redis")
    with pytest.raises(UnknownPluginError, match="install mqttq-navien"):
        host.catalog("devices").load("navien")
    with pytest.raises(UnknownPluginError, match=r"known: memory"):
        drivers.load("nonsense")


def test_describe_lists_what_each_plugin_provides() -> None:
    extra = [("good", GOOD)]
    infos = {i.name: i for i in make_plugin_manager(autoload=False, extra=extra).describe()}
    assert infos["builtin"].provides["queue_drivers"] == ["memory"]
    assert sorted(infos["builtin"].provides["job_runners"]) == ["asyncio", "process"]
    assert infos["good"].provides == {"queue_drivers": ["good"]}


# -- PluginPackageSuite, run against a fake installed distribution -----------------------------

_PLUGIN = """
import mqttq
{heavy}

@mqttq.hookimpl
def mqttq_register_queue_drivers(register):
    register("fake", "mqttq_fakeplug.driver:FakeQueueDriver", aliases=("fake+alt",))
"""

_DRIVER = """
import mqttq_fakeheavy
from mqttq.builtin.memory import MemoryQueueDriver

class FakeQueueDriver(MemoryQueueDriver):
    schemes = ("fake",)
"""


@pytest.fixture
def install_fake_dist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., None]]:
    """Put an installed-looking ``mqttq-fakeplug`` distribution on sys.path."""

    def install(*, heavy_at_top: bool = False, entry_point: bool = True) -> None:
        pkg = tmp_path / "mqttq_fakeplug"
        pkg.mkdir()
        (pkg / "__init__.py").write_text("")
        heavy = "import mqttq_fakeheavy" if heavy_at_top else ""
        (pkg / "plugin.py").write_text(_PLUGIN.format(heavy=heavy))
        (pkg / "driver.py").write_text(_DRIVER)
        (tmp_path / "mqttq_fakeheavy.py").write_text("VALUE = 1\n")
        info = tmp_path / "mqttq_fakeplug-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            "Metadata-Version: 2.1\nName: mqttq-fakeplug\nVersion: 0.1\n"
        )
        eps = f"[{GROUP}]\nfakeplug = mqttq_fakeplug.plugin\n" if entry_point else ""
        (info / "entry_points.txt").write_text(eps)
        monkeypatch.syspath_prepend(str(tmp_path))

    yield install
    for name in [m for m in sys.modules if m.startswith(("mqttq_fakeplug", "mqttq_fakeheavy"))]:
        del sys.modules[name]


class TestFakePluginPackage(PluginPackageSuite):
    distribution = "mqttq-fakeplug"
    plugin_name = "fakeplug"
    provides = {"queue_drivers": {"fake", "fake+alt"}}
    heavy_imports = {"mqttq_fakeheavy"}

    @pytest.fixture(autouse=True)
    def installed(self, install_fake_dist: Callable[..., None]) -> None:
        install_fake_dist()


def _suite(**attrs: Any) -> PluginPackageSuite:
    return type("Suite", (TestFakePluginPackage,), attrs)()  # type: ignore[no-any-return]


def test_plugin_suite_catches_a_heavy_import(install_fake_dist: Callable[..., None]) -> None:
    install_fake_dist(heavy_at_top=True)
    with pytest.raises(AssertionError, match="pulled in mqttq_fakeheavy"):
        _suite().test_plugin_module_imports_nothing_heavy()


def test_plugin_suite_catches_wrong_provides(install_fake_dist: Callable[..., None]) -> None:
    install_fake_dist()
    with pytest.raises(AssertionError):
        _suite(provides={"queue_drivers": {"fake"}}).test_registers_what_it_provides()


def test_plugin_suite_catches_a_missing_entry_point(
    install_fake_dist: Callable[..., None],
) -> None:
    install_fake_dist(entry_point=False)
    with pytest.raises(pytest.fail.Exception, match="declares no entry point 'fakeplug'"):
        _suite().test_entry_point_is_declared()
