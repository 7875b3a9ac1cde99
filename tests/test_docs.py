"""The documentation holds together: every relative link in README.md and docs/ resolves (to a file, and
to a heading where it names one), and the README stays a front door (at most 250 lines)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from conftest import REPO

FENCE = re.compile(r"^```.*?^```", re.M | re.S)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.*)$", re.M)
DOCS = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def _prose(path: Path) -> str:
    """The Markdown without its fenced code blocks (a `# comment` in a bash block is no heading)."""
    return FENCE.sub("", path.read_text())


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _broken(path: Path) -> list[str]:
    broken = []
    for target in LINK.findall(_prose(path)):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...: not ours to check offline
            continue
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / file_part).resolve() if file_part else path
        if not resolved.exists():
            broken.append(f"{os.path.relpath(path, REPO)}: {target} (no such file)")
        elif anchor and resolved.suffix == ".md" and anchor not in {slug(h) for h in HEADING.findall(_prose(resolved))}:
            broken.append(f"{os.path.relpath(path, REPO)}: {target} (no such heading)")
    return broken


def test_slugs_are_githubs():
    assert slug("MNIST: learning-rate control (issue 18)") == "mnist-learning-rate-control-issue-18"
    assert slug("Layer-wise learning rates (`controller=ppo_layerwise`)") == "layer-wise-learning-rates-controllerppo_layerwise"


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(path):
    assert _broken(path) == []


def test_a_broken_link_is_found(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n[ok](#title) [gone](missing.md) [no heading](page.md#nope)\n```\n[code](x.md)\n```\n")
    assert [line.split(": ", 1)[1] for line in _broken(page)] == ["missing.md (no such file)",
                                                                  "page.md#nope (no such heading)"]


def test_the_readme_is_a_front_door():
    assert len((REPO / "README.md").read_text().splitlines()) <= 250
