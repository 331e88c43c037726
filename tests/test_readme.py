"""The README is a short map whose links lead somewhere, and its test command is the one CI runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
README = REPO_ROOT / "README.md"
DOCS = [README, *sorted((REPO_ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)  # no headings in code blocks
    return {anchor(m.group(1)) for m in re.finditer(r"^#+ (.+)$", text, flags=re.M)}


def test_readme_is_a_short_map():
    assert len(README.read_text().splitlines()) <= 200


@pytest.mark.parametrize("page", DOCS, ids=lambda p: p.name)
def test_every_local_link_resolves_to_a_file_and_heading(page):
    for target in LINK.findall(page.read_text()):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, fragment = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page.name}: link to missing {target}"
        if fragment and linked.suffix == ".md":
            assert fragment in anchors(linked), f"{page.name}: no heading #{fragment} in {path or page.name}"


def test_every_result_row_links_to_the_section_with_its_command():
    text = README.read_text()
    results = text[text.index("## Results") :]
    results = results[: results.index("\n## ", 1)]
    rows = [line for line in results.splitlines() if line.startswith("| ") and re.search(r"\d\.\d", line)]
    assert rows
    for row in rows:
        assert "](docs/" in row, row


def test_the_readme_holds_the_test_command_that_ci_runs():
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    pattern = re.search(r"grep -m1 -E '([^']+)' README.md", ci).group(1)
    commands = re.findall(pattern, README.read_text(), flags=re.M)
    assert commands and "python -m pytest" in commands[0]
