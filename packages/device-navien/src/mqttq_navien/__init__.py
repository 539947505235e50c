"""mqttq-navien: Navien NWP500 heat-pump water heaters as a mqttq device family (``navien``).

:class:`NavienAdapter` builds commands and decodes replies; :class:`NavienSimulator` answers
like a heater, for tests and demos; :func:`poll_status` asks for status periodically.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mqttq_navien.adapter import NavienAdapter, NavienCommandError
    from mqttq_navien.models import (
        ControlFailure,
        DhwMode,
        Features,
        OperationMode,
        Presence,
        Reservation,
        Response,
        Status,
        Temperature,
    )
    from mqttq_navien.polling import poll_status
    from mqttq_navien.simulator import NavienSimulator

__all__ = [
    "ControlFailure",
    "DhwMode",
    "Features",
    "NavienAdapter",
    "NavienCommandError",
    "NavienSimulator",
    "OperationMode",
    "Presence",
    "Reservation",
    "Response",
    "Status",
    "Temperature",
    "poll_status",
]

_WHERE = {
    "NavienAdapter": "adapter",
    "NavienCommandError": "adapter",
    "NavienSimulator": "simulator",
    "poll_status": "polling",
}


def __getattr__(name: str) -> Any:
    # loaded on first use, so importing the plugin module stays cheap
    if name not in __all__:
        raise AttributeError(name)
    import importlib

    module = importlib.import_module(f"mqttq_navien.{_WHERE.get(name, 'models')}")
    return getattr(module, name)
