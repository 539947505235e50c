"""mqttq entry point for the Navien adapter. Import-light: the adapter loads on first use."""

from __future__ import annotations

from mqttq.plugin import Register, hookimpl


@hookimpl
def mqttq_register_devices(register: Register) -> None:
    register("navien", "mqttq_navien.adapter:NavienAdapter")
