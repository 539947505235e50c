#!/usr/bin/env python3
"""Mutation testing of the conformance kit (``mqttq.testing.QueueDriverSuite``).

Each mutant in ``tools/mutants/<driver>.toml`` is a realistic bug: one or more exact
search/replace edits of a driver's source. For every mutant the runner copies the driver package
into a temporary directory, applies the edits there (never in the working tree), puts that copy
first on ``PYTHONPATH`` of a pytest subprocess and runs the driver's conformance tests with
``-x``. A failing suite kills the mutant; a passing one means the kit missed a bug.

Before the mutants, the unmutated copy runs once (the baseline): tests that already fail there
are deselected for that driver's mutants, so a known driver bug does not count as a kill. The kit
(``mqttq``) and the driver packages are copied once at start: edits made during a run change
nothing.

    python tools/mutants/run.py                     # every driver, every mutant
    python tools/mutants/run.py sqlite redis -j 2   # some drivers, two mutants at a time
    python tools/mutants/run.py --only 'memory-fail-*' --only redis-release-to-back
    python tools/mutants/run.py --check             # do all edits still apply? (no tests run)
    python tools/mutants/run.py --list              # the catalogue, by contract

Exit status: 0 when the score is at least ``--fail-under`` (95), 1 below it, 2 when a mutant no
longer applies or breaks the import of the package (fix the catalogue). See README.md.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import fnmatch
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
KIT = Path("packages/core/src/mqttq")
DRIVERS = ("memory", "sqlite", "redis")

#: the contract rows of ``QueueDriver`` a mutant may name (README.md explains each)
CONTRACTS = (
    "fifo",
    "atomic push",
    "delay",
    "wake-up",
    "priority",
    "exclusivity",
    "attempts",
    "lease expiry",
    "extend",
    "retry",
    "fail",
    "release",
    "ack",
    "stats",
    "get_job",
    "failed list",
    "requeue/forget/purge",
    "failed ttl",
    "unique keys",
    "workers",
    "undecodable",
    "cancel",
    "schedules",
)


@dataclass(frozen=True)
class Edit:
    search: str
    replace: str
    count: int = 1  # how many times ``search`` must occur (all are replaced)


@dataclass(frozen=True)
class Mutant:
    id: str
    driver: str
    contract: str
    what: str
    file: str  # relative to the driver package
    edits: tuple[Edit, ...]
    equivalent: str = ""  # why no test can tell it apart: left out of the score, never run


@dataclass(frozen=True)
class Driver:
    name: str
    package: Path  # relative to ROOT
    tests: tuple[str, ...]
    mutants: tuple[Mutant, ...]


@dataclass
class Outcome:
    mutant: Mutant
    status: str  # killed | survived | equivalent | stale | broken
    detail: str = ""
    seconds: float = 0.0
    killers: list[str] = field(default_factory=list)
    crash: str = ""  # a kill by an exception escaping the driver, not by a test's verdict


class CatalogueError(Exception):
    pass


# -- the catalogue ---------------------------------------------------------------------------


def load_driver(name: str) -> Driver:
    path = HERE / f"{name}.toml"
    data = tomllib.loads(path.read_text())
    head = data["driver"]
    mutants = []
    seen: set[str] = set()
    for raw in data.get("mutant", []):
        where = f"{path.name}: mutant {raw.get('id', '?')!r}"
        if raw["id"] in seen:
            raise CatalogueError(f"{where}: duplicate id")
        seen.add(raw["id"])
        if raw["contract"] not in CONTRACTS:
            raise CatalogueError(f"{where}: unknown contract {raw['contract']!r}")
        edits = [raw] if "search" in raw else raw.get("edit", [])
        if not edits:
            raise CatalogueError(f"{where}: no search/replace")
        mutants.append(
            Mutant(
                id=raw["id"],
                driver=name,
                contract=raw["contract"],
                what=" ".join(raw["what"].split()),
                file=raw["file"],
                edits=tuple(Edit(e["search"], e["replace"], e.get("count", 1)) for e in edits),
                equivalent=" ".join(raw.get("equivalent", "").split()),
            )
        )
    return Driver(
        name=name, package=Path(head["package"]), tests=tuple(head["tests"]), mutants=tuple(mutants)
    )


def apply(mutant: Mutant, package_copy: Path) -> None:
    """Edit the copy in place; raise CatalogueError when an edit no longer matches."""
    target = package_copy / mutant.file
    text = target.read_text()
    for n, edit in enumerate(mutant.edits, 1):
        found = text.count(edit.search)
        if found != edit.count:
            raise CatalogueError(
                f"edit {n} of {mutant.file}: search text found {found} times, expected "
                f"{edit.count} (the driver changed: update tools/mutants/{mutant.driver}.toml)"
            )
        text = text.replace(edit.search, edit.replace)
    target.write_text(text)
    if target.suffix == ".py":
        try:
            compile(text, str(target), "exec")
        except SyntaxError as exc:
            raise CatalogueError(f"the mutated {mutant.file} does not compile: {exc}") from None


# -- copies and pytest runs ------------------------------------------------------------------


def snapshot(package: Path, dest_root: Path, rev: str | None) -> Path:
    """Copy ``package`` (relative to ROOT) to ``dest_root/<its name>``, from the working tree or
    from git revision ``rev``; returns the copy."""
    dest = dest_root / package.name
    if rev is None:
        shutil.copytree(ROOT / package, dest, ignore=shutil.ignore_patterns("__pycache__"))
        return dest
    tar = subprocess.run(
        ["git", "archive", "--format=tar", rev, package.as_posix()],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        archive.extractall(dest_root / "_git", filter="data")
    shutil.move(dest_root / "_git" / package, dest)
    shutil.rmtree(dest_root / "_git")
    return dest


_SUMMARY = re.compile(r"^(FAILED|ERROR) (\S+)(?: - (.*))?$", re.MULTILINE)
#: how a test's own verdict starts in pytest's short summary (anything else escaped the driver)
_VERDICTS = ("assert", "AssertionError", "Failed:")


@dataclass
class PytestRun:
    returncode: int | None  # None: timed out
    failed: list[str]
    reasons: list[str]
    output: str
    seconds: float


def run_pytest(
    path: list[Path],
    tests: tuple[str, ...],
    *,
    deselect: list[str],
    first_failure: bool,
    per_test: float,
    timeout: float,
    basetemp: Path,
) -> PytestRun:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [*(str(p) for p in path), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    cmd = [sys.executable, "-m", "pytest", "-q", "-rfE", f"--timeout={per_test:g}"]
    cmd += [f"--basetemp={basetemp}", *(["-x"] if first_failure else []), *tests]
    for node in deselect:
        cmd += ["--deselect", node]
    started = time.monotonic()
    try:
        proc = subprocess.run(
            cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        return PytestRun(None, [], [], out, time.monotonic() - started)
    output = proc.stdout + proc.stderr
    found = list(_SUMMARY.finditer(output))
    failed, reasons = [m.group(2) for m in found], [m.group(3) or "" for m in found]
    return PytestRun(proc.returncode, failed, reasons, output, time.monotonic() - started)


def check_import(path: list[Path], module: str, expected: Path) -> None:
    """Make sure the subprocess imports the copy, not the installed package."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(str(p) for p in path))
    out = subprocess.run(
        [sys.executable, "-c", f"import {module}; print({module}.__file__)"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    got = Path(out.stdout.strip() or "?")
    if out.returncode != 0 or expected not in got.parents:
        sys.exit(f"{module} is not imported from the copy {expected}: {got}\n{out.stderr}")


def tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


# -- one driver ------------------------------------------------------------------------------


class Runner:
    def __init__(self, args: argparse.Namespace, work: Path, drivers: list[Driver]) -> None:
        self.args = args
        self.work = work
        # every source is copied once, now: edits made during the run change nothing
        self.kit = snapshot(KIT, work / "kit", args.rev).parent
        self.sources = {
            d.name: snapshot(d.package, work / "sources" / d.name, args.rev) for d in drivers
        }
        self.lock = threading.Lock()
        self.done = 0
        self.total = 0

    def copy(self, driver: Driver, root: Path) -> Path:
        """A fresh copy of the driver package under ``root`` (put ``root`` on PYTHONPATH)."""
        source = self.sources[driver.name]
        return Path(shutil.copytree(source, root / source.name))

    def say(self, text: str) -> None:
        with self.lock:
            print(text, flush=True)

    def baseline(self, driver: Driver) -> list[str] | None:
        root = self.work / driver.name / "baseline"
        copy = self.copy(driver, root)
        check_import([root, self.kit], copy.name, copy)
        self.say(f"== {driver.name}: baseline run of {' '.join(driver.tests)}")
        run = run_pytest(
            [root, self.kit],
            driver.tests,
            deselect=[],
            first_failure=False,
            per_test=self.args.per_test_timeout,
            timeout=self.args.timeout * 4,
            basetemp=root / "pytest",
        )
        if run.returncode not in (0, 1):
            self.say(f"   baseline did not run (exit {run.returncode}):\n{tail(run.output)}")
            return None
        for node in run.failed:
            self.say(f"   fails unmutated, deselected for the mutants: {node}")
        self.say(f"   baseline: {len(run.failed)} failing, {run.seconds:.0f}s")
        return run.failed

    def mutant(self, driver: Driver, mutant: Mutant, deselect: list[str]) -> Outcome:
        root = self.work / driver.name / mutant.id
        copy = self.copy(driver, root)
        try:
            apply(mutant, copy)
        except CatalogueError as exc:
            return self.report(Outcome(mutant, "stale", str(exc)))
        run = run_pytest(
            [root, self.kit],
            driver.tests,
            deselect=deselect,
            first_failure=True,
            per_test=self.args.per_test_timeout,
            timeout=self.args.timeout,
            basetemp=root / "pytest",
        )
        if not self.args.keep:
            shutil.rmtree(root, ignore_errors=True)
        if run.returncode is None:
            outcome = Outcome(mutant, "killed", f"suite timed out after {self.args.timeout:g}s")
        elif run.returncode == 0:
            outcome = Outcome(mutant, "survived", "every test passed")
        elif run.returncode == 1 and run.failed:
            outcome = Outcome(mutant, "killed", killers=[n.split("::")[-1] for n in run.failed])
            crashes = [r for r in run.reasons if not r.startswith(_VERDICTS)]
            outcome.crash = crashes[0][:200] if crashes else ""
        else:
            detail = f"pytest exit {run.returncode}:\n{tail(run.output)}"
            outcome = Outcome(mutant, "broken", detail)
        outcome.seconds = run.seconds
        return self.report(outcome)

    def report(self, outcome: Outcome) -> Outcome:
        with self.lock:
            self.done += 1
            how = ", ".join(outcome.killers) or outcome.detail
            if outcome.crash:
                how += f" (by an exception: {outcome.crash})"
            print(
                f"[{self.done}/{self.total}] {outcome.mutant.id}: {outcome.status.upper()}"
                f" ({outcome.seconds:.0f}s) {how}",
                flush=True,
            )
        return outcome

    def drive(self, drivers: list[Driver], selected: dict[str, list[Mutant]]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        runnable = {d.name: [m for m in selected[d.name] if not m.equivalent] for d in drivers}
        self.total = sum(len(v) for v in runnable.values())
        for d in drivers:
            eq = [m for m in selected[d.name] if m.equivalent]
            outcomes += [Outcome(m, "equivalent", m.equivalent) for m in eq]
        jobs: list[tuple[Driver, Mutant, list[str]]] = []
        for d in drivers:
            if not runnable[d.name]:
                continue
            deselect = self.baseline(d)
            if deselect is None:
                outcomes += [Outcome(m, "broken", "baseline did not run") for m in runnable[d.name]]
                continue
            jobs += [(d, m, deselect) for m in runnable[d.name]]
        with concurrent.futures.ThreadPoolExecutor(max_workers=self.args.jobs) as pool:
            outcomes += pool.map(lambda job: self.mutant(*job), jobs)
        return outcomes


# -- reporting -------------------------------------------------------------------------------


def score_line(outcomes: list[Outcome]) -> tuple[int, int, str]:
    killed = sum(o.status == "killed" for o in outcomes)
    scored = sum(o.status in ("killed", "survived") for o in outcomes)
    pct = f"{100 * killed / scored:.1f}%" if scored else "n/a"
    return killed, scored, pct


def summary(outcomes: list[Outcome], drivers: list[Driver]) -> str:
    out = ["", "== mutation score (killed / killed + survived; equivalents left out)"]
    for d in drivers:
        mine = [o for o in outcomes if o.mutant.driver == d.name]
        killed, scored, pct = score_line(mine)
        eq = sum(o.status == "equivalent" for o in mine)
        bad = sum(o.status in ("stale", "broken") for o in mine)
        extra = f", {eq} equivalent" + (f", {bad} STALE/BROKEN" if bad else "")
        out.append(f"   {d.name:<8} {killed:>3} / {scored:<3} {pct:>7}{extra}")
    killed, scored, pct = score_line(outcomes)
    out.append(f"   {'overall':<8} {killed:>3} / {scored:<3} {pct:>7}")
    crashed = [o for o in outcomes if o.crash]
    if crashed:
        out.append("\n== killed by an exception, not a test verdict (is it a bug or a crash?)")
        out += [f"   {o.mutant.id}: {', '.join(o.killers)}: {o.crash}" for o in crashed]
    for status in ("survived", "equivalent", "stale", "broken"):
        rows = [o for o in outcomes if o.status == status]
        if rows:
            out.append(f"\n== {status}")
            for o in rows:
                out.append(f"   {o.mutant.id} [{o.mutant.contract}]: {o.mutant.what}")
                if status != "survived":
                    out.append(f"      {o.detail}")
    return "\n".join(out)


def listing(drivers: list[Driver]) -> str:
    out = []
    for contract in CONTRACTS:
        rows = [m for d in drivers for m in d.mutants if m.contract == contract]
        out.append(f"{contract} ({len(rows)})")
        for m in rows:
            eq = "  [equivalent]" if m.equivalent else ""
            out.append(f"   {m.id}: {m.what}{eq}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("drivers", nargs="*", metavar="DRIVER", help=", ".join(DRIVERS))
    parser.add_argument("--only", action="append", default=[], metavar="GLOB", help="mutant ids")
    parser.add_argument("-j", "--jobs", type=int, default=1, help="mutants run at once (1)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per mutant (300)")
    parser.add_argument("--per-test-timeout", type=float, default=60, help="pytest-timeout (60)")
    parser.add_argument("--fail-under", type=float, default=95.0, help="score in %% (95)")
    parser.add_argument("--rev", help="take the driver and kit sources from this git revision")
    parser.add_argument("--json", type=Path, help="write every outcome to this file")
    parser.add_argument("--keep", action="store_true", help="keep the mutated copies")
    parser.add_argument("--check", action="store_true", help="only check that every edit applies")
    parser.add_argument("--list", action="store_true", help="print the catalogue by contract")
    args = parser.parse_args(argv)
    unknown = set(args.drivers) - set(DRIVERS)
    if unknown:
        parser.error(f"unknown driver(s) {', '.join(sorted(unknown))}; choose from {DRIVERS}")

    try:
        drivers = [load_driver(name) for name in (args.drivers or DRIVERS)]
    except (CatalogueError, KeyError, tomllib.TOMLDecodeError) as exc:
        sys.exit(f"bad mutant catalogue: {exc!r}")
    if args.list:
        print(listing(drivers))
        return 0

    def wanted(m: Mutant) -> bool:
        return not args.only or any(fnmatch.fnmatch(m.id, glob) for glob in args.only)

    selected = {d.name: [m for m in d.mutants if wanted(m)] for d in drivers}
    with tempfile.TemporaryDirectory(prefix="mqttq-mutants-") as tmp:
        work = Path(tmp)
        if args.check:
            problems = 0
            for d in drivers:
                for m in selected[d.name]:
                    copy = snapshot(d.package, work / d.name / m.id, args.rev)
                    try:
                        apply(m, copy)
                    except CatalogueError as exc:
                        problems += 1
                        print(f"{m.id}: {exc}")
            count = sum(map(len, selected.values()))
            print(f"{count - problems} of {count} mutants apply")
            return 2 if problems else 0
        outcomes = Runner(args, work, drivers).drive(drivers, selected)
    print(summary(outcomes, drivers))
    if args.json:
        rows = [
            {
                "id": o.mutant.id,
                "driver": o.mutant.driver,
                "contract": o.mutant.contract,
                "what": o.mutant.what,
                "status": o.status,
                "killed_by": o.killers,
                "exception": o.crash,
                "detail": o.detail,
                "seconds": round(o.seconds, 1),
            }
            for o in outcomes
        ]
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    if any(o.status in ("stale", "broken") for o in outcomes):
        return 2
    killed, scored, _ = score_line(outcomes)
    return 0 if scored and 100 * killed / scored >= args.fail_under else 1


if __name__ == "__main__":
    sys.exit(main())
