"""Anytime-valid confidence sequences for the mean of bounded values, from their sums alone.

The rollout decision (:mod:`driftline.detectors.rollout`) looks at the same growing evidence
after every window, as often as it likes, and stops when it is sure. A fixed-sample confidence
interval looked at that way excludes the truth far more often than its level says; a
*confidence sequence* does not: with probability at least ``1 - alpha`` it holds the true mean
at every sample size at once, so any stopping rule keeps the error rate.

Method (named :data:`METHOD`): for values ``X_i`` in ``[a, b]`` with mean ``mu`` (given the
past), write ``R = b - a`` and ``Y_i = (X_i - mu) / R >= -1``. For ``0 <= lambda < 1``,
``exp(lambda * y - psi_E(lambda) * y**2) <= 1 + lambda * y`` for every ``y >= -1``, with
``psi_E(lambda) = -log(1 - lambda) - lambda`` (Fan, Grama & Liu 2015, "Exponential
inequalities for martingales with applications", Electron. J. Probab. 20, no. 1; the
inequality is checked on a fine grid in the tests), so

    M_t(lambda) = exp(lambda * S_t - psi_E(lambda) * V_t),
    S_t = sum(Y_i),  V_t = sum(Y_i**2) = (m2 + n * (mean - mu)**2) / R**2

is a nonnegative supermartingale: ``S_t`` is sub-exponential with the variance process
``V_t`` (Howard, Ramdas, McAuliffe & Sekhon 2020, "Time-uniform Chernoff bounds via
nonnegative supermartingales", Probability Surveys 17). A uniform mixture over a geometric grid
of ``lambda`` (a discrete-mixture boundary, Howard, Ramdas, McAuliffe & Sekhon 2021,
"Time-uniform, nonparametric, nonasymptotic confidence sequences", Ann. Statist. 49(2)) is
again one, and Ville's inequality bounds the chance that it ever reaches ``2 / alpha`` by
``alpha / 2``. The values ``mu`` it never rejected, on both sides (the mirrored values
``a + b - X_i`` give the upper side), form the sequence. ``V_t`` is the empirical variance of
the values around the tested ``mu``, so the width adapts to the variance (an
empirical-Bernstein-like width: ~``sqrt(2 var log(2K/alpha) / n)``), and the sequence needs only
``n``, the mean and the centred sum of squares, which mergeable summaries keep exactly. The
grid stops at ``lambda = 1/2``, where each term still grows with ``mean - mu`` over the whole
range, so the rejected set is an interval and is found by bisection; the bound returned is on
the kept side, moved out by ``1e-12`` of the range (so never narrower than the exact one).

The guarantee needs every value's mean, given the values before it, to be the same ``mu``:
traffic whose mix does not drift during the comparison (under drift the sequence is about no
single mean). Only sums enter, so the order of the values within and across windows does not
matter.

For two independent samples (:func:`difference_bounds`), the two sequences at ``alpha / 2``
each give a sequence for the difference of the means: conservative (a union bound).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

from driftline.errors import StatisticsError

__all__ = ["LAMBDAS", "METHOD", "difference_bounds", "log_mixture", "mean_bounds"]

METHOD = "fan-bernstein-mixture-cs"
"""The name results carry for the confidence sequence this module computes."""

_GRID_SIZE = 26
LAMBDAS = 0.5 * 2.0 ** (-np.arange(_GRID_SIZE) / 2.0)
"""The mixture's bets: ``1/2`` down to about ``1e-4`` by factors of ``sqrt(2)``, weighted
alike. Small bets keep the width adaptive at a million values; ``1/2`` at a handful."""
_PSI = -np.log1p(-LAMBDAS) - LAMBDAS
_LOG_GRID = math.log(_GRID_SIZE)
_BISECTIONS = 60

FloatArray = NDArray[np.float64]


def log_mixture(excess: ArrayLike, variance: ArrayLike) -> FloatArray:
    """``log`` of the mixture supermartingale at ``S = excess``, ``V = variance`` (scaled by
    the range), elementwise.

    >>> float(log_mixture(0.0, 0.0))
    0.0
    """
    s = np.asarray(excess, dtype=np.float64)[..., None]
    v = np.asarray(variance, dtype=np.float64)[..., None]
    terms = LAMBDAS * s - _PSI * v
    top = terms.max(axis=-1)
    out: FloatArray = top + np.log(np.exp(terms - top[..., None]).sum(axis=-1)) - _LOG_GRID
    return out


def _check(alpha: float, lower: float, upper: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise StatisticsError(f"alpha must be in (0, 1), got {alpha!r}")
    if not (math.isfinite(lower) and math.isfinite(upper) and lower < upper):
        raise StatisticsError(f"bounds must be finite with lower < upper, got [{lower}, {upper}]")


def _lower(
    n: FloatArray, mean: FloatArray, m2: FloatArray, low: float, span: float, log_t: float
) -> FloatArray:
    """The smallest mean not rejected from below (see the module docstring), elementwise."""

    def rejected(mu: FloatArray) -> NDArray[np.bool_]:
        gap = mean - mu
        return np.asarray(log_mixture(n * gap / span, (m2 + n * gap * gap) / span**2) >= log_t)

    bad = np.full(mean.shape, low)  # rejected (or the edge, where nothing is rejected)
    good = mean.copy()  # never rejected: there S = 0 and the mixture is at most 1
    edge_kept = ~rejected(bad)
    for _ in range(_BISECTIONS):
        mid = 0.5 * (bad + good)
        no = rejected(mid)
        bad = np.where(no, mid, bad)
        good = np.where(no, good, mid)
    # One part in 1e12 of the range outward: however the mixture is rounded (from the sums
    # here, from the raw values elsewhere), the interval holds every mean it does not reject.
    return np.where(edge_kept, low, np.maximum(good - 1e-12 * span, low))


def mean_bounds(
    n: ArrayLike,
    mean: ArrayLike,
    m2: ArrayLike,
    lower: float,
    upper: float,
    alpha: float,
) -> tuple[FloatArray, FloatArray]:
    """The confidence sequence for the mean of values in ``[lower, upper]`` at level
    ``1 - alpha``, from ``n``, their mean and centred sum of squares ``m2``; elementwise over
    arrays (many streams or looks at once). With ``n == 0`` it is the whole range.

    >>> lo, hi = mean_bounds(1000, 0.5, 250.0, 0.0, 1.0, 0.05)
    >>> bool(0.4 < lo < 0.5 < hi < 0.6)
    True
    """
    _check(alpha, lower, upper)
    n_ = np.asarray(n, dtype=np.float64)
    mean_ = np.clip(np.asarray(mean, dtype=np.float64), lower, upper)
    m2_ = np.maximum(np.asarray(m2, dtype=np.float64), 0.0)
    n_, mean_, m2_ = np.broadcast_arrays(n_, mean_, m2_)
    span = upper - lower
    log_t = math.log(2.0 / alpha)
    low = _lower(n_, mean_, m2_, lower, span, log_t)
    # The upper side is the lower side of the mirrored values lower + upper - X.
    high = (lower + upper) - _lower(n_, (lower + upper) - mean_, m2_, lower, span, log_t)
    empty = n_ <= 0
    return np.where(empty, lower, low), np.where(empty, upper, high)


def difference_bounds(
    first: tuple[ArrayLike, ArrayLike, ArrayLike],
    second: tuple[ArrayLike, ArrayLike, ArrayLike],
    lower: float,
    upper: float,
    alpha: float,
) -> tuple[FloatArray, FloatArray]:
    """A confidence sequence for ``mean(first) - mean(second)`` of two independent samples of
    values in ``[lower, upper]``, each given as ``(n, mean, m2)``: the two sequences at
    ``alpha / 2`` each, subtracted (conservative: a union bound).

    >>> lo, hi = difference_bounds((1000, 0.6, 240.0), (1000, 0.5, 250.0), 0.0, 1.0, 0.05)
    >>> bool(lo < 0.1 < hi)
    True
    """
    first_low, first_high = mean_bounds(*first, lower, upper, alpha / 2.0)
    second_low, second_high = mean_bounds(*second, lower, upper, alpha / 2.0)
    return first_low - second_high, first_high - second_low
