"""Calibrated drift thresholds: computed from a reference by resampling, read for a live window.

``drift.thresholds: calibrated`` (DESIGN §4) replaces each test's fixed effect-size floor by the
effect size that a window of the live size exceeds under no drift at the configured
false-positive rate. :func:`calibrate_profile` computes them when a profile is built, with
:mod:`driftline.detectors.calibration`'s helper: for every column and every test defined for it,
``DRAWS`` pairs of a reference resampled at its own size (multinomial over its frozen bins, so
the null carries the reference's own estimation noise) and a window resampled at each grid size
``SIZES`` (powers of two, 128 to 1,048,576); the statistic is computed on each pair exactly as
the live test computes it (deciles for PSI and Jensen-Shannon, the same pseudo-counts), and the
threshold at each rate in ``LEVELS`` that the draws resolve (0.01 and 0.001) is the conformal
quantile of :func:`~driftline.detectors.calibration.threshold_from_null`; the deeper ones
(``1e-4`` and ``1e-6``) are extrapolated along an exponential tail of the statistic (PSI) or of
its square (the distances, Cramér's V) fitted to the draws above the 0.01 quantile
(:func:`~driftline.detectors.calibration.tail_threshold`; the null statistics are
asymptotically chi-square-shaped, whose tail that fit follows or overestimates), and never
below the rate above them. The seed derives from the profile's content hash, so equal data give
equal thresholds.

**One budget per model.** ``drift.false_positive_rate`` is the model's false-alarm budget per
window: :func:`per_test_rate` divides it equally over the model's calibrated columns (its
features and prediction; Bonferroni), so a stationary window finds drift on some column with
probability at most that rate, whatever the number of features, and ``k``-of-``n`` persistence
multiplies it down further (2 of 3: about ``3 rate^2`` a window).

:func:`threshold_for` reads one for a window of ``n`` values: linear interpolation in
``log(size)`` and ``log(threshold)`` between the two grid sizes around ``n`` (below the grid the
smallest size's threshold, above it the largest's); between the stored rates, the threshold in
the tail fit's scale (PSI itself, the square of the others) linearly in ``log(rate)``, and below
the smallest stored rate along the line through the two smallest. The null statistics scale as
a power of the window size (PSI as ``1/n_eff``, the distances as ``1/sqrt(n_eff)``), which
log-log interpolation follows; the test suite bounds
its error against thresholds computed at the sizes between grid points.
"""

from __future__ import annotations

import bisect
import math

import numpy as np
from numpy.typing import NDArray

from driftline.config.models import DriftSettings
from driftline.detectors._binned import PSEUDO_COUNT, reference_probabilities
from driftline.detectors.calibration import (
    ks_statistic,
    psi_statistic,
    tail_threshold,
    threshold_from_null,
)
from driftline.detectors.distance import bin_positions, reference_scale
from driftline.detectors.registry import CATEGORICAL_TESTS, NUMERIC_TESTS
from driftline.errors import StatisticsError
from driftline.schemas.reference import CategoricalProfile, NumericProfile, ReferenceProfile
from driftline.schemas.thresholds import CalibratedThresholds, TestThresholds

__all__ = [
    "DRAWS",
    "LEVELS",
    "SIZES",
    "TAIL_POWER",
    "calibrate_column",
    "calibrate_profile",
    "per_test_rate",
    "threshold_for",
]

SIZES: tuple[int, ...] = tuple(2**k for k in range(7, 21))
"""Window sizes of the grid: 128, 256, ..., 1,048,576."""
LEVELS: tuple[float, ...] = (0.01, 0.001, 1e-4, 1e-6)
"""Per-test, per-window false-positive rates stored: the first two read off the draws, the others
extrapolated along the tail (a per-test rate of ``drift.false_positive_rate`` over the model's
columns lies between 0.01 and 1e-6 up to 1,000 columns)."""
DRAWS = 4000
"""Resampled windows per size (at 0.001, the threshold is the 4th largest of 4,000 + 1; the tail
fit uses the 40 above the 0.01 quantile)."""
TAIL_POWER: dict[str, float] = {
    "psi": 1.0,
    "chi2": 2.0,
    "ks": 2.0,
    "jensen_shannon": 2.0,
    "wasserstein": 2.0,
}
"""The power of each statistic whose null tail is fitted as exponential: PSI itself, the square
of the distances and of Cramér's V (each then asymptotically a scaled chi-square, or for KS an
exponential tail)."""
TAIL_RATE = 0.01
"""The tail fit's base: the draws above this quantile are the ones fitted."""

Counts = NDArray[np.int64]
Floats = NDArray[np.float64]


def _deciles(profile: NumericProfile | CategoricalProfile, values: Floats) -> Floats:
    """Fine-bin values (last axis) merged into the decile bins, as PSI and JS compare them."""
    if not isinstance(profile, NumericProfile) or not profile.decile_edges:
        return values
    positions = np.searchsorted(np.asarray(profile.edges), np.asarray(profile.decile_edges))
    starts = np.concatenate(([0], positions + 1))
    merged: Floats = np.add.reduceat(values, starts, axis=-1)
    return merged


def _js(ref: Floats, counts: Floats) -> Floats:
    """Jensen-Shannon distance (bits) per row, as :func:`~driftline.detectors.distance.
    jensen_shannon` computes it."""
    p = ref / ref.sum(axis=-1, keepdims=True)
    q = counts / counts.sum(axis=-1, keepdims=True)
    mid = (p + q) / 2.0

    def kl(a: Floats) -> Floats:
        ratio = np.divide(a, mid, out=np.ones_like(a), where=a > 0)
        terms: Floats = np.sum(a * np.log2(ratio), axis=-1)
        return terms

    divergence = np.clip(0.5 * (kl(p) + kl(q)), 0.0, 1.0)
    out: Floats = np.sqrt(divergence)
    return out


def _cramers_v(ref: Floats, counts: Floats, n_reference: int) -> Floats:
    """Cramér's V of the goodness-of-fit chi-square per row, as ``chi2_test`` computes it."""
    keep = (ref > 0) | (counts > 0)
    padded = np.where(keep, ref * n_reference + PSEUDO_COUNT, 0.0)
    m = counts.sum(axis=-1, keepdims=True)
    expected = m * padded / padded.sum(axis=-1, keepdims=True)
    terms = np.divide((counts - expected) ** 2, expected, out=np.zeros_like(counts), where=keep)
    pearson = terms.sum(axis=-1)
    bins = keep.sum(axis=-1)
    denominator = m[:, 0] * np.maximum(bins - 1, 1)
    v: Floats = np.where(bins >= 2, np.sqrt(pearson / denominator), 0.0)
    return v


def _wasserstein(profile: NumericProfile, ref: Floats, counts: Floats) -> Floats:
    x = bin_positions(profile)
    gap = np.abs(
        np.cumsum(
            ref / ref.sum(axis=-1, keepdims=True) - counts / counts.sum(axis=-1, keepdims=True),
            axis=-1,
        )
    )[:, :-1]
    distance: Floats = gap @ np.diff(x) / reference_scale(profile)
    return distance


def _statistic(
    test: str,
    profile: NumericProfile | CategoricalProfile,
    ref: Floats,
    counts: Floats,
    n_reference: int,
) -> Floats:
    """``test`` on every (resampled reference shares, window counts) row pair."""
    if test == "psi":
        values: Floats = psi_statistic(
            _deciles(profile, ref),
            _deciles(profile, counts).astype(np.int64),
            n_reference=n_reference,
            pseudo_count=PSEUDO_COUNT,
        )
        return values
    if test == "jensen_shannon":
        return _js(_deciles(profile, ref), _deciles(profile, counts))
    if test == "ks":
        return ks_statistic(ref, counts.astype(np.int64))
    if test == "chi2":
        return _cramers_v(ref, counts, n_reference)
    if test == "wasserstein" and isinstance(profile, NumericProfile):
        return _wasserstein(profile, ref, counts)
    raise StatisticsError(f"no calibrated form of {test!r} for {profile.kind} columns")


def _round_up(value: float, digits: int = 4) -> float:
    """``value`` rounded up to ``digits`` significant digits: fewer bytes on the models topic,
    never a lower threshold."""
    if value < 1e-300:  # a constant column's null: 0, the threshold just above it
        return value
    scale = 10.0 ** (digits - 1 - math.floor(math.log10(value)))
    return math.ceil(value * scale) / scale


def calibrate_column(
    profile: NumericProfile | CategoricalProfile,
    rng: np.random.Generator,
    *,
    sizes: tuple[int, ...] = SIZES,
    levels: tuple[float, ...] = LEVELS,
    draws: int = DRAWS,
) -> TestThresholds:
    """Thresholds of every test defined for the column, one row per level, one value per size
    (empty for a column the reference never saw a value of)."""
    n_reference = profile.count
    if n_reference == 0:
        return {}
    p = reference_probabilities(profile)
    p = p / p.sum()
    tests = sorted(NUMERIC_TESTS if isinstance(profile, NumericProfile) else CATEGORICAL_TESTS)
    ref = rng.multinomial(n_reference, p, size=draws) / float(n_reference)
    rows: dict[str, list[list[float]]] = {t: [[] for _ in levels] for t in tests}
    for size in sizes:
        counts = rng.multinomial(size, p, size=draws).astype(np.float64)
        for test in tests:
            null = _statistic(test, profile, ref, counts, n_reference)
            previous = 0.0
            for i, level in enumerate(levels):
                if level * (draws + 1) >= 1.0 - 1e-9:
                    value = threshold_from_null(null, level).threshold
                else:
                    value = tail_threshold(null, level, power=TAIL_POWER[test], tail_rate=TAIL_RATE)
                # Never below a looser level's (the constant column's tiny positive one included).
                previous = _round_up(max(value, previous))
                rows[test][i].append(previous)
    return rows


def calibrate_profile(profile: ReferenceProfile, *, draws: int = DRAWS) -> ReferenceProfile:
    """``profile`` with its calibrated thresholds (seeded by its content hash).

    >>> from driftline.detectors.profile import build_profile
    >>> rng = np.random.default_rng(0)
    >>> p = build_profile("m", "1", "regression", {"x": rng.normal(size=2000)},
    ...                   rng.normal(size=2000))
    >>> t = calibrate_profile(p, draws=1000).thresholds
    >>> sorted(t.features["x"]), len(t.features["x"]["psi"][0]) == len(t.sizes)
    (['jensen_shannon', 'ks', 'psi', 'wasserstein'], True)
    """
    seed = int(profile.content_hash[:16], 16) if profile.content_hash else 0
    rng = np.random.default_rng(seed)
    features = {
        name: calibrate_column(column, rng, draws=draws)
        for name, column in profile.features.items()
    }
    thresholds = CalibratedThresholds(
        sizes=list(SIZES),
        levels=list(LEVELS),
        draws=draws,
        seed=seed,
        features={name: rows for name, rows in features.items() if rows},
        prediction=calibrate_column(profile.prediction, rng, draws=draws),
    )
    return profile.model_copy(update={"thresholds": thresholds})


def _interpolate(xs: list[float], ys: list[float], x: float) -> float:
    """Piecewise-linear ``y(x)``, held constant beyond the ends (``xs`` increasing)."""
    if x <= xs[0]:
        return ys[0]
    if x >= xs[-1]:
        return ys[-1]
    j = bisect.bisect_right(xs, x)
    w = (x - xs[j - 1]) / (xs[j] - xs[j - 1])
    return ys[j - 1] + w * (ys[j] - ys[j - 1])


def interpolated(
    thresholds: CalibratedThresholds,
    rows: list[list[float]],
    n: int,
    rate: float,
    *,
    power: float = 1.0,
) -> float:
    """The threshold at window size ``n`` and ``rate`` from one test's grid: log-log in the
    size; in the rate, ``threshold ** power`` linear in ``log(rate)`` (the exponential tail the
    deep levels were fitted with), between the two stored rates around ``rate`` or, below the
    smallest, along the line through the two smallest (above the largest: the largest's)."""
    log_sizes = [math.log(s) for s in thresholds.sizes]
    at_n = [
        math.exp(_interpolate(log_sizes, [math.log(v) for v in row], math.log(max(n, 1)))) ** power
        for row in rows
    ]
    # Levels decrease; interpolate on -log(rate), which increases.
    log_levels = [-math.log(level) for level in thresholds.levels]
    x = -math.log(rate)
    if x > log_levels[-1] and len(log_levels) >= 2:
        slope = max(at_n[-1] - at_n[-2], 0.0) / (log_levels[-1] - log_levels[-2])
        value = at_n[-1] + slope * (x - log_levels[-1])
    else:
        value = _interpolate(log_levels, at_n, x)
    return float(value ** (1.0 / power))


def per_test_rate(profile: ReferenceProfile, drift: DriftSettings) -> float:
    """The false-positive rate each calibrated column is judged at: the model's budget
    ``drift.false_positive_rate`` divided over its calibrated columns (features and prediction)
    and, for a model judged per segment, over the whole model and each of its slices.

    >>> from driftline.detectors.profile import build_profile
    >>> p = build_profile("m", "1", "regression", {"x": np.arange(1000.0),
    ...                   "y": np.arange(1000.0)}, np.arange(1000.0))
    >>> per_test_rate(calibrate_profile(p, draws=1000), DriftSettings(false_positive_rate=0.003))
    0.001
    """
    cached = profile.thresholds
    columns = 0 if cached is None else len(cached.features) + (1 if cached.prediction else 0)
    # A model judged per segment tests each column again in every slice (each tracked value of
    # each key, and "other"): the one budget spans features x slices, as the correction does.
    slices = 1 + sum(len(values) + 1 for values in profile.segments.values())
    return drift.false_positive_rate / max(columns * slices, 1)


def threshold_for(
    profile: ReferenceProfile,
    drift: DriftSettings,
    test: str,
    n: int,
    feature: str | None,
) -> float:
    """The threshold a window of ``n`` values is judged with on ``feature`` (None: the
    prediction): calibrated at :func:`per_test_rate` when the settings ask for it and the
    profile has it, else the fixed floor of ``drift.thresholds``.

    >>> from driftline.detectors.profile import build_profile
    >>> p = build_profile("m", "1", "regression", {"x": np.arange(1000.0)}, np.arange(1000.0))
    >>> calibrated = DriftSettings(thresholds="calibrated")
    >>> threshold_for(p, calibrated, "psi", 10_000, "x")  # no thresholds in the profile
    0.2
    >>> t = threshold_for(calibrate_profile(p, draws=1000), calibrated, "psi", 10_000, "x")
    >>> 0.0 < t < 0.05
    True
    """
    floor = drift.thresholds.get(test, 0.1)
    cached = profile.thresholds
    if drift.threshold_mode != "calibrated" or cached is None:
        return floor
    tests = cached.prediction if feature is None else cached.features.get(feature, {})
    rows = tests.get(test)
    if rows is None:
        return floor
    return interpolated(
        cached, rows, n, per_test_rate(profile, drift), power=TAIL_POWER.get(test, 1.0)
    )
