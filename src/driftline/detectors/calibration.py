"""Empirical null distributions: thresholds calibrated at the live window size.

A fixed PSI floor of 0.2 means one thing for a window of 200 rows and another for 200 000: the
statistic's sampling noise shrinks with the window. Calibration resamples the reference at the
live window size ``m`` (multinomial counts over the frozen bins), computes the statistic on each
draw, and takes the quantile that a chosen false-alarm rate allows (DESIGN §4). Optionally the
reference is resampled too, at its own size ``n_reference``, so the null also carries the noise
of the reference's own estimate.

Everything is drawn at once from a caller-seeded :class:`numpy.random.Generator`, so equal
inputs and seeds give equal thresholds. A statistic is either applied per draw
(``statistic(ref_probs, counts) -> float``) or, with ``vectorized=True``, once to all draws
(``counts`` of shape ``(draws, bins)``, returning shape ``(draws,)``); :func:`psi_statistic`
and :func:`ks_statistic` are such vectorised fast paths.

A rate the draws cannot resolve (below ``1 / (draws + 1)``) is read by :func:`tail_threshold`
off an exponential tail fitted to the largest draws of the (suitably powered) statistic.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from driftline.errors import CalibrationError

Statistic = Callable[[NDArray[np.float64], NDArray[np.int64]], float]
"""``(ref_probs, counts) -> statistic`` for one window: probabilities and counts per bin."""

VectorizedStatistic = Callable[[NDArray[np.float64], NDArray[np.int64]], NDArray[np.float64]]
"""``(ref_probs, counts) -> statistics`` for many windows: counts ``(draws, bins)``, ref_probs
``(bins,)`` or ``(draws, bins)``; returns ``(draws,)``."""

_SUM_TOLERANCE = 1e-6
TAIL_EXCEEDANCES = 10
"""Fewest draws above the tail fit's base a :func:`tail_threshold` accepts."""


@dataclass(frozen=True, slots=True)
class CalibratedThreshold:
    """A threshold read off an empirical null distribution.

    ``threshold`` is the smallest value such that ``statistic >= threshold`` happened in at most
    a ``false_alarm_rate`` share of null draws, chosen with the conformal rank
    ``ceil((1 - false_alarm_rate) (draws + 1))`` so that a fresh null window crosses it with
    probability at most ``false_alarm_rate``; ``quantile`` is the target level
    ``1 - false_alarm_rate``.

    >>> t = threshold_from_null(np.arange(1.0, 100.0), false_alarm_rate=0.05)
    >>> t.quantile, t.draws, 95.0 < t.threshold < 95.0001
    (0.95, 99, True)
    """

    false_alarm_rate: float
    quantile: float
    threshold: float
    draws: int


def null_distribution(
    ref_probs: ArrayLike,
    window_size: int,
    statistic: Statistic | VectorizedStatistic,
    rng: np.random.Generator,
    *,
    draws: int = 2000,
    n_reference: int | None = None,
    vectorized: bool = False,
) -> NDArray[np.float64]:
    """The statistic on ``draws`` windows of ``window_size`` rows drawn from the reference.

    Window counts are drawn first, as one ``(draws, bins)`` multinomial array; with
    ``n_reference`` each draw also gets its own reference estimate, counts of ``n_reference``
    rows divided by ``n_reference``, drawn next, and the statistic compares the window with it.

    >>> rng = np.random.default_rng(7)
    >>> null = null_distribution([0.5, 0.3, 0.2], 100, ks_statistic, rng, draws=500,
    ...                          vectorized=True)
    >>> null.shape, bool(null.min() >= 0.0)
    ((500,), True)
    """
    probs = _probabilities(ref_probs)
    if window_size < 1:
        raise CalibrationError(f"window_size must be at least 1, got {window_size}")
    if draws < 1:
        raise CalibrationError(f"draws must be at least 1, got {draws}")
    if n_reference is not None and n_reference < 1:
        raise CalibrationError(f"n_reference must be at least 1 or None, got {n_reference}")

    counts = rng.multinomial(window_size, probs, size=draws).astype(np.int64, copy=False)
    refs: NDArray[np.float64]
    if n_reference is None:
        refs = np.broadcast_to(probs, counts.shape)
    else:
        refs = rng.multinomial(n_reference, probs, size=draws) / float(n_reference)

    if vectorized:
        values = np.asarray(statistic(probs if n_reference is None else refs, counts))
        if values.shape != (draws,):
            raise CalibrationError(
                f"a vectorized statistic must return shape ({draws},), got {values.shape}"
            )
        null = values.astype(np.float64, copy=False)
    else:
        null = np.fromiter(
            (float(statistic(refs[i], counts[i])) for i in range(draws)),
            dtype=np.float64,
            count=draws,
        )
    if not np.all(np.isfinite(null)):
        raise CalibrationError("the statistic returned non-finite values on null draws")
    return null


def threshold_from_null(null: ArrayLike, false_alarm_rate: float = 0.05) -> CalibratedThreshold:
    """The threshold a null sample allows at ``false_alarm_rate`` (see
    :class:`CalibratedThreshold`).

    >>> threshold_from_null([0.1, 0.2, 0.3, 0.4], false_alarm_rate=0.2).threshold > 0.4
    True
    """
    values = np.sort(np.asarray(null, dtype=np.float64).ravel())
    draws = values.size
    if not 0.0 < false_alarm_rate < 1.0:
        raise CalibrationError(f"false_alarm_rate must be in (0, 1), got {false_alarm_rate}")
    # Allowed exceedances among draws + 1 exchangeable values; the epsilon absorbs rounding
    # in products such as 0.05 * 100.
    allowed = math.floor(false_alarm_rate * (draws + 1) + 1e-9)
    if allowed < 1:
        raise CalibrationError(
            f"draws must be at least {math.ceil(1 / false_alarm_rate) - 1} for a "
            f"false_alarm_rate of {false_alarm_rate}, got {draws}"
        )
    if not np.all(np.isfinite(values)):
        raise CalibrationError("null must hold finite values only")
    rank = draws + 1 - allowed  # 1-based order statistic
    # Strictly above the order statistic, so ties with it stay below the threshold.
    threshold = float(np.nextafter(values[rank - 1], np.inf))
    return CalibratedThreshold(
        false_alarm_rate=false_alarm_rate,
        quantile=1.0 - false_alarm_rate,
        threshold=threshold,
        draws=draws,
    )


def tail_threshold(
    null: ArrayLike, false_alarm_rate: float, *, power: float = 1.0, tail_rate: float = 0.01
) -> float:
    """The threshold at a ``false_alarm_rate`` too small for the draws to resolve, read off an
    exponential tail fitted to the largest draws.

    The statistic is transformed to ``s = statistic ** power`` (``power`` 1 for PSI, 2 for the
    distances and Cramér's V), whose null is asymptotically a scaled chi-square: PSI times
    ``n m / (n + m)`` and the squared distances times ``m_eff`` tend to ``chi2(bins - 1)``, the
    squared Kolmogorov-Smirnov D has an exponential tail. Above ``u``, the ``(k + 1)``-th
    largest of ``N`` draws with ``k = floor(tail_rate (N + 1))``, exceeded by a fresh null
    value with probability ``p_u = (k + 1) / (N + 1)`` (exchangeability), the excesses are
    taken as exponential with the mean ``sigma`` of the ``k`` excesses (peaks over threshold
    with shape 0), so ``s_r = u + sigma log(p_u / r)`` and the threshold is ``s_r ** (1 /
    power)``. A chi-square's mean excess falls as ``u`` grows (for 2 or more degrees of freedom),
    so the extrapolation errs high, never low, by that shape; the Monte Carlo noise of
    ``sigma`` (about ``1 / sqrt(k)`` relative) is the rest of its error, which the test suite
    bounds against quantiles of 400,000 draws.

    >>> rng = np.random.default_rng(1)
    >>> round(tail_threshold(rng.exponential(size=4_000), 1e-5), 1)  # exact: log(1e5) = 11.5
    11.7
    """
    values = np.sort(np.asarray(null, dtype=np.float64).ravel())[::-1]
    draws = values.size
    if not 0.0 < false_alarm_rate < 1.0:
        raise CalibrationError(f"false_alarm_rate must be in (0, 1), got {false_alarm_rate}")
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise CalibrationError("null must hold finite, non-negative values only")
    k = math.floor(tail_rate * (draws + 1) + 1e-9)
    if k < TAIL_EXCEEDANCES:
        raise CalibrationError(
            f"draws must be at least {math.ceil(TAIL_EXCEEDANCES / tail_rate)} for a tail fit "
            f"above the {tail_rate} level, got {draws}"
        )
    s = values**power
    u = float(s[k])
    sigma = float(np.mean(s[:k])) - u
    p_u = (k + 1) / (draws + 1)
    level = u + sigma * max(math.log(p_u / false_alarm_rate), 0.0)
    return float(level ** (1.0 / power))


def calibrate_threshold(
    ref_probs: ArrayLike,
    window_size: int,
    statistic: Statistic | VectorizedStatistic,
    rng: np.random.Generator,
    *,
    false_alarm_rate: float = 0.05,
    draws: int = 2000,
    n_reference: int | None = None,
    vectorized: bool = False,
) -> CalibratedThreshold:
    """The threshold of ``statistic`` at ``window_size`` rows for a target false-alarm rate.

    :func:`null_distribution` then :func:`threshold_from_null`.

    >>> probs = np.full(10, 0.1)
    >>> t = calibrate_threshold(probs, 1_000, psi_statistic, np.random.default_rng(1),
    ...                         false_alarm_rate=0.01, draws=1000, vectorized=True)
    >>> 0.0 < t.threshold < 0.05, t.draws
    (True, 1000)
    """
    null = null_distribution(
        ref_probs,
        window_size,
        statistic,
        rng,
        draws=draws,
        n_reference=n_reference,
        vectorized=vectorized,
    )
    return threshold_from_null(null, false_alarm_rate)


def psi_statistic(
    ref_probs: NDArray[np.float64],
    counts: NDArray[np.int64],
    *,
    n_reference: int | None = None,
    pseudo_count: float = 0.5,
) -> NDArray[np.float64]:
    """Population stability index of window counts against reference shares.

    Vectorised over leading axes (bins last). The smoothing follows :mod:`driftline.detectors.psi`:
    the reference's shares are turned back into counts with ``n_reference`` (default: the
    window's own size), both sides get ``pseudo_count`` per bin, and bins empty on both sides
    are dropped. Bind ``n_reference`` with :func:`functools.partial` to calibrate the live test.

    >>> float(psi_statistic(np.array([0.5, 0.5]), np.array([50, 50])))
    0.0
    >>> round(float(psi_statistic(np.array([0.5, 0.5]), np.array([30, 70]), n_reference=100)), 4)
    0.1659
    """
    counts_f = np.asarray(counts, dtype=np.float64)
    ref = np.asarray(ref_probs, dtype=np.float64)
    keep = (ref > 0) | (counts_f > 0)
    scale = counts_f.sum(axis=-1, keepdims=True) if n_reference is None else float(n_reference)
    ref_padded = np.where(keep, ref * scale + pseudo_count, 0.0)
    cur_padded = np.where(keep, counts_f + pseudo_count, 0.0)
    reference = ref_padded / ref_padded.sum(axis=-1, keepdims=True)
    current = cur_padded / cur_padded.sum(axis=-1, keepdims=True)
    # Dropped bins are 0 on both sides; give them a ratio of 1 so their term is exactly 0.
    ratio = np.divide(current, reference, out=np.ones_like(current), where=keep)
    result: NDArray[np.float64] = np.sum((current - reference) * np.log(ratio), axis=-1)
    return result


def ks_statistic(ref_probs: NDArray[np.float64], counts: NDArray[np.int64]) -> NDArray[np.float64]:
    """Kolmogorov-Smirnov D on bins: the largest gap between the two cumulative distributions.

    Vectorised over leading axes (bins last; bins in their natural order).

    >>> round(float(ks_statistic(np.array([0.5, 0.5]), np.array([80, 20]))), 12)
    0.3
    """
    counts_f = np.asarray(counts, dtype=np.float64)
    current = np.cumsum(counts_f, axis=-1) / counts_f.sum(axis=-1, keepdims=True)
    reference = np.cumsum(np.asarray(ref_probs, dtype=np.float64), axis=-1)
    result: NDArray[np.float64] = np.max(np.abs(current - reference), axis=-1)
    return result


def _probabilities(ref_probs: ArrayLike) -> NDArray[np.float64]:
    probs = np.asarray(ref_probs, dtype=np.float64)
    if probs.ndim != 1 or probs.size < 1:
        raise CalibrationError(f"ref_probs must be a non-empty 1-D array, got shape {probs.shape}")
    if not np.all(np.isfinite(probs)) or np.any(probs < 0):
        raise CalibrationError("ref_probs must be finite and non-negative")
    total = float(probs.sum())
    if abs(total - 1.0) > _SUM_TOLERANCE:
        raise CalibrationError(f"ref_probs must sum to 1, got {total!r}")
    return probs / total
