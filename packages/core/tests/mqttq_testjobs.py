"""Envelope functions for tests that run jobs in other processes (importable by name)."""

from __future__ import annotations

import os
import time
from pathlib import Path


def write_pid_and_hang(path: str) -> None:
    Path(path).write_text(str(os.getpid()))
    time.sleep(3600)


def add(a: int, b: int) -> int:
    return a + b
