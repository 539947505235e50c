"""Run by check.py with the interpreter of a fresh environment that holds only the given wheels
(and what they declare): where each package is imported from, its ``mqttq.plugins`` entry points
load, and every module's runtime imports are declared dependencies of its distribution.

    .../env/bin/python tools/wheels/probe.py --checkout . dist/mqttq-*.whl dist/mqttq_redis-*.whl

Prints one line per problem and exits 1 if there is any (standard library only).
"""

from __future__ import annotations

import argparse
import ast
import email.parser
import importlib
import json
import sys
import sysconfig
import zipfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

from contents import PLUGIN_GROUP, normalize, requirement_names


def runtime_imports(tree: ast.AST) -> Iterator[str]:
    """Top-level names of the absolute imports, leaving out ``if TYPE_CHECKING:`` blocks."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0]
        stack.extend(ast.iter_child_nodes(node))


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def probe(wheel: Path, checkout: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        meta = email.parser.Parser().parsestr(zf.read(meta_name).decode())
        sources = {n: zf.read(n).decode() for n in names if n.endswith(".py")}
    dist_name = meta["Name"]
    tops = sorted({n.split("/", 1)[0] for n in names if ".dist-info/" not in n})
    problems = _where_from(dist_name, wheel, tops, checkout)
    problems += _entry_points(dist_name)
    optional = requirement_names(meta) - requirement_names(meta, extras=False)
    problems += _import_every_module(sorted(sources), optional)
    declared = requirement_names(meta) | {normalize(dist_name)}
    providers = metadata.packages_distributions()
    for path, source in sorted(sources.items()):
        for name in sorted(set(runtime_imports(ast.parse(source, path)))):
            if name in sys.stdlib_module_names or name in tops or name == "__future__":
                continue
            dists = {normalize(d) for d in providers.get(name, ())}
            if dists & declared or (not dists and normalize(name) in declared):
                continue
            found = f" (from {', '.join(sorted(dists))})" if dists else ""
            problems.append(f"{path} imports {name}{found}, which {dist_name} does not declare")
    return problems


def _where_from(dist_name: str, wheel: Path, tops: list[str], checkout: Path) -> list[str]:
    """Installed from this very wheel (not editable, not a directory) and imported from the
    environment's site-packages, never from the checkout."""
    problems = []
    direct = json.loads(metadata.distribution(dist_name).read_text("direct_url.json") or "{}")
    if "archive_info" not in direct or not direct.get("url", "").endswith("/" + wheel.name):
        problems.append(
            f"{dist_name} is not installed from {wheel.name}: {direct or 'no direct_url'}"
        )
    site = Path(sysconfig.get_paths()["purelib"]).resolve()
    for top in tops:
        try:
            module = importlib.import_module(top)
        except Exception as exc:
            problems.append(f"import {top} failed: {type(exc).__name__}: {exc}")
            continue
        where = Path(module.__file__ or "").resolve()
        print(f"imported {top} from {where}")
        if not where.is_relative_to(site) or where.is_relative_to(checkout):
            problems.append(f"{top} is imported from {where}, not from {site}")
    return problems


def _import_every_module(paths: list[str], optional: set[str]) -> list[str]:
    """Import each module of the wheel (``__main__`` modules aside): a module or a dependency
    missing shows here even when the plugin loads its driver lazily. A module may fail only for
    want of a dependency of an extra (``mqttq.testing`` without pytest)."""
    problems = []
    modules = [p.removesuffix(".py").removesuffix("/__init__").replace("/", ".") for p in paths]
    modules = [m for m in modules if m.rsplit(".", 1)[-1] != "__main__"]
    wanting: dict[str, str] = {}  # module -> the extra's dependency it lacks
    for name in modules:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            missing = (exc.name or "").split(".")[0]
            if normalize(missing) in optional:
                wanting[name] = missing
            else:
                problems.append(f"import {name} failed: {exc}")
        except Exception as exc:
            problems.append(f"import {name} failed: {type(exc).__name__}: {exc}")
    imported = len(modules) - len(problems) - len(wanting)
    extras = f"; {len(wanting)} need an extra's {', '.join(sorted(set(wanting.values())))}"
    print(f"imported {imported} of {len(modules)} modules" + (extras if wanting else ""))
    return problems


def _entry_points(dist_name: str) -> list[str]:
    problems = []
    for ep in metadata.distribution(dist_name).entry_points:
        if ep.group != PLUGIN_GROUP:
            continue
        try:
            ep.load()
        except Exception as exc:
            problems.append(f"entry point {ep.group}:{ep.name} ({ep.value}) fails to load: {exc}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkout", type=Path, required=True, help="the repository root")
    parser.add_argument("wheels", type=Path, nargs="+")
    args = parser.parse_args()
    problems = [p for wheel in args.wheels for p in probe(wheel, args.checkout.resolve())]
    for line in problems:
        print(f"problem: {line}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
