"""What a report is drawn from: metric points, alerts and model versions over a time range.

Read from a ``driftline replay --json`` file or from the records the service publishes.

Both inputs become the same :class:`ReportData`: the points stage 2 would write for each
window (:mod:`driftline.sinks.points`), the alerts (:class:`DriftAlert`) and the versions
(:class:`VersionMark`). Pure: no client, no clock; reading topics is
:mod:`driftline.report.source`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from driftline.errors import DecodeError, ReportError
from driftline.schemas.events import parse_timestamp, to_epoch_ms
from driftline.schemas.outputs import DriftAlert, ModelVersionRegistered
from driftline.sinks.line_protocol import parse_line
from driftline.sinks.outbox import PRECISION, decode_lines
from driftline.sinks.points import FieldValue, MetricPoint

__all__ = [
    "ReportData",
    "VersionMark",
    "collect",
    "outbox_points",
    "read_replay_json",
    "replay_points",
    "version_mark",
]

_SEVERITY = {None: 0, "info": 1, "warning": 2, "critical": 3}


@dataclass(frozen=True, slots=True)
class VersionMark:
    """A model version's registration: who registered it, when (epoch ms), its parent."""

    model: str
    version: str
    time_ms: int
    source: str
    parent: str | None = None


@dataclass(frozen=True, slots=True)
class ReportData:
    """Everything one report shows, within ``[since_ms, until_ms]`` (None: unbounded).

    ``points`` hold one point per identity (the last read: a restated window replaces its
    earlier points), sorted by time; ``notes`` say what was skipped while reading.
    """

    points: tuple[MetricPoint, ...]
    alerts: tuple[DriftAlert, ...] = ()
    versions: tuple[VersionMark, ...] = ()
    source: str = ""
    since_ms: int | None = None
    until_ms: int | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def models(self) -> list[str]:
        """The models with at least one point, sorted."""
        return sorted({dict(p.tags).get("model", "") for p in self.points})


def _within(ms: int, since_ms: int | None, until_ms: int | None) -> bool:
    return (since_ms is None or ms >= since_ms) and (until_ms is None or ms <= until_ms)


def collect(
    points: Iterable[MetricPoint],
    alerts: Iterable[DriftAlert] = (),
    versions: Iterable[VersionMark] = (),
    *,
    since_ms: int | None = None,
    until_ms: int | None = None,
    source: str = "",
    notes: Iterable[str] = (),
) -> ReportData:
    """The report's data: points by identity (the last one read wins), alerts by id and
    versions by (model, version), each kept when its time (a point's or an alert's window
    end, a version's registration) is within the range.

    >>> tags = (("model", "fraud"), ("version", "3"), ("window", "1h"))
    >>> early = MetricPoint("label_coverage", tags, (("coverage", 0.4),), 3_600_000)
    >>> restated = MetricPoint("label_coverage", tags, (("coverage", 1.0),), 3_600_000)
    >>> later = MetricPoint("label_coverage", tags, (("coverage", 0.2),), 7_200_000)
    >>> data = collect([early, restated, later], until_ms=3_600_000)
    >>> [dict(p.fields)["coverage"] for p in data.points], data.models
    ([1.0], ['fraud'])
    """
    latest: dict[tuple[str, tuple[tuple[str, str], ...], int], MetricPoint] = {}
    for point in points:
        if _within(point.time_ms, since_ms, until_ms):
            latest[point.identity] = point
    by_id: dict[str, DriftAlert] = {}
    for alert in alerts:
        if _within(to_epoch_ms(alert.window_end), since_ms, until_ms):
            by_id[alert.alert_id] = alert
    marks: dict[tuple[str, str], VersionMark] = {}
    for mark in versions:
        if _within(mark.time_ms, since_ms, until_ms):
            marks[mark.model, mark.version] = mark
    return ReportData(
        points=tuple(sorted(latest.values(), key=lambda p: (p.time_ms, p.measurement, p.tags))),
        alerts=tuple(sorted(by_id.values(), key=lambda a: (a.window_end, a.alert_id))),
        versions=tuple(sorted(marks.values(), key=lambda m: (m.time_ms, m.model, m.version))),
        source=source,
        since_ms=since_ms,
        until_ms=until_ms,
        notes=tuple(notes),
    )


def outbox_points(value: bytes | None) -> list[MetricPoint]:
    """The points of one metrics-outbox message (:mod:`driftline.sinks.outbox`);
    :class:`~driftline.errors.DecodeError` for a message the writer would refuse too."""
    return [parse_line(line, PRECISION) for line in decode_lines(value)]


def version_mark(value: bytes) -> VersionMark:
    """A models-topic record as a :class:`VersionMark`; ``DecodeError`` when it is not a
    :class:`ModelVersionRegistered`."""
    try:
        record = ModelVersionRegistered.model_validate_json(value)
    except ValidationError as exc:
        raise DecodeError(f"not a model version: {exc.errors()[0]['msg']}") from None
    return VersionMark(
        record.model,
        record.model_version,
        to_epoch_ms(record.registered_at),
        record.source,
        record.parent_version,
    )


def _test_fields(result: Mapping[str, Any]) -> dict[str, FieldValue | None]:
    return {
        "statistic": result["statistic"],
        "p_value": result["p_value"],
        "threshold": result["threshold"],
        "drifted": result["drifted"],
        "n": result["n_current"],
        "n_reference": result["n_reference"],
        "bound": result["bound"],
    }


def _point(
    measurement: str, tags: Mapping[str, str], fields: Mapping[str, FieldValue | None], ms: int
) -> MetricPoint | None:
    kept = tuple((k, v) for k, v in fields.items() if v is not None)
    if not kept:
        return None
    return MetricPoint(measurement, tuple(sorted(tags.items())), kept, ms)


def replay_points(record: Mapping[str, Any]) -> list[MetricPoint]:
    """The points stage 2 writes for a window, from that window's ``replay --json`` record
    (:func:`driftline.replay_output.report_record`): the same measurements, tags and fields
    as :func:`driftline.sinks.points.report_points`, less what the record does not carry
    (the mean label delay, the decision's ``drift_found``)."""
    base = {"model": record["model"], "version": record["version"], "window": record["window"]}
    ms = to_epoch_ms(parse_timestamp(record["end"]))
    found: list[MetricPoint | None] = []
    for result in record["drift"]:
        tags = {**base, "test": result["test"]}
        if result["kind"] == "feature_drift":
            tags["feature"] = result["column"]
        found.append(_point(result["kind"], tags, _test_fields(result), ms))
    for result in record["quality"]:
        found.append(
            _point(
                "data_quality",
                {**base, "feature": result["column"], "check": result["test"]},
                {
                    "value": result["statistic"],
                    "p_value": result["p_value"],
                    "threshold": result["threshold"],
                    "flagged": result["drifted"],
                    "n": result["n_current"],
                },
                ms,
            )
        )
    for name, value in record["performance"].items():
        fields = {"value": value, "n_labels": record["n_labels"]}
        found.append(
            _point(
                "performance",
                {**base, "metric": name},
                {**fields, "baseline": record["baseline"].get(name)},
                ms,
            )
        )
    for name, value in record["estimate"].items():
        found.append(
            _point(
                "performance_estimate",
                {**base, "metric": name},
                {"value": value, "n": record["n_events"]},
                ms,
            )
        )
    found.append(
        _point(
            "label_coverage",
            base,
            {
                "coverage": record["label_coverage"],
                "n_labels": record["n_labels"],
                "n_predictions": record["n_events"],
            },
            ms,
        )
    )
    found.append(_point("concept_drift", base, {"drift": record["concept_drift"]}, ms))
    decision = record["decision"]
    found.append(
        _point(
            "decision",
            base,
            {
                "in_drift": decision["in_drift"],
                "firing": decision["firing"],
                "performance_breach": decision["performance_breach"],
                "drifted_features": len(decision["drifted_features"]),
                "severity": _SEVERITY[decision["severity"]],
                "retrain": decision["retrain"] is not None,
            },
            ms,
        )
    )
    return [p for p in found if p is not None]


def read_replay_json(
    path: Path, *, since: datetime | None = None, until: datetime | None = None
) -> ReportData:
    """The report's data from a ``driftline replay --json`` file: every window's points and
    the alerts its decision published. :class:`~driftline.errors.ReportError` naming the
    file (and the line) when it cannot be read, a line is not a window record, or it holds
    no window at all."""
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ReportError(f"cannot read {path}: {exc.strerror or exc}") from None
    points: list[MetricPoint] = []
    alerts: list[DriftAlert] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
            points += replay_points(record)
            alerts += [DriftAlert.model_validate(a) for a in record["decision"]["alerts"]]
        except orjson.JSONDecodeError as exc:
            raise ReportError(f"{path}:{number}: not JSON ({exc})") from None
        except (KeyError, TypeError, AttributeError) as exc:
            raise ReportError(
                f"{path}:{number}: not a window record of `driftline replay --json` "
                f"({type(exc).__name__}: {exc})"
            ) from None
        except (ValueError, ValidationError) as exc:
            reason = str(exc).splitlines()[0]
            raise ReportError(f"{path}:{number}: not a window record: {reason}") from None
    if not points:
        raise ReportError(f"{path} holds no window record of `driftline replay --json`")
    return collect(
        points,
        alerts,
        since_ms=None if since is None else to_epoch_ms(since),
        until_ms=None if until is None else to_epoch_ms(until),
        source=str(path),
    )
