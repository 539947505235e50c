"""Every CI entry point is a nox session: lint, typecheck, tests, bench."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["lint", "typecheck", "tests", "template"]
nox.options.reuse_existing_virtualenvs = True

ROOT = Path(__file__).parent
#: every package, core first; a package directory without pyproject.toml is skipped
PACKAGES = [
    p
    for p in ("core", "driver-sqlite", "driver-redis", "driver-rq", "device-navien")
    if (ROOT / "packages" / p / "pyproject.toml").exists()
]
TEST_DEPS = [
    "pytest>=8.2",
    "pytest-asyncio>=0.24",
    "pytest-timeout>=2.3",
    "pytest-xdist>=3.6",
    "hypothesis>=6.100",
    "pyyaml>=6,<7",  # tests/test_deploy.py reads deploy/compose.yaml
]
LINT_DEPS = ["ruff>=0.8,<1", "mypy>=1.13"]
PEERS = ["huey>=2.5", "arq", "rq", "saq", "taskiq-redis", "taskiq<0.12", "dramatiq[redis]"]
SERVICES = {"redis-server": "redis-server", "mosquitto": "mosquitto"}


def install_packages(session: nox.Session) -> None:
    """Every package, editable; the core with the demo's extra (embedded broker)."""
    paths = [f"packages/{p}" + ("[demo]" if p == "core" else "") for p in PACKAGES]
    session.install(*(arg for path in paths for arg in ("-e", path)))


def require_services(session: nox.Session) -> None:
    missing = [
        pkg
        for binary, pkg in SERVICES.items()
        if not shutil.which(binary) and not Path("/usr/sbin", binary).exists()
    ]
    if missing:
        session.error(f"tests need {', '.join(missing)}: apt-get install -y {' '.join(missing)}")


@nox.session
def lint(session: nox.Session) -> None:
    session.install(*LINT_DEPS)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    install_packages(session)
    session.install(*LINT_DEPS, *TEST_DEPS)
    session.run("mypy")


@nox.session
def tests(session: nox.Session) -> None:
    """Every package's tests and the cross-package tests, against real SQLite, Redis, Mosquitto."""
    require_services(session)
    install_packages(session)
    session.install(*TEST_DEPS)
    paths = [f"packages/{p}/tests" for p in PACKAGES] + ["tests"]
    # two processes, each test module in one of them (its module fixtures built once); most
    # tests wait on brokers, leases and clocks, so this halves the wall time on two cores;
    # `nox -s tests -- -n 0` runs them in one process
    xdist = ["-n", "2", "--dist", "loadscope"]
    session.run("pytest", "-q", "--timeout=300", *xdist, *paths, *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Speed figures, mqttq side by side with its peers in one run (never part of the tests)."""
    require_services(session)
    install_packages(session)
    # the peers; arq and taskiq-redis hold redis-py below 6, which mqttq-redis accepts too
    session.install(*PEERS)
    session.run("python", "benchmarks/run.py", *session.posargs)


@nox.session
def mutants(session: nox.Session) -> None:
    """Mutation score of the conformance kit: hand-made driver bugs the suite must catch
    (tools/mutants; slow, not a default session). Arguments go to tools/mutants/run.py."""
    require_services(session)
    install_packages(session)
    session.install(*TEST_DEPS)
    session.run("python", "tools/mutants/run.py", *session.posargs)


@nox.session
def wheels(session: nox.Session) -> None:
    """Every package's sdist and wheel into dist/ (the wheel built from the sdist), their metadata
    and contents checked, then each plugin in a fresh environment holding only the mqttq wheel
    and its own: ``mqttq plugins --check``, its imports against its declared dependencies, and its
    tests against the installed wheels (tools/wheels/check.py; needs redis-server, mosquitto).

    By default the plugin tests are those built on the kit's QueueDriverSuite and
    PluginPackageSuite (the conformance suite and the plugin-package checks): about two minutes
    on two cores, which is what CI runs. ``nox -s wheels -- --tests all`` runs every test of every
    plugin from its wheels (about ten minutes: too long for CI beside the tests session, which
    already runs them from the checkout). Other arguments go to check.py.
    """
    session.install("uv>=0.4")
    packages = [f"packages/{p}" for p in PACKAGES]
    test_deps = [f"--with={d}" for d in TEST_DEPS]
    session.run("python", "tools/wheels/check.py", *test_deps, *packages, *session.posargs)


#: the documentation site's build tools, pinned so that every build renders the same
DOCS_DEPS = ["mkdocs==1.6.1", "mkdocs-material==9.8.2"]


@nox.session
def docs(session: nox.Session) -> None:
    """The documentation site (mkdocs.yml) into site/: strict, so a broken link, anchor or a
    page missing from the nav fails the build. Builds offline; arguments go to mkdocs build."""
    session.install(*DOCS_DEPS)
    # Material's end-of-life banner is not a warning about these docs
    env = {"NO_MKDOCS_2_WARNING": "1"}
    session.run("mkdocs", "build", "--strict", "--site-dir", "site", *session.posargs, env=env)


#: the name the template session gives its copy of packages/_template
TEMPLATE_NAME = "templatecheck"


@nox.session
def template(session: nox.Session) -> None:
    """The plugin template (packages/_template) copied and renamed by its rename.py as a new
    plugin would be, installed with the core, its tests run: so the template cannot rot."""
    session.install("-e", "packages/core[testing]")
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / f"mqttq-{TEMPLATE_NAME}"
        session.run_install("python", "packages/_template/rename.py", TEMPLATE_NAME, str(copy))
        session.install("--force-reinstall", "--no-deps", str(copy))
        with session.chdir(copy):
            session.run("pytest", "-q", *session.posargs)
            session.run("mqttq", "plugins", "--check")
