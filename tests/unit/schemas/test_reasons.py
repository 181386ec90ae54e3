"""Every dead-letter kind the code can produce is in the registry and in docs/dead-letters.md."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import driftline
from driftline.errors import DecodeError
from driftline.schemas import reasons
from driftline.schemas.outputs import DeadLetter

PACKAGE = Path(driftline.__file__).parent
PAGE = PACKAGE.parents[1] / "docs" / "dead-letters.md"
# Calls that give a dead letter its kind: the keyword ``kind``, or the third positional
# argument of the dead-letter helpers (``self._dead_letter(message, reason, kind)``).
KIND_CALLS = {"DecodeError", "dead_letter", "_dead_letter", "from_message"}


def _name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _kind_value(node: ast.expr) -> str | None:
    """A literal kind, or one named from :mod:`driftline.schemas.reasons`; None otherwise
    (a kind passed through, such as ``exc.kind``)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    name = _name(node)
    if name is not None and name.isupper() and hasattr(reasons, name):
        value = getattr(reasons, name)
        return value if isinstance(value, str) else None
    return None


def kinds_in_code() -> dict[str, list[str]]:
    """Each kind the package's source gives a dead letter or a DecodeError, with where."""
    found: dict[str, list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or _name(node.func) not in KIND_CALLS:
                continue
            candidates = [kw.value for kw in node.keywords if kw.arg == "kind"]
            if _name(node.func) != "DecodeError" and len(node.args) >= 3:
                candidates.append(node.args[2])
            for candidate in candidates:
                kind = _kind_value(candidate)
                if kind is not None:
                    where = f"{path.relative_to(PACKAGE.parent)}:{node.lineno}"
                    found.setdefault(kind, []).append(where)
    for default in (
        inspect.signature(DecodeError).parameters["kind"].default,
        DeadLetter.model_fields["kind"].default,
    ):
        found.setdefault(default, []).append("a default")
    return found


def kinds_on_the_page() -> list[str]:
    """The first column of the table in docs/dead-letters.md."""
    return re.findall(r"^\| `([a-z_0-9]+)` \|", PAGE.read_text(encoding="utf-8"), re.MULTILINE)


def test_the_scan_sees_kinds_of_every_part() -> None:
    """The scan is not vacuous: it finds kinds stage 1, stage 2 and the writer produce."""
    found = kinds_in_code()
    assert {"limit_exceeded", "clock_skew", "missing_key", "invalid_summary"} <= set(found)
    assert {"processing_error", "rejected", "malformed_line_protocol"} <= set(found)


def test_every_kind_the_code_produces_is_registered() -> None:
    unknown = {kind: where for kind, where in kinds_in_code().items() if kind not in reasons.KINDS}
    assert not unknown, f"add these kinds to driftline.schemas.reasons.KINDS: {unknown}"


def test_the_page_lists_every_registered_kind_once_and_nothing_else() -> None:
    page = kinds_on_the_page()
    assert len(page) == len(set(page)), "a kind listed twice in docs/dead-letters.md"
    assert set(page) == set(reasons.KINDS), (
        f"missing from docs/dead-letters.md: {sorted(set(reasons.KINDS) - set(page))}; "
        f"listed but not registered: {sorted(set(page) - set(reasons.KINDS))}"
    )


def test_the_readme_contract_links_the_page() -> None:
    readme = (PACKAGE.parents[1] / "README.md").read_text(encoding="utf-8")
    contract = readme.split("## The event contract", 1)[1].split("\n## ", 1)[0]
    assert "docs/dead-letters.md" in contract
