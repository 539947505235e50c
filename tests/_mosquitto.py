"""A private Mosquitto for the ingest tests: its own port, config and persistence in a temp dir.

Never the broker on port 1883. Persistence is on, so sessions and queued messages survive a
restart (``stop()`` then ``start()`` on the same port). A test module loads the fixture with
``pytest_plugins = ["_mosquitto"]`` (PYTEST_DONT_REWRITE: it is imported as a helper too).
"""

from __future__ import annotations

import asyncio
import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Mosquitto:
    """One mosquitto process; ``stop``/``kill`` and ``start`` again keep port and data."""

    def __init__(self, directory: Path, port: int | None = None, extra: str = "") -> None:
        if not os.path.exists(MOSQUITTO):
            pytest.fail("mosquitto is not installed: apt-get install -y mosquitto")
        self.dir = directory
        self.port = port or free_port()
        self.conf = directory / "mosquitto.conf"
        self.log = directory / "mosquitto.log"
        self.conf.write_text(
            f"""\
listener {self.port} 127.0.0.1
allow_anonymous true
user {getpass.getuser()}
persistence true
persistence_location {directory}/
autosave_interval 0
max_queued_messages 0
max_inflight_messages 1000
log_dest file {self.log}
log_type error
log_type warning
log_type notice
{extra}"""
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                log = self.log.read_text() if self.log.exists() else ""
                raise RuntimeError(f"mosquitto exited ({self.proc.returncode}): {err}{log}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError("mosquitto did not start listening") from None
                time.sleep(0.02)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop (SIGTERM saves the persistence file; SIGKILL does not)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    directory = tmp_path / "mosquitto"
    directory.mkdir()
    broker = Mosquitto(directory)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop(signal.SIGKILL)


async def until(
    predicate: Callable[[], Any | Awaitable[Any]], timeout: float = 30.0, what: str = "condition"
) -> Any:
    """Poll an observable condition (sync or async) until it holds, within ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)
