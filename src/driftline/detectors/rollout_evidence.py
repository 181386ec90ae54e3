"""The evidence comparing a challenger with the champion on live traffic, as mergeable sums.

Each labelled example gives each version a *score*: its contribution to the model's metric,
oriented so that higher is better and bounded (:class:`RolloutMetric`: correctness for
accuracy, minus the capped per-example loss for log loss and regression errors).

- **Shadow** (:class:`PairedEvidence`): both versions predicted the same input and one label
  scores both; the evidence is the per-example difference ``d = score(challenger) -
  score(champion)``, kept as its count, exact sum and exact sum of squares
  (:mod:`driftline.detectors.exact`) and its smallest and largest value.
- **Canary** (:class:`UnpairedEvidence`): the versions answered different requests; the
  evidence is the same sums of the scores per version.

Both are fixed-size and merge exactly (the merge of a split equals the fold of the whole), so
windows, partitions and restarts add up; :mod:`driftline.detectors.rollout` decides on them.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Self

import numpy as np
from numpy.typing import ArrayLike

from driftline.detectors.confidence import difference_bounds, mean_bounds
from driftline.detectors.exact import UNIT, exact_square_sum, exact_sum, exact_value
from driftline.detectors.values import FloatArray, to_categorical, to_numeric
from driftline.errors import StatisticsError, SummaryMismatchError

__all__ = [
    "Evidence",
    "PairedEvidence",
    "Role",
    "RolloutMetric",
    "UnpairedEvidence",
    "evidence_from_snapshot",
]

MetricName = Literal["accuracy", "log_loss", "absolute_error", "squared_error"]
Role = Literal["champion", "challenger"]
_METRICS: tuple[MetricName, ...] = ("accuracy", "log_loss", "absolute_error", "squared_error")
_LOG_LOSS_CAP = 10.0


@dataclass(frozen=True)
class RolloutMetric:
    """The per-example score a rollout compares, higher is better, within ``[lower, upper]``.

    ``accuracy``: 1 for a correct prediction, else 0. ``log_loss`` (binary: labels 0/1,
    predictions the probability of 1): minus the log loss, each loss capped at ``cap``
    (default 10, a probability below ``exp(-10)`` counts as that). ``absolute_error`` and
    ``squared_error``: minus the error, capped at ``cap``, which they need (the scale of a
    target is the user's to say). The decision is about the mean of these capped scores.

    >>> metric = RolloutMetric("absolute_error", cap=5.0)
    >>> (metric.lower, metric.upper), metric.scores([1.0, 2.0], [1.5, 9.0]).tolist()
    ((-5.0, 0.0), [-0.5, -5.0])
    """

    name: MetricName
    cap: float | None = None

    def __post_init__(self) -> None:
        if self.name not in _METRICS:
            raise StatisticsError(f"metric must be one of {list(_METRICS)}, got {self.name!r}")
        if self.name == "accuracy":
            if self.cap is not None:
                raise StatisticsError("cap is not used by accuracy (its scores are 0 or 1)")
            return
        if self.name == "log_loss" and self.cap is None:
            object.__setattr__(self, "cap", _LOG_LOSS_CAP)
        cap = self.cap
        if isinstance(cap, bool) or not isinstance(cap, int | float) or not 0 < cap < math.inf:
            raise StatisticsError(
                f"cap must be a positive number for {self.name} (the largest per-example loss "
                f"counted), got {self.cap!r}"
            )

    @property
    def lower(self) -> float:
        """The lowest score an example can get."""
        return 0.0 if self.cap is None else -self.cap

    @property
    def upper(self) -> float:
        """The highest score an example can get."""
        return 1.0 if self.cap is None else 0.0

    def scores(
        self, labels: ArrayLike | Iterable[object], predictions: ArrayLike | Iterable[object]
    ) -> FloatArray:
        """One score per labelled prediction; raises on a missing or out-of-range value."""
        if self.name == "accuracy":
            truth, predicted = to_categorical(labels), to_categorical(predictions)
            _same_length(truth.shape[0], predicted.shape[0])
            if any(v is None for v in truth) or any(v is None for v in predicted):
                raise StatisticsError("accuracy scores need a label and a prediction per example")
            correct: FloatArray = np.asarray(truth == predicted, dtype=np.float64)
            return correct
        y, _ = to_numeric(labels)
        p, _ = to_numeric(predictions)
        _same_length(y.shape[0], p.shape[0])
        if not (np.isfinite(y).all() and np.isfinite(p).all()):
            raise StatisticsError(f"{self.name} scores need finite labels and predictions")
        cap = float(self.cap)  # type: ignore[arg-type]
        if self.name == "log_loss":
            if not np.isin(y, (0.0, 1.0)).all() or ((p < 0) | (p > 1)).any():
                raise StatisticsError(
                    "log_loss scores need labels 0 or 1 and probabilities of 1 in [0, 1]"
                )
            truth_probability = np.where(y == 1.0, p, 1.0 - p)
            loss = -np.log(np.maximum(truth_probability, math.exp(-cap)))
        else:
            with np.errstate(over="ignore"):  # an error beyond float64 is beyond the cap
                loss = np.abs(p - y) if self.name == "absolute_error" else (p - y) ** 2
        out: FloatArray = -np.minimum(loss, cap)
        return out


def _same_length(n_labels: int, n_predictions: int) -> None:
    if n_labels != n_predictions:
        raise StatisticsError(f"{n_predictions} predictions for {n_labels} labels")


class _Sums:
    """Count, exact sum and exact sum of squares of values, and their extremes."""

    def __init__(self) -> None:
        self.n = 0
        self.total = 0
        self.squares = 0
        self.low = math.inf
        self.high = -math.inf

    def fold(self, values: FloatArray) -> None:
        if values.size == 0:
            return
        self.total += exact_sum(values)
        self.squares += exact_square_sum(values)
        self.n += int(values.size)
        self.low = min(self.low, float(values.min()))
        self.high = max(self.high, float(values.max()))

    def merged(self, other: _Sums) -> _Sums:
        out = _Sums()
        out.n, out.total, out.squares = (
            self.n + other.n,
            self.total + other.total,
            self.squares + other.squares,
        )
        out.low, out.high = min(self.low, other.low), max(self.high, other.high)
        return out

    @property
    def mean(self) -> float | None:
        return exact_value(self.total) / self.n if self.n else None

    @property
    def m2(self) -> float:
        """The centred sum of squares, from exact integers (no cancellation)."""
        if not self.n:
            return 0.0
        # n * sum(x^2) - sum(x)^2, in units of 2**-2252, is exact; only the division rounds.
        return max(
            (self.n * self.squares * UNIT - self.total * self.total) / (self.n * UNIT * UNIT), 0.0
        )

    def triple(self) -> tuple[int, float, float]:
        return self.n, self.mean or 0.0, self.m2

    def state(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "sum": hex(self.total),
            "squares": hex(self.squares),
            "min": self.low if self.n else None,
            "max": self.high if self.n else None,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> _Sums:
        out = cls()
        out.n, out.total, out.squares = (
            int(state["n"]),
            int(state["sum"], 16),
            int(state["squares"], 16),
        )
        if out.n:
            out.low, out.high = float(state["min"]), float(state["max"])
        return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _Sums):
            return NotImplemented
        return self.state() == other.state()

    __hash__ = None  # type: ignore[assignment]


def _checked(metric: RolloutMetric, scores: ArrayLike, what: str) -> FloatArray:
    values = np.asarray(scores, dtype=np.float64).ravel()
    if not np.isfinite(values).all() or (
        values.size and (values.min() < metric.lower or values.max() > metric.upper)
    ):
        raise StatisticsError(
            f"{what} scores must be finite and within [{metric.lower}, {metric.upper}] "
            f"for {metric.name}"
        )
    return values


class _Evidence(ABC):
    """What both designs share: the metric, the snapshot's head and equality by snapshot."""

    design: ClassVar[str]

    def __init__(self, metric: RolloutMetric) -> None:
        self.metric = metric
        self.reset()

    @abstractmethod
    def reset(self) -> None:
        """Forget everything folded so far (all state is created here)."""

    @abstractmethod
    def _state(self) -> dict[str, Any]:
        """The design's own part of the snapshot."""

    def _check_mergeable(self, other: object) -> None:
        if not isinstance(other, type(self)) or other.metric != self.metric:
            raise SummaryMismatchError(
                f"cannot merge {self.design} evidence of {self.metric} with {other!r}"
            )

    def snapshot(self) -> dict[str, Any]:
        """The state as plain JSON data."""
        return {
            "design": self.design,
            "metric": self.metric.name,
            "cap": self.metric.cap,
            **self._state(),
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, type(self)):
            return NotImplemented
        return self.snapshot() == other.snapshot()

    __hash__ = None  # type: ignore[assignment]


class PairedEvidence(_Evidence):
    """Shadow evidence: per-example score differences, challenger minus champion, summed.

    Examples
    --------
    >>> evidence = PairedEvidence(RolloutMetric("accuracy"))
    >>> _ = evidence.update([1, 0, 1, 1], champion=[1, 1, 0, 1], challenger=[1, 0, 1, 0])
    >>> evidence.n, evidence.estimate, evidence.low, evidence.high
    (4, 0.25, -1.0, 1.0)
    """

    design: ClassVar[str] = "shadow"

    def reset(self) -> None:
        """Forget everything folded so far (all state is created here)."""
        self._sums = _Sums()

    def update(
        self,
        labels: ArrayLike | Iterable[object],
        champion: ArrayLike | Iterable[object],
        challenger: ArrayLike | Iterable[object],
    ) -> Self:
        """Fold labelled examples that both versions predicted; returns the evidence."""
        return self.update_scores(
            self.metric.scores(labels, champion), self.metric.scores(labels, challenger)
        )

    def update_scores(self, champion: ArrayLike, challenger: ArrayLike) -> Self:
        """Fold per-example scores of both versions, in the same order."""
        a = _checked(self.metric, champion, "champion")
        b = _checked(self.metric, challenger, "challenger")
        _same_length(a.shape[0], b.shape[0])
        self._sums.fold(b - a)
        return self

    def merge(self, other: PairedEvidence) -> PairedEvidence:
        """New evidence holding both; exact."""
        self._check_mergeable(other)
        merged = PairedEvidence(self.metric)
        merged._sums = self._sums.merged(other._sums)
        return merged

    @property
    def n(self) -> int:
        """Labelled pairs folded."""
        return self._sums.n

    @property
    def n_challenger(self) -> int:
        """Labels that scored the challenger (every pair)."""
        return self._sums.n

    @property
    def n_champion(self) -> int:
        """Labels that scored the champion (every pair)."""
        return self._sums.n

    @property
    def estimate(self) -> float | None:
        """Mean difference, challenger minus champion; None before any pair."""
        return self._sums.mean

    @property
    def low(self) -> float | None:
        """The smallest difference seen."""
        return self._sums.low if self.n else None

    @property
    def high(self) -> float | None:
        """The largest difference seen."""
        return self._sums.high if self.n else None

    def bounds(self, alpha: float) -> tuple[float, float]:
        """The confidence sequence for the mean difference at level ``1 - alpha``."""
        span = self.metric.upper - self.metric.lower
        lo, hi = mean_bounds(*self._sums.triple(), -span, span, alpha)
        return float(lo), float(hi)

    def _state(self) -> dict[str, Any]:
        return self._sums.state()


class UnpairedEvidence(_Evidence):
    """Canary evidence: each version's scores on its own requests, summed per version.

    Examples
    --------
    >>> evidence = UnpairedEvidence(RolloutMetric("accuracy"))
    >>> _ = evidence.update("champion", [1, 0], [1, 1]).update("challenger", [1, 0], [1, 0])
    >>> evidence.n_champion, evidence.n_challenger, evidence.estimate
    (2, 2, 0.5)
    """

    design: ClassVar[str] = "canary"

    def reset(self) -> None:
        """Forget everything folded so far (all state is created here)."""
        self._sums: dict[Role, _Sums] = {"champion": _Sums(), "challenger": _Sums()}

    def update(
        self,
        role: Role,
        labels: ArrayLike | Iterable[object],
        predictions: ArrayLike | Iterable[object],
    ) -> Self:
        """Fold labelled predictions of one version (``champion`` or ``challenger``)."""
        return self.update_scores(role, self.metric.scores(labels, predictions))

    def update_scores(self, role: Role, scores: ArrayLike) -> Self:
        """Fold per-example scores of one version."""
        if role not in self._sums:
            raise StatisticsError(f"role must be 'champion' or 'challenger', got {role!r}")
        self._sums[role].fold(_checked(self.metric, scores, role))
        return self

    def merge(self, other: UnpairedEvidence) -> UnpairedEvidence:
        """New evidence holding both; exact."""
        self._check_mergeable(other)
        merged = UnpairedEvidence(self.metric)
        merged._sums = {role: s.merged(other._sums[role]) for role, s in self._sums.items()}
        return merged

    @property
    def n(self) -> int:
        """Labelled predictions folded, both versions."""
        return self.n_champion + self.n_challenger

    @property
    def n_champion(self) -> int:
        """Labels that scored the champion."""
        return self._sums["champion"].n

    @property
    def n_challenger(self) -> int:
        """Labels that scored the challenger."""
        return self._sums["challenger"].n

    def mean(self, role: Role) -> float | None:
        """One version's mean score; None before its first label."""
        return self._sums[role].mean

    @property
    def estimate(self) -> float | None:
        """Difference of the mean scores, challenger minus champion."""
        challenger, champion = self.mean("challenger"), self.mean("champion")
        return None if challenger is None or champion is None else challenger - champion

    def bounds(self, alpha: float) -> tuple[float, float]:
        """The confidence sequence for the difference of the means at level ``1 - alpha``."""
        lo, hi = difference_bounds(
            self._sums["challenger"].triple(),
            self._sums["champion"].triple(),
            self.metric.lower,
            self.metric.upper,
            alpha,
        )
        return float(lo), float(hi)

    def _state(self) -> dict[str, Any]:
        return {role: s.state() for role, s in self._sums.items()}


Evidence = PairedEvidence | UnpairedEvidence


def evidence_from_snapshot(snapshot: Mapping[str, Any]) -> Evidence:
    """Evidence restored from its :meth:`~PairedEvidence.snapshot`; a snapshot that is not
    one is a :class:`~driftline.errors.StatisticsError`.

    >>> evidence_from_snapshot({"design": "shadow"})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    driftline.errors.StatisticsError: not a snapshot of rollout evidence (missing 'metric')
    """
    try:
        metric = RolloutMetric(snapshot["metric"], cap=snapshot["cap"])
        if snapshot.get("design") == "shadow":
            paired = PairedEvidence(metric)
            paired._sums = _Sums.from_state(snapshot)
            return paired
        if snapshot.get("design") == "canary":
            unpaired = UnpairedEvidence(metric)
            unpaired._sums = {
                role: _Sums.from_state(snapshot[role]) for role in ("champion", "challenger")
            }
            return unpaired
    except KeyError as error:
        raise StatisticsError(f"not a snapshot of rollout evidence (missing {error})") from error
    except (TypeError, ValueError) as error:
        raise StatisticsError(f"not a snapshot of rollout evidence ({error})") from error
    raise StatisticsError(f"design must be 'shadow' or 'canary', got {snapshot.get('design')!r}")
