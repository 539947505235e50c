"""The packaging: entry point, what it registers, a light plugin module, the CLI hook."""

from __future__ import annotations

from mqttq.devices import DeviceAdapter
from mqttq.plugins import make_plugin_manager
from mqttq.testing import PluginPackageSuite
from mqttq_navien.adapter import NavienAdapter


class TestNavienPlugin(PluginPackageSuite):
    distribution = "mqttq-navien"
    plugin_name = "navien"
    provides = {"devices": {"navien"}}
    heavy_imports = {
        "mqttq_navien.adapter",
        "mqttq_navien.simulator",
        "mqttq_navien.cli",
        "mqttq.transports.mqtt",
        "aiomqtt",
        "paho",
        "typer",
    }

    def test_the_device_family_is_the_adapter(self) -> None:
        host, _ = self.load_host()
        target = host.catalog("devices").load("navien")
        assert target is NavienAdapter
        assert issubclass(target, DeviceAdapter)
        assert target.family == "navien"

    def test_it_adds_mqttq_navien(self) -> None:
        from mqttq.cli import make_app

        host = make_plugin_manager(autoload=True, only=[self.plugin_name])
        cli = make_app(host)
        host.hook.mqttq_register_commands(cli=cli)
        groups = {group.name: group for group in cli.registered_groups}
        assert "navien" in groups
        navien = groups["navien"].typer_instance
        assert navien is not None
        names = {command.name for command in navien.registered_commands}
        assert names == {"status", "set-temperature", "set-mode", "power", "queue", "simulate"}
