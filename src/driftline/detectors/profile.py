"""Building a model version's reference profile from a sample of its data.

The profile freezes the bins that every live summary counts over (DESIGN §4):

- numeric columns get fine quantile edges at the probabilities ``k / bins`` together with the
  deciles ``j / 10``, so the decile edges are a subset of the fine edges and PSI on deciles is
  exact. Edges are data values (the inverted-CDF quantile, computed with integer arithmetic),
  duplicates collapse (a constant column has one edge), the outer bins are open, and missing
  values are counted in ``missing_rate``, never in the bins. Because every edge is a data
  value, each bin ``[e_i, e_i+1)`` holds at least the value ``e_i`` itself;
- categorical columns keep their ``top_k`` most frequent categories (ties by name) as the
  histogram's bins, the rest is ``other``; the names of the rest go in the ``tail`` (most
  frequent first), up to ``max_categories`` names per column and ``tail_bytes`` of JSON per
  profile (shared out among its categorical columns, :func:`share_tail_bytes`), so a live
  category the reference never held is told apart from one of its rare ones however many
  categories it had. The reference's ``unseen_rate`` is what a live window should show under
  no drift, from Good-Turing (``n`` values, ``N_r`` categories seen ``r`` times): ``N_1 / n``
  for the categories the sample missed, plus for each category beyond the bound its adjusted
  mass ``r* / n``, ``r* = (r + 1) N_(r+1) / N_r`` (``r`` where no category was seen ``r + 1``
  times; the raw ``r / n`` overstates the rare categories the bound drops).

A column with no value at all has ``count == 0`` and, because probabilities must sum to one,
puts its whole (empty) mass in its single bin (numeric) or in ``other`` (categorical):
consumers check ``count`` before comparing against it.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from fractions import Fraction
from typing import Literal

import numpy as np
import orjson
from numpy.typing import ArrayLike

from driftline.config.models import MultivariateSettings
from driftline.config.settings import ModelConfig
from driftline.detectors._checks import check_int, check_task
from driftline.detectors.multivariate import MULTIVARIATE_COLUMN, multivariate_profile
from driftline.detectors.performance import PerformanceSummary, classes_for
from driftline.detectors.thresholds import calibrate_profile
from driftline.detectors.values import (
    ColumnKind,
    FloatArray,
    ObjectArray,
    infer_kind,
    to_categorical,
    to_numeric,
)
from driftline.errors import StatisticsError
from driftline.schemas.events import Task
from driftline.schemas.reference import CategoricalProfile, NumericProfile, ReferenceProfile
from driftline.schemas.wire import WireGroundTruth, WirePrediction

__all__ = [
    "MAX_CATEGORIES",
    "TAIL_BYTES",
    "FeatureType",
    "build_profile",
    "categorical_profile",
    "numeric_profile",
    "quantile_levels",
    "share_tail_bytes",
]

FeatureType = Literal["numeric", "categorical"]
Column = ArrayLike | Iterable[object]

_MAX_BINS = 100_000
MAX_CATEGORIES = 10_000
"""Default bound on the names a categorical column keeps (its top-K and its tail)."""
TAIL_BYTES = 131_072
"""Default bound on the JSON bytes of all tails of one profile (the models topic takes records
of ``monitor.max_output_bytes``, 1 MB by default, and a profile has more than its tails)."""
_HASH_DOMAIN = b"driftline-reference-v1"


def quantile_levels(bins: int) -> list[Fraction]:
    """The probabilities of the fine edges: ``k / bins`` and the deciles, sorted, distinct.

    >>> [str(q) for q in quantile_levels(15)][:4]
    ['1/15', '1/10', '2/15', '1/5']
    >>> len(quantile_levels(100))
    99
    """
    levels = {Fraction(k, bins) for k in range(1, bins)} | {Fraction(j, 10) for j in range(1, 10)}
    return sorted(levels)


def _order_statistics(n: int, levels: list[Fraction]) -> list[int]:
    # Inverted CDF: the smallest sorted index i with (i + 1) / n >= q, in exact integers.
    return [max(0, -(-n * q.numerator // q.denominator) - 1) for q in levels]


def numeric_profile(values: FloatArray, *, bins: int = 100) -> NumericProfile:
    """Quantile bins of a float64 column with NaN for missing values.

    >>> p = numeric_profile(np.array([1.0, 2.0, 3.0, 4.0, np.nan]), bins=10)
    >>> p.edges, p.probabilities, p.missing_rate
    ([1.0, 2.0, 3.0, 4.0], [0.0, 0.25, 0.25, 0.25, 0.25], 0.2)
    """
    total = values.shape[0]
    present = values[~np.isnan(values)]
    n = int(present.shape[0])
    missing_rate = (total - n) / total if total else 0.0
    if n == 0:
        return NumericProfile(
            edges=[], probabilities=[1.0], decile_edges=[], missing_rate=missing_rate, count=0
        )
    if not np.isfinite(present).all():
        raise StatisticsError("numeric values must be finite (got inf)")
    ordered = np.sort(present) + 0.0  # + 0.0 turns -0.0 into 0.0
    levels = quantile_levels(bins)
    fine = ordered[_order_statistics(n, levels)]
    deciles = ordered[_order_statistics(n, [Fraction(j, 10) for j in range(1, 10)])]
    edges = np.unique(fine)
    counts = np.bincount(np.searchsorted(edges, ordered, side="right"), minlength=edges.size + 1)
    return NumericProfile(
        edges=edges.tolist(),
        probabilities=(counts / n).tolist(),
        decile_edges=np.unique(deciles).tolist(),
        missing_rate=missing_rate,
        minimum=float(ordered[0]),
        maximum=float(ordered[-1]),
        count=n,
    )


def _name_bytes(name: str) -> int:
    return len(orjson.dumps(name)) + 1  # the name in a JSON list, with its comma


def _ranked(keys: ObjectArray) -> tuple[list[tuple[str, int]], int]:
    """The categories of a column by count (descending, ties by name), and the missing ones."""
    counter = Counter(keys.tolist())
    missing = counter.pop(None, 0)
    return sorted(counter.items(), key=lambda item: (-item[1], item[0])), missing


def _tail_need(ranked: list[tuple[str, int]], top_k: int, max_categories: int) -> int:
    return sum(_name_bytes(name) for name, _ in ranked[top_k:max_categories])


def share_tail_bytes(needs: Sequence[int], budget: int) -> list[int]:
    """Shares of ``budget`` for tails needing ``needs`` bytes: the smaller needs are met in
    full, the rest split what is left equally (water-filling; deterministic).

    >>> share_tail_bytes([100, 5_000, 20], 3_000)
    [100, 2880, 20]
    >>> share_tail_bytes([10, 10], 100)
    [10, 10]
    """
    shares = [0] * len(needs)
    left, open_ = budget, len(needs)
    for i in sorted(range(len(needs)), key=lambda j: (needs[j], j)):
        shares[i] = min(needs[i], left // open_)
        left -= shares[i]
        open_ -= 1
    return shares


def categorical_profile(
    keys: ObjectArray,
    *,
    top_k: int = 50,
    max_categories: int = MAX_CATEGORIES,
    tail_bytes: int = TAIL_BYTES,
) -> CategoricalProfile:
    """The ``top_k`` most frequent categories of a column of category keys (None = missing),
    and the names of the rest (the tail), up to ``max_categories`` names in all and
    ``tail_bytes`` bytes of JSON for the tail.

    >>> categorical_profile(np.array(["a", "b", "a", None, "c"], dtype=object), top_k=2)
    CategoricalProfile(kind='categorical', categories={'a': 0.5, 'b': 0.25}, other=0.25, \
missing_rate=0.2, count=4, tail=['c'], tail_dropped=0, unseen_rate=0.5)
    """
    ranked, missing = _ranked(keys)
    return _categorical(ranked, missing, top_k, max_categories, tail_bytes)


def _categorical(
    ranked: list[tuple[str, int]], missing: int, top_k: int, max_categories: int, tail_bytes: int
) -> CategoricalProfile:
    n = sum(count for _, count in ranked)
    total = n + missing
    missing_rate = missing / total if total else 0.0
    if n == 0:
        return CategoricalProfile(categories={}, other=1.0, missing_rate=missing_rate, count=0)
    top = ranked[:top_k]
    kept = sum(count for _, count in top)
    tail: list[str] = []
    room = tail_bytes
    for name, _ in ranked[top_k:max_categories]:
        room -= _name_bytes(name)
        if room < 0:
            break
        tail.append(name)
    seen = Counter(count for _, count in ranked)  # N_r: categories seen r times
    # Good-Turing: categories seen once estimate the mass of those never seen, and a category
    # seen r times has the mass r* / n.
    dropped = sum(
        (r + 1) * seen[r + 1] / seen[r] if seen[r + 1] else r
        for _, r in ranked[top_k + len(tail) :]
    )
    unseen_rate = (seen[1] + dropped) / n
    return CategoricalProfile(
        categories={name: count / n for name, count in top},
        other=(n - kept) / n,
        missing_rate=missing_rate,
        count=n,
        tail=tail,
        tail_dropped=len(ranked) - len(top) - len(tail),
        unseen_rate=min(1.0, max(0.0, unseen_rate)),
    )


class _Tails:
    """The categorical columns of one profile, built once they have shared the tail bytes."""

    def __init__(self, top_k: int, max_categories: int, tail_bytes: int) -> None:
        self.top_k, self.max_categories, self.tail_bytes = top_k, max_categories, tail_bytes
        self.columns: dict[tuple[str, str], tuple[list[tuple[str, int]], int]] = {}

    def add(self, role: str, name: str, keys: ObjectArray) -> None:
        self.columns[role, name] = _ranked(keys)

    def build(self) -> dict[tuple[str, str], CategoricalProfile]:
        needs = [
            _tail_need(ranked, self.top_k, self.max_categories)
            for ranked, _ in self.columns.values()
        ]
        shares = share_tail_bytes(needs, self.tail_bytes)
        return {
            key: _categorical(ranked, missing, self.top_k, self.max_categories, share)
            for (key, (ranked, missing)), share in zip(self.columns.items(), shares, strict=True)
        }


class _Hasher:
    """sha256 over length-prefixed parts, so no two different inputs share a stream."""

    def __init__(self) -> None:
        self._h = hashlib.sha256(_HASH_DOMAIN)

    def put(self, *parts: bytes | str) -> None:
        for part in parts:
            data = part.encode() if isinstance(part, str) else part
            self._h.update(len(data).to_bytes(8, "little"))
            self._h.update(data)

    def column(self, role: str, name: str, kind: str, values: FloatArray | ObjectArray) -> None:
        if kind == "numeric":
            # One NaN bit pattern, and 0.0 for -0.0: equal values, equal bytes.
            canonical = (np.where(np.isnan(values), np.nan, values) + 0.0).astype("<f8")
            self.put(role, name, kind, canonical.tobytes())
        else:
            self.put(role, name, kind, orjson.dumps(values.tolist()))

    def hexdigest(self) -> str:
        return self._h.hexdigest()


class _Columns:
    """Converts raw columns, checks they all have the same length, and hashes them."""

    def __init__(self) -> None:
        self.n: int | None = None
        self.hasher = _Hasher()

    def _length(self, what: str, size: int) -> None:
        if self.n is None:
            self.n = size
        elif size != self.n:
            raise StatisticsError(f"{what} has {size} rows, the columns before it {self.n}")

    def numeric(self, role: str, name: str, raw: Column) -> FloatArray:
        values, errors = to_numeric(raw)
        what = f"{role} {name!r}" if name else role
        self._length(what, values.shape[0])
        if errors:
            raise StatisticsError(
                f"{what} is numeric but holds {errors} value(s) that are not numbers; "
                "declare it categorical in feature_types or clean the data"
            )
        if not np.isfinite(values[~np.isnan(values)]).all():
            raise StatisticsError(f"{what} holds infinite values; numeric values must be finite")
        self.hasher.column(role, name, "numeric", values)
        return values

    def categorical(self, role: str, name: str, raw: Column) -> ObjectArray:
        keys = to_categorical(raw)
        self._length(f"{role} {name!r}" if name else role, keys.shape[0])
        self.hasher.column(role, name, "categorical", keys)
        return keys


def build_profile(
    model: str,
    version: str,
    task: Task,
    features: Mapping[str, Column],
    prediction: Column,
    *,
    scores: Mapping[str, Column] | None = None,
    labels: Column | None = None,
    feature_types: Mapping[str, FeatureType] | None = None,
    bins: int = 100,
    top_k: int = 50,
    max_categories: int = MAX_CATEGORIES,
    tail_bytes: int = TAIL_BYTES,
    positive_class: str | None = None,
    calibrate: bool = False,
    multivariate: MultivariateSettings | None = None,
    segments: Mapping[str, Sequence[str | None]] | None = None,
    segment_top_k: int = 10,
) -> ReferenceProfile:
    """Profile a reference sample of one model version.

    Parameters
    ----------
    model, version
        The model version the profile belongs to.
    task
        ``"binary"``, ``"multiclass"`` or ``"regression"``.
    features
        Feature name to its column of values (lists, tuples, NumPy arrays; None or NaN for
        missing).
    prediction
        The model's predictions: classes for classifiers, numbers for regression.
    scores
        Class to its column of probabilities, for classifiers.
    labels
        The true outcomes, when known: adds the label profile and the baseline performance
        (computed as :class:`~driftline.detectors.performance.PerformanceSummary` computes the
        live metrics, so both sides are binned alike).
    feature_types
        ``"numeric"`` or ``"categorical"`` per feature; features not named are inferred
        (numbers numeric, strings and booleans categorical).
    bins
        Fine quantile bins per numeric column (more where deciles add edges, fewer where the
        data has fewer distinct values).
    top_k
        Categories kept per categorical column as the histogram's bins; the rest is ``other``.
    max_categories
        Names kept per categorical column, its top-K and its tail: the reference's categories
        a live value is looked up in before it counts as unseen.
    tail_bytes
        JSON bytes that all the tails of the profile may take together, shared out among the
        categorical columns (:func:`share_tail_bytes`): it bounds the profile's growth on the
        models topic, whose records must fit ``monitor.max_output_bytes``.
    positive_class
        The positive class of a binary task (default: ``"1"`` or ``"true"`` when present,
        else the last class in sorted order).
    calibrate
        Also compute the calibrated drift thresholds (``drift.thresholds: calibrated``,
        :func:`driftline.detectors.thresholds.calibrate_profile`; seconds per column).
    multivariate
        How the joint shape of the numeric features is profiled
        (:mod:`driftline.detectors.multivariate`); default: the defaults of
        :class:`~driftline.config.models.MultivariateSettings` (on, 0.65 of the variance).
    segments
        Segment key to its column of values (None: the row has no such key): the profile
        records the ``segment_top_k`` most frequent values of each key
        (:func:`top_segment_values`), the slices live traffic is judged in.
    segment_top_k
        Values recorded per segment key.

    Examples
    --------
    >>> p = build_profile("fraud", "3", "binary",
    ...                   {"amount": [10.0, 20.0, 30.0, 40.0], "country": ["FR", "FR", "DE", None]},
    ...                   prediction=[0, 0, 1, 1], scores={"1": [0.1, 0.4, 0.6, 0.9]},
    ...                   labels=[0, 1, 1, 1], bins=10)
    >>> p.features["amount"].edges, p.features["country"].categories
    ([10.0, 20.0, 30.0, 40.0], {'FR': 0.6666666666666666, 'DE': 0.3333333333333333})
    >>> p.performance["accuracy"], p.n_rows
    (0.75, 4)
    >>> type(p).model_validate_json(p.model_dump_json()) == p
    True
    """
    check_task(task)
    check_int("bins", bins, 1, _MAX_BINS)
    check_int("top_k", top_k, 1, 1_000_000)
    check_int("max_categories", max_categories, 0, 10_000_000)
    check_int("tail_bytes", tail_bytes, 0, 1 << 40)
    types = dict(feature_types or {})
    unknown = sorted(set(types) - set(features))
    if unknown:
        raise StatisticsError(f"feature_types names features that are not in features: {unknown}")
    bad = {name: kind for name, kind in types.items() if kind not in ("numeric", "categorical")}
    if bad:
        raise StatisticsError(f"feature_types values must be 'numeric' or 'categorical', got {bad}")
    classifier = task != "regression"
    if scores and not classifier:
        raise StatisticsError("scores are class probabilities, for classifiers; task is regression")

    cols = _Columns()
    cols.hasher.put("task", task)
    tails = _Tails(top_k, max_categories, tail_bytes)
    numeric_features: dict[str, NumericProfile] = {}
    numeric_values: dict[str, FloatArray] = {}
    for name in sorted(features):
        raw = features[name]
        kind: ColumnKind = types.get(name) or infer_kind(raw)
        if kind == "numeric":
            numeric_values[name] = cols.numeric("feature", name, raw)
            numeric_features[name] = numeric_profile(numeric_values[name], bins=bins)
        else:
            tails.add("feature", name, cols.categorical("feature", name, raw))

    pred_values: FloatArray | ObjectArray
    pred_profile: NumericProfile | CategoricalProfile | None = None
    if classifier:
        pred_values = cols.categorical("prediction", "", prediction)
        tails.add("prediction", "", pred_values)
    else:
        pred_values = cols.numeric("prediction", "", prediction)
        pred_profile = numeric_profile(pred_values, bins=bins)

    score_values: dict[str, FloatArray] = {}
    for cls in sorted(scores or {}):
        values = cols.numeric("scores", cls, (scores or {})[cls])
        present = values[~np.isnan(values)]
        if present.size and (present.min() < 0.0 or present.max() > 1.0):
            raise StatisticsError(f"scores[{cls!r}] must be probabilities in [0, 1]")
        score_values[str(cls)] = values
    score_profiles = {cls: numeric_profile(v, bins=bins) for cls, v in score_values.items()}

    label_values: FloatArray | ObjectArray | None = None
    label_profile: NumericProfile | CategoricalProfile | None = None
    if labels is not None:
        if classifier:
            label_values = cols.categorical("labels", "", labels)
            tails.add("labels", "", label_values)
        else:
            label_values = cols.numeric("labels", "", labels)
            label_profile = numeric_profile(label_values, bins=bins)

    categorical = tails.build()
    # Keep the caller's feature order (dicts keep it through JSON); hashing used sorted names.
    feature_profiles: dict[str, NumericProfile | CategoricalProfile] = {
        name: numeric_features[name] if name in numeric_features else categorical["feature", name]
        for name in features
    }
    if pred_profile is None:
        pred_profile = categorical["prediction", ""]
    if label_profile is None:
        label_profile = categorical.get(("labels", ""))

    n_rows = cols.n or 0
    if n_rows == 0:
        raise StatisticsError("a reference profile needs at least one row of data")

    classes = classes_for(task, pred_profile, label_profile, score_profiles)
    if task == "binary" and len(classes) > 2:
        raise StatisticsError(
            f"task is 'binary' but the data has {len(classes)} classes: {list(classes)[:10]}"
        )
    performance: dict[str, float] = {}
    if label_values is not None:
        summary = PerformanceSummary(task, classes, positive_class=positive_class)
        summary.fold(label_values, pred_values, scores=score_values or None)
        performance = summary.metrics()

    profile = ReferenceProfile(
        model=model,
        model_version=version,
        task=task,
        n_rows=n_rows,
        features=feature_profiles,
        prediction=pred_profile,
        scores=score_profiles,
        labels=label_profile,
        performance=performance,
        content_hash=cols.hasher.hexdigest(),
        # A feature that took the multivariate column's name keeps it: no multivariate part.
        multivariate=None
        if MULTIVARIATE_COLUMN in features
        else multivariate_profile(
            numeric_values,
            MultivariateSettings() if multivariate is None else multivariate,
            lambda errors: numeric_profile(errors, bins=bins),
        ),
    )
    if segments:
        profile = profile.model_copy(
            update={"segments": top_segment_values(segments, segment_top_k, n_rows)}
        )
    return calibrate_profile(profile) if calibrate else profile


def top_segment_values(
    segments: Mapping[str, Sequence[str | None]], top_k: int, n_rows: int | None = None
) -> dict[str, list[str]]:
    """The ``top_k`` most frequent values of each segment key, most frequent first, ties by
    value: a pure function of the reference data, so every stage-1 worker and stage 2 agree
    on the slices without talking to each other. ``n_rows`` checks the columns' length.

    >>> top_segment_values({"region": ["eu", "us", "eu", None, "apac", "us", "eu"]}, 2)
    {'region': ['eu', 'us']}
    """
    check_int("segment_top_k", top_k, 1, 10_000)
    kept: dict[str, list[str]] = {}
    for key in sorted(segments):
        column = list(segments[key])
        if n_rows is not None and len(column) != n_rows:
            raise StatisticsError(
                f"segments[{key!r}] has {len(column)} values, the reference has {n_rows} rows"
            )
        counts = Counter(str(value) for value in column if value is not None)
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        kept[key] = [value for value, _ in ranked[:top_k]]
    return kept


def profile_from_events(
    events: Sequence[WirePrediction],
    task: Task,
    config: ModelConfig,
    labels: Mapping[str, WireGroundTruth] | None = None,
    *,
    max_categories: int = MAX_CATEGORIES,
    tail_bytes: int = TAIL_BYTES,
) -> ReferenceProfile:
    """A reference profile built from traffic (the warm-up baseline).

    When every warm-up event has its label, the profile carries the label distribution and
    the baseline performance too, so later windows are judged against it. ``max_categories``
    and ``tail_bytes`` bound the categorical columns' tails as in :func:`build_profile`. With
    ``drift.thresholds: calibrated`` the baseline carries its calibrated thresholds.
    """
    first = events[0]
    names = sorted({name for e in events for name in e.features})
    features = {name: [e.features.get(name) for e in events] for name in names}
    classes = sorted({c for e in events if e.scores for c in e.scores})
    scores = (
        {c: [(e.scores or {}).get(c, np.nan) for e in events] for c in classes} if classes else None
    )
    known = labels or {}
    outcome = (
        [known[e.prediction_id].label for e in events]
        if events and all(e.prediction_id in known for e in events)
        else None
    )
    return build_profile(
        first.model,
        first.model_version,
        task,
        features,
        [e.prediction for e in events],
        scores=scores,
        labels=outcome,
        feature_types=config.features or None,
        bins=config.drift.bins,
        max_categories=max_categories,
        tail_bytes=tail_bytes,
        positive_class=config.positive_class,
        calibrate=config.drift.threshold_mode == "calibrated",
        multivariate=config.drift.multivariate,
        segments={
            key: [(e.segments or {}).get(key) for e in events] for key in config.segments.keys
        }
        or None,
        segment_top_k=config.segments.top_k,
    )
