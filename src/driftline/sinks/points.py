"""Window reports as metric points: which points a report becomes, with their tags and fields.

A point is identified by measurement + tags + timestamp (the window end), so writing it again
overwrites it in InfluxDB: a restated window rewrites the same points (DESIGN §3). A point's
text is :mod:`driftline.sinks.line_protocol`'s. Pure: no client, no clock.

Measurements (timestamp = window end; every point also has the tags ``model``, ``version``
and ``window``, e.g. ``1h`` or ``1d/1h``):

================== ========================= ===================================================
measurement        extra tags                fields
================== ========================= ===================================================
feature_drift      feature, test             statistic, p_value, threshold, drifted, n,
                                             n_reference, bound
prediction_drift   test                      (as feature_drift)
label_drift        test                      (as feature_drift)
data_quality       feature, check            value, p_value, threshold, flagged, n
performance        metric                    value, n_labels, baseline
performance_estimate metric                  value, n
label_coverage                               coverage, n_labels, n_predictions,
                                             mean_label_delay_s
concept_drift                                drift
decision                                     drift_found, in_drift, firing, performance_breach,
                                             drifted_features, severity, retrain
================== ========================= ===================================================

A result about one segment's slice (``models.<m>.segments``) carries two more tags,
``segment_key`` and ``segment`` (e.g. ``region`` and ``eu``; ``other`` for values outside
the profile's top-K), on its ``feature_drift``, ``prediction_drift`` and ``data_quality``
point, and each slice's realised performance is a ``performance`` point per metric and a
``label_coverage`` point with these tags (``baseline`` is the whole model's); whole-model
points have neither tag, so their identity is unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from driftline.detectors.engine import WindowReport
from driftline.detectors.result import TestResult

__all__ = ["SCHEMA", "FieldValue", "Measurement", "MetricPoint", "report_points"]

FieldValue = float | int | bool | str
_SEVERITY = {None: 0, "info": 1, "warning": 2, "critical": 3}


@dataclass(frozen=True, slots=True)
class Measurement:
    """What one measurement's points carry: every point has all of ``tags`` and some of
    ``fields`` (a field whose value is unknown, or not finite, is left out)."""

    name: str
    tags: frozenset[str]
    fields: frozenset[str]


def _measurement(name: str, tags: tuple[str, ...], fields: tuple[str, ...]) -> Measurement:
    return Measurement(name, frozenset(("model", "version", "window", *tags)), frozenset(fields))


_TEST_FIELDS = ("statistic", "p_value", "threshold", "drifted", "n", "n_reference", "bound")

SCHEMA: dict[str, Measurement] = {
    m.name: m
    for m in (
        _measurement("feature_drift", ("feature", "test"), _TEST_FIELDS),
        _measurement("prediction_drift", ("test",), _TEST_FIELDS),
        _measurement("label_drift", ("test",), _TEST_FIELDS),
        _measurement(
            "data_quality", ("feature", "check"), ("value", "p_value", "threshold", "flagged", "n")
        ),
        _measurement("performance", ("metric",), ("value", "n_labels", "baseline")),
        _measurement("performance_estimate", ("metric",), ("value", "n")),
        _measurement(
            "label_coverage", (), ("coverage", "n_labels", "n_predictions", "mean_label_delay_s")
        ),
        _measurement("concept_drift", (), ("drift",)),
        _measurement(
            "decision",
            (),
            (
                "drift_found",
                "in_drift",
                "firing",
                "performance_breach",
                "drifted_features",
                "severity",
                "retrain",
            ),
        ),
    )
}
"""The measurements :func:`report_points` writes, with their tags and fields (the table
above); ``tests/unit/sinks/test_points.py`` checks the points against it, and the Grafana
dashboard's queries are checked against it (``tests/unit/test_deploy.py``)."""


@dataclass(frozen=True, slots=True)
class MetricPoint:
    """One InfluxDB point: measurement, tags, fields and a timestamp in epoch milliseconds."""

    measurement: str
    tags: tuple[tuple[str, str], ...]
    fields: tuple[tuple[str, FieldValue], ...]
    time_ms: int

    @property
    def identity(self) -> tuple[str, tuple[tuple[str, str], ...], int]:
        """What InfluxDB keys the point by: writing the same identity overwrites it."""
        return self.measurement, self.tags, self.time_ms


def _point(
    measurement: str, tags: Mapping[str, str], fields: Mapping[str, FieldValue | None], ms: int
) -> MetricPoint | None:
    kept = tuple(
        (k, v)
        for k, v in fields.items()
        if v is not None and not (isinstance(v, float) and not math.isfinite(v))
    )
    if not kept:
        return None
    return MetricPoint(measurement, tuple(sorted(tags.items())), kept, ms)


def _test_fields(result: TestResult) -> dict[str, FieldValue | None]:
    return {
        "statistic": result.statistic,
        "p_value": result.p_value,
        "threshold": result.threshold,
        "drifted": result.drifted,
        "n": result.n_current,
        "n_reference": result.n_reference,
        "bound": result.bound,
    }


def _segment_tags(result: TestResult) -> dict[str, str]:
    if result.segment_key is None:
        return {}
    return {"segment_key": result.segment_key, "segment": result.segment or ""}


def report_points(report: WindowReport) -> list[MetricPoint]:
    """Every point of a window report, ready to write."""
    base = {"model": report.model, "version": report.version, "window": report.window.label}
    ms = report.window.end_ms
    candidates: list[MetricPoint | None] = []
    for result in report.drift:
        if result.kind == "feature_drift":
            tags = {**base, "feature": result.column, "test": result.test}
        else:
            tags = {**base, "test": result.test}
        tags.update(_segment_tags(result))
        candidates.append(_point(result.kind, tags, _test_fields(result), ms))
    for result in report.quality:
        candidates.append(
            _point(
                "data_quality",
                {
                    **base,
                    "feature": result.column,
                    "check": result.test,
                    **_segment_tags(result),
                },
                {
                    "value": result.statistic,
                    "p_value": result.p_value,
                    "threshold": result.threshold,
                    "flagged": result.drifted,
                    "n": result.n_current,
                },
                ms,
            )
        )
    decision = report.decision
    for name, value in report.performance.items():
        candidates.append(
            _point(
                "performance",
                {**base, "metric": name},
                {
                    "value": value,
                    "n_labels": report.n_labels,
                    "baseline": report.baseline.get(name),
                },
                ms,
            )
        )
    for name, value in report.estimate.items():
        candidates.append(
            _point(
                "performance_estimate",
                {**base, "metric": name},
                {"value": value, "n": report.n_events},
                ms,
            )
        )
    for part in report.segment_performance:
        tags = {**base, "segment_key": part.segment_key, "segment": part.segment}
        for name, value in part.metrics.items():
            candidates.append(
                _point(
                    "performance",
                    {**tags, "metric": name},
                    {
                        "value": value,
                        "n_labels": part.n_labels,
                        "baseline": report.baseline.get(name),
                    },
                    ms,
                )
            )
        part_delay = part.mean_label_delay_ms
        candidates.append(
            _point(
                "label_coverage",
                tags,
                {
                    "coverage": part.label_coverage,
                    "n_labels": part.n_labels,
                    "n_predictions": part.n_events,
                    "mean_label_delay_s": None if part_delay is None else part_delay / 1000.0,
                },
                ms,
            )
        )
    delay = report.mean_label_delay_ms
    candidates.append(
        _point(
            "label_coverage",
            base,
            {
                "coverage": report.label_coverage,
                "n_labels": report.n_labels,
                "n_predictions": report.n_events,
                "mean_label_delay_s": None if delay is None else delay / 1000.0,
            },
            ms,
        )
    )
    candidates.append(_point("concept_drift", base, {"drift": report.concept_drift}, ms))
    candidates.append(
        _point(
            "decision",
            base,
            {
                "drift_found": decision.drift_found,
                "in_drift": decision.in_drift,
                "firing": decision.firing,
                "performance_breach": decision.performance_breach,
                "drifted_features": len(decision.drifted_features),
                "severity": _SEVERITY[decision.severity],
                "retrain": decision.retrain is not None,
            },
            ms,
        )
    )
    return [p for p in candidates if p is not None]
