"""The documentation's structure, checked without building the site (``nox -s docs`` builds it
strictly): every page is in the nav and every nav entry is a page; the README's links and the
pages it names exist; internal links of the guide point at pages that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
DOCS = ROOT / "docs"
#: a Markdown link target: [text](target)
LINK = re.compile(r"\]\(([^)\s]+)\)")


def nav_pages() -> list[str]:
    """The pages mkdocs.yml's nav names (``- Title: path.md`` lines)."""
    text = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    nav = text.split("\nnav:\n", 1)[1]
    return re.findall(r"^\s*-\s[^:\n]+:\s+(\S+\.md)\s*$", nav, re.M)


def doc_pages() -> list[str]:
    return sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md"))


def local_targets(markdown: str) -> list[str]:
    """Link targets that are files of the repository (no URL, no bare #anchor), outside code
    blocks and code spans."""
    prose = re.sub(r"`[^`\n]*`", "", re.sub(r"^```.*?^```", "", markdown, flags=re.S | re.M))
    targets = [t.split("#", 1)[0] for t in LINK.findall(prose)]
    return [t for t in targets if t and "://" not in t and not t.startswith("mailto:")]


def test_every_page_is_in_the_nav_and_every_nav_entry_is_a_page() -> None:
    nav = nav_pages()
    assert "index.md" in nav
    assert len(nav) == len(set(nav)), "a page is twice in the nav"
    assert sorted(nav) == doc_pages()


def test_readme_links_and_named_pages_exist() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = local_targets(readme)
    assert "docs/quickstart.md" in targets
    for target in targets:
        assert (ROOT / target).exists(), f"README links to {target}, which does not exist"
    for named in re.findall(r"`((?:docs|benchmarks|packages)/[^`\s]+\.md)`", readme):
        assert (ROOT / named).exists(), f"README names {named}, which does not exist"
    assert "nox -s docs" in readme


@pytest.mark.parametrize("page", doc_pages())
def test_links_between_pages_resolve(page: str) -> None:
    path = DOCS / page
    for target in local_targets(path.read_text(encoding="utf-8")):
        resolved = (path.parent / target).resolve()
        assert resolved.is_relative_to(DOCS.resolve()), (
            f"{page} links to {target}, outside docs/: the site cannot serve it"
        )
        assert resolved.exists(), f"{page} links to {target}, which does not exist"
