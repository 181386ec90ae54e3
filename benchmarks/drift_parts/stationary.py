"""Part 1 of the behaviour benchmark: a stationary stream through driftline, what it raised
(retrain requests, alerts, drift found), the false-positive rates of every test before any
correction, shadow monitors configured with the other tests, and Evidently on the same windows.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from common.evidently_report import EvidentlyVerdict
from common.report import Column, Table
from drift_parts.beside_evidently import EvidentlyWindows
from drift_parts.monitor import (
    SHADOWS,
    Clock,
    Shadow,
    Stream,
    column_kind,
    model_config,
    names,
    reason_names,
)
from drift_parts.population import draw
from driftline.config.settings import ModelConfig
from driftline.detectors.correction import adjust_p_values
from driftline.detectors.decision import Decision
from driftline.detectors.engine import WindowReport
from driftline.detectors.registry import run_test
from driftline.detectors.summary import PaneSummary
from driftline.detectors.thresholds import per_test_rate
from driftline.schemas.reference import CategoricalProfile, NumericProfile, ReferenceProfile

NUMERIC_EXTRA = ("ks", "jensen_shannon", "wasserstein")  # besides the configured psi
CATEGORICAL_EXTRA = ("psi", "jensen_shannon")  # besides the configured chi2
DRIFT_KINDS = ("feature_drift", "prediction_drift")


def tested_bins(profile: NumericProfile | CategoricalProfile) -> int:
    """Bins the configured test compares: deciles (PSI) or categories plus ``other`` (chi2)."""
    if isinstance(profile, NumericProfile):
        return len(profile.decile_edges) + 1
    return len(profile.categories) + 1


@dataclass
class Stationary:
    """What a stationary stream did to driftline, window after window."""

    profile: ReferenceProfile
    config: ModelConfig = field(default_factory=model_config)
    windows: int = 0
    drift_found: int = 0
    in_drift: int = 0
    firing: int = 0
    alerts: int = 0
    retrains: list[tuple[int, tuple[str, ...]]] = field(default_factory=list)
    concept_windows: int = 0
    breaches: int = 0
    feature_windows: int = 0
    drifted_feature_windows: int = 0
    floor_only_feature_windows: int = 0  # effect floor crossed, before correction
    bh_windows: int = 0  # BH alone (no effect floor) rejected something
    bh_columns: int = 0
    family_size: int = 0
    quality: Counter[str] = field(default_factory=Counter)
    quality_judged: Counter[str] = field(default_factory=Counter)
    # (test, column) -> one (statistic, p-value or NaN) per window
    raw: dict[tuple[str, str], list[tuple[float, float]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    shares: list[float] = field(default_factory=list)  # share of features drifted, per window
    found: list[bool] = field(default_factory=list)  # drift found, per window
    shadows: list[Shadow] = field(default_factory=list)
    extras: bool = True  # shadow monitors and the raw rates of the other tests
    last: Decision | None = None  # the newest window's decision

    def __post_init__(self) -> None:
        if self.extras:
            self.shadows = [Shadow.build(self.profile, setting, test) for setting, test in SHADOWS]

    def record(self, index: int, report: WindowReport, summary: PaneSummary) -> None:
        """Count one judged window; run the extra tests on its counts."""
        d = report.decision
        self.last = d
        self.windows += 1
        self.drift_found += d.drift_found
        self.found.append(d.drift_found)
        self.in_drift += d.in_drift
        self.firing += d.firing
        self.alerts += len(d.alerts)
        self.concept_windows += report.concept_drift
        self.breaches += d.performance_breach
        if d.retrain is not None:
            self.retrains.append((index, reason_names(d.retrain.reasons)))
        judged = [v for v in d.verdicts if v.judged and v.result.kind in DRIFT_KINDS]
        features = [v for v in judged if v.result.kind == "feature_drift"]
        drifted = sum(v.drifted for v in features)
        self.feature_windows += len(features)
        self.drifted_feature_windows += drifted
        self.floor_only_feature_windows += sum(v.result.drifted for v in features)
        self.shares.append(drifted / len(features) if features else 0.0)
        drift = self.config.drift
        p = [v.result.p_value for v in judged if v.result.p_value is not None]
        self.family_size = len(p)
        rejected = int((adjust_p_values(p, drift.correction) <= drift.fdr).sum())
        self.bh_windows += rejected > 0
        self.bh_columns += rejected
        for q in report.quality:
            self.quality[q.test] += q.drifted
            self.quality_judged[q.test] += 1
        for r in report.drift:
            if r.kind in DRIFT_KINDS:
                self.raw[(r.test, r.column)].append((r.statistic, nan_if_none(r.p_value)))
        for name, column in summary.features.items() if self.extras else ():
            profile = self.profile.features[name]
            extra = NUMERIC_EXTRA if isinstance(profile, NumericProfile) else CATEGORICAL_EXTRA
            for test in extra:
                r = run_test(
                    test, profile, column.counts, profile.count, drift.thresholds[test], name
                )
                self.raw[(test, name)].append((r.statistic, nan_if_none(r.p_value)))


def nan_if_none(p: float | None) -> float:
    return math.nan if p is None else p


def run_stationary(
    profile: ReferenceProfile,
    windows: int,
    events: int,
    rng: np.random.Generator,
    clock: Clock,
    evidently: EvidentlyWindows | str,
    evidently_windows: int,
) -> tuple[Stationary, Stationary, list[EvidentlyVerdict]]:
    """Feed ``windows`` stationary windows; Evidently judges the first ``evidently_windows``;
    a second stream with ``drift.thresholds: calibrated`` judges the same pane summaries."""
    stream = Stream(profile, model_config(), clock)
    result = Stationary(profile)
    config = model_config(threshold_mode="calibrated")
    calibrated = Stream(profile, config, clock)
    cal = Stationary(profile, config=config, extras=False)
    verdicts: list[EvidentlyVerdict] = []
    for index in range(windows):
        with clock.phase("generate"):
            sample = draw(events, rng)
        start = stream.start_ms
        report, summary = stream.step(sample)
        cal.record(index, calibrated.step(sample, summary=summary)[0], summary)
        with clock.phase("extra raw tests"):
            result.record(index, report, summary)
        with clock.phase("shadow monitors (other tests)"):
            for shadow in result.shadows:
                shadow.step(start, summary)
        if isinstance(evidently, EvidentlyWindows) and index < evidently_windows:
            with clock.phase("Evidently"):
                verdicts.append(evidently.run(sample))
    return result, cal, verdicts


def print_modes(fixed: Stationary, calibrated: Stationary, events: int) -> None:
    """The stationary stream's false alarms with fixed and with calibrated thresholds."""
    thresholds = [
        v.result.threshold
        for v in (calibrated.last.verdicts if calibrated.last else ())
        if v.judged and v.result.kind == "feature_drift"
    ]
    print(
        f"\n   Both threshold modes on the same {fixed.windows:,} windows of {events:,} events "
        "(calibrated: the model's budget drift.false_positive_rate "
        f"{calibrated.config.drift.false_positive_rate} a window over its columns, "
        f"{per_test_rate(calibrated.profile, calibrated.config.drift):.2g} per test; "
        "in the last window "
        f"{min(thresholds, default=math.nan):.4g}-{max(thresholds, default=math.nan):.4g})"
    )
    table = Table(
        Column("", 40, align="<"), Column("fixed", 16), Column("calibrated", 16), indent="   "
    )
    print(table.header())
    for label, a, b in (
        (
            "false retrain requests (goal 0)",
            f"{len(fixed.retrains):,}",
            f"{len(calibrated.retrains):,}",
        ),
        (
            "windows with drift found",
            rate(fixed.drift_found, fixed.windows),
            rate(calibrated.drift_found, calibrated.windows),
        ),
        ("windows in drift (k of n)", f"{fixed.in_drift:,}", f"{calibrated.in_drift:,}"),
        ("windows with the alert firing", f"{fixed.firing:,}", f"{calibrated.firing:,}"),
        (
            "feature-windows drifted",
            rate(fixed.drifted_feature_windows, fixed.feature_windows),
            rate(calibrated.drifted_feature_windows, calibrated.feature_windows),
        ),
        (
            "feature-windows over the threshold",
            rate(fixed.floor_only_feature_windows, fixed.feature_windows),
            rate(calibrated.floor_only_feature_windows, calibrated.feature_windows),
        ),
    ):
        print(table.row(label, a, b))
    if calibrated.retrains:
        print(
            "   calibrated retrain requests at windows / naming: "
            + "; ".join(f"{i}: {', '.join(r)}" for i, r in calibrated.retrains[:10])
        )


def rate(hits: int, total: int) -> str:
    """``hits/total = share``."""
    return f"{hits:,}/{total:,} = {hits / total:.4f}" if total else "n/a"


def print_table(rows: Sequence[tuple[str, str]], indent: str = "   ") -> None:
    """Label-value rows, labels padded to one width."""
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{indent}{label:<{width}}  {value}")


def print_stationary(s: Stationary, events: int) -> None:
    """The stationary stream's outcome, its raw per-test rates, its shadow monitors and its
    per-column rates."""
    print(f"\n1. Stationary stream: {s.windows:,} windows x {events:,} events, one population")
    _print_outcome(s)
    _print_raw_rates(s)
    _print_shadows(s)
    _print_per_column(s)


def _print_outcome(s: Stationary) -> None:
    drift = model_config().drift
    n_features = s.feature_windows // max(s.windows, 1)
    print(
        f"   policy: psi >= {drift.thresholds['psi']} on numeric, chi2 with Cramer's V >= "
        f"{drift.thresholds['chi2']} on categorical columns and the prediction, "
        f"{drift.correction} at q = {drift.fdr},\n"
        f"   drift in {drift.persistence_k} of {drift.persistence_n} windows; retrain on_drift "
        "(drift or concept drift), cooldown 6h; ADWIN on the error stream\n"
    )
    rows = [
        ("false retrain requests (goal 0)", f"{len(s.retrains):,}"),
        (
            "  ...at windows / naming",
            "; ".join(f"{i}: {', '.join(r)}" for i, r in s.retrains[:10]) or "-",
        ),
        ("windows with drift found (BH + floor)", rate(s.drift_found, s.windows)),
        ("windows in drift (k of n)", rate(s.in_drift, s.windows)),
        ("windows with the alert firing", rate(s.firing, s.windows)),
        ("alerts emitted (firing + resolved)", f"{s.alerts:,}"),
        ("windows flagged by ADWIN (concept drift)", rate(s.concept_windows, s.windows)),
        ("windows with a performance breach", rate(s.breaches, s.windows)),
        (
            f"feature-level alert rate ({n_features} features)",
            f"{rate(s.drifted_feature_windows, s.feature_windows)}   configured FDR {drift.fdr}",
        ),
        (
            "  effect floor alone (no correction)",
            rate(s.floor_only_feature_windows, s.feature_windows),
        ),
        (
            f"  BH alone (no floor): windows, family {s.family_size}",
            f"{rate(s.bh_windows, s.windows)}   bound under the null: {drift.fdr}",
        ),
        ("  BH alone (no floor): columns", rate(s.bh_columns, s.windows * s.family_size)),
    ]
    rows += [
        (f"data-quality flags: {test}", rate(n, s.quality_judged[test]))
        for test, n in sorted(s.quality.items())
    ]
    print_table(rows)


RAW_RATES = Table(
    Column("test", 15, align="<"),
    Column("columns", 15, align="<"),
    Column("floor", 5, ".2f"),
    Column(">=floor", 8, ".4f"),
    Column("p<0.05", 7, ".4f"),
    Column("p<0.01", 7, ".4f"),
    Column("median", 8, ".5f"),
    Column("p99", 8, ".5f"),
    Column("max", 8, ".5f"),
    indent="   ",
)


def _floor(s: Stationary, kind: str, test: str) -> float:
    """The effect floor a column of ``kind`` was judged with."""
    if kind == "multivariate":
        return s.config.drift.multivariate.threshold
    return s.config.drift.thresholds[test]


def _print_raw_rates(s: Stationary) -> None:
    print("\n   Raw false-positive rates per test, no correction, columns of a kind pooled")
    print(RAW_RATES.header())
    groups: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    columns: dict[tuple[str, str], int] = Counter()
    for (test, column), values in s.raw.items():
        kind = column_kind(s.profile, column)
        groups[(kind, test)].extend(values)
        columns[(kind, test)] += 1
    for (kind, test), values in sorted(groups.items()):
        arr = np.array(values, dtype=np.float64)
        stat, p = arr[:, 0], arr[:, 1]
        has_p = bool(np.isfinite(p).all())
        print(
            RAW_RATES.row(
                test,
                f"{columns[(kind, test)]} {kind}",
                floor := _floor(s, kind, test),
                np.mean(stat >= floor),
                np.mean(p < 0.05) if has_p else "n/a",
                np.mean(p < 0.01) if has_p else "n/a",
                np.median(stat),
                np.quantile(stat, 0.99),
                stat.max(),
            )
        )


SHADOW_TABLE = Table(
    Column("setting", 34, align="<"),
    Column("floor", 5, ".2f"),
    Column("drift found", 12, ","),
    Column("in drift", 9, ","),
    Column("retrains", 9, ","),
    Column("columns drifted (windows)", 0, align="<", gap="  "),
    indent="   ",
)


def _print_shadows(s: Stationary) -> None:
    thresholds = s.config.drift.thresholds
    print(
        "\n   The same stream through monitors configured with another test "
        "(drift evidence only, same policy)"
    )
    print(SHADOW_TABLE.header())
    for sh in s.shadows:
        print(
            SHADOW_TABLE.row(
                sh.label,
                thresholds[sh.test],
                sh.drift_found,
                sh.in_drift,
                sh.retrains,
                names(sh.named),
            )
        )


PER_COLUMN = Table(
    Column("column", 13, align="<"),
    Column("test", 5, align="<"),
    Column("bins", 4),
    Column("p<0.05", 7, ".4f"),
    Column("p<0.01", 7, ".4f"),
    Column("max stat", 9, ".5f"),
    Column("|", 1),
    Column("ks p<0.05", 9, ".4f"),
    Column("ks max D", 8, ".4f"),
    indent="   ",
)
CONFIGURED = (("psi", "numeric"), ("chi2", "categorical"), ("chi2", "prediction"))


def _print_per_column(s: Stationary) -> None:
    print("\n   Per column: the configured test (bins it compares), then KS on the fine bins")
    print(PER_COLUMN.header())
    for (test, column), values in s.raw.items():
        kind = column_kind(s.profile, column)
        if (test, kind) not in CONFIGURED:
            continue
        profile = s.profile.prediction if kind == "prediction" else s.profile.features[column]
        arr = np.array(values, dtype=np.float64)
        ks: list[float | str] = ["", ""]
        if ("ks", column) in s.raw:
            k = np.array(s.raw["ks", column], dtype=np.float64)
            ks = [float(np.mean(k[:, 1] < 0.05)), float(k[:, 0].max())]
        print(
            PER_COLUMN.row(
                column,
                test,
                tested_bins(profile),
                np.mean(arr[:, 1] < 0.05),
                np.mean(arr[:, 1] < 0.01),
                arr[:, 0].max(),
                "|",
                *ks,
            )
        )


def print_evidently(
    s: Stationary, verdicts: list[EvidentlyVerdict], evidently: EvidentlyWindows | str
) -> None:
    """driftline and Evidently side by side on the same stationary windows."""
    print("\n   Beside Evidently's DataDriftPreset (defaults) on the first windows of the stream")
    if isinstance(evidently, str):
        print(f"   {evidently}")
        return
    if not verdicts:
        print("   skipped (--evidently-windows 0)")
        return
    k = len(verdicts)
    ours = s.shares[:k]
    theirs = [v.share for v in verdicts]
    table = Table(
        Column("", 46, align="<"), Column("driftline", 10), Column("Evidently", 10), indent="   "
    )
    print(table.header())
    for label, a, b in (
        ("windows compared", f"{k:,}", f"{k:,}"),
        (
            "windows declared drifted (found / dataset)",
            f"{sum(s.found[:k]):,}",
            f"{sum(v.dataset_drift for v in verdicts):,}",
        ),
        (
            "windows with any feature flagged",
            f"{sum(x > 0 for x in ours):,}",
            f"{sum(bool(v.drifted) for v in verdicts):,}",
        ),
        ("mean share of the 23 features flagged", f"{np.mean(ours):.4f}", f"{np.mean(theirs):.4f}"),
        ("max share of the 23 features flagged", f"{max(ours):.4f}", f"{max(theirs):.4f}"),
    ):
        print(table.row(label, a, b))
    flagged = Counter(c for v in verdicts for c in v.drifted)
    if flagged:
        print(f"   Evidently flagged: {dict(flagged.most_common())}")
