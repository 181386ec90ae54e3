"""driftline's Grafana dashboard as code: writes ``deploy/grafana/dashboards/driftline.json``.

Built with grafana-foundation-sdk (``pip install -e '.[dev]'``). Every panel queries InfluxDB
in Flux, on the measurements, tags and fields driftline's writer produces
(:data:`driftline.sinks.points.SCHEMA` and :data:`driftline.streams.stage2.rollout.SCHEMA`,
documented in ``docs/deploy.md``); ``tests/unit/test_deploy.py`` checks the checked-in JSON
against those constants and against a fresh run of this script.

    python deploy/grafana/dashboard.py          # rewrite the JSON
    python deploy/grafana/dashboard.py --check  # exit 1 if the JSON is out of date
"""

from __future__ import annotations

import json
import sys
import typing
from pathlib import Path

from grafana_foundation_sdk.builders import common, dashboard, stat, timeseries
from grafana_foundation_sdk.cog import builder, variants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import (
    GraphDrawStyle,
    LegendDisplayMode,
    LegendPlacement,
    SortOrder,
    StackingMode,
    TooltipDisplayMode,
    VisibilityMode,
)
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    DynamicConfigValue,
    VariableRefresh,
)

OUTPUT = Path(__file__).parent / "dashboards" / "driftline.json"
DATASOURCE = DataSourceRef(type_val="influxdb", uid="driftline-influxdb")
"""The data source provisioned in provisioning/datasources/influxdb.yaml (same uid)."""


class FluxQuery(variants.Dataquery):
    """A Flux query of Grafana's InfluxDB data source (the SDK has no InfluxDB builder)."""

    def __init__(self, ref_id: str, query: str) -> None:
        self.ref_id, self.query = ref_id, query

    def to_json(self) -> dict[str, object]:
        return {"refId": self.ref_id, "datasource": DATASOURCE.to_json(), "query": self.query}


class Flux(builder.Builder[variants.Dataquery]):
    """Builds a :class:`FluxQuery`: one measurement, some of its fields, the model variable."""

    def __init__(
        self,
        ref_id: str,
        measurement: str,
        fields: typing.Sequence[str],
        *,
        by: typing.Sequence[str] = ("model", "version"),
        where: str | None = None,
    ) -> None:
        self.ref_id, self.measurement, self.fields, self.by = ref_id, measurement, fields, by
        self.where = where

    def build(self) -> FluxQuery:
        fields = " or ".join(f'r._field == "{f}"' for f in self.fields)
        lines = [
            "from(bucket: v.defaultBucket)",
            "  |> range(start: v.timeRangeStart, stop: v.timeRangeStop)",
            f'  |> filter(fn: (r) => r._measurement == "{self.measurement}")',
            "  |> filter(fn: (r) => r.model =~ /^${model:regex}$/)",
            f"  |> filter(fn: (r) => {fields})",
        ]
        if self.where is not None:
            lines.append(f"  |> filter(fn: (r) => {self.where})")
        columns = ", ".join(f'"{c}"' for c in (*self.by, "_field"))
        lines.append(f"  |> group(columns: [{columns}])")
        return FluxQuery(self.ref_id, "\n".join(lines))


def _series(title: str, description: str, *targets: Flux) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .height(8)
        .span(12)
        .show_points(VisibilityMode.ALWAYS)  # one point per window: lines alone hide single windows
        .span_nulls(True)
        .legend(
            common.VizLegendOptions()
            .display_mode(LegendDisplayMode.TABLE)
            .placement(LegendPlacement.BOTTOM)
            .show_legend(True)
        )
        .tooltip(
            common.VizTooltipOptions().mode(TooltipDisplayMode.MULTI).sort(SortOrder.DESCENDING)
        )
    )
    for target in targets:
        panel = panel.with_target(target)
    return panel


def build() -> dict[str, typing.Any]:
    """The dashboard, as the JSON object Grafana provisions."""
    model = (
        dashboard.QueryVariable("model")
        .label("model")
        .datasource(DATASOURCE)
        .query(
            'import "influxdata/influxdb/schema"\nschema.tagValues(bucket: v.defaultBucket, '
            'tag: "model", predicate: (r) => r._measurement == "decision")'
        )
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .multi(True)
        .include_all(True)
    )
    board = (
        dashboard.Dashboard("driftline")
        .uid("driftline")
        .description(
            "Drift, data quality and performance per model version and window, as "
            "driftline's InfluxDB writer stores them (docs/deploy.md)."
        )
        .tags(["driftline"])
        .time("now-6h", "now")
        .refresh("30s")
        .with_variable(model)
        .with_row(dashboard.Row("Drift"))
        .with_panel(
            _series(
                "Feature drift vs threshold",
                "Each feature's drift statistic per window (PSI, KS D, ...; tag test) and the "
                "threshold it is judged against: above the threshold, the feature drifted.",
                Flux(
                    "A",
                    "feature_drift",
                    ["statistic", "threshold"],
                    by=("model", "version", "feature", "test"),
                ),
            )
        )
        .with_panel(
            _series(
                "Prediction and label drift",
                "The drift statistic of the model's predictions and of its labels per window.",
                Flux(
                    "A",
                    "prediction_drift",
                    ["statistic", "threshold"],
                    by=("model", "version", "test"),
                ),
                Flux("B", "label_drift", ["statistic"], by=("model", "version", "test")),
            )
        )
        .with_row(dashboard.Row("Performance"))
        .with_panel(
            _series(
                "Realised vs estimated performance",
                "Realised performance from joined labels (restated as late labels arrive), its "
                "reference baseline, and the label-free estimate from the scores.",
                Flux("A", "performance", ["value", "baseline"], by=("model", "version", "metric")),
                Flux("B", "performance_estimate", ["value"], by=("model", "version", "metric")),
            )
        )
        .with_panel(
            _series(
                "Label coverage and delay",
                "The share of a window's predictions that have a label so far, and the mean "
                "delay between a prediction and its label (seconds).",
                Flux("A", "label_coverage", ["coverage"]),
                Flux("B", "label_coverage", ["mean_label_delay_s"]),
            )
            .unit("percentunit")
            .override_by_query(  # the delay in seconds, on an axis of its own
                "B",
                [
                    DynamicConfigValue("unit", "s"),
                    DynamicConfigValue("custom.axisPlacement", "right"),
                ],
            )
        )
        .with_row(dashboard.Row("Data quality"))
        .with_panel(
            _series(
                "Data quality checks",
                "Each feature's data-quality checks per window (null rate, out of range, ...; "
                "tag check): the value and its threshold.",
                Flux(
                    "A",
                    "data_quality",
                    ["value", "threshold"],
                    by=("model", "version", "feature", "check"),
                ),
            )
        )
        .with_panel(
            _series(
                "Flagged quality checks",
                "1 where a feature's check was flagged in the window.",
                Flux("A", "data_quality", ["flagged"], by=("model", "version", "feature", "check")),
            ).draw_style(GraphDrawStyle.BARS)
        )
        .with_row(dashboard.Row("Alerts and decisions"))
        .with_panel(
            _series(
                "Decisions",
                "The decision policy per window: firing (an alert is open), severity (0 none, "
                "1 info, 2 warning, 3 critical), a retrain request, drifted features.",
                Flux("A", "decision", ["firing", "severity", "retrain", "drifted_features"]),
            )
        )
        .with_panel(
            _series(
                "Concept drift and performance breaches",
                "The sequential concept-drift detector on the error stream, and whether the "
                "realised performance fell below its budget.",
                Flux("A", "concept_drift", ["drift"]),
                Flux("B", "decision", ["performance_breach", "in_drift"]),
            )
        )
        .with_row(dashboard.Row("Serving version"))
        .with_panel(
            _series(
                "Predictions per serving version",
                "Predictions per window and model version: which version is serving, and the "
                "switch after a promotion.",
                Flux("A", "label_coverage", ["n_predictions"], by=("model", "version")),
            )
            .draw_style(GraphDrawStyle.BARS)
            .stacking(common.StackingConfig().mode(StackingMode.NORMAL))
        )
        .with_panel(
            _series(
                "Rollout: challenger minus champion",
                "A rollout's difference challenger minus champion and its anytime-valid "
                "interval; decision 0 continue, 1 promote, -1 roll back, 2 end.",
                Flux(
                    "A",
                    "rollout",
                    ["estimate", "lower", "upper", "decision"],
                    by=("model", "champion", "challenger", "metric"),
                ),
            )
        )
        .with_panel(
            stat.Panel()
            .title("Predictions in each version's latest window")
            .description(
                "Per model version, the predictions of its latest window in the time range: "
                "the versions still serving have recent windows (see the panel above)."
            )
            .datasource(DATASOURCE)
            .height(4)
            .span(24)
            .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
            .with_target(Flux("A", "label_coverage", ["n_predictions"], by=("model", "version")))
        )
    )
    encoded: dict[str, typing.Any] = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    for number, panel in enumerate(encoded["panels"], start=1):  # the SDK leaves ids unset
        panel["id"] = number
    return encoded


def render() -> str:
    """The dashboard's JSON text, as checked in."""
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if OUTPUT.read_text(encoding="utf-8") != text:
            print(f"{OUTPUT} is out of date: run python {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
