"""The report's figures from given points: the right series, thresholds, flags and marks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import plotly.graph_objects as go
import pytest

from driftline.report.build import render_html
from driftline.report.data import ReportData, VersionMark, collect
from driftline.report.figures import ModelFigure, model_figures
from driftline.schemas.outputs import DriftAlert, Reason
from driftline.sinks.points import FieldValue, MetricPoint

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
STEP = 600_000  # ten-minute windows
EPOCH = datetime(1970, 1, 1)


def at(i: int) -> datetime:
    """The naive UTC time of window ``i``'s end, as the figures hold it."""
    return EPOCH + timedelta(milliseconds=T0 + i * STEP)


def point(
    measurement: str, i: int, model: str = "m", version: str = "1", **tags_and_fields: object
) -> MetricPoint:
    tags = {"model": model, "version": version, "window": "10m"}
    fields: dict[str, FieldValue] = {}
    for k, v in tags_and_fields.items():
        if k in ("feature", "test", "metric", "check"):
            tags[k] = str(v)
        else:
            assert isinstance(v, float | int | bool | str)
            fields[k] = v
    return MetricPoint(
        measurement, tuple(sorted(tags.items())), tuple(fields.items()), T0 + i * STEP
    )


def drift(i: int, feature: str, statistic: float, threshold: float = 0.2) -> MetricPoint:
    return point(
        "feature_drift",
        i,
        feature=feature,
        test="psi",
        statistic=statistic,
        threshold=threshold,
        drifted=statistic > threshold,
    )


def alert(i: int, severity: str = "critical") -> DriftAlert:
    end = datetime.fromtimestamp((T0 + i * STEP) / 1000, UTC)
    reason = Reason(kind="feature_drift", feature="x3", statistic="psi", value=1.7, threshold=0.2)
    return DriftAlert.create(
        "m",
        "1",
        end - timedelta(minutes=10),
        end,
        severity=severity,
        reasons=[reason],  # type: ignore[arg-type]
    )


def figures(data: ReportData, model: str = "m") -> dict[str, go.Figure]:
    made: list[ModelFigure] = model_figures(data, model)
    return {f.key: f.figure for f in made}


def traces(fig: go.Figure, name: str) -> list[go.Scatter]:
    return [t for t in fig.data if t.name == name]


SERIES = [
    *(drift(i, "x1", 0.01 * i) for i in range(4)),
    *(drift(i, "x3", s) for i, s in enumerate([0.0, 0.05, 1.7, 1.8])),
    *(
        point("prediction_drift", i, test="chi2", statistic=0.01, threshold=0.1, drifted=False)
        for i in range(4)
    ),
    *(
        point("performance", i, metric="accuracy", value=0.9 if i >= 2 else 0.95, baseline=0.94)
        for i in range(4)
    ),
    *(point("performance", i, metric="log_loss", value=0.3) for i in range(4)),
    *(point("performance_estimate", i, metric="expected_accuracy", value=0.9) for i in range(4)),
    *(
        point("label_coverage", i, coverage=0.25 * i, n_labels=i, mean_label_delay_s=60.0 * i)
        for i in range(4)
    ),
    *(
        point(
            "data_quality",
            i,
            feature="x3",
            check="out_of_range_rate",
            value=0.3 * (i >= 2),
            threshold=0.02,
            flagged=i >= 2,
        )
        for i in range(4)
    ),
    *(point("decision", i, firing=i >= 2, retrain=i == 3) for i in range(4)),
]


@pytest.fixture
def data() -> ReportData:
    return collect(
        SERIES,
        [alert(2), alert(3, "warning")],
        [VersionMark("m", "1", T0 + STEP, "cli")],
    )


def test_drift_has_one_row_per_feature_and_test_with_its_statistic_and_threshold(
    data: ReportData,
) -> None:
    fig = figures(data)["drift"]
    titles = [
        a.text
        for a in fig.layout.annotations
        if a.text in ("x1: psi", "x3: psi", "prediction: chi2")
    ]
    assert titles == ["x1: psi", "x3: psi", "prediction: chi2"]
    statistic = traces(fig, "statistic")
    assert [list(t.y) for t in statistic] == [
        [0.0, 0.01, 0.02, 0.03],
        [0.0, 0.05, 1.7, 1.8],
        [0.01] * 4,
    ]
    assert list(statistic[1].x) == [at(i) for i in range(4)]
    # each row's statistic and threshold share that row's axes
    thresholds = traces(fig, "threshold")
    assert [list(t.y) for t in thresholds] == [[0.2] * 4, [0.2] * 4, [0.1] * 4]
    assert [t.yaxis for t in thresholds] == [t.yaxis for t in statistic] == ["y", "y2", "y3"]
    (flagged,) = traces(fig, "over threshold")
    assert list(flagged.x) == [at(2), at(3)]
    assert list(flagged.y) == [1.7, 1.8]
    assert flagged.yaxis == "y2"


def test_performance_draws_realised_against_estimated_and_the_baseline(data: ReportData) -> None:
    fig = figures(data)["performance"]
    (realised,) = traces(fig, "accuracy realised")
    (estimate,) = traces(fig, "expected_accuracy estimated")
    (baseline,) = traces(fig, "accuracy baseline")
    assert list(realised.y) == [0.95, 0.95, 0.9, 0.9]
    assert list(estimate.y) == [0.9] * 4
    assert list(baseline.y) == [0.94] * 4
    assert realised.yaxis == estimate.yaxis == baseline.yaxis == "y"
    (other,) = traces(fig, "log_loss")
    assert other.yaxis == "y2"


def test_labels_draw_coverage_and_delay(data: ReportData) -> None:
    fig = figures(data)["labels"]
    (coverage,) = traces(fig, "coverage")
    (delay,) = traces(fig, "delay")
    assert list(coverage.y) == [0.0, 0.25, 0.5, 0.75]
    assert list(delay.y) == [0.0, 60.0, 120.0, 180.0]
    assert (coverage.yaxis, delay.yaxis) == ("y", "y2")


def test_quality_draws_each_check_against_its_threshold_with_flags(data: ReportData) -> None:
    fig = figures(data)["quality"]
    (value,) = traces(fig, "x3")
    assert list(value.y) == [0.0, 0.0, 0.3, 0.3]
    assert list(traces(fig, "threshold")[0].y) == [0.02] * 4
    (flagged,) = traces(fig, "over threshold")
    assert list(flagged.x) == [at(2), at(3)]


def test_every_figure_marks_alerts_retrains_and_versions(data: ReportData) -> None:
    """An alert shades a band as wide as its window centred on its point, coloured by
    severity; the retrain request and the version registration are vertical lines."""
    made = figures(data)
    assert sorted(made) == ["drift", "labels", "performance", "quality"]
    for fig in made.values():
        shapes = {s.name: s for s in fig.layout.shapes}
        critical = shapes["alert firing critical"]
        assert (critical.x0, critical.x1) == (
            at(2) - timedelta(minutes=5),
            at(2) + timedelta(minutes=5),
        )
        assert (critical.y0, critical.y1, critical.yref) == (0, 1, "paper")
        assert critical.fillcolor == "#d62728"
        assert shapes["alert firing warning"].fillcolor == "#ff7f0e"
        assert shapes["retrain"].x0 == at(3)
        assert shapes["version 1"].x0 == at(1)
        texts = [a.text for a in fig.layout.annotations]
        assert "retrain" in texts
        assert "v1 (cli)" in texts


def test_a_version_with_no_registration_read_is_marked_at_its_first_window() -> None:
    points = [drift(i, "x1", 0.1) for i in range(2)] + [
        point(
            "feature_drift",
            i,
            version="2",
            feature="x1",
            test="psi",
            statistic=0.1,
            threshold=0.2,
            drifted=False,
        )
        for i in range(2, 4)
    ]
    fig = figures(collect(points))["drift"]
    shapes = {s.name: s.x0 for s in fig.layout.shapes}
    assert shapes == {"version 1": at(0), "version 2": at(2)}
    # two versions: each series says which
    assert [t.name for t in fig.data if t.name.startswith("statistic")] == [
        "statistic (v1)",
        "statistic (v2)",
    ]


def test_a_figure_with_nothing_to_draw_is_left_out() -> None:
    assert list(figures(collect([drift(0, "x1", 0.1)]))) == ["drift"]


def test_models_get_their_own_sections_and_series() -> None:
    data = collect(
        [
            drift(0, "x1", 0.1),
            point(
                "feature_drift",
                0,
                model="other",
                feature="y",
                test="psi",
                statistic=0.5,
                threshold=0.2,
                drifted=True,
            ),
        ]
    )
    assert data.models == ["m", "other"]
    (statistic,) = traces(figures(data, "other")["drift"], "statistic")
    assert list(statistic.y) == [0.5]


def test_the_page_inlines_plotly_once_and_draws_every_figure(data: ReportData) -> None:
    page = render_html(data, title="t <1>")
    assert page.count("Plotly.newPlot(") == 4
    assert page.count("plotly.js v") <= 2  # the bundle's banner, once
    assert "<script src=" not in page  # nothing to fetch
    assert "<title>t &lt;1&gt;</title>" in page
    assert page.index("</head>") > page.index("Plotly") > 0


def test_names_cannot_break_out_of_the_page() -> None:
    nasty = "</script><img src=x onerror=alert(1)>"
    page = render_html(
        collect(
            [
                point(
                    "feature_drift",
                    0,
                    model=nasty,
                    feature=nasty,
                    test="psi",
                    statistic=0.1,
                    threshold=0.2,
                    drifted=False,
                )
            ]
        )
    )
    assert nasty not in page


def test_a_registration_far_from_the_traffic_is_marked_at_the_first_window() -> None:
    """Event times of a backfill, say, a year before the version was registered: the mark
    goes to the version's first window and says when it was registered, instead of
    stretching the time axis over a year."""
    points = [drift(i, "x1", 0.1) for i in range(1, 3)]
    year_later = VersionMark("m", "1", T0 + 365 * 24 * 3_600_000, "cli")
    unknown = VersionMark("m", "9", T0, "trainer")  # a version with no point: left out
    fig = figures(collect(points, versions=[year_later, unknown]))["drift"]
    assert {s.name: s.x0 for s in fig.layout.shapes} == {"version 1": at(1)}
    assert "v1 (cli, registered 2027-01-01 00:00)" in [a.text for a in fig.layout.annotations]
