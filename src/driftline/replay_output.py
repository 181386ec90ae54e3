"""What ``driftline replay`` prints and writes: a table, line protocol, JSON lines."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import orjson
from rich.table import Table

from driftline.detectors.engine import WindowReport
from driftline.detectors.result import TestResult
from driftline.sinks.line_protocol import lines
from driftline.sinks.points import report_points

_TOP = 3


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _name(result: TestResult) -> str:
    """The column, and its segment when the result is about one: ``x3[region=c]``."""
    if result.segment_key is None:
        return result.column
    return f"{result.column}[{result.segment_key}={result.segment}]"


def _drifted(results: Sequence[TestResult]) -> str:
    hits = sorted((r for r in results if r.drifted), key=lambda r: -r.statistic / r.threshold)
    text = ", ".join(f"{_name(r)} {r.test}={r.statistic:.2f}" for r in hits[:_TOP])
    return text + (f" +{len(hits) - _TOP}" if len(hits) > _TOP else "")


def report_table(reports: Sequence[WindowReport]) -> Table:
    """One row per window: traffic, drift, performance, and what driftline decided."""
    table = Table(title="driftline replay", title_justify="left")
    for name in (
        "model",
        "window",
        "start (UTC)",
        "events",
        "labels",
        "drifted",
        "metric",
        "estimate",
        "concept",
        "decision",
    ):
        table.add_column(name, overflow="fold")
    for r in reports:
        d = r.decision
        metric = next(iter(r.performance.items()), None)
        decision = "-"
        if d.firing:
            decision = f"[red]{d.severity}[/]" if d.severity == "critical" else str(d.severity)
        if d.retrain is not None:
            decision += " [bold]retrain[/]"
        table.add_row(
            f"{r.model}:{r.version}",
            r.window.label,
            r.window.start.strftime("%Y-%m-%d %H:%M"),
            str(r.n_events),
            str(r.n_labels),
            _drifted(r.drift) or "-",
            "-" if metric is None else f"{metric[0]} {metric[1]:.3f}",
            _fmt(r.estimate.get("expected_accuracy")),
            "yes" if r.concept_drift else "-",
            decision,
        )
    return table


def report_record(report: WindowReport) -> dict[str, Any]:
    """A window report as plain JSON-able data (``segment_performance`` only for a model
    with segments)."""
    d = report.decision

    def result(r: TestResult) -> dict[str, Any]:
        return {
            "test": r.test,
            "column": r.column,
            "kind": r.kind,
            "statistic": r.statistic,
            "p_value": r.p_value,
            "threshold": r.threshold,
            "drifted": r.drifted,
            "n_reference": r.n_reference,
            "n_current": r.n_current,
            "bound": r.bound,
            **(
                {}
                if r.segment_key is None
                else {"segment_key": r.segment_key, "segment": r.segment}
            ),
        }

    return {
        "model": report.model,
        "version": report.version,
        "window": report.window.label,
        "start": report.window.start,
        "end": report.window.end,
        "n_events": report.n_events,
        "n_labels": report.n_labels,
        "label_coverage": report.label_coverage,
        "drift": [result(r) for r in report.drift],
        "quality": [result(r) for r in report.quality],
        "performance": dict(report.performance),
        "baseline": dict(report.baseline),
        "estimate": dict(report.estimate),
        "concept_drift": report.concept_drift,
        "decision": {
            "drifted_features": d.drifted_features,
            "in_drift": d.in_drift,
            "firing": d.firing,
            "severity": d.severity,
            "performance_breach": d.performance_breach,
            "alerts": [a.model_dump(mode="json") for a in d.alerts],
            "retrain": None if d.retrain is None else d.retrain.model_dump(mode="json"),
        },
        **(
            {
                "segment_performance": [
                    {
                        "segment_key": s.segment_key,
                        "segment": s.segment,
                        "n_events": s.n_events,
                        "n_labels": s.n_labels,
                        "label_coverage": s.label_coverage,
                        "performance": dict(s.metrics),
                        "mean_label_delay_ms": s.mean_label_delay_ms,
                        "breach": s.breach,
                    }
                    for s in report.segment_performance
                ]
            }
            if report.segment_performance
            else {}
        ),
    }


def write_line_protocol(reports: Sequence[WindowReport], path: Path) -> int:
    """Write every report's points as line protocol (ns precision); returns points written."""
    text = lines((p for r in reports for p in report_points(r)), precision="ns")
    path.write_text("".join(line + "\n" for line in text), encoding="utf-8")
    return len(text)


def write_json_lines(reports: Sequence[WindowReport], path: Path) -> int:
    """Write one JSON object per window; returns windows written."""
    with path.open("wb") as handle:
        for report in reports:
            handle.write(
                orjson.dumps(
                    report_record(report), option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_UTC_Z
                )
                + b"\n"
            )
    return len(reports)


class ReplayCounts(Protocol):
    """What :func:`replay_summary` reads of a :class:`driftline.replay.ReplayResult`."""

    @property
    def reports(self) -> Sequence[WindowReport]: ...
    @property
    def rejected(self) -> Sequence[Any]: ...
    @property
    def invalid(self) -> int: ...
    @property
    def duplicates(self) -> int: ...
    @property
    def duplicate_labels(self) -> int: ...
    @property
    def too_late(self) -> int: ...
    @property
    def unlabelled(self) -> int: ...
    @property
    def labels_let_go(self) -> int: ...


def replay_summary(result: ReplayCounts) -> list[str]:
    """What a replay dropped, and why, in a few lines under its table."""

    def n(count: int, what: str) -> str:
        return f"{count} {what}{'' if count == 1 else 's'}"

    text = [
        f"{len(result.reports)} windows judged; dropped as the service would: "
        f"{n(result.duplicates, 'duplicate prediction')}, "
        f"{n(result.duplicate_labels, 'duplicate label')} (same prediction_id), "
        f"{n(result.invalid, 'invalid line')}, {result.too_late} too late "
        f"(older than the watermark minus the window, lateness and pane); "
        f"{result.unlabelled} predictions never labelled"
    ]
    if result.labels_let_go:
        text.append(f"{n(result.labels_let_go, 'label')} joined after its window was let go")
    if result.rejected:
        first = result.rejected[0]
        text.append(f"first invalid line: {first.path}:{first.line}: {first.reason}")
    return text
