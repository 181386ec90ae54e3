"""Type stub of the optional C extension (src/driftline/detectors/_fold.c)."""

from typing import Any

def fold_numeric(
    dicts: list[dict[str, Any]],
    names: tuple[str, ...],
    edges: tuple[Any, ...],
    counts: tuple[Any, ...],
) -> list[tuple[int, int]] | None: ...
