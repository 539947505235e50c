"""Workers and job runners."""

from mqttq.worker.executor import Executor
from mqttq.worker.worker import Worker

__all__ = ["Executor", "Worker"]
