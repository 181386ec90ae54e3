"""Multivariate drift: PCA reconstruction error of the numeric features, as mergeable counts.

A change in the joint distribution that no single feature shows (a correlation that flips, a
cluster that rotates) moves events off the plane the reference's principal components span.
In NannyML's manner, the reference profile (:class:`~driftline.schemas.reference.
MultivariateProfile`) keeps the means and scales that standardise its numeric features, the
principal components that explain a configured share of their variance (at most a configured
number), and quantile bins of each reference row's reconstruction error
``||z - z Wᵀ W||`` (``z`` the standardised row, ``W`` the kept components). The standardisation
and the components are fitted on the reference's even rows and the error bins come from its
odd rows, so the reference errors are out of sample, as a live window's are. Done per pane:
:class:`MultivariateSummary` folds a batch's errors into counts over those bins (one matrix
product, accumulated in a fixed order so a row's error is the same bits in any batch, one
``np.searchsorted`` and one ``np.bincount`` per batch) plus the exact sum of the
errors, so panes merge exactly by addition like every other part of a
:class:`~driftline.detectors.summary.PaneSummary`. Stage 1 folds events' feature dicts
(:meth:`MultivariateSummary.fold_feature_dicts`): the optional C extension
``driftline.detectors._fold`` computes each event's error in the same walk of its dict that
counts its numeric features, with the same float64 operations in the same order as the NumPy
path here (which runs without the extension, and which it is tested equal to, bit for bit).

**Missing values.** A missing numeric value (absent, None, NaN, or not a number) is imputed with
the reference mean, i.e. it contributes 0 to the standardised row, and is counted in
``imputed``; an event with every value missing has error 0. The reference is profiled the same
way, so the rule holds on both sides.

**Judging** (:func:`multivariate_results`): the window's error counts are tested against the
reference's error bins with ``drift.multivariate.test`` (PSI) and its own floor (0.1: the error
sums many features, so a joint change moves its distribution less than one feature's), as the
column ``__multivariate__`` of kind ``feature_drift``: it joins the same family of the
correction across features, names itself in alerts and retrain reasons, and is written as a
``feature_drift`` point with ``feature=__multivariate__``. The window's mean error is reported
beside it (a ``data_quality`` result with check ``reconstruction_error``, not judged by the
policy) with its bound: the reference mean plus three standard errors of a window mean.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import msgspec
import numpy as np
from scipy import stats

from driftline.config.models import ModelConfig, MultivariateSettings
from driftline.detectors.columns import NumericColumnState, NumericColumnSummary
from driftline.detectors.exact import exact_sum, exact_value, int_from_bytes, int_to_bytes
from driftline.detectors.registry import run_test
from driftline.detectors.result import TestResult
from driftline.detectors.values import FloatArray, to_numeric
from driftline.errors import StatisticsError
from driftline.schemas.reference import MultivariateProfile, NumericProfile

_compiled_fold: Callable[..., tuple[list[tuple[int, int]], int] | None] | None
try:
    from driftline.detectors._fold import fold_numeric_multivariate as _compiled_fold
except ImportError:  # built without a C compiler: fold_feature_dicts runs on NumPy
    _compiled_fold = None

__all__ = [
    "MULTIVARIATE_COLUMN",
    "MultivariateState",
    "MultivariateSummary",
    "multivariate_profile",
    "multivariate_results",
    "reconstruction_errors",
]

MULTIVARIATE_COLUMN = "__multivariate__"
"""The column name multivariate drift is reported under (results, points, alert reasons)."""

ERROR_CAP = 1e12
"""The largest reconstruction error counted (in reference standard deviations): an event whose
values overflow the standardisation counts in the top bin with this error, finite for the sums."""

ERROR_BOUND_SIGMAS = 3.0
"""Standard errors of a window's mean error above the reference mean that bound it."""

_NO_EDGES = np.empty(0, dtype=np.float64)


class MultivariateState(msgspec.Struct, array_like=True, frozen=True):
    """What a :class:`MultivariateSummary` holds, as plain data for an encoding."""

    errors: NumericColumnState
    error_total: bytes
    imputed: int


def reconstruction_errors(
    profile: MultivariateProfile, matrix: FloatArray
) -> tuple[FloatArray, int]:
    """Each row's reconstruction error (rows of ``matrix`` are events, columns the profile's
    features, NaN for missing), and how many values were imputed with the reference mean."""
    return _Projection(profile).errors(matrix)


class _Projection:
    """A profile's standardisation and projector ``I - Wᵀ W`` as float64 arrays, made once per
    summary so the NumPy path and the compiled kernel use the same bits."""

    __slots__ = ("means", "projector", "scales")

    def __init__(self, profile: MultivariateProfile) -> None:
        self.means = np.asarray(profile.means, dtype=np.float64)
        self.scales = np.asarray(profile.scales, dtype=np.float64)
        w = np.asarray(profile.components, dtype=np.float64)
        self.projector = np.ascontiguousarray(np.eye(w.shape[1]) - w.T @ w)

    def errors(self, matrix: FloatArray) -> tuple[FloatArray, int]:
        """:func:`reconstruction_errors`. The compiled kernel (``_fold.c``, ``row_error``)
        evaluates the same float64 operations in the same order: change both together."""
        means, scales, projector = self.means, self.scales, self.projector
        missing = np.isnan(matrix)
        imputed = int(np.count_nonzero(missing))
        x = np.where(missing, means, matrix) if imputed else matrix
        with np.errstate(over="ignore", invalid="ignore"):  # extreme values: capped below
            z = (x - means) / scales
            # z @ projector, accumulated in a fixed order: BLAS may sum a row differently in a
            # batch of 1 than in a batch of 1,000 (gemv vs gemm kernels), and a pane must be
            # the same bits however stage 1 cut its batches.
            residual = np.zeros_like(z)
            for j in range(z.shape[1]):
                residual += z[:, j, None] * projector[j]
            squared = residual * residual
            total = np.zeros(z.shape[0])
            for j in range(z.shape[1]):
                total += squared[:, j]
            errors: FloatArray = np.sqrt(total)
        np.minimum(np.nan_to_num(errors, nan=ERROR_CAP, posinf=ERROR_CAP), ERROR_CAP, out=errors)
        return errors, imputed


def multivariate_profile(
    numeric: Mapping[str, FloatArray],
    settings: MultivariateSettings,
    binner: Callable[[FloatArray], NumericProfile],
) -> MultivariateProfile | None:
    """The multivariate part of a reference profile, from its numeric feature columns (NaN for
    missing); None when disabled or with fewer than two numeric features that vary.

    ``binner`` turns the reference errors into quantile bins (the profile's own numeric
    binning, so the error is binned like any feature).
    """
    if not settings.enabled:
        return None
    names = sorted(numeric)[: settings.max_features]
    if len(names) < 2:
        return None
    rows = np.column_stack([numeric[name] for name in names]).astype(np.float64)
    # Fit on the even rows, bin the errors of the odd ones: in-sample errors are smaller than
    # a live window's (the components chase the sample's own outliers), which would show as
    # drift on stationary traffic.
    x, held_out = rows[0::2], rows[1::2]
    if held_out.shape[0] == 0:
        return None
    present = ~np.isnan(x)
    counts = present.sum(axis=0)
    sums = np.where(present, x, 0.0).sum(axis=0)
    means = np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)  # 0: no value at all
    filled = np.where(np.isnan(x), means, x)
    scales = filled.std(axis=0)
    scales = np.where(scales > 0, scales, 1.0)
    z = (filled - means) / scales
    if z.shape[0] < 2:
        return None
    _, singular, vt = np.linalg.svd(z, full_matrices=False)
    variance = singular**2
    total = float(variance.sum())
    if total <= 0:
        return None
    share = np.cumsum(variance) / total
    k = int(np.searchsorted(share, settings.explained_variance) + 1)
    k = min(k, settings.max_components, len(names) - 1)
    profile = MultivariateProfile(
        features=names,
        means=means.tolist(),
        scales=scales.tolist(),
        components=vt[:k].tolist(),
        explained_variance=min(1.0, float(share[k - 1])),
        error=NumericProfile(edges=[], probabilities=[1.0], count=0),
        error_mean=0.0,
        error_sd=0.0,
    )
    errors, _ = reconstruction_errors(profile, held_out)
    return profile.model_copy(
        update={
            "error": binner(errors),
            "error_mean": float(errors.mean()),
            "error_sd": float(errors.std()),
        }
    )


class MultivariateSummary:
    """Counts of a pane's reconstruction errors over the reference's error bins.

    Examples
    --------
    >>> from driftline.config.models import MultivariateSettings
    >>> from driftline.detectors.profile import numeric_profile
    >>> rng = np.random.default_rng(1)
    >>> a = rng.normal(size=2000)
    >>> ref = multivariate_profile({"a": a, "b": a + 0.1 * rng.normal(size=2000)},
    ...                            MultivariateSettings(), lambda e: numeric_profile(e, bins=10))
    >>> len(ref.components)
    1
    >>> same = MultivariateSummary(ref).fold(np.column_stack([a[:500], a[:500]]))
    >>> flip = MultivariateSummary(ref).fold(np.column_stack([a[:500], -a[:500]]))
    >>> same.mean_error < ref.error_mean * 2 < flip.mean_error
    True
    >>> both = same.merge(flip)
    >>> both.n, both == MultivariateSummary(ref).restored(both.state())
    (1000, True)
    """

    __slots__ = ("_errors", "_imputed", "_profile", "_projection", "_total")

    def __init__(self, profile: MultivariateProfile) -> None:
        self._profile = profile
        self._projection = _Projection(profile)
        self.reset()

    def reset(self) -> None:
        """Forget everything folded so far (all state is created here)."""
        self._errors = NumericColumnSummary(self._profile.error)
        self._total = 0
        self._imputed = 0

    @property
    def profile(self) -> MultivariateProfile:
        """The reference part this summary counts against."""
        return self._profile

    def fold(self, matrix: FloatArray) -> MultivariateSummary:
        """Add a batch: rows are events, columns the profile's features (NaN: missing)."""
        if matrix.shape[0] == 0:
            return self
        errors, imputed = self._projection.errors(matrix)
        self._errors.fold(errors)
        self._total += exact_sum(errors)
        self._imputed += imputed
        return self

    def fold_columns(self, columns: Mapping[str, FloatArray]) -> MultivariateSummary:
        """Add a batch given as one float64 column per feature (NaN: missing)."""
        names = self._profile.features
        return self.fold(np.column_stack([columns[name] for name in names]))

    def fold_feature_dicts(
        self,
        dicts: list[dict[str, Any]],
        numeric: Mapping[str, NumericColumnSummary] | None = None,
    ) -> MultivariateSummary:
        """Add a batch of events' feature dicts (a value that is no number counts as missing).

        With ``numeric`` (column summaries by feature name), also counts those features as
        ``NumericColumnSummary.fold_feature_dicts(numeric, dicts)`` does: the compiled kernel
        then reads each dict once for both. Without the kernel, or when it declines a value it
        does not know (NumPy scalars, containers), the NumPy path gives the same counts.
        """
        if not dicts:
            return self
        numeric = {} if numeric is None else numeric
        kernel = _compiled_fold
        if kernel is not None and self._fold_compiled(kernel, dicts, numeric):
            return self
        if numeric:
            NumericColumnSummary.fold_feature_dicts(numeric, dicts)
        matrix = np.empty((len(dicts), len(self._profile.features)), dtype=np.float64)
        for j, name in enumerate(self._profile.features):
            matrix[:, j] = to_numeric([d.get(name) for d in dicts])[0]
        return self.fold(matrix)

    def _fold_compiled(
        self,
        kernel: Callable[..., tuple[list[tuple[int, int]], int] | None],
        dicts: list[dict[str, Any]],
        numeric: Mapping[str, NumericColumnSummary],
    ) -> bool:
        """:meth:`fold_feature_dicts` in the compiled kernel; False (nothing changed) when it
        declines the batch."""
        names = list(numeric)
        edges = [column._edges for column in numeric.values()]
        counts = [column._counts for column in numeric.values()]
        position = {name: i for i, name in enumerate(names)}
        for name in self._profile.features:
            if name not in position:  # read for the error only, its counts thrown away
                position[name] = len(names)
                names.append(name)
                edges.append(_NO_EDGES)
                counts.append(np.zeros(1, dtype=np.int64))
        index = np.array([position[name] for name in self._profile.features], dtype=np.int64)
        errors = np.empty(len(dicts), dtype=np.float64)
        projection = self._projection
        folded = kernel(
            dicts,
            tuple(names),
            tuple(edges),
            tuple(counts),
            index,
            projection.means,
            projection.scales,
            projection.projector.reshape(-1),
            self._errors._edges,
            self._errors._counts,
            errors,
            ERROR_CAP,
        )
        if folded is None:
            return False
        tallies, imputed = folded
        for column, (missing, type_errors) in zip(numeric.values(), tallies, strict=False):
            column._nulls += missing - type_errors
            column._type_errors += type_errors
        self._total += exact_sum(errors)
        self._imputed += imputed
        return True

    def merge(self, other: MultivariateSummary) -> MultivariateSummary:
        """A new summary holding both (of the same profile); exact."""
        merged = object.__new__(MultivariateSummary)
        merged._profile = self._profile
        merged._projection = self._projection
        merged._errors = self._errors.merge(other._errors)
        merged._total = self._total + other._total
        merged._imputed = self._imputed + other._imputed
        return merged

    @property
    def n(self) -> int:
        """Events folded."""
        return self._errors.n

    @property
    def counts(self) -> FloatArray:
        """Errors per reference error bin (int64, read-only)."""
        return self._errors.counts  # type: ignore[return-value]

    @property
    def imputed(self) -> int:
        """Values imputed with the reference mean (missing or not numbers)."""
        return self._imputed

    @property
    def mean_error(self) -> float | None:
        """The mean reconstruction error of the events folded; None when empty."""
        n = self.n
        return exact_value(self._total) / n if n else None

    def state(self) -> MultivariateState:
        """Everything folded, as plain data (see :meth:`restored`)."""
        return MultivariateState(self._errors.state(), int_to_bytes(self._total), self._imputed)

    def restored(self, state: MultivariateState) -> MultivariateSummary:
        """This summary with a :meth:`state` of the same profile taken over; returns ``self``."""
        self._errors.restore(state.errors)
        self._total = int_from_bytes(state.error_total)
        if state.imputed < 0:
            raise StatisticsError(f"imputed must be >= 0, got {state.imputed}")
        self._imputed = state.imputed
        return self

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MultivariateSummary):
            return NotImplemented
        return (
            self._errors == other._errors
            and (self._total, self._imputed) == (other._total, other._imputed)
            and (self._profile is other._profile or self._profile == other._profile)
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"MultivariateSummary(n={self.n}, imputed={self._imputed})"


def multivariate_results(
    summary: MultivariateSummary, config: ModelConfig
) -> tuple[TestResult, TestResult]:
    """The window's multivariate drift result (judged like a feature) and its mean error
    against its bound (reported, not judged)."""
    settings = config.drift.multivariate
    profile = summary.profile
    judged = run_test(
        settings.test,
        profile.error,
        summary.counts,
        profile.error.count,
        settings.threshold,
        MULTIVARIATE_COLUMN,
    )
    n, n_ref = summary.n, profile.error.count
    mean = summary.mean_error
    if mean is None or n_ref == 0:
        statistic, p_value, bound = math.nan, None, math.nan
    else:
        se = profile.error_sd * math.sqrt(1.0 / n + 1.0 / n_ref)
        bound = profile.error_mean + ERROR_BOUND_SIGMAS * se
        statistic = mean
        p_value = float(stats.norm.sf((mean - profile.error_mean) / se)) if se > 0 else None
    reported = TestResult(
        "reconstruction_error",
        MULTIVARIATE_COLUMN,
        statistic,
        p_value,
        bound,
        n_ref,
        n,
        bool(statistic > bound),
        kind="data_quality",
    )
    return judged, reported
