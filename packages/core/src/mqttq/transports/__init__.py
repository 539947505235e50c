"""MQTT transports. ``mqtt``/``mqtts`` (:mod:`mqttq.transports.mqtt`) is built in; importing this
package does not import aiomqtt or paho (only :mod:`mqttq.transports.mqtt` does)."""
