"""mqttq entry point for the Navien adapter. Import-light: the adapter and the CLI load on
first use."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mqttq.plugin import Register, hookimpl

if TYPE_CHECKING:
    import typer


@hookimpl
def mqttq_register_devices(register: Register) -> None:
    register("navien", "mqttq_navien.adapter:NavienAdapter")


@hookimpl
def mqttq_register_commands(cli: typer.Typer) -> None:
    from mqttq_navien.cli import app

    cli.add_typer(app, name="navien")
