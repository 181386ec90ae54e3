"""docs/layout.md names every module of the package, and nothing else."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_layout_page_lists_exactly_the_package_modules() -> None:
    """A module added, moved or deleted without its line in docs/layout.md fails here."""
    package = ROOT / "src"
    modules = {p.relative_to(package).as_posix() for p in (package / "driftline").rglob("*.py")}
    page = (ROOT / "docs" / "layout.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^(driftline/\S+\.py)\s", page, flags=re.MULTILINE))
    assert sorted(modules - listed) == [], "modules missing from docs/layout.md"
    assert sorted(listed - modules) == [], "docs/layout.md names modules that do not exist"
