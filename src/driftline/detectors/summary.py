"""The mergeable pane summary that stage 1 folds batches of prediction events into.

A :class:`PaneSummary` holds, for one pane of one model version's traffic, counts over the
reference profile's frozen bins (:mod:`driftline.detectors.columns`), so its size never grows
with traffic and two summaries merge exactly by addition (DESIGN §1, §4); sums of scores are
exact (:mod:`driftline.detectors.exact`), so the merge of the summaries of any split of the
events equals the summary of them all, bit for bit, in any order. Folding is vectorised: one
``np.searchsorted`` (or one C-level dict look-up per categorical value) and one ``np.bincount``
per column per batch, and no Python bytecode per value. Stage 1 goes one step further for
numeric features (:meth:`PaneSummary.fold_events`): it counts them straight from the events'
feature dicts (:mod:`driftline.detectors.fold`), without building columns. When the profile
has a multivariate part, each event's PCA reconstruction error is counted too
(:mod:`driftline.detectors.multivariate`).

Segments (``models.<m>.segments``): when the profile records segment values
(``ReferenceProfile.segments``, the top-K values per key of the reference), a pane summary
also holds one sub-summary per (segment key, value) seen, values outside the recorded ones
under :data:`OTHER`, of the features and the prediction (:func:`part_profile`); they fold,
merge and encode with the whole-model summary, so a pane partial carries its segments and
merges exactly as before.

This module also owns the summary's encoding (:meth:`PaneSummary.to_bytes`), the partial
stage 1 hands to stage 2.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType

import msgspec
import numpy as np

from driftline.detectors.batch import ColumnBatch, columns_from_events
from driftline.detectors.columns import (
    ColumnState,
    ColumnSummary,
    NumericColumnState,
    NumericColumnSummary,
    column_summary,
)
from driftline.detectors.exact import exact_sum, exact_value, int_from_bytes, int_to_bytes
from driftline.detectors.multivariate import MultivariateState, MultivariateSummary
from driftline.detectors.values import IntArray
from driftline.errors import DecodeError, StatisticsError, SummaryMismatchError
from driftline.schemas.reference import ReferenceProfile
from driftline.schemas.wire import WirePrediction

_NO_SEGMENTS: dict[str, str] = {}

__all__ = ["OTHER", "PaneSummary", "part_profile"]

OTHER = "other"
"""The segment of values outside a key's recorded top-K, and of events without the key."""


class _ScoreState(msgspec.Struct, array_like=True, frozen=True):
    column: NumericColumnState
    total: bytes


class _PaneState(msgspec.Struct, array_like=True, frozen=True):
    format: int
    model: str
    model_version: str
    content_hash: str
    unseen_cap: int
    n: int
    event_time_min: int | None
    event_time_max: int | None
    features: dict[str, ColumnState]
    prediction: ColumnState
    scores: dict[str, _ScoreState]
    max_score_total: bytes
    n_scored: int


class _MultivariatePaneState(_PaneState, array_like=True, frozen=True):
    """A pane state with the multivariate part; a pane without one encodes as a
    :class:`_PaneState`, to the bytes it always did, and decodes with ``None`` here."""

    multivariate: MultivariateState | None = None


class _SegmentedPaneState(_MultivariatePaneState, array_like=True, frozen=True):
    """A pane state with segment sub-summaries (key, value, their bytes); a pane without any
    encodes as before, and decodes with none here."""

    segments: list[tuple[str, str, bytes]] | None = None


_FORMAT = 1
_pane_encoder = msgspec.msgpack.Encoder()
_pane_decoder = msgspec.msgpack.Decoder(_SegmentedPaneState)


# --- the profile of a segment's part -----------------------------------------------------------

_PART_PROFILES: dict[int, tuple[ReferenceProfile, ReferenceProfile]] = {}


def part_profile(profile: ReferenceProfile) -> ReferenceProfile:
    """What a segment's part counts against: ``profile`` without its score and multivariate
    parts and segments (a segment is judged on its features and prediction only, so its part
    carries neither score histograms nor reconstruction errors). One object per profile object,
    so parts of the same profile merge without comparing profiles field by field."""
    cached = _PART_PROFILES.get(id(profile))
    if cached is not None and cached[0] is profile:
        return cached[1]
    if len(_PART_PROFILES) >= 64:  # a few versions per process: forget, never grow
        _PART_PROFILES.clear()
    part = profile.model_copy(update={"scores": {}, "multivariate": None, "segments": {}})
    _PART_PROFILES[id(profile)] = (profile, part)
    return part


# --- the pane summary -----------------------------------------------------------------------


class PaneSummary:
    """A fixed-size, mergeable summary of one pane of prediction traffic.

    Built from the model version's :class:`~driftline.schemas.reference.ReferenceProfile`;
    :meth:`fold` adds a :class:`~driftline.detectors.batch.ColumnBatch` (vectorised, one
    ``searchsorted`` + ``bincount`` per column); :meth:`merge` adds two summaries exactly, so
    merging the summaries of any split of the events equals folding them all at once, bit for
    bit, in any order.
    :meth:`to_bytes` / :meth:`from_bytes` carry it between stage 1 and stage 2.

    Per feature it holds the counts over the reference bins (numeric) or the profile's
    categories plus an other/unseen slot (categorical), with nulls, type errors and
    out-of-range counts; the same for the prediction; per class of the profile's scores a
    histogram over the score profile's bins and the exact sum of the scores; and the exact sum
    of each event's largest score, for a label-free expected accuracy.

    Parameters
    ----------
    profile
        The reference the bins and categories come from.
    unseen_cap
        Most names of unseen categories kept per column (their total is always counted).
    segmented
        Whether to fold the profile's segments too (False for a segment's own summary).

    Examples
    --------
    >>> from driftline.detectors.profile import build_profile
    >>> ref = build_profile("m", "1", "binary", {"x": [0.1, 0.2, 0.3, 0.4]}, [0, 0, 1, 1],
    ...                     scores={"1": [0.2, 0.4, 0.6, 0.8]}, bins=10)
    >>> a = PaneSummary(ref).fold(ColumnBatch.from_columns(
    ...     ref, {"x": [0.15, 0.35]}, [0, 1], scores={"1": [0.3, 0.9]}, event_time_ms=[5, 9]))
    >>> b = PaneSummary(ref).fold(ColumnBatch.from_columns(
    ...     ref, {"x": [9.0]}, [1], scores={"1": [0.7]}, event_time_ms=[7]))
    >>> both = a.merge(b)
    >>> both.n, both.features["x"].above_range, both.prediction.counts.tolist()
    (3, 1, [1, 2, 0])
    >>> round(both.score_mean("1"), 6), (both.event_time_min, both.event_time_max)
    (0.633333, (5, 9))
    >>> PaneSummary.from_bytes(both.to_bytes(), ref) == both
    True
    """

    def __init__(
        self, profile: ReferenceProfile, *, unseen_cap: int = 100, segmented: bool = True
    ) -> None:
        if isinstance(unseen_cap, bool) or not isinstance(unseen_cap, int) or unseen_cap < 0:
            raise StatisticsError(f"unseen_cap must be an integer >= 0, got {unseen_cap!r}")
        self._profile = profile
        self._unseen_cap = unseen_cap
        self._segment_values: dict[str, frozenset[str]] = (
            {key: frozenset(values) for key, values in profile.segments.items()}
            if segmented
            else {}
        )
        self._part_profile = part_profile(profile) if self._segment_values else profile
        self.reset()

    def reset(self) -> None:
        """Forget everything folded so far (all state is created here)."""
        profile, cap = self._profile, self._unseen_cap
        self._n = 0
        self._t_min: int | None = None
        self._t_max: int | None = None
        self._features: dict[str, ColumnSummary] = {
            name: column_summary(col, cap) for name, col in profile.features.items()
        }
        self._prediction: ColumnSummary = column_summary(profile.prediction, cap)
        self._scores: dict[str, NumericColumnSummary] = {
            name: NumericColumnSummary(col) for name, col in profile.scores.items()
        }
        self._score_totals: dict[str, int] = dict.fromkeys(profile.scores, 0)
        self._max_score_total = 0
        self._n_scored = 0
        mv = profile.multivariate
        self._multivariate = None if mv is None else MultivariateSummary(mv)
        self._segments: dict[tuple[str, str], PaneSummary] = {}

    # -- updating ---------------------------------------------------------------------------

    def fold(self, batch: ColumnBatch) -> PaneSummary:
        """Add a batch of events; returns ``self``."""
        return self._fold(batch, numeric=True)

    def _fold(self, batch: ColumnBatch, *, numeric: bool) -> PaneSummary:
        """:meth:`fold`; with ``numeric=False`` the numeric features were counted already."""
        self._check_batch(batch, numeric=numeric)
        if batch.n == 0:
            return self
        if numeric and self._multivariate is not None:
            self._multivariate.fold_columns(batch.numeric)
        for name, column in self._features.items():
            if isinstance(column, NumericColumnSummary):
                if numeric:
                    column.fold(batch.numeric[name], batch.type_errors.get(name, 0))
            else:
                column.fold(batch.categorical[name])
        if isinstance(self._prediction, NumericColumnSummary):
            self._prediction.fold(batch.prediction, batch.prediction_type_errors)  # type: ignore[arg-type]
        else:
            self._prediction.fold(batch.prediction)  # type: ignore[arg-type]
        if self._scores:
            top = np.full(batch.n, np.nan)
            for name, column in self._scores.items():
                values = batch.scores[name]
                column.fold(values)
                self._score_totals[name] += exact_sum(values[~np.isnan(values)])
                np.fmax(top, values, out=top)  # fmax ignores NaN, and warns about nothing
            scored = top[~np.isnan(top)]
            self._max_score_total += exact_sum(scored)
            self._n_scored += int(scored.shape[0])
        self._n += batch.n
        t_min, t_max = int(batch.event_time_ms.min()), int(batch.event_time_ms.max())
        self._t_min = t_min if self._t_min is None else min(self._t_min, t_min)
        self._t_max = t_max if self._t_max is None else max(self._t_max, t_max)
        return self

    def fold_events(self, events: Sequence[WirePrediction]) -> PaneSummary:
        """The same as ``fold(columns_from_events(events, profile))``, faster: numeric
        features are counted straight from the events' feature dicts
        (:meth:`~driftline.detectors.columns.NumericColumnSummary.fold_feature_dicts`)."""
        numeric = {
            name: column
            for name, column in self._features.items()
            if isinstance(column, NumericColumnSummary)
        }
        batch = columns_from_events(events, self._profile, numeric=not numeric)
        if numeric and events:
            dicts = [ev.features for ev in events]
            if self._multivariate is None:
                NumericColumnSummary.fold_feature_dicts(numeric, dicts)
            else:  # both in one walk of each dict
                self._multivariate.fold_feature_dicts(dicts, numeric)
        if self._segment_values and events:
            self._fold_segments(events)
        return self._fold(batch, numeric=not numeric)

    def _fold_segments(self, events: Sequence[WirePrediction]) -> None:
        """Fold each event into its segment's summary, once per segment key."""
        tags = [event.segments or _NO_SEGMENTS for event in events]
        for key, tracked in self._segment_values.items():
            groups: dict[str, list[WirePrediction]] = {}
            for event, tag in zip(events, tags, strict=True):
                value = tag.get(key)
                groups.setdefault(value if value in tracked else OTHER, []).append(event)
            for value in sorted(groups):
                self._segment(key, value).fold_events(groups[value])

    def _segment(self, key: str, value: str) -> PaneSummary:
        segment = self._segments.get((key, value))
        if segment is None:
            segment = PaneSummary(self._part_profile, unseen_cap=self._unseen_cap, segmented=False)
            self._segments[key, value] = segment
        return segment

    def _check_batch(self, batch: ColumnBatch, *, numeric: bool = True) -> None:
        numeric_names = {n for n, c in self._features.items() if c.kind == "numeric"}
        categorical = set(self._features) - numeric_names
        numeric_names = numeric_names if numeric else set()
        if not (numeric_names <= batch.numeric.keys() and categorical <= batch.categorical.keys()):
            raise StatisticsError(
                "batch does not have the profile's columns (numeric: "
                f"{sorted(numeric_names - batch.numeric.keys())} missing, categorical: "
                f"{sorted(categorical - batch.categorical.keys())} missing); build it with "
                "columns_from_events or ColumnBatch.from_columns and the same profile"
            )
        if not self._scores.keys() <= batch.scores.keys():
            raise StatisticsError(
                f"batch lacks score columns {sorted(self._scores.keys() - batch.scores.keys())}"
            )

    def merge(self, other: PaneSummary) -> PaneSummary:
        """A new summary holding both; exact, associative and commutative."""
        if not self._same_reference(other):
            raise SummaryMismatchError(
                "other: cannot merge summaries of different reference profiles or unseen caps "
                f"({self._identity()} vs {other._identity()})"
            )
        merged = object.__new__(PaneSummary)
        merged._profile, merged._unseen_cap = self._profile, self._unseen_cap
        merged._n = self._n + other._n
        merged._t_min, merged._t_max = self._t_min, self._t_max
        if other._t_min is not None and other._t_max is not None:
            if merged._t_min is None or merged._t_max is None:
                merged._t_min, merged._t_max = other._t_min, other._t_max
            else:
                merged._t_min = min(merged._t_min, other._t_min)
                merged._t_max = max(merged._t_max, other._t_max)
        merged._features = {
            name: column.merge(other._features[name])  # type: ignore[arg-type]
            for name, column in self._features.items()
        }
        merged._prediction = self._prediction.merge(other._prediction)  # type: ignore[arg-type]
        merged._scores = {
            name: score.merge(other._scores[name]) for name, score in self._scores.items()
        }
        merged._score_totals = {
            name: total + other._score_totals[name] for name, total in self._score_totals.items()
        }
        merged._max_score_total = self._max_score_total + other._max_score_total
        merged._n_scored = self._n_scored + other._n_scored
        merged._multivariate = (
            None
            if self._multivariate is None or other._multivariate is None
            else self._multivariate.merge(other._multivariate)
        )
        merged._segment_values = self._segment_values
        merged._part_profile = self._part_profile
        merged._segments = {}
        for slice_ in sorted(self._segments.keys() | other._segments.keys()):
            mine, theirs = self._segments.get(slice_), other._segments.get(slice_)
            if mine is None or theirs is None:
                known = mine if theirs is None else theirs
                assert known is not None
                empty = PaneSummary(
                    self._part_profile, unseen_cap=self._unseen_cap, segmented=False
                )
                merged._segments[slice_] = known.merge(empty)  # a copy, never shared
            else:
                merged._segments[slice_] = mine.merge(theirs)
        return merged

    def _identity(self) -> tuple[str, str, str, int]:
        p = self._profile
        return p.model, p.model_version, p.content_hash, self._unseen_cap

    def _same_reference(self, other: PaneSummary) -> bool:
        return self._identity() == other._identity() and (
            self._profile is other._profile or self._profile == other._profile
        )

    # -- reading ----------------------------------------------------------------------------

    @property
    def profile(self) -> ReferenceProfile:
        """The reference this summary counts against."""
        return self._profile

    @property
    def n(self) -> int:
        """Events folded."""
        return self._n

    @property
    def event_time_min(self) -> int | None:
        """Earliest event time folded (epoch ms), None when empty."""
        return self._t_min

    @property
    def event_time_max(self) -> int | None:
        """Latest event time folded (epoch ms), None when empty."""
        return self._t_max

    @property
    def features(self) -> Mapping[str, ColumnSummary]:
        """Per-feature column summaries, in the profile's feature order."""
        return MappingProxyType(self._features)

    @property
    def prediction(self) -> ColumnSummary:
        """The prediction's column summary (numeric for regression, else categorical)."""
        return self._prediction

    @property
    def scores(self) -> Mapping[str, NumericColumnSummary]:
        """Per-class score histograms over the profile's score bins."""
        return MappingProxyType(self._scores)

    def counts(self, feature: str) -> IntArray:
        """The feature's counts over its reference bins or categories (+ other slot)."""
        return self._features[feature].counts

    def missing_rate(self, feature: str) -> float | None:
        """Share of events missing the feature (type errors included); None when empty."""
        column = self._features[feature]
        return (column.nulls + column.type_errors) / self._n if self._n else None

    def score_total(self, cls: str) -> float:
        """Sum of the scores given for class ``cls`` (correctly rounded from the exact sum)."""
        return exact_value(self._score_totals[cls])

    def score_mean(self, cls: str) -> float | None:
        """Mean score of class ``cls`` over the events that scored it; None when none did."""
        n = self._scores[cls].n
        return exact_value(self._score_totals[cls]) / n if n else None

    @property
    def multivariate(self) -> MultivariateSummary | None:
        """The reconstruction errors' counts, when the profile has a multivariate part."""
        return self._multivariate

    @property
    def segments(self) -> Mapping[tuple[str, str], PaneSummary]:
        """The summary of each (segment key, value) seen, values outside the profile's
        top-K under :data:`OTHER`; empty when the profile records no segments."""
        return MappingProxyType(self._segments)

    @property
    def n_scored(self) -> int:
        """Events with at least one score for a class of the profile."""
        return self._n_scored

    @property
    def max_score_total(self) -> float:
        """Sum over scored events of their largest class score."""
        return exact_value(self._max_score_total)

    @property
    def expected_accuracy(self) -> float | None:
        """Label-free expected accuracy: the mean largest score (CBPE-style, needs calibrated
        scores and argmax predictions); None when no event was scored."""
        return exact_value(self._max_score_total) / self._n_scored if self._n_scored else None

    # -- bytes ------------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """A compact msgpack encoding; :meth:`from_bytes` restores it exactly."""
        p = self._profile
        fields: dict[str, object] = (
            {} if self._multivariate is None else {"multivariate": self._multivariate.state()}
        )
        state_type: type[_PaneState] = _MultivariatePaneState if fields else _PaneState
        if self._segments:
            fields["segments"] = [
                (key, value, self._segments[key, value].to_bytes())
                for key, value in sorted(self._segments)
            ]
            state_type = _SegmentedPaneState
        state = state_type(
            format=_FORMAT,
            model=p.model,
            model_version=p.model_version,
            content_hash=p.content_hash,
            unseen_cap=self._unseen_cap,
            n=self._n,
            event_time_min=self._t_min,
            event_time_max=self._t_max,
            features={name: col.state() for name, col in self._features.items()},
            prediction=self._prediction.state(),
            scores={
                name: _ScoreState(col.state(), int_to_bytes(self._score_totals[name]))
                for name, col in self._scores.items()
            },
            max_score_total=int_to_bytes(self._max_score_total),
            n_scored=self._n_scored,
            **fields,
        )
        return _pane_encoder.encode(state)

    @classmethod
    def from_bytes(
        cls, data: bytes, profile: ReferenceProfile, *, segmented: bool = True
    ) -> PaneSummary:
        """Decode :meth:`to_bytes` output; ``profile`` must be the one it was built from.

        Raises :class:`~driftline.errors.DecodeError` (kind ``invalid_summary``) for bytes
        that are not a summary of this profile.
        """
        try:
            state = _pane_decoder.decode(data)
        except msgspec.MsgspecError as exc:
            raise DecodeError(f"not a pane summary: {exc}", kind="invalid_summary") from None
        if state.format != _FORMAT:
            raise DecodeError(
                f"pane summary format {state.format} is not supported (expected {_FORMAT})",
                kind="invalid_summary",
            )
        identity = (profile.model, profile.model_version, profile.content_hash)
        if (state.model, state.model_version, state.content_hash) != identity:
            raise DecodeError(
                f"pane summary of {state.model}/{state.model_version} "
                f"(reference {state.content_hash[:12]}) does not match the profile "
                f"{profile.model}/{profile.model_version} ({profile.content_hash[:12]})",
                kind="invalid_summary",
            )
        summary = cls(profile, unseen_cap=state.unseen_cap, segmented=segmented)
        try:
            summary._load(state)
        except (KeyError, ValueError, TypeError) as exc:
            raise DecodeError(
                f"pane summary does not fit the profile: {exc}", kind="invalid_summary"
            ) from None
        return summary

    def _load(self, state: _SegmentedPaneState) -> None:
        if state.features.keys() != self._features.keys() or (
            state.scores.keys() != self._scores.keys()
        ):
            raise StatisticsError("features or score classes differ")
        self._n = state.n
        self._t_min, self._t_max = state.event_time_min, state.event_time_max
        for name, column in self._features.items():
            column.restore(state.features[name])
        self._prediction.restore(state.prediction)
        for name, score in self._scores.items():
            score.restore(state.scores[name].column)
            self._score_totals[name] = int_from_bytes(state.scores[name].total)
        self._max_score_total = int_from_bytes(state.max_score_total)
        self._n_scored = state.n_scored
        if state.multivariate is not None:
            if self._multivariate is None:
                raise StatisticsError("a multivariate part was encoded, the profile has none")
            self._multivariate.restored(state.multivariate)
        for key, value, raw in state.segments or ():
            tracked = self._segment_values.get(key)
            if tracked is None or (value not in tracked and value != OTHER):
                raise StatisticsError(f"segment {key}={value} is not one the profile records")
            self._segments[key, value] = PaneSummary.from_bytes(
                raw, self._part_profile, segmented=False
            )

    # -- comparison -------------------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PaneSummary):
            return NotImplemented
        return (
            self._same_reference(other)
            and (self._n, self._t_min, self._t_max) == (other._n, other._t_min, other._t_max)
            and self._features == other._features
            and self._prediction == other._prediction
            and self._scores == other._scores
            and self._score_totals == other._score_totals
            and (self._max_score_total, self._n_scored) == (other._max_score_total, other._n_scored)
            and self._multivariate == other._multivariate
            and self._segments == other._segments
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        p = self._profile
        return (
            f"PaneSummary(model={p.model!r}, version={p.model_version!r}, n={self._n}, "
            f"features={len(self._features)})"
        )
