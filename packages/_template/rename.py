"""Start a new plugin from this template: copy it to DEST with its names changed.

    python packages/_template/rename.py NAME DEST

NAME (lowercase letters, digits and hyphens: ``mydb``) becomes the distribution ``mqttq-NAME``,
the package ``mqttq_NAME`` (hyphens as underscores), the entry point and URL scheme ``NAME``,
and the class ``<Name>QueueDriver``. DEST must not exist yet.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parent
#: not copied: this script, the template's own README, and what a build or a run leaves
SKIP = {"rename.py", "README.md", "__pycache__", "build", "dist"}
NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")

README = """\
# mqttq-{name}

A queue driver plugin for mqttq: `{name}://...`, started from mqttq's plugin template.

## Develop

No mqttq package is on a package index: install the core from a checkout of the mqttq
repository, and this plugin in editable mode.

```sh
python -m venv .venv && . .venv/bin/activate
pip install "path/to/mqttq/packages/core[testing]" -e .
pytest -q          # mqttq's conformance kit
mqttq plugins      # lists {name}: queue_drivers: {name}
```

The driver is in `src/{package}/driver.py`; the guide to what it must do is
docs/plugins/writing-a-driver.md in the mqttq repository.
"""


def renamer(name: str) -> list[tuple[re.Pattern[str], str]]:
    package = "mqttq_" + name.replace("-", "_")
    camel = "".join(part.capitalize() for part in name.split("-"))
    return [
        (re.compile(r"mqttq_template"), package),
        (re.compile(r"Template"), camel),
        (re.compile(r"\btemplate\b"), name),
    ]


def rename(name: str, dest: Path) -> None:
    if not NAME.match(name):
        raise SystemExit(f"rename.py: {name!r} is not a plugin name (like mydb or my-db)")
    if dest.exists():
        raise SystemExit(f"rename.py: {dest} already exists")
    rules = renamer(name)

    def apply(text: str) -> str:
        for pattern, replacement in rules:
            text = pattern.sub(replacement, text)
        return text

    for source in sorted(TEMPLATE.rglob("*")):
        relative = source.relative_to(TEMPLATE)
        hidden = any(part.startswith(".") for part in relative.parts)  # caches
        if hidden or SKIP & set(relative.parts) or relative.suffix == ".pyc" or source.is_dir():
            continue
        target = dest / apply(str(relative))
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            target.write_text(apply(source.read_text()))
        except UnicodeDecodeError:
            shutil.copyfile(source, target)
    package = rules[0][1]
    (dest / "README.md").write_text(README.format(name=name, package=package))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name", help="the plugin's name: mydb")
    parser.add_argument("dest", type=Path, help="a directory that does not exist yet")
    args = parser.parse_args(argv)
    rename(args.name, args.dest)
    print(f"mqttq-{args.name} is in {args.dest}; next: cd {args.dest} and see README.md")


if __name__ == "__main__":
    main(sys.argv[1:])
