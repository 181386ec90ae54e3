"""A model's figures over time, from a report's data: one plotly figure per kind of statistic.

Per model, over time (x = window end, UTC): each feature's drift statistic against its
threshold (and the prediction's and label's), realised performance against the label-free
estimate and the baseline, label coverage and delay, data-quality checks against their
thresholds. On every figure, alerts shade their window (colour = severity), a retrain
request is marked at its window's end and each model version at its registration (or, when
none was read, at its first window). The page around them is :mod:`driftline.report.build`.
Pure: no client, no clock.
"""

from __future__ import annotations

import html
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from driftline.report.data import ReportData, VersionMark
from driftline.schemas.events import to_epoch_ms
from driftline.schemas.outputs import DriftAlert
from driftline.sinks.points import FieldValue, MetricPoint

__all__ = [
    "RESOLVED_COLOUR",
    "SEVERITY_COLOUR",
    "ModelFigure",
    "model_figures",
    "retrain_times",
    "tag",
    "window_time",
]

# Naive datetimes in UTC: plotly.js reads no offset in a date string.
_EPOCH = datetime(1970, 1, 1)
_PALETTE = ("#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#17becf", "#bcbd22", "#7f7f7f")
SEVERITY_COLOUR = {"info": "#1f77b4", "warning": "#ff7f0e", "critical": "#d62728"}
RESOLVED_COLOUR = "#2ca02c"
_ROW_HEIGHT = 190


@dataclass(frozen=True, slots=True)
class ModelFigure:
    """One figure of a model's section: ``key`` (stable, for ids and tests), a title, the
    plotly figure."""

    key: str
    title: str
    figure: go.Figure


@dataclass(frozen=True, slots=True)
class _Series:
    """A point series of one (version, window): times and the fields of each point."""

    version: str
    window: str
    points: tuple[MetricPoint, ...]

    def times(self) -> list[datetime]:
        return [window_time(p.time_ms) for p in self.points]

    def values(self, name: str) -> list[float | None]:
        out: list[float | None] = []
        for p in self.points:
            value = dict(p.fields).get(name)
            out.append(None if value is None or isinstance(value, str) else float(value))
        return out

    def flags(self, name: str) -> list[bool]:
        return [dict(p.fields).get(name) is True for p in self.points]


def window_time(ms: int) -> datetime:
    """Epoch milliseconds as the naive UTC datetime the figures hold."""
    return _EPOCH + timedelta(milliseconds=ms)


def tag(point: MetricPoint, name: str) -> str:
    """A point's tag, or "" when it has none."""
    return dict(point.tags).get(name, "")


def _group(
    points: Iterable[MetricPoint], measurement: str, *by: str
) -> dict[tuple[str, ...], list[_Series]]:
    """``measurement``'s points by the tags ``by``, each split into one series per
    (version, window), in time order."""
    grouped: dict[tuple[str, ...], dict[tuple[str, str], list[MetricPoint]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for p in points:
        if p.measurement == measurement:
            key = tuple(tag(p, t) for t in by)
            grouped[key][tag(p, "version"), tag(p, "window")].append(p)
    return {
        key: [
            _Series(v, w, tuple(sorted(ps, key=lambda p: p.time_ms)))
            for (v, w), ps in sorted(series.items())
        ]
        for key, series in sorted(grouped.items())
    }


class _Style:
    """Colours and names of one model's series: one colour per (version, window); the
    version and window named only when the model has more than one of them."""

    def __init__(self, points: Sequence[MetricPoint]) -> None:
        keys = sorted({(tag(p, "version"), tag(p, "window")) for p in points})
        self._colour = {k: _PALETTE[i % len(_PALETTE)] for i, k in enumerate(keys)}
        self._versions = len({v for v, _ in keys}) > 1
        self._windows = len({w for _, w in keys}) > 1

    def colour(self, s: _Series) -> str:
        return self._colour.get((s.version, s.window), _PALETTE[0])

    def suffix(self, s: _Series) -> str:
        parts = ([f"v{s.version}"] if self._versions else []) + (
            [s.window] if self._windows else []
        )
        return f" ({', '.join(parts)})" if parts else ""


class _Legend:
    """Shows each legend entry once per figure, however many rows repeat it."""

    def __init__(self) -> None:
        self._shown: set[str] = set()

    def first(self, name: str) -> bool:
        if name in self._shown:
            return False
        self._shown.add(name)
        return True


def _line(
    fig: go.Figure,
    row: int,
    s: _Series,
    y: list[float | None],
    name: str,
    colour: str,
    legend: _Legend,
    *,
    dash: str | None = None,
    hover: str = "",
) -> None:
    fig.add_trace(
        go.Scatter(
            x=s.times(),
            y=y,
            name=name,
            legendgroup=name,
            showlegend=legend.first(name),
            mode="lines" if dash else "lines+markers",
            line={"color": colour, "dash": dash, "width": 1.5 if dash else 2},
            hovertemplate=f"{html.escape(hover or name)}<br>%{{x}}<br>%{{y:.4g}}<extra></extra>",
        ),
        row=row,
        col=1,
    )


def _flagged(
    fig: go.Figure, row: int, s: _Series, y: list[float | None], flags: list[bool], legend: _Legend
) -> None:
    xs = [t for t, f in zip(s.times(), flags, strict=True) if f]
    if not xs:
        return
    name = "over threshold"
    fig.add_trace(
        go.Scatter(
            x=xs,
            y=[v for v, f in zip(y, flags, strict=True) if f],
            name=name,
            legendgroup=name,
            showlegend=legend.first(name),
            mode="markers",
            marker={"color": "#d62728", "symbol": "x", "size": 10},
            hovertemplate="over threshold<br>%{x}<br>%{y:.4g}<extra></extra>",
        ),
        row=row,
        col=1,
    )


def _grid(titles: Sequence[str]) -> go.Figure:
    fig = make_subplots(
        rows=len(titles),
        cols=1,
        shared_xaxes=True,
        subplot_titles=[html.escape(t) for t in titles],
        vertical_spacing=min(0.08, 0.35 / max(len(titles), 1)),
    )
    fig.update_layout(
        height=90 + _ROW_HEIGHT * len(titles),
        margin={"l": 60, "r": 240, "t": 60, "b": 40},  # room for the legend: aligned x axes,
        template="plotly_white",
        hovermode="closest",
        legend={"tracegroupgap": 4, "font": {"size": 11}, "x": 1.02, "xanchor": "left"},
    )
    return fig


def _drift_figure(points: Sequence[MetricPoint], style: _Style) -> go.Figure | None:
    rows: list[tuple[str, list[_Series]]] = []
    for (feature, test), series in _group(points, "feature_drift", "feature", "test").items():
        rows.append((f"{feature}: {test}", series))
    for measurement, what in (("prediction_drift", "prediction"), ("label_drift", "label")):
        for (test,), series in _group(points, measurement, "test").items():
            rows.append((f"{what}: {test}", series))
    if not rows:
        return None
    fig = _grid([title for title, _ in rows])
    legend = _Legend()
    for row, (title, series) in enumerate(rows, start=1):
        for s in series:
            statistic = s.values("statistic")
            suffix = style.suffix(s)
            _line(
                fig,
                row,
                s,
                statistic,
                f"statistic{suffix}",
                style.colour(s),
                legend,
                hover=f"{title}{suffix}",
            )
            _line(
                fig,
                row,
                s,
                s.values("threshold"),
                f"threshold{suffix}",
                "#555555",
                legend,
                dash="dash",
                hover=f"{title} threshold{suffix}",
            )
            _flagged(fig, row, s, statistic, s.flags("drifted"), legend)
    return fig


def _performance_figure(points: Sequence[MetricPoint], style: _Style) -> go.Figure | None:
    realised = {m: s for (m,), s in _group(points, "performance", "metric").items()}
    estimated = {m: s for (m,), s in _group(points, "performance_estimate", "metric").items()}
    if not realised and not estimated:
        return None
    # An estimate named expected_<metric> is drawn with that metric, realised.
    paired = sorted({m.removeprefix("expected_") for m in estimated})
    others = sorted(m for m in realised if m not in paired)
    titles = [f"{m}: realised vs estimated" for m in paired]
    titles += ["other realised metrics"] if others else []
    fig = _grid(titles)
    legend = _Legend()
    for row, metric in enumerate(paired, start=1):
        for s in realised.get(metric, []):
            suffix = style.suffix(s)
            _line(
                fig,
                row,
                s,
                s.values("value"),
                f"{metric} realised{suffix}",
                style.colour(s),
                legend,
            )
            if any(v is not None for v in s.values("baseline")):
                _line(
                    fig,
                    row,
                    s,
                    s.values("baseline"),
                    f"{metric} baseline{suffix}",
                    "#555555",
                    legend,
                    dash="dash",
                )
        for estimate in (f"expected_{metric}", metric):
            for s in estimated.get(estimate, []):
                suffix = style.suffix(s)
                _line(
                    fig,
                    row,
                    s,
                    s.values("value"),
                    f"{estimate} estimated{suffix}",
                    "#ff7f0e",
                    legend,
                    dash="dot",
                )
    if others:
        row = len(titles)
        for i, metric in enumerate(others):
            for s in realised[metric]:
                colour = _PALETTE[i % len(_PALETTE)]
                _line(fig, row, s, s.values("value"), f"{metric}{style.suffix(s)}", colour, legend)
    return fig


def _labels_figure(points: Sequence[MetricPoint], style: _Style) -> go.Figure | None:
    series = _group(points, "label_coverage").get((), [])
    if not series:
        return None
    delays = [s for s in series if any(v is not None for v in s.values("mean_label_delay_s"))]
    fig = _grid(
        ["label coverage (share of predictions labelled)"]
        + (["mean label delay (seconds)"] if delays else [])
    )
    legend = _Legend()
    for s in series:
        suffix = style.suffix(s)
        _line(fig, 1, s, s.values("coverage"), f"coverage{suffix}", style.colour(s), legend)
    for s in delays:
        suffix = style.suffix(s)
        _line(fig, 2, s, s.values("mean_label_delay_s"), f"delay{suffix}", style.colour(s), legend)
    fig.update_yaxes(rangemode="tozero", row=1, col=1)
    return fig


def _quality_figure(points: Sequence[MetricPoint], style: _Style) -> go.Figure | None:
    by_check: dict[str, list[tuple[str, list[_Series]]]] = defaultdict(list)
    for (check, feature), series in _group(points, "data_quality", "check", "feature").items():
        by_check[check].append((feature, series))
    if not by_check:
        return None
    checks = sorted(by_check)
    fig = _grid(checks)
    legend = _Legend()
    for row, check in enumerate(checks, start=1):
        for i, (feature, series) in enumerate(by_check[check]):
            for s in series:
                name = f"{feature}{style.suffix(s)}"
                value = s.values("value")
                _line(
                    fig,
                    row,
                    s,
                    value,
                    name,
                    _PALETTE[i % len(_PALETTE)],
                    legend,
                    hover=f"{check} of {name}",
                )
                _line(
                    fig,
                    row,
                    s,
                    s.values("threshold"),
                    "threshold",
                    "#555555",
                    legend,
                    dash="dash",
                    hover=f"{check} threshold of {name}",
                )
                _flagged(fig, row, s, value, s.flags("flagged"), legend)
    return fig


def _annotate(
    fig: go.Figure,
    alerts: Sequence[DriftAlert],
    versions: Sequence[VersionMark],
    retrains: Sequence[int],
) -> None:
    """Alerts as shaded windows, retrain requests and versions as vertical lines, across
    every row of ``fig`` (its rows share the x axis)."""
    for alert in alerts:
        # A point stands at its window's end: the band is as wide as the window and centred
        # on that point, so it covers the alerted window's point and no other (tumbling).
        start, end = to_epoch_ms(alert.window_start), to_epoch_ms(alert.window_end)
        half = (end - start) // 2
        colour = RESOLVED_COLOUR if alert.status == "resolved" else SEVERITY_COLOUR[alert.severity]
        fig.add_shape(
            type="rect",
            xref="x",
            yref="paper",
            y0=0,
            y1=1,
            layer="below",
            line_width=0,
            x0=window_time(end - half),
            x1=window_time(end + half),
            fillcolor=colour,
            opacity=0.13,
            name=f"alert {alert.status} {alert.severity}",
        )
    for ms in retrains:
        fig.add_shape(
            type="line",
            xref="x",
            yref="paper",
            y0=0,
            y1=1,
            x0=window_time(ms),
            x1=window_time(ms),
            line={"color": "#d62728", "dash": "dot", "width": 1},
            name="retrain",
        )
        fig.add_annotation(
            x=window_time(ms),
            xref="x",
            y=1.0,
            yref="paper",
            text="retrain",
            showarrow=False,
            yanchor="bottom",
            font={"color": "#d62728", "size": 10},
        )
    for mark in versions:
        fig.add_shape(
            type="line",
            xref="x",
            yref="paper",
            y0=0,
            y1=1,
            x0=window_time(mark.time_ms),
            x1=window_time(mark.time_ms),
            line={"color": "#000000", "dash": "dashdot", "width": 1},
            name=f"version {mark.version}",
        )
        fig.add_annotation(
            x=window_time(mark.time_ms),
            xref="x",
            y=1.0,
            yref="paper",
            yanchor="bottom",
            text=html.escape(f"v{mark.version} ({mark.source})"),
            showarrow=False,
            xanchor="left",
            font={"size": 10},
        )


def _version_marks(
    data: ReportData, model: str, points: Sequence[MetricPoint]
) -> list[VersionMark]:
    """The model's versions where its points are: a registration at its time when that is
    within the span of the model's points, otherwise (a registration long before its
    traffic, or event times far from the wall clock) at the version's first window, saying
    when it was registered; a version with points and no registration read, at its first
    window. A registration of a version with no point in the range is left out."""
    first: dict[str, int] = {}
    for p in points:
        version = tag(p, "version")
        first[version] = min(first.get(version, p.time_ms), p.time_ms)
    if not first:
        return []
    low, high = min(first.values()), max(p.time_ms for p in points)
    marks: list[VersionMark] = []
    for mark in data.versions:
        if mark.model != model:
            continue
        if low <= mark.time_ms <= high:
            marks.append(mark)
        elif mark.version in first:
            when = window_time(mark.time_ms).strftime("%Y-%m-%d %H:%M")
            marks.append(
                VersionMark(
                    model,
                    mark.version,
                    first[mark.version],
                    f"{mark.source}, registered {when}",
                    mark.parent,
                )
            )
    shown = {m.version for m in marks}
    marks += [
        VersionMark(model, v, ms, "first window")
        for v, ms in sorted(first.items())
        if v not in shown
    ]
    return sorted(marks, key=lambda m: (m.time_ms, m.version))


def retrain_times(points: Sequence[MetricPoint]) -> list[int]:
    """The window ends at which a decision asked for a retrain, in order."""
    return sorted(
        {p.time_ms for p in points if p.measurement == "decision" and _field(p, "retrain") is True}
    )


def _field(point: MetricPoint, name: str) -> FieldValue | None:
    return dict(point.fields).get(name)


def model_figures(data: ReportData, model: str) -> list[ModelFigure]:
    """The figures of ``model``'s section, in page order; a kind of figure with no point
    in the range is left out."""
    points = [p for p in data.points if tag(p, "model") == model]
    style = _Style(points)
    alerts = [a for a in data.alerts if a.model == model]
    versions = _version_marks(data, model, points)
    retrains = retrain_times(points)
    made: list[ModelFigure] = []
    for key, title, build in (
        ("drift", "Drift: each statistic against its threshold", _drift_figure),
        ("performance", "Performance: realised against estimated", _performance_figure),
        ("labels", "Labels: coverage and delay", _labels_figure),
        ("quality", "Data quality: each check against its threshold", _quality_figure),
    ):
        fig = build(points, style)
        if fig is not None:
            _annotate(fig, alerts, versions, retrains)
            made.append(ModelFigure(key, title, fig))
    return made
