"""Type stub of the optional C extension (src/driftline/detectors/_fold.c)."""

from typing import Any

def fold_numeric(
    dicts: list[dict[str, Any]],
    names: tuple[str, ...],
    edges: tuple[Any, ...],
    counts: tuple[Any, ...],
) -> list[tuple[int, int]] | None: ...
def fold_numeric_multivariate(
    dicts: list[dict[str, Any]],
    names: tuple[str, ...],
    edges: tuple[Any, ...],
    counts: tuple[Any, ...],
    index: Any,
    means: Any,
    scales: Any,
    projector: Any,
    error_edges: Any,
    error_counts: Any,
    errors: Any,
    cap: float,
    /,
) -> tuple[list[tuple[int, int]], int] | None: ...
