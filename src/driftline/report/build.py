"""One self-contained HTML page of a report: per model a summary and its figures.

plotly.js is inlined once, in the head, so the page opens with no network; each figure
(:mod:`driftline.report.figures`) is a div that draws itself with it. Pure: no client, no
clock.
"""

from __future__ import annotations

import html

from plotly.offline import get_plotlyjs

from driftline.report.data import ReportData
from driftline.report.figures import (
    RESOLVED_COLOUR,
    SEVERITY_COLOUR,
    model_figures,
    retrain_times,
    tag,
    window_time,
)

__all__ = ["render_html"]


def _summary(data: ReportData, model: str) -> str:
    points = [p for p in data.points if tag(p, "model") == model]
    windows = sorted({(p.time_ms, tag(p, "version"), tag(p, "window")) for p in points})
    alerts = [a for a in data.alerts if a.model == model]
    rows = [
        ("windows", str(len(windows))),
        ("first window end", window_time(windows[0][0]).isoformat() if windows else "-"),
        ("last window end", window_time(windows[-1][0]).isoformat() if windows else "-"),
        ("versions", ", ".join(sorted({v for _, v, _ in windows})) or "-"),
        ("window sizes", ", ".join(sorted({w for _, _, w in windows})) or "-"),
        (
            "alerts",
            ", ".join(
                f"{sum(1 for a in alerts if a.severity == s and a.status == 'firing')} {s}"
                for s in ("critical", "warning", "info")
            )
            + f", {sum(1 for a in alerts if a.status == 'resolved')} resolved",
        ),
        ("retrain requests", str(len(retrain_times(points)))),
    ]
    cells = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    listed = "".join(
        f"<li><b>{html.escape(a.severity)}</b> {html.escape(a.status)} "
        f"{html.escape(a.window_start.isoformat())} to {html.escape(a.window_end.isoformat())}: "
        + html.escape(
            "; ".join(
                f"{r.feature + ' ' if r.feature else ''}{r.statistic} {r.value:.3g} "
                f"(threshold {r.threshold:.3g})"
                for r in a.reasons
            )
        )
        + "</li>"
        for a in alerts
    )
    return f'<table class="summary">{cells}</table>' + (
        f"<details><summary>alerts ({len(alerts)})</summary><ul>{listed}</ul></details>"
        if alerts
        else ""
    )


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em 2em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; }
.meta { color: #555; } .note { color: #a15c00; }
table.summary { border-collapse: collapse; margin: 0.5em 0 1em; }
table.summary th { text-align: left; padding: 2px 12px 2px 0; font-weight: 600; }
.legend-key span { display: inline-block; padding: 0 6px; margin-right: 8px; }
"""


def _range_text(data: ReportData) -> str:
    def show(ms: int | None) -> str:
        return "…" if ms is None else window_time(ms).isoformat()

    return f"{show(data.since_ms)} to {show(data.until_ms)}"


def render_html(data: ReportData, *, title: str = "driftline report") -> str:
    """The whole report as one HTML page that opens with no network: plotly.js inlined once
    in the head, then per model a summary and its figures."""
    sections: list[str] = []
    for i, model in enumerate(data.models):
        parts = [f'<section id="model-{i}"><h2>{html.escape(model)}</h2>', _summary(data, model)]
        for figure in model_figures(data, model):
            div = figure.figure.to_html(
                full_html=False,
                include_plotlyjs=False,
                div_id=f"m{i}-{figure.key}",
                config={"displaylogo": False, "responsive": True},
            )
            parts.append(f"<h3>{html.escape(figure.title)}</h3>{div}")
        parts.append("</section>")
        sections.append("".join(parts))
    key = (
        "".join(
            f'<span style="background:{c}33">{html.escape(s)} alert</span>'
            for s, c in SEVERITY_COLOUR.items()
        )
        + f'<span style="background:{RESOLVED_COLOUR}33">resolved</span>'
    )
    notes = "".join(f'<p class="note">{html.escape(n)}</p>' for n in data.notes)
    nav = " · ".join(
        f'<a href="#model-{i}">{html.escape(m)}</a>' for i, m in enumerate(data.models)
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style>"
        f'<script type="text/javascript">{get_plotlyjs()}</script></head><body>'
        f"<h1>{html.escape(title)}</h1>"
        f'<p class="meta">source: {html.escape(data.source or "-")}; window ends from '
        f"{html.escape(_range_text(data))}; {len(data.points)} points, "
        f"{len(data.alerts)} alerts, {len(data.versions)} version registrations. "
        "Times are UTC; x = window end.</p>"
        f'<p class="legend-key">Shaded around a window\'s point: {key} '
        "Dotted red line: retrain requested. "
        "Dash-dot line: model version registered (or its first window).</p>"
        f"{notes}<nav>{nav}</nav>{''.join(sections)}</body></html>\n"
    )
