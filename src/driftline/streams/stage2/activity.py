"""What stage 2's pure core reports besides records: what became of partials, windows judged,
what it holds, partials dropped, windows that failed.

:class:`~driftline.streams.stage2.state.Stage2State` makes these; the faust wiring hands
them to the telemetry and the log (re-exported by :mod:`driftline.streams.stage2.state`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from driftline.detectors.engine import Window

__all__ = [
    "Activity",
    "ClosedWindow",
    "DroppedPartial",
    "Holding",
    "JudgeFailure",
    "PartialOutcome",
]


PartialOutcome = Literal["added", "replaced", "stale", "expired"]
"""What became of a partial: the first of its identity, a replacement of one that covered
less, ignored because the one held covers as much or more, or ignored because no window
needs its pane any more."""


@dataclass(frozen=True, slots=True)
class ClosedWindow:
    """A window judged by the core's ``apply`` or ``tick``
    (:class:`~driftline.streams.stage2.state.Stage2State`).

    ``due_ms`` is the ``now_ms`` of the call that judged it: the wall time at which the
    window became due (its watermark passed end plus lateness, an idle partition stopped
    being waited for, or its version's profile came). ``restated`` says it was judged before.
    It satisfies :class:`~driftline.telemetry.stage2.JudgedWindow`.
    """

    model: str
    version: str
    window: Window
    restated: bool
    due_ms: int
    points: int
    alerts: int
    retrain: bool


@dataclass
class Activity:
    """What the core did since its ``take_activity`` was last called
    (:class:`~driftline.streams.stage2.state.Stage2State`): partials by ``(kind, outcome)``
    (a :data:`PartialOutcome`), held partials dropped, windows judged, alerts resolved per
    model because a version's traffic stopped. It satisfies
    :class:`~driftline.telemetry.stage2.MergeActivity`."""

    # Keys typed as plain strings, as the telemetry reads them (a Mapping's keys are invariant).
    partials: Counter[tuple[str, str]] = field(default_factory=Counter)
    dropped: int = 0
    windows: list[ClosedWindow] = field(default_factory=list)
    stopped: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True, slots=True)
class Holding:
    """What the core holds of one model (:class:`~driftline.streams.stage2.state.Stage2State`):
    panes (version, pane start) with partials, the partials themselves (one per source
    partition), the closing watermark. It satisfies
    :class:`~driftline.telemetry.stage2.HeldModel`."""

    panes: int
    partials: int
    watermark_ms: int | None


@dataclass(frozen=True, slots=True)
class DroppedPartial:
    """A partial held while its version had no profile, dropped when the profile came
    because the partial did not fit it."""

    identity: tuple[str, str, int, int, str, str]
    reason: str


@dataclass(frozen=True, slots=True)
class JudgeFailure:
    """A window (or a model's whole tick) that raised while being judged; the others went on.

    ``version`` and ``window`` are None when the failure was not in one window's judgment.
    """

    model: str
    version: str | None
    window: Window | None
    reason: str

    def describe(self) -> str:
        """One line for a log or a dead letter's reason."""
        where = f"model {self.model!r}"
        if self.version is not None:
            where += f" version {self.version!r}"
        if self.window is not None:
            where += f" window ending {self.window.end_ms}"
        return f"{where} not judged: {self.reason}"
