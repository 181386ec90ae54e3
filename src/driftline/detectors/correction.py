"""Multiplicity correction: p-values adjusted for the family of tests of one window.

The drift tests of a window form one family (:mod:`driftline.detectors.policy`): adjusting
their p-values with Benjamini-Hochberg spends one false-discovery budget per model, whatever
its number of features; Bonferroni bounds the family-wise error rate instead.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats

from driftline.errors import DecisionInputError

__all__ = ["Correction", "adjust_p_values"]

Correction = Literal["bh", "bonferroni"]
"""A correction's name, as the configuration spells it."""


def adjust_p_values(p_values: ArrayLike, method: Correction = "bh") -> NDArray[np.float64]:
    """Multiplicity-adjusted p-values, in the order given.

    ``bh``: Benjamini-Hochberg step-up, ``min(1, min_{j >= i} p_(j) m / j)`` for the i-th
    smallest (:func:`scipy.stats.false_discovery_control`); rejecting adjusted p <= q controls
    the false-discovery rate at q (independent or positively dependent tests). ``bonferroni``:
    ``min(1, p m)``, controlling the family-wise error rate.

    >>> adjust_p_values([0.01, 0.04, 0.03, 0.20]).round(4).tolist()
    [0.04, 0.0533, 0.0533, 0.2]
    >>> adjust_p_values([0.01, 0.04], "bonferroni").tolist()
    [0.02, 0.08]
    """
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1:
        raise DecisionInputError(f"p_values must be one-dimensional, got shape {p.shape}")
    if not np.all((p >= 0.0) & (p <= 1.0)):
        raise DecisionInputError("p_values must lie in [0, 1] (and not be NaN)")
    if method not in ("bh", "bonferroni"):
        raise DecisionInputError(f"method must be 'bh' or 'bonferroni', got {method!r}")
    m = p.size
    if m == 0:
        return p.copy()
    if method == "bonferroni":
        return np.minimum(p * m, 1.0)
    adjusted: NDArray[np.float64] = stats.false_discovery_control(p, method="bh")
    return adjusted
