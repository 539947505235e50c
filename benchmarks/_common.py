"""Shared helpers for the ``bench_*.py`` scripts: timing, statistics, processes, result files.

Standard library only, so any benchmark (and the worker processes that import one) loads it cheaply.

A benchmark builds a list of :class:`Metric` rows (one per figure, with the value of each system
measured side by side), prints them with :func:`print_metrics` and stores them with
:func:`save_results` in ``benchmarks/results/<name>.json``; ``run.py`` reads those files back for
the combined summary. The JSON shape (``run.py`` relies on ``metrics[].{metric, unit, values}``)::

    {"bench": "sqlite", "machine": {...}, "started_at": "...", "duration_s": 93.1,
     "settings": {...},
     "metrics": [{"metric": "enqueue, one at a time", "unit": "jobs/s", "higher_is_better": true,
                  "subject": "mqttq-sqlite", "values": {"mqttq-sqlite": 5100.0, "huey": 4100.0},
                  "ratios": {"vs huey": 1.24}, "goal": ">= 3x huey", "met": false, "note": ""}]}
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS_DIR = HERE / "results"


# -- statistics ---------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0-100) with linear interpolation; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


def rate(count: int, seconds: float) -> float:
    """Items per second (``inf`` for a zero duration)."""
    return count / seconds if seconds > 0 else math.inf


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not b or math.isnan(a) or math.isnan(b):
        return None
    return a / b


# -- results ------------------------------------------------------------------------------------


@dataclass
class Metric:
    """One figure, measured for several systems in the same run.

    ``subject`` is the system the figure is about (``mqttq-sqlite``); ``ratios`` are the subject's
    value divided by each reference's (for latencies, lower is better: a ratio below 1 is good).
    """

    metric: str
    unit: str
    values: dict[str, float | None]
    subject: str
    higher_is_better: bool = True
    references: dict[str, str] = field(default_factory=dict)  # label -> system key
    goal: str = ""
    met: bool | None = None
    note: str = ""
    ratios: dict[str, float | None] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        mine = self.values.get(self.subject)
        for label, key in self.references.items():
            self.ratios.setdefault(label, ratio(mine, self.values.get(key)))


def machine_info() -> dict[str, Any]:
    import sqlite3

    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "sqlite": sqlite3.sqlite_version,
        "hostname": socket.gethostname(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }


def load_warning() -> str | None:
    """A warning when other work is running: figures taken on a busy machine are not comparable
    with other runs (fsync-bound ones, like huey's, suffer most from a busy disk)."""
    load = os.getloadavg()[0]
    cpus = os.cpu_count() or 1
    if load > 0.5 * cpus:
        return f"the machine is busy (load average {load:.2f} on {cpus} CPUs): figures are noisy"
    return None


def save_results(
    name: str,
    metrics: Sequence[Metric],
    *,
    started: float,
    settings: dict[str, Any] | None = None,
) -> Path:
    """Write ``results/<name>.json``; ``started`` is the ``time.time()`` the run began."""
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    doc = {
        "bench": name,
        "machine": machine_info(),
        "started_at": datetime.fromtimestamp(started, UTC).isoformat(timespec="seconds"),
        "duration_s": round(time.time() - started, 1),
        "settings": settings or {},
        "metrics": [asdict(m) for m in metrics],
    }
    path.write_text(json.dumps(doc, indent=2, allow_nan=False, default=_json_default) + "\n")
    return path


def _json_default(value: Any) -> Any:
    return str(value)


# -- tables -------------------------------------------------------------------------------------


def fmt_value(value: float | None, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if unit == "ms":
        return f"{value:.2f}" if value < 10 else f"{value:.1f}" if value < 100 else f"{value:.0f}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def fmt_ratio(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0%}" if value < 1 else f"{value:.2f}x"


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table; the first column is left-aligned, the others right-aligned."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def metrics_table(metrics: Sequence[Metric], systems: Sequence[tuple[str, str]]) -> str:
    """One row per metric: each system's value (``systems`` is ``[(key, heading), ...]``), then the
    subject's ratios and the goal."""
    ratio_labels: list[str] = []
    for m in metrics:
        ratio_labels += [label for label in m.ratios if label not in ratio_labels]
    headers = ["metric", "unit", *(h for _, h in systems), *ratio_labels, "goal"]
    rows = []
    for m in metrics:
        goal = m.goal
        if goal and m.met is not None:
            goal = f"{goal} {'MET' if m.met else 'MISSED'}"
        rows.append(
            [
                m.metric,
                m.unit,
                *(fmt_value(m.values.get(key), m.unit) for key, _ in systems),
                *(fmt_ratio(m.ratios.get(label)) for label in ratio_labels),
                goal,
            ]
        )
    return format_table(headers, rows)


# -- processes and waiting ----------------------------------------------------------------------


def wait_for(
    predicate: Callable[[], bool], timeout: float, interval: float = 0.01, what: str = "condition"
) -> None:
    """Poll ``predicate`` until true; ``TimeoutError`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a benchmark's child process: this directory importable, no plugin
    surprises from the user's environment (``MQTTQ_*`` variables are dropped)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MQTTQ_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def python_cmd(*args: str) -> list[str]:
    return [sys.executable, *args]


def stop_process(proc: subprocess.Popen[Any], sig: int = signal.SIGTERM, grace: float = 10) -> int:
    """Signal a child we started and wait for it (SIGKILL after ``grace`` seconds)."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


@contextlib.contextmanager
def workdir(prefix: str) -> Iterator[Path]:
    """A temporary directory on the same file system as ``/tmp`` (a real disk here, not tmpfs
    — check ``df -T``), removed afterwards."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        yield Path(tmp)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def banner(title: str) -> None:
    print(f"\n=== {title} ===", flush=True)
