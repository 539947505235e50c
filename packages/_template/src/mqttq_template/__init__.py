"""A queue driver plugin for mqttq: ``template://<store>``."""
