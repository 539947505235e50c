"""tools/wheels/check.py on copies of the Redis driver package: intact, it passes; with a runtime
dependency left undeclared or a module left out of its wheel, it fails naming what is missing.

The copies keep the driver's sources, metadata and README; their tests are one file written
here (the kit's plugin-package checks and one test outside the kit's suites, which the default
selection leaves out). The mqttq wheel is built once for the module. The broken copies run with
``--tests none``: the packaging checks alone must catch them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
CHECK = ROOT / "tools" / "wheels" / "check.py"
DRIVER = ROOT / "packages" / "driver-redis"

COPY_TESTS = """\
from mqttq.testing import PluginPackageSuite
from mqttq_redis.driver import RedisQueueDriver


class TestPluginPackage(PluginPackageSuite):
    distribution = "mqttq-redis"
    plugin_name = "redis"
    provides = {"queue_drivers": {"redis", "rediss", "unix"}}
    heavy_imports = {"redis"}


def test_outside_the_kit_suites_is_left_out():
    assert RedisQueueDriver.schemes
"""


@pytest.fixture(scope="module")
def core_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("core")
    uv = shutil.which("uv")
    assert uv, "uv is not installed: python3 -m pip install uv"
    subprocess.run(
        [
            uv,
            "build",
            "--quiet",
            "--wheel",
            "--no-sources",
            "--out-dir",
            out,
            ROOT / "packages/core",
        ],
        check=True,
        timeout=300,
    )
    (wheel,) = out.glob("mqttq-*.whl")
    return wheel


def copy_driver(tmp_path: Path) -> Path:
    copy = tmp_path / "driver-redis"
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        copy.mkdir(exist_ok=True)
        shutil.copy(DRIVER / name, copy / name)
    shutil.copytree(DRIVER / "src", copy / "src", ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "tests").mkdir()
    (copy / "tests" / "test_package.py").write_text(COPY_TESTS)
    return copy


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} is not in {path} exactly once"
    path.write_text(text.replace(old, new))


def check(tmp_path: Path, core_wheel: Path, package: Path, *args: str) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MQTTQ_")}
    cmd = [sys.executable, CHECK, "--dist", tmp_path / "dist", "--core-wheel", core_wheel]
    result = subprocess.run(
        [*map(str, cmd), *args, str(package)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    return result.returncode, result.stdout + result.stderr


def test_an_intact_plugin_passes_from_its_wheels(tmp_path: Path, core_wheel: Path) -> None:
    code, out = check(tmp_path, core_wheel, copy_driver(tmp_path))
    assert code == 0, out
    assert "wheels: ok" in out
    assert "mqttq plugins --check: ok" in out
    # the tests imported the installed wheel, and only the kit's suites ran
    assert "site-packages/mqttq_redis/__init__.py" in out
    assert f"imported mqttq_redis from {tmp_path}" not in out
    assert "4 passed, 1 deselected" in out
    assert sorted(p.name for p in (tmp_path / "dist").iterdir() if p.name != ".gitignore") == [
        "mqttq_redis-0.1.0-py3-none-any.whl",
        "mqttq_redis-0.1.0.tar.gz",
    ]


def test_an_undeclared_runtime_dependency_fails(tmp_path: Path, core_wheel: Path) -> None:
    copy = copy_driver(tmp_path)
    edit(copy / "pyproject.toml", '    "redis>=5.0.1,<9",\n', "")
    code, out = check(tmp_path, core_wheel, copy, "--tests", "none")
    assert code == 1, out
    assert "wheels: FAILED" in out
    assert "mqttq_redis/driver.py imports redis, which mqttq-redis does not declare" in out


def test_a_module_left_out_of_the_wheel_fails(tmp_path: Path, core_wheel: Path) -> None:
    copy = copy_driver(tmp_path)
    edit(
        copy / "pyproject.toml",
        "[tool.hatch.build.targets.wheel]\n",
        '[tool.hatch.build.targets.wheel]\nexclude = ["src/mqttq_redis/_url.py"]\n',
    )
    code, out = check(tmp_path, core_wheel, copy, "--tests", "none")
    assert code == 1, out
    assert "mqttq_redis/_url.py is in the sdist but not in the wheel" in out
    # and installed, the plugin cannot load its driver
    assert "mqttq plugins --check: mqttq: plugin 'redis' failed" in out
    assert "import mqttq_redis.driver failed: ImportError: cannot import name '_url'" in out


def test_the_guard_stops_a_run_that_imports_from_elsewhere(tmp_path: Path) -> None:
    """The pytest plugin check.py loads refuses to start when a package under test would come
    from outside site-packages (here a directory on PYTHONPATH, as a checkout's src would)."""
    shutil.copy(CHECK.with_name("pytest_guard.py"), tmp_path / "mqttq_wheels_guard.py")
    elsewhere = tmp_path / "src" / "mqttq_elsewhere"
    elsewhere.mkdir(parents=True)
    (elsewhere / "__init__.py").write_text("")
    (tmp_path / "test_nothing.py").write_text("def test_nothing():\n    assert True\n")

    def run(imports: str) -> subprocess.CompletedProcess[str]:
        pythonpath = os.pathsep.join([str(tmp_path), str(tmp_path / "src")])
        env = os.environ | {"PYTHONPATH": pythonpath, "WHEELS_GUARD_IMPORTS": imports}
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "mqttq_wheels_guard", "-q", "test_nothing.py"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    refused = run("pytest,mqttq_elsewhere")
    assert refused.returncode == 4, refused.stdout + refused.stderr
    assert f"mqttq_elsewhere is imported from {elsewhere}/__init__.py" in refused.stderr
    allowed = run("pytest")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert "1 passed" in allowed.stdout
