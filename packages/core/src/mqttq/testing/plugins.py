"""``PluginPackageSuite``: checks that a plugin distribution is wired up the way mqttq expects.

Usage, in a plugin package's tests::

    from mqttq.testing import PluginPackageSuite

    class TestPluginPackage(PluginPackageSuite):
        distribution = "mqttq-sqlite"
        plugin_name = "sqlite"
        provides = {"queue_drivers": {"sqlite"}}
        heavy_imports = {"sqlite3"}

The distribution must be installed (``pip install -e packages/driver-sqlite``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Collection, Mapping
from importlib import metadata
from typing import Any, ClassVar

import pytest

from mqttq import interfaces
from mqttq.plugins import GROUP, PluginHost, PluginInfo, make_plugin_manager

#: kind -> name of the base class in ``mqttq.interfaces`` its targets must subclass (when defined)
_BASES = {
    "queue_drivers": "QueueDriver",
    "job_runners": "JobRunner",
    "transports": "Transport",
}

_PROBE = textwrap.dedent(
    """
    import importlib, json, sys
    importlib.import_module(sys.argv[1])
    print(json.dumps(sorted(sys.modules)))
    """
)


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


class PluginPackageSuite:
    """Subclass me and set the four class attributes below."""

    #: the distribution name, as in ``pip install <distribution>``
    distribution: ClassVar[str]
    #: the entry point name in the ``mqttq.plugins`` group
    plugin_name: ClassVar[str]
    #: what the plugin registers: ``{"queue_drivers": {"sqlite"}}`` (aliases included)
    provides: ClassVar[Mapping[str, Collection[str]]] = {}
    #: modules that importing the plugin module must NOT import (``{"sqlite3"}``)
    heavy_imports: ClassVar[Collection[str]] = ()

    # -- helpers ----------------------------------------------------------------------------------

    def entry_point(self) -> metadata.EntryPoint:
        try:
            dist = metadata.distribution(self.distribution)
        except metadata.PackageNotFoundError:
            pytest.fail(f"distribution {self.distribution!r} is not installed (pip install -e ...)")
        for ep in dist.entry_points:
            if ep.group == GROUP and ep.name == self.plugin_name:
                return ep
        pytest.fail(
            f"{self.distribution} declares no entry point {self.plugin_name!r} in group "
            f'{GROUP!r}; add to pyproject.toml: [project.entry-points."{GROUP}"] '
            f'{self.plugin_name} = "<package>.plugin"'
        )

    def load_host(self) -> tuple[PluginHost, PluginInfo]:
        host = make_plugin_manager(autoload=True, only=[self.plugin_name])
        plugins = {info.name: info for info in host.describe()}
        info = plugins.get(self.plugin_name)
        assert info is not None, f"plugin {self.plugin_name!r} was not discovered"
        assert info.status == "loaded", f"plugin {self.plugin_name!r} {info.status}: {info.error}"
        return host, info

    # -- tests ------------------------------------------------------------------------------------

    def test_entry_point_is_declared(self) -> None:
        """The distribution declares ``<plugin_name> = "<module>"`` in group ``mqttq.plugins``.

        Troubleshooting: add the entry point to pyproject.toml and reinstall the package
        (entry points are read from the installed metadata, not from the source tree).
        """
        ep = self.entry_point()
        assert ep.module, f"entry point {ep.name!r} names no module: {ep.value!r}"
        assert ep.dist is not None
        assert _canonical(ep.dist.name) == _canonical(self.distribution)

    def test_registers_what_it_provides(self) -> None:
        """Loaded alone, the plugin registers exactly what ``provides`` says.

        Troubleshooting: compare the plugin's ``mqttq_register_*`` hooks with ``provides``;
        an ``error`` status means the plugin module or a hook raised (the error is shown).
        """
        _, info = self.load_host()
        got = {kind: set(names) for kind, names in info.provides.items() if names}
        want = {kind: set(names) for kind, names in self.provides.items() if names}
        assert got == want
        assert info.distribution is not None
        assert _canonical(info.distribution) == _canonical(self.distribution)

    def test_plugin_module_imports_nothing_heavy(self) -> None:
        """Importing the entry-point module (fresh interpreter) leaves ``heavy_imports`` out.

        Troubleshooting: register ``"module:Class"`` strings instead of classes, and import
        backends inside the driver module only (``mqttq --help`` imports every plugin).
        """
        module = self.entry_point().module
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        proc = subprocess.run(
            [sys.executable, "-c", _PROBE, module],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, f"importing {module} failed:\n{proc.stderr}"
        loaded: list[str] = json.loads(proc.stdout.strip().splitlines()[-1])
        assert module in loaded
        heavy = sorted(
            name
            for name in self.heavy_imports
            if any(m == name or m.startswith(name + ".") for m in loaded)
        )
        assert heavy == [], f"importing {module} pulled in {', '.join(heavy)}"

    def test_registered_targets_import(self) -> None:
        """Every name the plugin registers loads (``"module:Class"`` strings resolve).

        Troubleshooting: check the spelling of the ``"module:Class"`` targets and that the
        package's dependencies are installed; queue drivers must subclass ``QueueDriver``.
        """
        host, info = self.load_host()
        assert info.provides, f"plugin {self.plugin_name!r} registers nothing"
        for kind, names in info.provides.items():
            base: Any = getattr(interfaces, _BASES.get(kind, ""), None)
            registry = host.catalog(kind)
            for name in names:
                target = registry.load(name)
                if isinstance(base, type):
                    is_sub = isinstance(target, type) and issubclass(target, base)
                    assert is_sub, f"{kind} {name!r} is {target!r}, not a {base.__name__}"
