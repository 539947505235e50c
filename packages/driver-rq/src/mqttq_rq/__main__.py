"""One RQ worker for mqttq jobs, in a process of its own (``mqttq worker`` forks its workers
instead; this is the same worker started by hand)::

    python -m mqttq_rq --name NAME --queue Q [--queue Q2 ...] [--simple] [--burst] [--parent PID]

``--parent PID``: stop (warm) when that process dies, as the workers of ``mqttq worker`` do.

The configuration is found as by every mqttq command (``MQTTQ_CONFIG``, then ``./mqttq.toml``).
"""

from __future__ import annotations

import argparse
import logging
import sys

from mqttq_rq.pool import die_with


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mqttq_rq")
    parser.add_argument("--name", required=True)
    parser.add_argument("--queue", action="append", required=True)
    parser.add_argument("--simple", action="store_true")
    parser.add_argument("--burst", action="store_true")
    parser.add_argument("--parent", type=int, default=0)
    args = parser.parse_args(argv)
    die_with(args.parent)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("mqttq").setLevel(logging.INFO)

    from mqttq.plugin import MqttqError
    from mqttq_rq import _app, _url
    from mqttq_rq.worker import run_worker

    try:
        app = _app.current_app()
        settings = _url.parse(app.config.queue.url, {"failed_ttl": app.config.queue.failed_ttl})
    except MqttqError as exc:
        print(f"mqttq-rq: {exc}", file=sys.stderr, flush=True)
        return 2
    return run_worker(
        settings,
        args.queue,
        name=args.name,
        simple=args.simple,
        burst=args.burst,
        supervised=bool(args.parent),
    )


if __name__ == "__main__":
    sys.exit(main())
