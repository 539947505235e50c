"""``mqttq demo``: the whole pipeline on one machine with nothing installed beside mqttq.

An embedded MQTT broker (amqtt, in this process, on a free local port) or ``--broker URL``; a
SQLite queue in a temporary directory (or ``--db``); the listener and in-process workers
(``serve``, exactly what ``mqttq run`` does); simulated Navien heaters (mqttq-navien's simulator)
that a ``DeviceClient`` asks for their status, and whose replies the listener turns into jobs.
Midway the device client's connection is cut for a moment while it sends a few commands, which
the live view shows queued -> sent -> acknowledged.
"""

from __future__ import annotations

from mqttq.demo.run import DemoOptions, run_demo

__all__ = ["DemoOptions", "run_demo"]
