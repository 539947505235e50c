"""A private redis-server the tests start, kill -9 and restart, on a free port in a tmp dir."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

REDIS_SERVER = os.environ.get("MQTTQ_REDIS_SERVER", "/usr/bin/redis-server")
ACL_USER, ACL_PASSWORD, ACL_PREFIX = "app1", "s3cret-pw", "acl1:"
#: the least-privilege rule the README documents: the driver's commands, its prefix only
LEAST_USER, LEAST_PASSWORD, LEAST_PREFIX = "app2", "least-pw", "least:"
LEAST_RULE = ["-@all", "+@read", "+@write", "+@scripting", "+@connection", "+@transaction",
              "+time", "-@dangerous"]  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _ping(port: int, tls: Path | None = None) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as raw:
            s = raw
            if tls is not None:
                s = ssl.create_default_context(cafile=str(tls / "ca.crt")).wrap_socket(
                    raw, server_hostname="127.0.0.1"
                )
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def make_certificates(directory: Path) -> Path:
    """A CA and a server certificate for 127.0.0.1 (openssl), in ``directory``."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("openssl not found; install it: apt-get install -y openssl")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=directory, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=mqttq test CA",
        "-keyout", "ca.key", "-out", "ca.crt")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
        "-keyout", "server.key", "-out", "server.csr")  # fmt: skip
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.crt")  # fmt: skip
    return directory


class RedisServer:
    """One redis-server process the tests own: start, stop, kill -9, restart on the same port."""

    def __init__(self, workdir: Path, *, appendonly: bool = True, tls: Path | None = None) -> None:
        binary = shutil.which(REDIS_SERVER) or shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server not found; install it: apt-get install -y redis-server")
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.appendonly = appendonly
        self.tls = tls  #: directory of make_certificates(): serve TLS only
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.workdir / "redis.sock"

    @property
    def url(self) -> str:
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [
            self.binary,
            "--port", "0" if self.tls else str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.workdir),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "always",
            "--daemonize", "no",
            "--unixsocket", str(self.socket), "--unixsocketperm", "700",
            "--logfile", str(self.workdir / "redis.log"),
            # an ACL user that may only touch keys under its own prefix
            "--user", ACL_USER, "on", f">{ACL_PASSWORD}", f"~{ACL_PREFIX}*", "+@all",
            "--user", LEAST_USER, "on", f">{LEAST_PASSWORD}", f"~{LEAST_PREFIX}*", *LEAST_RULE,
            "--user", "default", "on", "nopass", "~*", "&*", "+@all",
        ]  # fmt: skip
        if self.tls is not None:
            args += [
                "--tls-port", str(self.port),
                "--tls-cert-file", str(self.tls / "server.crt"),
                "--tls-key-file", str(self.tls / "server.key"),
                "--tls-ca-cert-file", str(self.tls / "ca.crt"),
                "--tls-auth-clients", "no",
            ]  # fmt: skip
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 15
        while not _ping(self.port, self.tls):
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                log = (
                    (self.workdir / "redis.log").read_text()
                    if (self.workdir / "redis.log").exists()
                    else ""
                )
                pytest.fail(f"redis-server exited with {self.proc.returncode}: {err}{log[-2000:]}")
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail("redis-server did not answer PING within 15 s")
            time.sleep(0.02)  # polling a condition with a deadline

    def kill(self) -> None:
        """kill -9: no shutdown, only what AOF (fsync always) already wrote survives."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None
