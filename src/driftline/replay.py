"""Backtesting: run the statistics engine over files of events, as the service would have.

``driftline replay predictions.jsonl [--ground-truth labels.jsonl]`` answers "what would
driftline have said last month": events are decoded with the same decoder as ingest, folded
into event-time panes, labels joined by ``prediction_id`` and attributed to their prediction's
window, every window judged with the same policy as stage 2.

A model version judged needs a reference: a profile file (``--reference``, as written by
``driftline reference build``), or else its own first ``warmup_events`` events, which then
only build the baseline and are not judged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from driftline.config import Settings
from driftline.detectors.concept import make_detector
from driftline.detectors.engine import ModelMonitor, WindowReport
from driftline.detectors.profile import profile_from_events
from driftline.detectors.task import infer_task
from driftline.errors import DecodeError, ReplayError
from driftline.schemas.events import Task
from driftline.schemas.reference import ReferenceProfile
from driftline.schemas.wire import (
    WireGroundTruth,
    WirePrediction,
    decode_ground_truth,
    decode_prediction,
    event_time_ms,
)

_CHUNK = 10_000


@dataclass(frozen=True, slots=True)
class Rejected:
    """A line of an input file that is not a valid event, and why."""

    path: str
    line: int
    reason: str


@dataclass
class ReplayResult:
    """The reports of every judged window, in order, and what could not be used."""

    reports: list[WindowReport] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    baselined: dict[tuple[str, str], int] = field(default_factory=dict)
    unlabelled: int = 0


def read_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """Non-empty lines of a JSON-lines file, numbered from 1."""
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            stripped = line.strip()
            if stripped:
                yield number, stripped


def _decode_all(path: Path, decode: Callable[[bytes], Any], rejected: list[Rejected]) -> list[Any]:
    events = []
    for number, line in read_lines(path):
        try:
            events.append(decode(line))
        except DecodeError as exc:
            rejected.append(Rejected(str(path), number, exc.reason))
    return events


def _score_columns(events: Sequence[WirePrediction]) -> dict[str, np.ndarray] | None:
    classes = sorted({c for e in events if e.scores for c in e.scores})
    if not classes:
        return None
    return {
        c: np.array([(e.scores or {}).get(c, np.nan) for e in events], dtype=np.float64)
        for c in classes
    }


def _errors(task: Task, labels: Sequence[object], predictions: Sequence[object]) -> np.ndarray:
    if task == "regression":
        return np.abs(np.array(labels, dtype=np.float64) - np.array(predictions, dtype=np.float64))
    return np.array(
        [str(a) != str(b) for a, b in zip(labels, predictions, strict=True)], dtype=np.float64
    )


def replay(
    predictions: Path,
    ground_truth: Path | None = None,
    *,
    settings: Settings | None = None,
    references: Mapping[tuple[str, str], ReferenceProfile] | None = None,
    warmup_events: int | None = None,
) -> ReplayResult:
    """Judge every window of every model version found in ``predictions``.

    ``references`` maps (model, version) to a profile; a version without one is baselined on
    its first ``warmup_events`` events (default: its configuration's ``warmup_events``).
    """
    settings = settings or Settings()
    references = references or {}
    result = ReplayResult()
    events: list[WirePrediction] = _decode_all(predictions, decode_prediction, result.rejected)
    truths: list[WireGroundTruth] = (
        _decode_all(ground_truth, decode_ground_truth, result.rejected)
        if ground_truth is not None
        else []
    )
    label_of = {t.prediction_id: t for t in truths}
    groups: dict[tuple[str, str], list[WirePrediction]] = {}
    for event in events:
        groups.setdefault((event.model, event.model_version), []).append(event)

    for (model, version), group in sorted(groups.items()):
        group.sort(key=lambda e: event_time_ms(e.timestamp))
        profile = references.get((model, version))
        task = profile.task if profile is not None else infer_task(group)
        config = settings.model(model, task)
        if profile is None:
            warmup = config.warmup_events if warmup_events is None else warmup_events
            if warmup < 1 or len(group) <= warmup:
                raise ReplayError(
                    f"model {model!r} version {version!r} has no reference profile and "
                    f"{len(group)} events, not more than the warm-up of {warmup}: pass "
                    "--reference, or a smaller --warmup"
                )
            profile = profile_from_events(group[:warmup], task, config, label_of)
            group = group[warmup:]
            result.baselined[(model, version)] = warmup
        monitor = ModelMonitor(profile, config)
        detector = make_detector(config.performance.concept_detector)
        for start in range(0, len(group), _CHUNK):
            chunk = group[start : start + _CHUNK]
            monitor.fold_events(chunk)
            labelled = [
                (e, label_of[e.prediction_id]) for e in chunk if e.prediction_id in label_of
            ]
            result.unlabelled += len(chunk) - len(labelled)
            if not labelled:
                continue
            preds = [e for e, _ in labelled]
            times = np.array([event_time_ms(e.timestamp) for e in preds], dtype=np.int64)
            labels = [t.label for _, t in labelled]
            predicted = [e.prediction for e in preds]
            delays = np.array([event_time_ms(t.timestamp) for _, t in labelled]) - times
            monitor.fold_labels(
                times, labels, predicted, _score_columns(preds), np.maximum(delays, 0)
            )
            # The detector reads errors in prediction order; it flags the panes it fired in.
            detector.update(_errors(task, labels, predicted))
            monitor.flag_concept_drift(times[list(detector.drift_positions)].tolist())
        last = event_time_ms(group[-1].timestamp) if group else 0
        far_future = (
            last
            + monitor.lateness_ms
            + max(int(w.size.total_seconds() * 1000) for w in config.windows)
            + monitor.pane_ms
        )
        for window in monitor.due(far_future):
            result.reports.append(monitor.evaluate(window))
    result.reports.sort(key=lambda r: (r.window.end_ms, r.model, r.version, r.window.label))
    return result
