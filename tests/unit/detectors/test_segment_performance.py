"""Performance per segment: the performance summary's segment slices (merge law, bytes, the
bytes of a summary without segments unchanged) and a window whose accuracy drops in one
segment of five, seen in that segment's points only."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.config.settings import ModelConfig
from driftline.detectors.engine import ModelMonitor, WindowReport
from driftline.detectors.performance import PerformanceSummary
from driftline.detectors.profile import build_profile
from driftline.detectors.summary import OTHER
from driftline.errors import DecodeError
from driftline.schemas.wire import WirePrediction
from driftline.sinks.points import report_points

REGIONS = ("a", "b", "c", "d", "e")
TRACKED = {"region": ["a", "b", "c"], "channel": ["web"]}

_row = st.tuples(
    st.sampled_from(["0", "1"]),  # label
    st.sampled_from(["0", "1"]),  # prediction
    st.floats(0.0, 1.0),  # score of "1"
    st.integers(0, 10**7),  # label delay
    st.fixed_dictionaries(
        {}, optional={"region": st.sampled_from([*REGIONS, "other"]), "channel": st.just("web")}
    ),
)


def _fold(rows: list[tuple[Any, ...]]) -> PerformanceSummary:
    summary = PerformanceSummary("binary", ("0", "1"))
    if not rows:
        return summary
    labels, guesses, scores, delays, tags = (list(column) for column in zip(*rows, strict=True))
    columns = ({"1": scores}, delays)
    summary.fold(labels, guesses, *columns)
    return summary.fold_segments(TRACKED, [t or None for t in tags], labels, guesses, *columns)


@settings(max_examples=60, deadline=None)
@given(st.lists(_row, max_size=60), st.lists(st.integers(0, 60), max_size=4))
def test_merging_the_parts_equals_folding_the_whole_slices_included(
    rows: list[tuple[Any, ...]], cuts: list[int]
) -> None:
    bounds = [0, *sorted(c for c in cuts if c <= len(rows)), len(rows)]
    parts = [_fold(rows[a:b]) for a, b in pairwise(bounds)]
    merged = parts[0]
    for part in parts[1:]:
        merged = merged.merge(part)
    whole = _fold(rows)
    assert merged == whole
    assert PerformanceSummary.from_bytes(merged.to_bytes()) == whole
    # Each slice is the plain fold of its rows.
    for (key, value), part in whole.segments.items():
        mine = [
            r for r in rows if (r[4].get(key) if r[4].get(key) in TRACKED[key] else OTHER) == value
        ]
        assert part == _fold_plain(mine)
    assert sum(p.n for (k, _), p in whole.segments.items() if k == "region") == whole.n


def _fold_plain(rows: list[tuple[Any, ...]]) -> PerformanceSummary:
    summary = PerformanceSummary("binary", ("0", "1"))
    labels, guesses, scores, delays, _ = (list(column) for column in zip(*rows, strict=True))
    return summary.fold(labels, guesses, {"1": scores}, delays)


def test_a_summary_without_segments_encodes_to_the_bytes_it_always_did() -> None:
    """Sixteen fields, as before segments: the partials of models without segments are
    unchanged; one with segments has a seventeenth."""
    plain = PerformanceSummary("binary", ("0", "1")).fold(["1", "0"], ["1", "1"])
    assert len(msgspec.msgpack.decode(plain.to_bytes())) == 16
    sliced = _fold([("1", "1", 0.5, 10, {"region": "a"})])
    assert len(msgspec.msgpack.decode(sliced.to_bytes())) == 17


def test_a_segment_that_does_not_fit_the_summary_is_refused() -> None:
    summary = _fold([("1", "1", 0.5, 10, {"region": "a"})])
    state = msgspec.msgpack.decode(summary.to_bytes())
    other = PerformanceSummary("binary", ("0", "1", "2")[:2], positive_class="0")
    state[16] = [["region", "a", other.to_bytes()]]
    with pytest.raises(DecodeError, match="segment region=a"):
        PerformanceSummary.from_bytes(msgspec.msgpack.encode(state))


# --- a window judged per segment --------------------------------------------------------------

N_REF = 10_000


def _profile() -> Any:
    rng = np.random.default_rng(7)
    return build_profile(
        "m",
        "1",
        "binary",
        {"x": rng.normal(size=N_REF)},
        rng.integers(0, 2, N_REF).astype(str),
        labels=rng.integers(0, 2, N_REF).astype(str),
        segments={"region": [REGIONS[i % 5] for i in range(N_REF)]},
    )


PROFILE = _profile()


def _window(worse_in: str, seed: int) -> WindowReport:
    """5,000 labelled predictions over five regions, 90% right but in ``worse_in`` (50%)."""
    rng = np.random.default_rng(seed)
    config = ModelConfig(
        task="binary",
        pane="1m",
        windows=[{"size": "10m"}],
        allowed_lateness="0s",
        segments={"keys": ["region"]},
        performance={"threshold": 0.8, "min_labels": 200},
    )
    monitor = ModelMonitor(PROFILE, config)
    events, labels, tags = [], [], []
    for i in range(5_000):
        region = REGIONS[i % 5]
        guess = str(int(rng.integers(0, 2)))
        right = rng.random() < (0.5 if region == worse_in else 0.9)
        tags.append({"region": region})
        labels.append(guess if right else str(1 - int(guess)))
        events.append(
            WirePrediction(
                event_id=f"e{i}",
                prediction_id=f"p{i}",
                model="m",
                model_version="1",
                timestamp=i * 120,
                features={"x": float(rng.normal())},
                prediction=guess,
                scores=None,
                segments=tags[-1],
            )
        )
    monitor.fold_events(events)
    times = [i * 120 for i in range(5_000)]
    monitor.fold_labels(
        times, labels, [e.prediction for e in events], label_delay_ms=[1000] * 5_000, segments=tags
    )
    (window,) = monitor.due(600_000)
    return monitor.evaluate(window)


def test_an_accuracy_drop_in_one_segment_of_five_shows_in_its_points_only() -> None:
    report = _window("c", seed=3)
    points = report_points(report)
    accuracy = {
        dict(p.tags)["segment"]: dict(p.fields)["value"]
        for p in points
        if p.measurement == "performance"
        and ("metric", "accuracy") in p.tags
        and ("segment_key", "region") in p.tags
    }
    assert set(accuracy) == set(REGIONS)
    assert accuracy["c"] < 0.6
    assert all(accuracy[r] > 0.85 for r in REGIONS if r != "c")
    # The whole model's point is untagged, and diluted: 0.82 expected.
    (whole,) = [
        p
        for p in points
        if p.measurement == "performance"
        and ("metric", "accuracy") in p.tags
        and not any(k == "segment_key" for k, _ in p.tags)
    ]
    assert 0.78 < dict(whole.fields)["value"] < 0.86
    breached = {s.segment for s in report.segment_performance if s.breach}
    assert breached == {"c"}
    coverage = {
        dict(p.tags)["segment"]: dict(p.fields)
        for p in points
        if p.measurement == "label_coverage" and ("segment_key", "region") in p.tags
    }
    assert all(f["coverage"] == 1.0 and f["n_predictions"] == 1_000 for f in coverage.values())


def test_without_segment_tags_no_slice_has_labels() -> None:
    """Labels folded without their predictions' tags leave the slices without performance:
    a slice shows only what it was given."""
    monitor = ModelMonitor(
        PROFILE,
        ModelConfig(
            task="binary",
            pane="1m",
            windows=[{"size": "10m"}],
            allowed_lateness="0s",
            segments={"keys": ["region"]},
        ),
    )
    monitor.fold_labels([0, 1], ["1", "0"], ["1", "1"])
    (window,) = monitor.due(600_000)
    assert monitor.evaluate(window).segment_performance == ()
