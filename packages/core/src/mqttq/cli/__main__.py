"""``python -m mqttq.cli``: the same as the ``mqttq`` command."""

from mqttq.cli import main

main()
