from mqttq.testing.fixtures import mosquitto  # noqa: F401
