"""One model version in a replay: its warm-up, its panes and windows, its error stream.

A version with a reference profile folds its predictions as they come. One without holds
its predictions until its warm-up is settled: the first ``warmup_events`` in event time,
known once the predictions' watermark is a too-late horizon past the last of them (no
prediction accepted after that can be older); they build its profile, as ``driftline
replay`` always did, and are not judged.

A window is judged once, when it is final: no prediction can enter it any more (the
watermark is the horizon past its end) and no label can (the watermark is ``label_wait``
past it; with the join TTL, the default, none can). The errors of joined pairs reach the
concept-drift detector in the order the pairs join, as in stage 1 (for a file sorted in time
with labels in order, the prediction order the old replay used); a label that joins a pane
already judged restates its windows (``label_wait`` shorter than the TTL), one that joins a
pane let go is counted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from driftline.config import ModelConfig, Settings
from driftline.detectors.concept import make_detector
from driftline.detectors.engine import ModelMonitor, WindowReport
from driftline.detectors.profile import profile_from_events
from driftline.detectors.task import infer_task
from driftline.errors import ReplayError
from driftline.schemas.events import Task
from driftline.schemas.reference import ReferenceProfile
from driftline.schemas.wire import WireGroundTruth, WirePrediction

_FAR = 2**62


def horizon_ms(config: ModelConfig) -> int:
    """How far behind the watermark a prediction is still accepted (stage 1's too-late
    horizon): the longest window, the allowed lateness and one pane."""
    longest = max(w.size for w in config.windows)
    return int((longest + config.allowed_lateness + config.pane).total_seconds() * 1000)


def score_columns(scores: Sequence[Mapping[str, float] | None]) -> dict[str, np.ndarray] | None:
    """Per-class score columns (NaN where an event has no score for a class)."""
    classes = sorted({c for s in scores if s for c in s})
    if not classes:
        return None
    return {
        c: np.array([(s or {}).get(c, np.nan) for s in scores], dtype=np.float64) for c in classes
    }


def errors_of(task: Task, labels: Sequence[object], predicted: Sequence[object]) -> np.ndarray:
    """The error stream of joined pairs: absolute residuals, or 0/1 misclassifications."""
    if task == "regression":
        return np.abs(np.array(labels, dtype=np.float64) - np.array(predicted, dtype=np.float64))
    return np.array(
        [str(a) != str(b) for a, b in zip(labels, predicted, strict=True)], dtype=np.float64
    )


@dataclass
class Held:
    """Predictions (with their row in the file) and labels of a version in warm-up."""

    times: list[int] = field(default_factory=list)
    seqs: list[int] = field(default_factory=list)
    events: list[WirePrediction] = field(default_factory=list)
    labels: dict[str, WireGroundTruth] = field(default_factory=dict)


class VersionReplay:
    """The replay of one (model, version).

    Parameters
    ----------
    model, version
        The version's identity.
    settings
        Per-model configuration.
    profile
        Its reference profile, or None: baselined on its first ``warmup`` events.
    warmup
        Warm-up events of a version without a profile (None: its configuration's).
    label_wait_ms
        How long after a window's end (in event time) it waits for labels before it is
        judged; None: its horizon alone (no labels expected).
    """

    def __init__(
        self,
        model: str,
        version: str,
        settings: Settings,
        profile: ReferenceProfile | None,
        warmup: int | None,
        label_wait_ms: int,
    ) -> None:
        self.model, self.version = model, version
        self._settings = settings
        timing = settings.model(model)
        self.horizon_ms = horizon_ms(timing)
        self.warmup = timing.warmup_events if warmup is None else warmup
        self.wait_ms = max(self.horizon_ms, label_wait_ms)
        self.held: Held | None = Held() if profile is None else None
        self.baselined = 0
        self.unlabelled = 0
        self.labels_let_go = 0
        self._fed_until = -_FAR
        self._kept_from = -_FAR
        self.monitor: ModelMonitor | None = None
        if profile is not None:
            self._start(profile)

    def _start(self, profile: ReferenceProfile) -> None:
        self.task: Task = profile.task
        self.config = self._settings.model(self.model, profile.task)
        self.monitor = ModelMonitor(profile, self.config)
        self.detector = make_detector(self.config.performance.concept_detector)

    @property
    def started(self) -> bool:
        """Whether the version has its profile (its predictions are folded as they come)."""
        return self.held is None

    # --- predictions and pairs in ----------------------------------------------------------

    def predictions(self, events: list[WirePrediction], times: list[int], seqs: list[int]) -> None:
        """Fold accepted predictions (or hold them, in warm-up)."""
        if self.held is not None:
            self.held.events.extend(events)
            self.held.times.extend(times)
            self.held.seqs.extend(seqs)
            return
        assert self.monitor is not None
        self.monitor.fold_events(events)
        self.unlabelled += len(events)

    def pairs(
        self,
        times: list[int],
        labels: list[Any],
        predicted: list[Any],
        scores: list[dict[str, float] | None],
        label_times: list[int],
        segments: list[dict[str, str] | None] | None = None,
    ) -> None:
        """Fold joined pairs into their predictions' panes (and, with the predictions'
        ``segments``, their slices), their errors into the detector."""
        assert self.monitor is not None
        at = np.array(times, dtype=np.int64)
        if int(at.min()) < self._kept_from:
            keep = at >= self._kept_from
            self.labels_let_go += int((~keep).sum())
            rows = np.flatnonzero(keep).tolist()
            times = [times[i] for i in rows]
            labels, predicted = [labels[i] for i in rows], [predicted[i] for i in rows]
            scores, label_times = [scores[i] for i in rows], [label_times[i] for i in rows]
            segments = None if segments is None else [segments[i] for i in rows]
            if not rows:
                return
            at = at[keep]
        delays = np.array(label_times, dtype=np.int64) - at
        self.monitor.fold_labels(
            at, labels, predicted, score_columns(scores), np.maximum(delays, 0), segments
        )
        self.unlabelled -= len(times)
        # As stage 1 does: errors in the order the pairs join (labels in file order).
        self.detector.update(errors_of(self.task, labels, predicted))
        self.monitor.flag_concept_drift(at[list(self.detector.drift_positions)].tolist())

    def hold_pair(self, prediction_id: str, truth: WireGroundTruth) -> None:
        """A label whose prediction is held in warm-up."""
        assert self.held is not None
        self.held.labels[prediction_id] = truth

    # --- warm-up ---------------------------------------------------------------------------

    def warmup_due(self, watermark_ms: int) -> bool:
        """Whether the warm-up events are known: enough held, and no prediction accepted
        from now on can be older than the last of them."""
        held = self.held
        if held is None or len(held.times) <= self.warmup or self.warmup < 1:
            return False
        nth = np.partition(np.array(held.times, dtype=np.int64), self.warmup - 1)[self.warmup - 1]
        return int(nth) <= watermark_ms - self.horizon_ms

    def settle_warmup(
        self, missing_labels: Callable[[set[str]], dict[str, WireGroundTruth]]
    ) -> tuple[list[str], list[WirePrediction], list[int], list[int], dict[str, WireGroundTruth]]:
        """Build the profile from the first ``warmup`` held events; returns the warm-up
        events' prediction ids, the rest (events, times, rows) and the labels held, to fold.
        ``missing_labels`` finds labels of warm-up events the join has not seen yet."""
        held = self.held
        assert held is not None
        n = len(held.events)
        if self.warmup < 1 or n <= self.warmup:
            raise ReplayError(
                f"model {self.model!r} version {self.version!r} has no reference profile and "
                f"{n} events, not more than the warm-up of {self.warmup}: pass "
                "--reference, or a smaller --warmup"
            )
        order = sorted(range(n), key=lambda i: (held.times[i], held.seqs[i]))
        events = [held.events[i] for i in order]
        task = infer_task(events)
        warm = events[: self.warmup]
        missing = {e.prediction_id for e in warm} - held.labels.keys()
        if missing:
            held.labels.update(missing_labels(missing))
        config = self._settings.model(self.model, task)
        profile = profile_from_events(warm, task, config, held.labels)
        self.held = None
        self.baselined = self.warmup
        self._start(profile)
        rest = order[self.warmup :]
        return (
            [e.prediction_id for e in warm],
            [held.events[i] for i in rest],
            [held.times[i] for i in rest],
            [held.seqs[i] for i in rest],
            held.labels,
        )

    # --- windows out -----------------------------------------------------------------------

    def close(self, watermark_ms: int) -> list[WindowReport]:
        """Judge the windows final at ``watermark_ms`` (a far one: every window)."""
        monitor = self.monitor
        if monitor is None:
            return []
        final = watermark_ms - self.wait_ms
        # A window that began before the panes let go is judged: it lost some of its panes,
        # so it is never judged again (a late label in the panes it has left restates only
        # the later windows that hold them).
        due = monitor.due(final + monitor.lateness_ms)
        reports = [monitor.evaluate(w) for w in due if w.start_ms >= self._kept_from]
        # Panes of windows judged that no later window holds, nor a label may still reach.
        kept_from = monitor.pane_of(final - monitor.longest_ms - monitor.pane_ms)
        if kept_from > self._kept_from:
            self._kept_from = kept_from
            monitor.prune(kept_from + monitor.lateness_ms + monitor.longest_ms + monitor.horizon_ms)
        return reports
