"""``python -m mqttq`` is the ``mqttq`` command."""

from mqttq.cli import main

main()
