"""The records stage 2 publishes for a judged window: its role (topic), key and value bytes.

A window report becomes one metrics-outbox record (its metric points as line protocol), one
record per alert and at most one retrain request, all keyed by the model so that every record
of a model keeps its order on its topic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from driftline.detectors.engine import WindowReport
from driftline.sinks.outbox import encode_points
from driftline.sinks.points import MetricPoint, report_points

__all__ = ["Output", "OutputRole", "report_outputs"]

OutputRole = Literal["metrics", "alerts", "retrain"]
"""The :class:`~driftline.config.settings.TopicSettings` field naming an output's topic."""


@dataclass(frozen=True, slots=True)
class Output:
    """One record to publish: to the topic of ``role``, with ``key`` and ``value`` bytes."""

    role: OutputRole
    key: bytes
    value: bytes


def report_outputs(report: WindowReport, points: list[MetricPoint] | None = None) -> list[Output]:
    """The records a window report publishes: its metric points, its alerts, its request.

    ``points`` are the report's metric points when the caller made them already
    (:func:`~driftline.sinks.points.report_points` of the report otherwise).
    """
    if points is None:
        points = report_points(report)
    key = report.model.encode()
    outputs = [Output("metrics", key, encode_points(points))]
    outputs += [Output("alerts", key, alert.to_json()) for alert in report.decision.alerts]
    if report.decision.retrain is not None:
        outputs.append(Output("retrain", key, report.decision.retrain.to_json()))
    return outputs
