"""What a built sdist and wheel must hold, read straight from the archives (standard library only).

Each check returns a list of problems, one readable line each; an empty list means it passed.
"""

from __future__ import annotations

import configparser
import email.parser
import re
import tarfile
import tomllib
import zipfile
from dataclasses import dataclass
from email.message import Message
from pathlib import Path, PurePosixPath

#: the entry-point group mqttq finds its plugins in
PLUGIN_GROUP = "mqttq.plugins"
#: path parts and suffixes that mean a cache or a test leaked into an archive
CACHE_PARTS = frozenset({"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".nox"})
CACHE_SUFFIXES = (".pyc", ".pyo", ".db", ".db-wal", ".db-shm")
TEST_PARTS = frozenset({"tests", "test", "conftest.py"})


def normalize(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Package:
    """A package directory's declared packaging, from its pyproject.toml."""

    root: Path
    name: str
    version: str
    readme: Path
    license: str
    license_files: tuple[str, ...]
    #: the wheel's package directories in the source tree (``src/mqttq_redis``)
    sources: tuple[str, ...]
    entry_points: dict[str, dict[str, str]]
    #: what its tests need beyond the package: the ``test`` dependency group (PEP 735)
    test_requirements: tuple[str, ...]

    @classmethod
    def load(cls, root: Path) -> Package:
        data = tomllib.loads((root / "pyproject.toml").read_text())
        project = data["project"]
        wheel = data.get("tool", {}).get("hatch", {}).get("build", {}).get("targets", {})
        packages = wheel.get("wheel", {}).get("packages", [])
        groups = dict(project.get("entry-points", {}))
        if "scripts" in project:
            groups["console_scripts"] = project["scripts"]
        return cls(
            root=root,
            name=project["name"],
            version=project["version"],
            readme=root / project["readme"],
            license=project.get("license", ""),
            license_files=tuple(project.get("license-files", ())),
            sources=tuple(packages),
            entry_points=groups,
            test_requirements=tuple(
                r for r in data.get("dependency-groups", {}).get("test", []) if isinstance(r, str)
            ),
        )

    @property
    def imports(self) -> tuple[str, ...]:
        """Top-level import packages of the wheel (``src/mqttq_redis`` -> ``mqttq_redis``)."""
        return tuple(PurePosixPath(p).name for p in self.sources)

    @property
    def stem(self) -> str:
        """The file-name form of the name and version: ``mqttq_redis-0.1.0``."""
        return f"{normalize(self.name).replace('-', '_')}-{self.version}"

    @property
    def is_plugin(self) -> bool:
        return bool(self.entry_points.get(PLUGIN_GROUP))


def metadata(wheel: Path) -> Message:
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        return email.parser.Parser().parsestr(zf.read(name).decode())


def requirement_name(requirement: str) -> str:
    """The normalized distribution name of a requirement: ``mqttq>=0.1,<0.2`` -> ``mqttq``."""
    return normalize(re.split(r"[\s;<>=!~\[(]", requirement, maxsplit=1)[0])


def requirement_names(meta: Message, *, extras: bool = True) -> set[str]:
    """Normalized names of the Requires-Dist entries (with ``extras=False``, only those that are
    installed whatever extras are asked for)."""
    return {
        requirement_name(r)
        for r in meta.get_all("Requires-Dist", [])
        if extras or not re.search(r"\bextra\s*==", r)
    }


def leaked(path: str, *, tests_allowed: bool) -> bool:
    parts = PurePosixPath(path).parts
    if CACHE_PARTS.intersection(parts) or path.endswith(CACHE_SUFFIXES):
        return True
    name = parts[-1]
    is_test = bool(TEST_PARTS.intersection(parts)) or re.fullmatch(r"test_.*\.py", name)
    return bool(is_test) and not tests_allowed


def check_wheel(pkg: Package, wheel: Path, license_text: str, classifiers: set[str]) -> list[str]:
    """Files, metadata and entry points of ``pkg``'s wheel."""
    problems: list[str] = []
    with zipfile.ZipFile(wheel) as zf:
        names = [n for n in zf.namelist() if not n.endswith("/")]
        dist_info = f"{pkg.stem}.dist-info"
        top = {n.split("/", 1)[0] for n in names}
        if top - {dist_info, *pkg.imports}:
            extra = ", ".join(sorted(top - {dist_info, *pkg.imports}))
            problems.append(f"{wheel.name}: unexpected top-level entries {extra}")
        for package in pkg.imports:
            if f"{package}/py.typed" not in names:
                problems.append(f"{wheel.name}: {package}/py.typed is missing (typed package)")
        problems += [
            f"{wheel.name}: {n} does not belong in a wheel"
            for n in names
            if leaked(n, tests_allowed=False)
        ]
        for file in pkg.license_files:
            member = f"{dist_info}/licenses/{file}"
            if member not in names:
                problems.append(f"{wheel.name}: the license file {member} is missing")
            elif zf.read(member).decode() != license_text:
                problems.append(f"{wheel.name}: {member} differs from the repository's LICENSE")
        entry_points = configparser.ConfigParser(delimiters=("=",))
        entry_points.optionxform = str  # type: ignore[assignment,method-assign]
        if f"{dist_info}/entry_points.txt" in names:
            entry_points.read_string(zf.read(f"{dist_info}/entry_points.txt").decode())
    problems += _check_entry_points(pkg, wheel, entry_points, set(names))
    problems += _check_metadata(pkg, wheel, metadata(wheel), classifiers)
    return problems


def _check_entry_points(
    pkg: Package, wheel: Path, found: configparser.ConfigParser, names: set[str]
) -> list[str]:
    problems = []
    for group, declared in pkg.entry_points.items():
        have = dict(found[group]) if found.has_section(group) else {}
        for name, target in declared.items():
            if have.get(name, "").replace(" ", "") != target.replace(" ", ""):
                problems.append(f"{wheel.name}: entry point {group}:{name} = {target} is missing")
                continue
            module = target.split(":", 1)[0].split("[", 1)[0].strip()
            path = module.replace(".", "/")
            if f"{path}.py" not in names and f"{path}/__init__.py" not in names:
                problems.append(
                    f"{wheel.name}: entry point {group}:{name} names {module}, "
                    f"which is not in the wheel"
                )
    return problems


def _check_metadata(pkg: Package, wheel: Path, meta: Message, classifiers: set[str]) -> list[str]:
    problems = []
    if normalize(meta.get("Name", "")) != normalize(pkg.name) or meta["Version"] != pkg.version:
        problems.append(f"{wheel.name}: metadata names {meta['Name']} {meta['Version']}")
    if meta.get("Description-Content-Type") != "text/markdown":
        problems.append(f"{wheel.name}: the long description is not marked text/markdown")
    if str(meta.get_payload()).strip() != pkg.readme.read_text().strip():
        problems.append(f"{wheel.name}: the long description is not {pkg.readme.name}")
    if meta.get("License-Expression") != pkg.license or not pkg.license:
        problems.append(f"{wheel.name}: License-Expression is {meta.get('License-Expression')!r}")
    if not meta.get("Requires-Python"):
        problems.append(f"{wheel.name}: no Requires-Python")
    declared = meta.get_all("Classifier", [])
    problems += [
        f"{wheel.name}: unknown classifier {c!r}" for c in declared if c not in classifiers
    ]
    for needed in ("Typing :: Typed", "Framework :: AsyncIO"):
        if needed not in declared:
            problems.append(f"{wheel.name}: no {needed!r} classifier")
    if pkg.is_plugin and normalize(pkg.name) != "mqttq":
        pins = [r for r in meta.get_all("Requires-Dist", []) if requirement_name(r) == "mqttq"]
        if not any("<" in p and ">" in p for p in pins):
            problems.append(f"{wheel.name}: requires mqttq without a >=,< range ({pins or 'none'})")
    return problems


def check_sdist(pkg: Package, sdist: Path, wheel: Path) -> list[str]:
    """The sdist holds the sources, README and license, no caches, and every package file that
    its wheel ships (and the wheel every one the sdist has: a file dropped from one shows)."""
    problems: list[str] = []
    prefix = f"{pkg.stem}/"
    with tarfile.open(sdist) as tf:
        members = [m.name.removeprefix(prefix) for m in tf.getmembers() if m.isfile()]
    for needed in ("PKG-INFO", "pyproject.toml", pkg.readme.name, *pkg.license_files):
        if needed not in members:
            problems.append(f"{sdist.name}: {needed} is missing")
    problems += [
        f"{sdist.name}: {m} does not belong in an sdist"
        for m in members
        if leaked(m, tests_allowed=True)
    ]
    in_sdist = {
        PurePosixPath(source).name + m.removeprefix(source)
        for source in pkg.sources
        for m in members
        if m.startswith(f"{source}/")
    }
    with zipfile.ZipFile(wheel) as zf:
        in_wheel = {n for n in zf.namelist() if n.split("/", 1)[0] in pkg.imports}
    problems += [
        f"{wheel.name}: {f} is in the sdist but not in the wheel"
        for f in sorted(in_sdist - in_wheel)
    ]
    problems += [
        f"{sdist.name}: {f} is in the wheel but not in the sdist"
        for f in sorted(in_wheel - in_sdist)
    ]
    return problems
