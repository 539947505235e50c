"""A ``process`` runner child: reads one JSON job per line on stdin, answers one line on stdout.

Only ``module:function`` targets from the parent's job registry are ever sent here, never names
read from a payload. Job output printed to stdout goes to stderr so it cannot corrupt the protocol.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import sys
import traceback
from typing import Any

import orjson

from mqttq.catalog import import_target
from mqttq.codec import decode_value
from mqttq.routing import restore_kwargs


def _answer(out: Any, reply: dict[str, Any]) -> None:
    out.write(orjson.dumps(reply) + b"\n")
    out.flush()


def main() -> None:
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    functions: dict[str, Any] = {}
    for line in sys.stdin.buffer:
        try:
            request = decode_value(line)
            target = request["target"]
            func = functions.get(target) or functions.setdefault(target, import_target(target))
            result = func(*request["args"], **restore_kwargs(request["kwargs"]))
            if inspect.isawaitable(result):
                result = asyncio.run(_await(result))
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
