#!/usr/bin/env python3
"""Build every package's sdist and wheel, check them, and test each plugin from its wheels alone.

    python tools/wheels/check.py packages/core packages/driver-redis ...   # as nox -s wheels does
    python tools/wheels/check.py --tests all packages/*/                    # every plugin test
    python tools/wheels/check.py --core-wheel dist/mqttq-0.1.0-py3-none-any.whl packages/driver-rq

1. **Build**: ``uv build`` makes each package's sdist, then its wheel *from that sdist*, into
   ``--dist`` (``dist/`` at the repository root). Old files of the same packages go first.
2. **Metadata**: ``twine check --strict`` on every file; classifiers must be known to PyPI.
3. **Contents**: each wheel ships its packages with ``py.typed``, the LICENSE, the README as its
   long description, its entry points (their modules in the wheel), no tests and no caches; the
   sdist holds every package file the wheel does and no more; a plugin pins ``mqttq`` to a range.
4. **Each plugin from its wheels**: a fresh ``uv venv`` gets the ``mqttq`` wheel and the plugin's
   wheel only, their declared dependencies from the package index, nothing editable. There,
   ``mqttq plugins --check`` must pass; ``probe.py`` checks that the packages import from the
   environment (not from the checkout), that the entry points load, and that every runtime
   import of every module is a declared dependency. Then the plugin's own tests run against the
   installed wheels from a directory outside the checkout, with ``pytest_guard.py`` refusing to
   start if a package under test would be imported from anywhere else. ``--tests suites`` (the
   default) runs the tests built on the kit's ``QueueDriverSuite`` and ``PluginPackageSuite``,
   ``--tests all`` every test in ``packages/<plugin>/tests``, ``--tests none`` none.

The plugin tests start redis-server and mosquitto (the kit's fixtures): both must be installed.
Exit status: 0 when everything passed, 1 when a check failed (each problem on one line),
2 when the run could not start (uv, redis-server or mosquitto missing; no core given).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from subprocess import CompletedProcess

from contents import (
    Package,
    check_sdist,
    check_wheel,
    metadata,
    normalize,
    requirement_name,
    requirement_names,
)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
#: what the plugin tests run with, beside the wheels (noxfile.py passes its TEST_DEPS)
TEST_DEPS = ["pytest>=8.2", "pytest-asyncio>=0.24", "pytest-timeout>=2.3", "hypothesis>=6.100"]
#: the metadata checkers, in an environment of their own
TOOL_DEPS = ["twine>=7,<8", "trove-classifiers>=2025.1"]
SERVICES = {"redis-server": "/usr/sbin/redis-server", "mosquitto": "/usr/sbin/mosquitto"}


class Failed(Exception):
    """A command the run depends on failed; the message says which and why."""


def say(message: str) -> None:
    print(message, flush=True)


def run(cmd: Sequence[str | Path], cwd: Path, env: dict[str, str]) -> str:
    """Run a command, return its output; raise Failed with the end of its output if it fails."""
    result = subprocess.run(
        list(map(str, cmd)), cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if result.returncode:
        tail = " | ".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise Failed(f"{Path(cmd[0]).name} {' '.join(map(str, cmd[1:3]))} ...: {tail}")
    return result.stdout


class Check:
    """One run: the packages, their built files, the temporary environments, the problems."""

    def __init__(self, args: argparse.Namespace, uv: str, tmp: Path) -> None:
        self.args = args
        self.uv = uv
        self.tmp = tmp
        self.dist: Path = args.dist.resolve()
        self.packages = [Package.load(Path(p).resolve()) for p in args.packages]
        self.problems: list[str] = []
        self.wheels: dict[str, Path] = {}
        self.sdists: dict[str, Path] = {}
        # no outer virtualenv or PYTHONPATH, no interpreter downloads, no colour codes
        outer = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
        self.env = outer | {"UV_PYTHON_DOWNLOADS": "never", "NO_COLOR": "1"}

    def uv_run(self, *args: str | Path) -> str:
        return run([self.uv, *args], self.tmp, self.env)

    def venv(self, name: str, requirements: Sequence[str | Path]) -> Path:
        """A fresh environment in the temporary directory, with these requirements only."""
        path = self.tmp / name
        self.uv_run("venv", "--quiet", "--python", self.args.python, path)
        self.uv_run("pip", "install", "--quiet", "--python", path / "bin" / "python", *requirements)
        return path

    def build(self) -> None:
        """Each package's sdist, then its wheel from that sdist, into the dist directory."""
        self.dist.mkdir(parents=True, exist_ok=True)
        for pkg in self.packages:
            started = time.monotonic()
            prefix = normalize(pkg.name).replace("-", "_")
            for old in [*self.dist.glob(f"{prefix}-*.whl"), *self.dist.glob(f"{prefix}-*.tar.gz")]:
                old.unlink()
            self.uv_run("build", "--quiet", "--no-sources", "--out-dir", self.dist, pkg.root)
            sdist = self.sdists[pkg.name] = self.dist / f"{pkg.stem}.tar.gz"
            (wheel,) = self.dist.glob(f"{pkg.stem}-*.whl")
            self.wheels[pkg.name] = wheel
            took = time.monotonic() - started
            say(f"built   {sdist.name}, {wheel.name} (from the sdist) [{took:.1f} s]")

    def check_files(self) -> None:
        """twine check --strict, then what each wheel and sdist holds."""
        tools = self.venv("tools", TOOL_DEPS)
        files = [*self.sdists.values(), *self.wheels.values()]
        try:
            run([tools / "bin" / "twine", "check", "--strict", *files], self.tmp, self.env)
            say(f"checked twine check --strict: {len(files)} files")
        except Failed as exc:
            self.problems.append(f"twine check --strict: {exc}")
        script = "import json, trove_classifiers as t; print(json.dumps(sorted(t.classifiers)))"
        known = set(json.loads(run([tools / "bin" / "python", "-c", script], self.tmp, self.env)))
        license_text = (ROOT / "LICENSE").read_text()
        for pkg in self.packages:
            wheel, sdist = self.wheels[pkg.name], self.sdists[pkg.name]
            found = check_wheel(pkg, wheel, license_text, known) + check_sdist(pkg, sdist, wheel)
            self.problems += found
            say(f"checked {pkg.name}: " + (f"{len(found)} problems" if found else "contents ok"))

    def check_plugin(self, pkg: Package, core: Path) -> None:
        """The plugin in a fresh environment with the core's wheel and its own, nothing else of
        ours: mqttq plugins --check, probe.py, then its tests."""
        started = time.monotonic()
        ours = {normalize(name): w for name, w in self.wheels.items()} | {"mqttq": core}
        wheel = self.wheels[pkg.name]
        # what it requires of ours comes from our wheels, never from the package index
        required = sorted(requirement_names(metadata(wheel)) & ours.keys() - {"mqttq"})
        wheels = [core, *(ours[n] for n in required), wheel]
        names = ", ".join(w.name for w in wheels)
        try:
            env = self.venv(f"env-{normalize(pkg.name)}", wheels)
        except Failed as exc:
            self.problems.append(f"{pkg.name}: installing {names} failed: {exc}")
            return
        say(f"plugin  {pkg.name}: a fresh environment with {names}")
        bin_dir = env / "bin"
        env_vars = self.env | {"VIRTUAL_ENV": str(env), "PATH": f"{bin_dir}:{self.env['PATH']}"}

        listed = self.in_env([bin_dir / "mqttq", "plugins", "--check"], env_vars)
        lines = listed.stderr.strip().splitlines() or [f"exit status {listed.returncode}"]
        if listed.returncode:
            self.problems += [f"{pkg.name}: mqttq plugins --check: {line}" for line in lines]
        say(f"        mqttq plugins --check: {'FAILED' if listed.returncode else 'ok'}")

        probe = self.in_env(
            [bin_dir / "python", HERE / "probe.py", "--checkout", ROOT, *wheels], env_vars
        )
        out = probe.stdout.splitlines()
        found = [line.removeprefix("problem: ") for line in out if line.startswith("problem: ")]
        self.problems += [f"{pkg.name}: {line}" for line in found]
        if probe.returncode and not found:
            self.problems.append(f"{pkg.name}: probe.py failed: {probe.stderr.strip()[-500:]}")
        for line in out:
            if line.startswith("imported "):
                say(f"        {line}")
        verdict = "FAILED" if probe.returncode else "ok"
        say(f"        imports, entry points, declared dependencies: {verdict}")

        if self.args.tests != "none":
            try:
                self.install_test_requirements(pkg, env, ours)
            except Failed as exc:
                self.problems.append(f"{pkg.name}: installing what its tests need failed: {exc}")
                return
            self.run_tests(pkg, env, env_vars, names)
        say(f"        [{time.monotonic() - started:.1f} s]")

    def in_env(self, cmd: Sequence[str | Path], env: dict[str, str]) -> CompletedProcess[str]:
        return subprocess.run(
            list(map(str, cmd)), cwd=self.tmp, env=env, capture_output=True, text=True, check=False
        )

    def install_test_requirements(self, pkg: Package, env: Path, ours: dict[str, Path]) -> None:
        """After the checks above: the test runner and the plugin's ``test`` dependency group,
        our own packages in it from our wheels (they are on no package index)."""
        wanted: list[str | Path] = [*self.args.test_deps]
        for requirement in pkg.test_requirements:
            name = requirement_name(requirement)
            if name in ours:
                wanted.append(ours[name])
            elif name.startswith("mqttq"):
                raise Failed(f"its tests need {name}: check that package too")
            else:
                wanted.append(requirement)
        self.uv_run("pip", "install", "--quiet", "--python", env / "bin" / "python", *wanted)
        if pkg.test_requirements:
            say(f"        for its tests, its test group: {', '.join(pkg.test_requirements)}")

    def run_tests(self, pkg: Package, env: Path, env_vars: dict[str, str], wheels: str) -> None:
        """The plugin's tests, run from an empty directory outside the checkout with the guard
        plugin; its output is passed through."""
        guard = self.tmp / "guard"
        guard.mkdir(exist_ok=True)
        shutil.copy(HERE / "pytest_guard.py", guard / "mqttq_wheels_guard.py")
        workdir = self.tmp / f"run-{normalize(pkg.name)}"
        workdir.mkdir()
        env_vars = env_vars | {
            "PYTHONPATH": str(guard),
            "WHEELS_GUARD_IMPORTS": ",".join(["mqttq", *pkg.imports]),
            "WHEELS_GUARD_SELECT": self.args.tests,
        }
        config = ["-c", ROOT / "pyproject.toml", "--rootdir", pkg.root, "--confcutdir", pkg.root]
        cmd = [env / "bin" / "python", "-m", "pytest", "-q", "--timeout=300", *config]
        cmd += ["-p", "mqttq_wheels_guard", pkg.root / "tests", *self.args.pytest_args]
        say(f"        tests ({self.args.tests}) of {pkg.root.name}/tests, run from {workdir}")
        last = "no output"
        with subprocess.Popen(
            list(map(str, cmd)),
            cwd=workdir,
            env=env_vars,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        ) as proc:
            for line in proc.stdout or ():
                sys.stdout.write(f"        | {line}")
                last = line.strip() or last
        sys.stdout.flush()
        if proc.returncode == 5:
            self.problems.append(f"{pkg.name}: no {self.args.tests} tests in {pkg.root.name}/tests")
        elif proc.returncode:
            self.problems.append(f"{pkg.name}: tests failed against {wheels}: {last}")


def missing_services() -> list[str]:
    return [
        name
        for name, fallback in SERVICES.items()
        if not shutil.which(name) and not Path(fallback).exists()
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("packages", nargs="+", help="package directories (packages/core, ...)")
    parser.add_argument("--dist", type=Path, default=ROOT / "dist", help="output directory")
    parser.add_argument("--core-wheel", type=Path, help="an mqttq wheel, instead of building it")
    parser.add_argument("--tests", choices=("suites", "all", "none"), default="suites")
    parser.add_argument("--python", default=sys.executable, help="interpreter of the environments")
    parser.add_argument(
        "--with",
        dest="test_deps",
        action="append",
        metavar="REQUIREMENT",
        help="installed beside the wheels for the tests (default: %(default)s)",
    )
    parser.add_argument(
        "--pytest-args",
        nargs=argparse.REMAINDER,
        default=[],
        help="everything after this goes to each pytest run",
    )
    args = parser.parse_args(argv)
    args.test_deps = args.test_deps or TEST_DEPS

    uv = shutil.which("uv")
    if uv is None:
        print("wheels: uv is not installed: python3 -m pip install uv", file=sys.stderr)
        return 2
    if args.tests != "none" and (missing := missing_services()):
        print(
            f"wheels: the plugin tests need {' and '.join(missing)} (their fixtures start "
            f"them): apt-get install -y {' '.join(missing)}, or --tests none",
            file=sys.stderr,
        )
        return 2

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mqttq-wheels-") as tmp:
        check = Check(args, uv, Path(tmp))
        cores = [p for p in check.packages if normalize(p.name) == "mqttq"]
        if not cores and args.core_wheel is None:
            print("wheels: no core: give packages/core or --core-wheel", file=sys.stderr)
            return 2
        try:
            check.build()
        except Failed as exc:
            print(f"wheels: FAILED: build: {exc}", file=sys.stderr)
            return 1
        check.check_files()
        core = check.wheels[cores[0].name] if cores else args.core_wheel.resolve()
        plugins = [p for p in check.packages if p.is_plugin and normalize(p.name) != "mqttq"]
        for pkg in plugins:
            check.check_plugin(pkg, core)
    took = f"{time.monotonic() - started:.0f} s"
    if check.problems:
        print(f"wheels: FAILED ({len(check.problems)} problems, {took}):", file=sys.stderr)
        for problem in check.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    say(
        f"wheels: ok: {len(check.packages)} packages built and checked into {check.dist}, "
        f"{len(plugins)} plugins tested from their wheels ({args.tests} tests) in {took}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
