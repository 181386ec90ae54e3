"""Window reports as InfluxDB points."""

from __future__ import annotations

import math

import numpy as np

from driftline.detectors.engine import ModelMonitor
from driftline.sinks.line_protocol import to_line_protocol
from driftline.sinks.points import SCHEMA, report_points
from tests.unit.detectors.test_engine import MINUTE, config, reference, traffic


def test_report_points_have_unique_identities_and_no_non_finite_fields() -> None:
    monitor = ModelMonitor(reference(), config())
    times, _, prediction = traffic(monitor, 0, 3000)
    monitor.fold_labels(times, prediction, prediction)
    [window] = monitor.due(20 * MINUTE)
    points = report_points(monitor.evaluate(window))
    identities = [p.identity for p in points]
    assert len(identities) == len(set(identities))
    assert {p.time_ms for p in points} == {window.end_ms}
    for point in points:
        tags = dict(point.tags)
        assert (tags["model"], tags["version"], tags["window"]) == ("m", "1", "10m")
        for _, value in point.fields:
            assert not (isinstance(value, float) and not math.isfinite(value))
    measurements = {p.measurement for p in points}
    assert measurements >= {
        "feature_drift",
        "prediction_drift",
        "label_drift",
        "data_quality",
        "performance",
        "performance_estimate",
        "label_coverage",
        "concept_drift",
        "decision",
    }
    psi_x = next(
        p for p in points if p.measurement == "feature_drift" and dict(p.tags)["feature"] == "x"
    )
    assert dict(psi_x.fields)["n"] == 3000


def test_empty_window_writes_no_nan_statistics() -> None:
    monitor = ModelMonitor(reference(), config())
    monitor.fold_columns(np.array([0]), {"x": [np.nan], "city": [None]}, [1])
    [window] = monitor.due(20 * MINUTE)
    for point in report_points(monitor.evaluate(window)):
        assert "nan" not in to_line_protocol(point).lower()


def test_every_point_carries_the_tags_and_only_the_fields_its_schema_names() -> None:
    """SCHEMA (what the dashboard's queries are checked against) is what report_points writes."""
    monitor = ModelMonitor(reference(), config())
    times, _, prediction = traffic(monitor, 0, 3000)
    monitor.fold_labels(times, prediction, prediction)
    [window] = monitor.due(20 * MINUTE)
    points = report_points(monitor.evaluate(window))
    assert {p.measurement for p in points} == set(SCHEMA)
    for point in points:
        schema = SCHEMA[point.measurement]
        assert {k for k, _ in point.tags} == schema.tags, point.measurement
        assert {k for k, _ in point.fields} <= schema.fields, point.measurement
