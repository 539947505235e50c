"""A ``process`` runner child: reads one JSON job per line on stdin, answers one line on stdout.

Only ``module:function`` (or ``module:Class``) targets from the parent's job registry are ever
sent here, never names read from a payload. Job output printed to stdout goes to stderr so it
cannot corrupt the protocol. A running job's ``mqttq.current_queue()`` pushes through the parent
(see :mod:`mqttq.worker.process`).
"""

from __future__ import annotations

import asyncio
import inspect
import os
import sys
import threading
import traceback
from typing import IO, Any

import orjson

from mqttq import errors
from mqttq.catalog import import_target
from mqttq.classjobs import is_job_class, runner_for
from mqttq.codec import converter, decode_value, dumps
from mqttq.context import CURRENT
from mqttq.jobs import target_of
from mqttq.models import Call, Envelope
from mqttq.queue import JobRef, Producer
from mqttq.routing import restore_kwargs


def _answer(out: IO[bytes], reply: dict[str, Any]) -> None:
    out.write(orjson.dumps(reply) + b"\n")
    out.flush()


class ParentQueue(Producer):
    """``current_queue()`` in a child: pushes go to the worker that sent the job, which checks
    the names against its registry and pushes through its own driver."""

    def __init__(self, stdin: IO[bytes], out: IO[bytes]) -> None:
        self._in = stdin
        self._out = out
        self._lock = threading.Lock()  # one request at a time on the pipe

    def _name(self, job: JobRef) -> str:
        return job if isinstance(job, str) else target_of(job)

    def _round_trip(self, calls: list[Call]) -> list[str]:
        with self._lock:
            self._out.write(dumps({"op": "push", "calls": calls}) + b"\n")
            self._out.flush()
            reply = orjson.loads(self._in.readline() or b'{"ok": false, "error": "worker gone"}')
        if reply.get("ok"):
            return list(reply["ids"])
        kind = getattr(errors, str(reply.get("kind")), None)
        if not (isinstance(kind, type) and issubclass(kind, errors.MqttqError)):
            kind = errors.MqttqError
        raise kind(reply.get("error", "the worker refused the push"))

    async def _send(self, calls: list[Call]) -> list[str]:
        return await asyncio.to_thread(self._round_trip, calls)


def _function(target: str, cache: dict[str, Any]) -> Any:
    func = cache.get(target)
    if func is None:
        func = import_target(target)
        if is_job_class(func):
            func = runner_for(func)
        cache[target] = func
    return func


def main() -> None:
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    stdin = sys.stdin.buffer
    queue = ParentQueue(stdin, out)
    functions: dict[str, Any] = {}
    while line := stdin.readline():
        try:
            request = decode_value(line)
            job = converter.structure(request["job"], Envelope)
            func = _function(request["target"], functions)
            token = CURRENT.set((queue, job))
            try:
                result = func(*job.args, **restore_kwargs(job.kwargs))
                if inspect.isawaitable(result):
                    result = asyncio.run(_await(result))
            finally:
                CURRENT.reset(token)
        except Exception as exc:
            _answer(
                out,
                {
                    "ok": False,
                    "error": f"{type(exc).__name__}: {exc}",
                    "traceback": traceback.format_exc(),
                },
            )
        else:
            _answer(out, {"ok": True})


async def _await(awaitable: Any) -> Any:
    return await awaitable


if __name__ == "__main__":
    main()
