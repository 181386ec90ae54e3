"""Building reference profiles and window counts from raw samples, for the drift-test tests."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from driftline.schemas.reference import NumericProfile


def numeric_profile_from(sample: NDArray[np.float64], bins: int = 100) -> NumericProfile:
    """Quantile bins of ``sample`` with exact probabilities, decile edges among the fine edges.

    ``k / bins`` and ``j / 10`` are the same doubles where they name the same level, so with
    ``bins`` a multiple of 10 every decile edge is one of the fine edges.
    """
    fine = np.unique(np.quantile(sample, np.arange(1, bins) / bins))
    deciles = np.unique(np.quantile(sample, np.arange(1, 10) / 10))
    counts = counts_over(fine, sample)
    return NumericProfile(
        edges=fine.tolist(),
        probabilities=(counts / sample.size).tolist(),
        decile_edges=deciles.tolist(),
        minimum=float(sample.min()),
        maximum=float(sample.max()),
        count=int(sample.size),
    )


def counts_over(
    edges: NDArray[np.float64] | list[float], sample: NDArray[np.float64]
) -> NDArray[np.int64]:
    """Counts of ``sample`` over the bins ``(-inf, e0), [e0, e1), ..., [e_last, +inf)``."""
    e = np.asarray(edges, dtype=np.float64)
    index = np.searchsorted(e, sample, side="right")
    return np.bincount(index, minlength=e.size + 1).astype(np.int64)
