"""Run every ``benchmarks/bench_*.py`` one after another, then print a combined summary.

    python benchmarks/run.py                  # every benchmark (what `nox -s bench` runs)
    python benchmarks/run.py sqlite redis     # only bench_sqlite.py and bench_redis.py
    python benchmarks/run.py -- --quick       # arguments after `--` go to every script

Each script runs in its own process (never two at once: they would skew each other), prints its
own table and writes ``benchmarks/results/<name>.json``; the summary is read back from the files
written during this run. Exits 1 when a benchmark failed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import _common as c


def scripts(names: list[str]) -> list[Path]:
    found = sorted(c.HERE.glob("bench_*.py"))
    if not names:
        return found
    wanted = {n.removeprefix("bench_").removesuffix(".py") for n in names}
    unknown = wanted - {p.stem.removeprefix("bench_") for p in found}
    if unknown:
        raise SystemExit(f"run.py: no benchmark named {', '.join(sorted(unknown))}")
    return [p for p in found if p.stem.removeprefix("bench_") in wanted]


def summary(doc: dict[str, Any]) -> str:
    """The combined summary of one results file: the subject's value, its ratios and the goal."""
    metrics = doc.get("metrics") or []
    if not metrics:
        return "  (no metrics in the results file)"
    rows = []
    labels: list[str] = []
    for m in metrics:
        labels += [k for k in m.get("ratios", {}) if k not in labels]
    for m in metrics:
        subject = m.get("subject", "")
        goal = m.get("goal") or ""
        if goal and m.get("met") is not None:
            goal = f"{goal} {'MET' if m['met'] else 'MISSED'}"
        rows.append(
            [
                m.get("metric", "?"),
                subject,
                f"{c.fmt_value(m.get('values', {}).get(subject), m.get('unit', ''))} "
                f"{m.get('unit', '')}",
                *(c.fmt_ratio(m.get("ratios", {}).get(k)) for k in labels),
                goal,
            ]
        )
    return c.format_table(["metric", "subject", "value", *labels, "goal"], rows)


def main(argv: list[str]) -> int:
    own, passthrough = argv, []
    if "--" in argv:
        i = argv.index("--")
        own, passthrough = argv[:i], argv[i + 1 :]
    parser = argparse.ArgumentParser(description="Run the mqttq benchmarks.")
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    args = parser.parse_args(own)
    started = time.time()
    outcome: dict[str, str] = {}
    for script in scripts(args.names):
        name = script.stem.removeprefix("bench_")
        c.banner(f"{script.name} {' '.join(passthrough)}".rstrip())
        t0 = time.monotonic()
        code = subprocess.call([sys.executable, str(script), *passthrough], cwd=c.ROOT)
        took = time.monotonic() - t0
        outcome[name] = "ok" if code == 0 else f"FAILED (exit {code})"
        print(f"--- {script.name}: {outcome[name]} in {took:.0f} s", flush=True)

    c.banner(f"summary ({time.time() - started:.0f} s)")
    for name, status in outcome.items():
        path = c.RESULTS_DIR / f"{name}.json"
        if not path.exists() or path.stat().st_mtime < started:
            print(f"\n{name}: {status}, no results written in this run")
            continue
        doc = json.loads(path.read_text())
        machine = doc.get("machine", {})
        print(
            f"\n{name}: {status}, {doc.get('duration_s', '?')} s, {machine.get('cpus')} CPUs, "
            f"Python {machine.get('python')}  ({path.relative_to(c.ROOT)})"
        )
        print(summary(doc))
        notes = doc.get("settings", {}).get("all", [])
        for note in notes:
            print(f"  NOTE: {note}")
    return 0 if all(s == "ok" for s in outcome.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
