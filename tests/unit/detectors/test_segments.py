"""Segments: the profile's top-K values per key, the pane summary's segment parts (merge laws,
bytes), and a window judged per segment under the model's one false-alarm budget."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.config.settings import ModelConfig
from driftline.detectors.engine import ModelMonitor, WindowReport
from driftline.detectors.profile import build_profile, top_segment_values
from driftline.detectors.summary import OTHER, PaneSummary, part_profile
from driftline.detectors.thresholds import calibrate_profile
from driftline.errors import DecodeError, StatisticsError
from driftline.schemas.ids import stable_id
from driftline.schemas.outputs import DriftAlert, Reason
from driftline.schemas.wire import WirePrediction
from driftline.sinks.points import report_points

REGIONS = ("a", "b", "c", "d", "e")
N_REF = 10_000


def _profile(top_k: int = 10) -> Any:
    rng = np.random.default_rng(13)
    return build_profile(
        "m",
        "1",
        "binary",
        {"x": rng.normal(size=N_REF), "y": rng.normal(size=N_REF)},
        rng.integers(0, 2, N_REF).astype(str),
        segments={
            "region": [REGIONS[i % 5] for i in range(N_REF)],
            "channel": ["web" if i % 3 else "app" for i in range(N_REF)],
        },
        segment_top_k=top_k,
        bins=20,
    )


PROFILE = _profile()
SMALL = _profile(top_k=2)  # region keeps a and b; c, d, e fold into "other"


def _event(i: int, x: Any, segments: dict[str, str] | None, t: int = 0) -> WirePrediction:
    return WirePrediction(
        event_id=f"e{i}",
        prediction_id=f"p{i}",
        model="m",
        model_version="1",
        timestamp=t,
        features={"x": x, "y": 0.5},
        prediction=str(i % 2),
        scores=None,
        segments=segments,
    )


# --- the profile's values -------------------------------------------------------------------


def test_top_values_are_the_most_frequent_ties_by_value_and_missing_is_not_a_value() -> None:
    column = ["eu", "us", "eu", None, "apac", "us", "eu", "za"]
    assert top_segment_values({"region": column}, 3) == {"region": ["eu", "us", "apac"]}
    assert top_segment_values({"region": column}, 10) == {"region": ["eu", "us", "apac", "za"]}


def test_the_profile_records_top_k_values_per_configured_key() -> None:
    assert PROFILE.segments == {"channel": ["web", "app"], "region": list(REGIONS)}
    assert SMALL.segments["region"] == ["a", "b"]
    assert type(PROFILE).model_validate_json(PROFILE.model_dump_json()) == PROFILE


def test_a_segment_column_of_the_wrong_length_is_rejected_naming_the_key() -> None:
    with pytest.raises(StatisticsError, match=r"segments\['region'\] has 2 values"):
        build_profile("m", "1", "regression", {"x": [1.0, 2.0, 3.0]}, [1.0, 2.0, 3.0],
                      segments={"region": ["a", "b"]})  # fmt: skip


def test_profile_from_events_takes_the_configured_keys_of_the_warm_up_traffic() -> None:
    from driftline.detectors.profile import profile_from_events

    config = ModelConfig(task="binary", segments={"keys": ["region"], "top_k": 1})
    events = [_event(i, float(i), {"region": "eu" if i % 4 else "us"}) for i in range(40)]
    assert profile_from_events(events, "binary", config).segments == {"region": ["eu"]}


# --- the pane summary's segment parts ---------------------------------------------------------


def test_values_outside_the_top_k_and_events_without_the_key_count_under_other() -> None:
    events = [
        _event(0, 0.1, {"region": "a", "channel": "web"}),
        _event(1, 0.2, {"region": "c"}),
        _event(2, 0.3, {"region": "zz"}),
        _event(3, 0.4, None),
    ]
    summary = PaneSummary(SMALL).fold_events(events)
    n = {slice_: part.n for slice_, part in summary.segments.items()}
    assert n == {
        ("region", "a"): 1,
        ("region", OTHER): 3,
        ("channel", "web"): 1,
        ("channel", OTHER): 3,
    }
    for key in ("region", "channel"):
        assert sum(part.n for (k, _), part in summary.segments.items() if k == key) == summary.n


def test_a_segment_part_counts_exactly_what_the_whole_summary_counts_of_its_events() -> None:
    rng = np.random.default_rng(3)
    events = [_event(i, float(rng.normal()), {"region": REGIONS[i % 5]}, t=i) for i in range(200)]
    summary = PaneSummary(PROFILE).fold_events(events)
    only_c = PaneSummary(part_profile(PROFILE), segmented=False).fold_events(events[2::5])
    part = summary.segments["region", "c"]
    assert part == only_c
    assert not part.segments  # segments do not nest
    assert not part.scores  # a part is not judged on them
    assert part.multivariate is None
    whole_c = PaneSummary(PROFILE, segmented=False).fold_events(events[2::5])
    for name in PROFILE.features:
        assert part.counts(name).tolist() == whole_c.counts(name).tolist()
    assert part.prediction.counts.tolist() == whole_c.prediction.counts.tolist()


segment_events = st.lists(
    st.tuples(
        st.one_of(st.none(), st.floats(-5.0, 5.0), st.just("oops")),
        st.one_of(
            st.none(),
            st.fixed_dictionaries(
                {},
                optional={
                    "region": st.sampled_from([*REGIONS, "zz", OTHER]),
                    "channel": st.sampled_from(["web", "app", "tv"]),
                },
            ),
        ),
        st.integers(0, 10**6),
    ),
    max_size=30,
)


def _folded(rows: list[tuple[Any, Any, int]], profile: Any = SMALL) -> PaneSummary:
    events = [_event(t, x, seg, t) for x, seg, t in rows]  # prediction: t's parity
    return PaneSummary(profile).fold_events(events)


@settings(max_examples=60, deadline=None)
@given(segment_events, st.data())
def test_merging_segmented_parts_of_a_split_equals_folding_the_whole(
    rows: list[tuple[Any, Any, int]], data: st.DataObject
) -> None:
    cut = data.draw(st.integers(0, len(rows)))
    parts = _folded(rows[:cut]).merge(_folded(rows[cut:]))
    whole = _folded(rows)
    assert parts == whole
    assert parts.to_bytes() == whole.to_bytes()
    assert parts.segments.keys() == whole.segments.keys()


@settings(max_examples=40, deadline=None)
@given(segment_events, segment_events, segment_events)
def test_segmented_merge_is_associative_and_commutative(
    a: list[tuple[Any, Any, int]], b: list[tuple[Any, Any, int]], c: list[tuple[Any, Any, int]]
) -> None:
    x, y, z = _folded(a), _folded(b), _folded(c)
    assert x.merge(y) == y.merge(x)
    assert x.merge(y).merge(z).to_bytes() == z.merge(x.merge(y)).to_bytes()


@settings(max_examples=40, deadline=None)
@given(segment_events)
def test_segmented_bytes_round_trip_exactly(rows: list[tuple[Any, Any, int]]) -> None:
    summary = _folded(rows)
    restored = PaneSummary.from_bytes(summary.to_bytes(), SMALL)
    assert restored == summary
    assert restored.to_bytes() == summary.to_bytes()


def test_merge_copies_a_segment_only_one_side_has() -> None:
    left = _folded([(0.1, {"region": "a"}, 0)])
    right = _folded([(0.2, {"region": "b"}, 1)])
    merged = left.merge(right)
    merged.segments["region", "a"].fold_events([_event(9, 0.3, None)])
    assert left.segments["region", "a"].n == 1  # the operand's part was copied, not shared


def test_a_summary_without_segments_keeps_its_bytes() -> None:
    plain = build_profile("m", "1", "regression", {"x": [1.0, 2.0, 3.0]}, [1.0, 2.0, 3.0])
    events = [_event(0, 1.5, {"region": "a"})]
    events = [
        WirePrediction(**{**{f: getattr(e, f) for f in e.__struct_fields__}, "prediction": 1.0})
        for e in events
    ]
    summary = PaneSummary(plain).fold_events(events)
    assert not summary.segments
    assert PaneSummary.from_bytes(summary.to_bytes(), plain) == summary


def test_bytes_with_a_segment_the_profile_does_not_record_are_rejected() -> None:
    data = _folded([(0.1, {"region": "c"}, 0)], PROFILE).to_bytes()  # c is tracked here...
    # ...but not in SMALL, built from the same data (same bins and hash) with top_k=2.
    assert SMALL.content_hash == PROFILE.content_hash
    with pytest.raises(DecodeError, match="region=c is not one the profile records"):
        PaneSummary.from_bytes(data, SMALL)


# --- a window judged per segment ----------------------------------------------------------------


def _config(**drift: Any) -> ModelConfig:
    return ModelConfig(
        task="binary",
        pane="1m",
        windows=[{"size": "10m"}],
        allowed_lateness="0s",
        drift={"min_samples": 200, **drift},
        segments={"keys": ["region"]},
    )


CALIBRATED = calibrate_profile(PROFILE, draws=1000)


def _window(shift_in: str | None, shift: float, seed: int, **drift: Any) -> WindowReport:
    """One ten-minute window of 5,000 events spread evenly over five regions; ``x`` shifted
    by ``shift`` standard deviations in region ``shift_in`` only."""
    rng = np.random.default_rng(seed)
    calibrated = drift.get("thresholds") == "calibrated"
    monitor = ModelMonitor(CALIBRATED if calibrated else PROFILE, _config(**drift))
    events = []
    for i in range(5_000):
        region = REGIONS[i % 5]
        x = float(rng.normal(loc=shift if region == shift_in else 0.0))
        events.append(
            WirePrediction(
                event_id=f"e{i}",
                prediction_id=f"p{i}",
                model="m",
                model_version="1",
                timestamp=i * 120,
                features={"x": x, "y": float(rng.normal())},
                prediction=str(int(rng.integers(0, 2))),
                scores=None,
                segments={"region": region, "channel": "web"},
            )
        )
    monitor.fold_events(events)
    (window,) = monitor.due(600_000)
    return monitor.evaluate(window)


def _drifted(report: WindowReport) -> set[tuple[str, str | None, str | None]]:
    return {
        (v.result.column, v.result.segment_key, v.result.segment)
        for v in report.decision.verdicts
        if v.drifted
    }


@pytest.mark.parametrize("mode", ["fixed", "calibrated"])
def test_a_shift_confined_to_one_segment_of_five_is_found_in_that_segment_only(
    mode: str,
) -> None:
    report = _window("c", 1.0, seed=5, thresholds=mode)
    drifted = _drifted(report)
    thresholds = {
        v.result.segment: v.result.threshold
        for v in report.decision.verdicts
        if v.result.column == "x" and v.result.segment_key == "region"
    }
    if mode == "calibrated":  # read at the slice's own size (1,000 rows), not the floor 0.2
        assert all(t != 0.2 for t in thresholds.values()), thresholds
    else:
        assert set(thresholds.values()) == {0.2}
    assert ("x", "region", "c") in drifted
    # Not in the other four regions, nor in y anywhere.
    assert {s for column, key, s in drifted if key == "region"} == {"c"}
    assert all(column == "x" for column, _, _ in drifted)
    # Every region was judged: five slices of x, y and the prediction.
    judged = {
        (v.result.column, v.result.segment)
        for v in report.decision.verdicts
        if v.judged and v.result.segment_key == "region"
    }
    assert judged == {(c, r) for c in ("x", "y", "prediction") for r in REGIONS}
    alert_segments = {s for a in report.decision.alerts for s in a.segments}
    assert alert_segments <= {"region=c"}


def test_stationary_traffic_drifts_in_no_segment() -> None:
    for seed in range(3):
        assert _drifted(_window(None, 0.0, seed=seed)) == set()


def test_segment_results_join_the_one_corrected_family() -> None:
    """The segments' p-values are adjusted together with the whole model's: the family is
    features x segments, so a segment's adjusted p-value is at least its raw one times the
    Bonferroni factor of the whole family."""
    report = _window("c", 1.0, seed=5, correction="bonferroni")
    family = [v for v in report.decision.verdicts if v.judged and v.adjusted_p_value is not None]
    whole = [v for v in family if v.result.segment_key is None]
    assert len(family) > 3 * len(whole)  # five regions + two channels beside the whole
    for verdict in family:
        assert verdict.result.p_value is not None
        assert verdict.adjusted_p_value is not None
        assert verdict.adjusted_p_value == pytest.approx(
            min(1.0, verdict.result.p_value * len(family))
        )


def test_segment_points_are_tagged_and_whole_model_points_are_not() -> None:
    report = _window("c", 1.0, seed=5)
    points = report_points(report)
    tagged = [dict(p.tags) for p in points if ("segment_key", "region") in p.tags]
    measurements = {p.measurement for p in points if ("segment_key", "region") in p.tags}
    # No labels in this window: a slice's label_coverage point, and no performance point.
    assert measurements == {"feature_drift", "prediction_drift", "data_quality", "label_coverage"}
    assert {t["segment"] for t in tagged} == set(REGIONS)
    drift_c = [
        p
        for p in points
        if p.measurement == "feature_drift"
        and dict(p.tags).get("segment") == "c"
        and dict(p.tags)["feature"] == "x"
    ]
    assert len(drift_c) == 1
    assert dict(drift_c[0].fields)["drifted"] is True
    identities = [p.identity for p in points]
    assert len(identities) == len(set(identities))
    whole = [
        p for p in points if p.measurement == "feature_drift" and "segment" not in dict(p.tags)
    ]
    assert {dict(p.tags)["feature"] for p in whole} >= {"x", "y"}


def test_an_alert_names_the_segments_of_its_reasons_and_its_id_tells_them_apart() -> None:
    start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 1, tzinfo=UTC)

    def reason(segment: str | None) -> Reason:
        return Reason(kind="feature_drift", feature="x", statistic="psi", value=0.5,
                      threshold=0.2, segment_key=None if segment is None else "region",
                      segment=segment)  # fmt: skip

    in_c = DriftAlert.create("m", "1", start, end, severity="warning", reasons=[reason("c")])
    in_d = DriftAlert.create("m", "1", start, end, severity="warning", reasons=[reason("d")])
    whole = DriftAlert.create("m", "1", start, end, severity="warning", reasons=[reason(None)])
    assert in_c.segments == ("region=c",)
    assert whole.segments == ()
    assert len({in_c.alert_id, in_d.alert_id, whole.alert_id}) == 3
    # An alert about the whole model keeps the id it had before segments existed.
    before = stable_id(orjson.dumps(["warning", [("feature_drift", "x", "psi")]]).decode())
    assert whole.alert_id == DriftAlert.make_id("m", "1", start, end, "firing", before)
