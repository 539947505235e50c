"""The ``process`` runner: a pool of child processes for CPU-bound jobs; a timeout kills the child.

Jobs travel to children as JSON over pipes (never pickle). A child that times out, or whose job is
cancelled (at shutdown, or because someone cancelled the job), is killed and replaced, so a
runaway job really stops.

While a job runs, its child may ask the worker to push follow-up jobs: it writes
``{"op": "push", "calls": [...]}`` and the worker answers ``{"ok": true, "ids": [...]}`` (or the
error) on the child's stdin, pushing through its own app's queue, where every name is checked
against the worker's job registry. Any other line is the job's outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson

from mqttq.codec import converter, decode_value, dumps
from mqttq.errors import ConfigError, JobFailedError, JobTimeoutError, MqttqError
from mqttq.interfaces import JobRunner
from mqttq.models import Call, Envelope

if TYPE_CHECKING:
    from mqttq.jobs import JobSpec

#: answers the worker's side of a child's request (a push)
Serve = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class ChildJobError(JobFailedError):
    """A job raised in a child process; carries the child's error text and traceback."""


class _Child:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def spawn(cls) -> _Child:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "mqttq.worker._child",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=env,
        )
        return cls(proc)

    async def call(self, request: bytes, serve: Serve) -> dict[str, Any]:
        stdin, stdout = self.proc.stdin, self.proc.stdout
        assert stdin is not None
        assert stdout is not None
        stdin.write(request)
        await stdin.drain()
        while True:
            line = await stdout.readline()
            if not line:
                raise ChildJobError(f"worker process died (exit code {await self.proc.wait()})", "")
            reply: dict[str, Any] = decode_value(line)
            if "op" not in reply:
                return reply
            stdin.write(orjson.dumps(await serve(reply)) + b"\n")
            await stdin.drain()

    async def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        await self.proc.wait()

    async def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 5)
        except TimeoutError:
            await self.kill()


class ProcessJobRunner(JobRunner):
    """Runs each job in one of ``concurrency`` long-lived child processes."""

    @classmethod
    def check_job(cls, spec: JobSpec) -> None:
        """A child imports the job by ``module:qualname``: that must name it from outside."""
        module, _, qualname = spec.target.partition(":")
        where = None
        if module == "__main__":
            where = "in the __main__ script"
        elif "<" in qualname:  # <locals>, <lambda>
            where = "inside a function" if "<locals>" in qualname else "as a lambda"
        if where is not None:
            raise ConfigError(
                f"job {spec.name} is defined {where}: the process runner's children import jobs "
                "by module and name, so move it to a module of its own (or use runner = "
                '"asyncio")'
            )

    def __init__(self, *, app: Any, concurrency: int) -> None:
        super().__init__(app=app, concurrency=concurrency)
        self._idle: asyncio.Queue[_Child] = asyncio.Queue()
        self._all: set[_Child] = set()

    async def open(self) -> None:
        for child in await asyncio.gather(*(_Child.spawn() for _ in range(self.concurrency))):
            self._all.add(child)
            self._idle.put_nowait(child)

    async def aclose(self) -> None:
        children, self._all = self._all, set()
        await asyncio.gather(*(c.close() for c in children), return_exceptions=True)

    async def _replace(self, child: _Child) -> None:
        self._all.discard(child)
        await child.kill()
        fresh = await _Child.spawn()
        self._all.add(fresh)
        self._idle.put_nowait(fresh)

    async def run(
        self, func: Callable[..., Any], target: str, job: Envelope, *, timeout: float | None
    ) -> Any:
        request = dumps({"target": target, "job": job}) + b"\n"
        child = await self._idle.get()
        try:
            async with asyncio.timeout(timeout) as scope:
                reply = await child.call(request, self._serve)
        except TimeoutError:
            await asyncio.shield(self._replace(child))
            if scope.expired():
                raise JobTimeoutError(f"job {job.name} timed out after {timeout:g}s") from None
            raise
        except BaseException:
            await asyncio.shield(self._replace(child))
            raise
        self._idle.put_nowait(child)
        if not reply["ok"]:
            raise ChildJobError(reply["error"], reply["traceback"])
        return None

    async def _serve(self, request: dict[str, Any]) -> dict[str, Any]:
        """A child's push, through this worker's app (names checked in its registry)."""
        if request.get("op") != "push":
            return {"ok": False, "kind": "MqttqError", "error": f"unknown request {request!r}"}
        try:
            calls = [converter.structure(c, Call) for c in request["calls"]]
            ids = await self.app.queue.bulk(calls)
        except MqttqError as exc:
            return {"ok": False, "kind": type(exc).__name__, "error": str(exc)}
        except Exception as exc:  # a malformed request: the child's job gets the error
            return {"ok": False, "kind": "MqttqError", "error": f"{type(exc).__name__}: {exc}"}
        return {"ok": True, "ids": ids}
