"""The evidence of decided windows, and the alert state machine folded over it.

:class:`~driftline.detectors.policy.DecisionPolicy` keeps one :class:`WindowEvidence` per
decided window and folds them in event-time order through an :class:`AlertFold`: persistence
(the model is in drift when drift was found in k of its last n judged windows), hysteresis (a
firing alert resolves only after enough consecutive clean windows) and severity. Restating a
window refolds from a copy of the fold, so a window is never counted twice.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Final

from driftline.schemas.outputs import Reason, Severity

__all__ = ["CRITICAL_FEATURES", "CRITICAL_RATIO", "AlertFold", "AlertStep", "WindowEvidence"]

CRITICAL_FEATURES: Final = 3
"""Drifted columns in one window that make persistent drift ``critical``."""

CRITICAL_RATIO: Final = 2.0
"""Effect size, as a multiple of its threshold, that makes persistent drift ``critical``."""


@dataclass(slots=True)
class WindowEvidence:
    """The evidence of one decided window, as the fold needs it (JSON-able through ``dump``)."""

    start: int
    end: int
    drift_judged: bool = False
    drift: bool = False
    perf_judged: bool = False
    breach: bool = False
    concept: bool = False
    concept_confirmed: bool = False
    n_drifted: int = 0
    max_ratio: float = 0.0
    reasons: tuple[Reason, ...] = ()
    perf_reason: Reason | None = None

    @property
    def key(self) -> tuple[int, int]:
        return (self.start, self.end)

    @property
    def order(self) -> tuple[int, int]:
        return (self.end, self.start)

    def dump(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "drift_judged": self.drift_judged,
            "drift": self.drift,
            "perf_judged": self.perf_judged,
            "breach": self.breach,
            "concept": self.concept,
            "concept_confirmed": self.concept_confirmed,
            "n_drifted": self.n_drifted,
            "max_ratio": self.max_ratio,
            "reasons": [r.model_dump(mode="json") for r in self.reasons],
            "perf_reason": (
                None if self.perf_reason is None else self.perf_reason.model_dump(mode="json")
            ),
        }

    @classmethod
    def load(cls, data: dict[str, Any]) -> WindowEvidence:
        perf = data["perf_reason"]
        return cls(
            start=int(data["start"]),
            end=int(data["end"]),
            drift_judged=bool(data["drift_judged"]),
            drift=bool(data["drift"]),
            perf_judged=bool(data["perf_judged"]),
            breach=bool(data["breach"]),
            concept=bool(data["concept"]),
            concept_confirmed=bool(data.get("concept_confirmed", False)),
            n_drifted=int(data["n_drifted"]),
            max_ratio=float(data["max_ratio"]),
            reasons=tuple(Reason.model_validate(r) for r in data["reasons"]),
            perf_reason=None if perf is None else Reason.model_validate(perf),
        )


@dataclass(slots=True)
class AlertFold:
    """The alert state machine, advanced one window at a time in event-time order."""

    recent: deque[bool]
    firing: bool = False
    clean: int = 0
    last_drift: WindowEvidence | None = None

    def copy(self) -> AlertFold:
        """An independent copy."""
        recent = deque(self.recent, maxlen=self.recent.maxlen)
        return AlertFold(recent, self.firing, self.clean, self.last_drift)

    def advance(self, w: WindowEvidence, *, persistence_k: int, resolve_after: int) -> AlertStep:
        """Fold the next window in: ``persistence_k`` drifted of the last n make the model in
        drift, ``resolve_after`` clean windows resolve a firing alert."""
        fold = self
        if w.drift_judged or w.concept:
            # A concept-drift flag is drift evidence like a drifted feature: it must persist
            # (k of n windows) before it alerts, so one stray detection cannot retrain.
            fold.recent.append(w.drift or w.concept)
        if w.drift:
            fold.last_drift = w
        in_drift = sum(fold.recent) >= persistence_k
        if w.drift or w.breach or w.concept:
            fold.clean = 0
        elif w.drift_judged or w.perf_judged:
            fold.clean += 1
        problem = in_drift or w.breach or w.concept_confirmed
        resolved = False
        if problem:
            fold.firing = True
        elif fold.firing and fold.clean >= resolve_after:
            fold.firing = False
            resolved = True
        evidence = fold.last_drift if in_drift else None
        severity: Severity | None = None
        if w.breach or (
            evidence is not None
            and (evidence.n_drifted >= CRITICAL_FEATURES or evidence.max_ratio >= CRITICAL_RATIO)
        ):
            severity = "critical"
        elif in_drift or w.concept:
            severity = "warning"
        elif fold.firing:
            severity = "info"
        return AlertStep(in_drift, fold.firing, resolved, severity, evidence)


@dataclass(frozen=True, slots=True)
class AlertStep:
    """Where one window left the alert: in drift, firing, just resolved, how severe, and on
    which window's drift evidence."""

    in_drift: bool
    firing: bool
    resolved: bool
    severity: Severity | None
    evidence: WindowEvidence | None
