"""What every test between a window and the reference returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ResultKind = Literal[
    "feature_drift",
    "prediction_drift",
    "label_drift",
    "performance",
    "concept_drift",
    "data_quality",
]


@dataclass(frozen=True, slots=True)
class TestResult:
    """One statistic of one column in one window, with the evidence a decision needs.

    ``statistic`` is the effect size (PSI, KS D, Jensen-Shannon distance, ...) and decides;
    ``p_value`` guards (None where no p-value is defined). ``drifted`` is this test's own verdict
    against ``threshold`` alone, before any correction across features or persistence, which
    the decision policy applies. ``bound`` is the largest error of ``statistic`` against the
    exact value on raw samples where the binned computation has one (KS), else 0.

    >>> r = TestResult("psi", "amount", 0.31, 1e-12, 0.2, 50_000, 10_000, True)
    >>> r.test, r.drifted
    ('psi', True)
    """

    __test__ = False  # a result type, not a pytest test class

    test: str
    column: str
    statistic: float
    p_value: float | None
    threshold: float
    n_reference: int
    n_current: int
    drifted: bool
    kind: ResultKind = "feature_drift"
    bound: float = 0.0
    segment_key: str | None = None
    """The segment key when this result judges one segment's slice; None: the whole model."""
    segment: str | None = None
    """The segment's value (``other`` for values outside the profile's top-K)."""
