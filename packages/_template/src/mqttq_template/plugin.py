"""The mqttq entry point. Keep it cheap to import: register ``"module:Class"`` strings, which
mqttq imports only when a configuration names them."""

from mqttq.plugin import Register, hookimpl


@hookimpl
def mqttq_register_queue_drivers(register: Register) -> None:
    register("template", "mqttq_template.driver:TemplateQueueDriver")
