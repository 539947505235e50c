"""One RQ worker process of ``mqttq worker`` (started by :class:`mqttq_rq.pool.RqWorkerPool`):

    python -m mqttq_rq --name NAME --queue Q [--queue Q2 ...] [--simple] [--burst] [--parent PID]

The configuration is found as by every mqttq command (``MQTTQ_CONFIG``, then ``./mqttq.toml``).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import logging
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def _die_with(parent: int) -> None:
    """SIGTERM (a warm shutdown) when the pool that started us dies (Linux)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if parent and os.getppid() != parent:  # it died before we could ask
        sys.exit(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mqttq_rq")
    parser.add_argument("--name", required=True)
    parser.add_argument("--queue", action="append", required=True)
    parser.add_argument("--simple", action="store_true")
    parser.add_argument("--burst", action="store_true")
    parser.add_argument("--parent", type=int, default=0)
    args = parser.parse_args(argv)
    _die_with(args.parent)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("mqttq").setLevel(logging.INFO)

    import redis

    from mqttq.plugin import MqttqError
    from mqttq_rq import _core, _url
    from mqttq_rq.driver import RqQueueDriver
    from mqttq_rq.worker import make_worker

    try:
        app = _core.current_app()
        settings = _url.parse(app.config.queue.url, {"failed_ttl": app.config.queue.failed_ttl})
    except MqttqError as exc:
        print(f"mqttq-rq: {exc}", file=sys.stderr, flush=True)
        return 2
    connection = RqQueueDriver.connect(settings)
    worker = make_worker(
        args.queue,
        connection,
        simple=args.simple,
        name=args.name,
        maintenance_interval=settings.maintenance_interval,
        default_result_ttl=settings.result_ttl,
    )
    worker.supervised = True
    try:
        worker.work(burst=args.burst, with_scheduler=True, logging_level="INFO")
    except redis.ConnectionError as exc:
        print(f"mqttq-rq: cannot reach Redis at {settings.display_url}: {exc}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
