"""Real services for tests: a private ``mosquitto`` and ``redis-server``, each on a free port in a
temporary directory, which a test may stop, kill -9 and start again (same port, same data).

A missing binary fails the test with the command that installs it; nothing is ever skipped.
Fixtures for them are in :mod:`mqttq.testing.fixtures`.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _binary(name: str, *fallbacks: str) -> str:
    found = shutil.which(name) or next((f for f in fallbacks if os.path.exists(f)), None)
    if found is None:
        pytest.fail(f"{name} is not installed: apt-get install -y {name}")
    return found


def _wait_listening(
    proc: subprocess.Popen[bytes], ready: Callable[[], bool], what: str, log: Path
) -> None:
    deadline = time.monotonic() + 15
    while not ready():
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{what} exited with {proc.returncode}: {err}{tail}")
        if time.monotonic() > deadline:
            proc.kill()
            raise TimeoutError(f"{what} did not start within 15 s")
        time.sleep(0.02)  # polling a condition with a deadline


def make_certificates(
    directory: Path, *, clients: dict[str, int] | None = None, ca_name: str = "mqttq test CA"
) -> Path:
    """A test CA, a server certificate for 127.0.0.1 and optional client certificates (name ->
    days valid; a negative number makes one that expired that many days ago), with ``openssl``.
    Give a second CA another ``ca_name``: a peer finds an issuer by its name.

    Files: ``ca.crt``, ``server.crt``/``server.key``, ``<name>.crt``/``<name>.key``.
    """
    openssl = _binary("openssl")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=directory, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={ca_name}",
        "-keyout", "ca.key", "-out", "ca.crt")  # fmt: skip
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    _sign(run, directory, "server", "/CN=127.0.0.1", days=2, ext="san.ext")
    for name, days in (clients or {}).items():
        _sign(run, directory, name, f"/CN={name}", days=days)
    return directory


def _sign(
    run: Callable[..., None],
    directory: Path,
    name: str,
    subject: str,
    *,
    days: int,
    ext: str | None = None,
) -> None:
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout", f"{name}.key",
        "-out", f"{name}.csr")  # fmt: skip
    if days >= 0:
        extra = ["-days", str(days)]
    else:  # an expired certificate: valid from (|days| + 1) days ago until |days| days ago
        (directory / "ca.cnf").write_text(_CA_CONF.format(dir=directory))
        (directory / "index.txt").write_text("")
        (directory / "serial").write_text("1000\n")
        now = time.time()
        start = time.strftime("%Y%m%d%H%M%SZ", time.gmtime(now + (days - 1) * 86400))
        end = time.strftime("%Y%m%d%H%M%SZ", time.gmtime(now + days * 86400))
        run("ca", "-batch", "-config", "ca.cnf", "-in", f"{name}.csr", "-out", f"{name}.crt",
            "-startdate", start, "-enddate", end)  # fmt: skip
        return
    args = ["x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{name}.crt", *extra]  # fmt: skip
    if ext:
        args += ["-extfile", ext]
    run(*args)


_CA_CONF = """\
[ca]
default_ca = test
[test]
dir = {dir}
database = {dir}/index.txt
serial = {dir}/serial
new_certs_dir = {dir}
certificate = {dir}/ca.crt
private_key = {dir}/ca.key
default_md = sha256
policy = anything
[anything]
commonName = supplied
"""


class Mosquitto:
    """One mosquitto process with persistence in ``directory``; ``stop``/``kill`` then ``start``
    keep its port and its data (sessions and queued messages survive a restart).

    ``extra`` is appended to its configuration; ``tls`` (a directory from
    :func:`make_certificates`) makes the listener TLS-only, and ``require_certificate`` makes it
    accept only clients with a certificate from that CA (mutual TLS).
    """

    def __init__(
        self,
        directory: Path,
        port: int | None = None,
        extra: str = "",
        tls: Path | None = None,
        *,
        require_certificate: bool = False,
    ) -> None:
        self.binary = _binary("mosquitto", "/usr/sbin/mosquitto")
        self.dir = directory
        self.port = port or free_port()
        self.tls = tls
        self.conf = directory / "mosquitto.conf"
        self.log = directory / "mosquitto.log"
        tls_conf = ""
        if tls is not None:
            tls_conf = (f"cafile {tls / 'ca.crt'}\ncertfile {tls / 'server.crt'}\n"
                        f"keyfile {tls / 'server.key'}\n")  # fmt: skip
            if require_certificate:
                tls_conf += "require_certificate true\n"
        elif require_certificate:
            raise ValueError("require_certificate needs tls")
        self.conf.write_text(
            f"""\
listener {self.port} 127.0.0.1
{tls_conf}allow_anonymous true
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
        return f"{'mqtts' if self.tls else 'mqtt'}://127.0.0.1:{self.port}"

    def _listening(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        _wait_listening(self.proc, self._listening, "mosquitto", self.log)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop (SIGTERM saves the persistence file; SIGKILL does not)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(10)
        self.proc = None

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()


#: a Redis ACL user limited to its own key prefix, and a least-privilege one (the commands the
#: Redis driver needs, under its prefix only)
ACL_USER, ACL_PASSWORD, ACL_PREFIX = "app1", "s3cret-pw", "acl1:"
LEAST_USER, LEAST_PASSWORD, LEAST_PREFIX = "app2", "least-pw", "least:"
LEAST_RULE = ["-@all", "+@read", "+@write", "+@scripting", "+@connection", "+@transaction",
              "+time", "-@dangerous"]  # fmt: skip


class RedisServer:
    """One redis-server process a test owns: start, stop, kill -9, restart on the same port.

    AOF with ``fsync always`` (``appendonly``), so a kill -9 keeps every acknowledged write.
    ``tls`` (a directory from :func:`make_certificates`) serves TLS only.
    """

    def __init__(self, workdir: Path, *, appendonly: bool = True, tls: Path | None = None) -> None:
        self.binary = os.environ.get("MQTTQ_REDIS_SERVER") or _binary("redis-server")
        self.workdir = workdir
        self.port = free_port()
        self.appendonly = appendonly
        self.tls = tls
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.workdir / "redis.sock"

    @property
    def url(self) -> str:
        return f"{'rediss' if self.tls else 'redis'}://127.0.0.1:{self.port}/0"

    def _ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as raw:
                s = raw
                if self.tls is not None:
                    context = ssl.create_default_context(cafile=str(self.tls / "ca.crt"))
                    s = context.wrap_socket(raw, server_hostname="127.0.0.1")
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False

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
        _wait_listening(self.proc, self._ping, "redis-server", self.workdir / "redis.log")

    def kill(self) -> None:
        """kill -9: no shutdown; only what the AOF already holds survives."""
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
