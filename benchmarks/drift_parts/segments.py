"""Part 3 of the behaviour benchmark: a shift confined to one segment of five.

Every event carries ``segments = {"segment": s0..s4}`` (uniform); the reference profile records
the five values (``models.<m>.segments.keys: [segment]``). After ``lead`` stationary windows,
``normal_2`` moves by ``SHIFT_SD`` standard deviations in segment ``s2`` only (a fifth of the
traffic: the whole model sees a fifth of the move). Pane summaries are folded from decoded
events with ``PaneSummary.fold_events`` (the stage-1 path that folds segments) and judged by
two monitors, ``drift.thresholds`` fixed and calibrated, with driftline's other defaults: the
segments' drift tests share the window's one corrected family with the whole model's.
Delays in windows from the first shifted one (0: that window itself) to the first window with
drift found in ``segment=s2``, with the alert firing and with a retrain request; plus the
delay of the whole-model result on ``normal_2`` alone (what the model would see without
segments) and false alarms (any drift found, alert or request) in the stationary lead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from common.report import Column, Table
from drift_parts.monitor import HOUR_MS, Clock, judge, model_config
from drift_parts.population import NORMAL, draw
from drift_parts.shifts import first
from driftline.config.settings import ModelConfig, SegmentSettings
from driftline.detectors.engine import ModelMonitor, WindowReport
from driftline.detectors.summary import PaneSummary
from driftline.schemas.reference import ReferenceProfile
from driftline.schemas.wire import WirePrediction

SEGMENTS = ("s0", "s1", "s2", "s3", "s4")
SHIFTED_SEGMENT = "s2"
COLUMN = "normal_2"
SHIFT_SD = 0.5
NAME = f"(s) mean +{SHIFT_SD} sd, {COLUMN}, in one segment of five"


@dataclass
class SegmentDetection:
    """Per threshold mode, per run: the delays, and false alarms before the shift."""

    delays: dict[tuple[str, str], list[int | None]] = field(default_factory=dict)
    false_before: dict[str, int] = field(default_factory=dict)
    windows_before: int = 0


def segmented(profile: ReferenceProfile) -> ReferenceProfile:
    """The profile with the five segment values recorded, as ``build_profile`` records them."""
    return profile.model_copy(update={"segments": {"segment": list(SEGMENTS)}})


def _config(mode: str) -> ModelConfig:
    return model_config(threshold_mode=mode).model_copy(
        update={"segments": SegmentSettings(keys=["segment"])}
    )


def window_events(
    events: int, rng: np.random.Generator, start_ms: int, shifted: bool
) -> list[WirePrediction]:
    """A window of decoded events, each tagged with its segment; ``COLUMN`` moved by
    ``SHIFT_SD`` standard deviations in ``SHIFTED_SEGMENT`` when ``shifted``."""
    sample = draw(events, rng)
    segment = rng.integers(0, len(SEGMENTS), events)
    if shifted:
        moved = segment == SEGMENTS.index(SHIFTED_SEGMENT)
        sample.numeric[COLUMN] = sample.numeric[COLUMN] + moved * SHIFT_SD * NORMAL[COLUMN][1]
    columns = {name: values.tolist() for name, values in sample.features().items()}
    names = list(columns)
    rows = zip(*(columns[n] for n in names), strict=True)
    p1 = sample.score.tolist()
    return [
        WirePrediction(
            event_id=f"e{start_ms}-{i}",
            prediction_id=f"p{start_ms}-{i}",
            model="bench",
            model_version="1",
            timestamp=start_ms + i,
            features=dict(zip(names, row, strict=True)),
            prediction=str(sample.prediction[i]),
            scores={"0": 1.0 - p1[i], "1": p1[i]},
            segments={"segment": SEGMENTS[int(segment[i])]},
        )
        for i, row in enumerate(rows)
    ]


def _found(report: WindowReport, segment: str | None) -> bool:
    return any(
        v.drifted and v.result.column == COLUMN and v.result.segment == segment
        for v in report.decision.verdicts
    )


def run_segment_scenario(
    profile: ReferenceProfile,
    seeds: Sequence[np.random.SeedSequence],
    lead: int,
    horizon: int,
    events: int,
    clock: Clock,
) -> SegmentDetection:
    """Each repeat: ``lead`` stationary windows, then ``horizon`` shifted in one segment."""
    profile = segmented(profile)
    modes = ("fixed", "calibrated")
    out = SegmentDetection(
        delays={(m, what): [] for m in modes for what in ("segment", "alert", "retrain", "whole")},
        false_before=dict.fromkeys(modes, 0),
    )
    for seed in seeds:
        rng = np.random.default_rng(seed)
        monitors = {mode: ModelMonitor(profile, _config(mode)) for mode in modes}
        marks: dict[tuple[str, str], int | None] = dict.fromkeys(out.delays)
        for index in range(lead + horizon):
            start = index * HOUR_MS
            shifted = index >= lead
            with clock.phase("segments: events"):
                batch = window_events(events, rng, start, shifted)
            with clock.phase("segments: fold_events"):
                summary = PaneSummary(profile).fold_events(batch)
            for mode, monitor in monitors.items():
                with clock.phase("segments: judge"):
                    monitor.set_pane(start, summary)
                    report = judge(monitor, start)
                decision = report.decision
                seen = {
                    "segment": _found(report, SHIFTED_SEGMENT),
                    "alert": decision.firing,
                    "retrain": decision.retrain is not None,
                    "whole": _found(report, None),
                }
                if not shifted:
                    out.windows_before += mode == "fixed"
                    out.false_before[mode] += decision.drift_found or bool(decision.alerts)
                    continue
                for what, hit in seen.items():
                    if hit and marks[mode, what] is None:
                        marks[mode, what] = index - lead
        for key, mark in marks.items():
            out.delays[key].append(mark)
    return out


def print_segment_scenario(result: SegmentDetection, lead: int, horizon: int) -> None:
    """The delays per threshold mode, median (min-max) and runs that detected."""
    print(
        f"\n{NAME}: delay in windows after {lead} stationary ones (horizon {horizon}); "
        "drift tests of 5 segments share the family with the whole model's"
    )
    table = Table(
        Column("thresholds", 11, align="<"),
        Column("segment s2 drift", 18, align="<"),
        Column("alert", 14, align="<"),
        Column("retrain", 14, align="<"),
        Column("whole model alone", 18, align="<"),
        Column("false before", 13, align="<"),
    )
    print(table.header())
    for mode in ("fixed", "calibrated"):
        print(
            table.row(
                mode,
                first(result.delays[mode, "segment"]),
                first(result.delays[mode, "alert"]),
                first(result.delays[mode, "retrain"]),
                first(result.delays[mode, "whole"]),
                f"{result.false_before[mode]}/{result.windows_before}",
            )
        )
