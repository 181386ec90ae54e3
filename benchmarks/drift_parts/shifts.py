"""Part 2 of the behaviour benchmark: shifts injected after stationary windows, and how many
windows driftline (and shadow monitors configured with other tests) took to notice each.
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
    SHADOW_CHOICES,
    Clock,
    Shadow,
    Stream,
    column_kind,
    model_config,
    names,
    reason_names,
)
from drift_parts.population import Shift, draw
from driftline.schemas.reference import ReferenceProfile


@dataclass(frozen=True, slots=True)
class Scenario:
    """A named shift."""

    name: str
    shift: Shift


SCENARIOS = (
    Scenario("(a0) mean +0.1 sd, normal_2", Shift("mean", "normal_2", 0.1)),
    Scenario("(a) mean +0.25 sd, normal_2", Shift("mean", "normal_2", 0.25)),
    Scenario("(b) mean +0.5 sd, normal_2", Shift("mean", "normal_2", 0.5)),
    Scenario("(b2) sd x1.2, normal_2", Shift("scale", "normal_2", 1.2)),
    Scenario("(c1) new category 5%, cat_20", Shift("new_category", "cat_20", 0.05)),
    Scenario("(c2) new category 5%, cat_200", Shift("new_category", "cat_200", 0.05)),
    Scenario("(e) correlation flip 0.9 -> -0.9", Shift("correlation", "normal_5", -0.9)),
    Scenario("(d1) concept: flip on 20% region", Shift("concept", "normal_1", 0.20)),
    Scenario("(d2) concept: flip on 5% region", Shift("concept", "normal_1", 0.05)),
)


@dataclass
class Detection:
    """When a shifted stream was noticed, over the repeats of one scenario."""

    drift_found: list[int | None] = field(default_factory=list)
    alert: list[int | None] = field(default_factory=list)
    retrain: list[int | None] = field(default_factory=list)
    quality: list[int | None] = field(default_factory=list)
    named_alert: Counter[str] = field(default_factory=Counter)
    named_retrain: Counter[str] = field(default_factory=Counter)
    named_quality: Counter[str] = field(default_factory=Counter)
    false_before: int = 0  # alerts or retrains during the stationary lead
    firing_after: int = 0  # post-change windows with the alert firing
    windows_after: int = 0
    accuracy_before: list[float] = field(default_factory=list)
    accuracy_after: list[float] = field(default_factory=list)
    effect: list[float] = field(default_factory=list)  # the shifted column's statistic, after
    effect_test: str = ""
    unseen: list[float] = field(default_factory=list)  # the shifted column's unseen rate excess
    unseen_floor: float = math.nan
    effect_floor: float = math.nan
    evidently: EvidentlyVerdict | None = None
    # "setting = test" -> per run, the delay until that shadow fired naming the shifted column
    shadows: dict[str, list[int | None]] = field(default_factory=lambda: defaultdict(list))
    shadows_before: Counter[str] = field(default_factory=Counter)  # firing before the change
    # drift.thresholds: calibrated on the same samples: "drift" / "alert" / "retrain" -> per run
    calibrated: dict[str, list[int | None]] = field(default_factory=lambda: defaultdict(list))
    calibrated_false_before: int = 0


def first(delays: Sequence[int | None]) -> str:
    """``median (min-max) k/n`` of the delays of the runs that detected; ``never`` if none."""
    seen = sorted(d for d in delays if d is not None)
    if not seen:
        return f"never 0/{len(delays)}"
    spread = f"{seen[0]}" if seen[0] == seen[-1] else f"{seen[0]}-{seen[-1]}"
    return f"{float(np.median(seen)):g} ({spread}) {len(seen)}/{len(delays)}"


def run_scenario(
    scenario: Scenario,
    profile: ReferenceProfile,
    seeds: Sequence[np.random.SeedSequence],
    lead: int,
    horizon: int,
    events: int,
    clock: Clock,
    evidently: EvidentlyWindows | str,
) -> Detection:
    """Each repeat: ``lead`` stationary windows, then ``horizon`` shifted ones."""
    out = Detection()
    for repeat, seed in enumerate(seeds):
        rng = np.random.default_rng(seed)
        stream = Stream(profile, model_config(), clock)
        calibrated = Stream(profile, model_config(threshold_mode="calibrated"), clock)
        marks: dict[str, int | None] = dict.fromkeys(("drift", "alert", "retrain", "quality"))
        cal_marks: dict[str, int | None] = dict.fromkeys(("drift", "alert", "retrain"))
        # Labels are what a concept change moves; shadows see pane summaries only.
        shadows = (
            []
            if scenario.shift.kind == "concept"
            else [
                Shadow.build(profile, setting, test)
                for setting, test in SHADOW_CHOICES[column_kind(profile, scenario.shift.column)]
            ]
        )
        shadow_marks: dict[str, int | None] = {sh.label: None for sh in shadows}
        for index in range(lead + horizon):
            shifted = index >= lead
            with clock.phase("generate"):
                sample = draw(events, rng, scenario.shift if shifted else None)
            start = stream.start_ms
            report, summary = stream.step(sample)
            cal = calibrated.step(sample, summary=summary)[0].decision
            if index < lead:
                out.calibrated_false_before += bool(cal.alerts) + (cal.retrain is not None)
            else:
                for key, hit in (
                    ("drift", cal.drift_found),
                    ("alert", cal.firing),
                    ("retrain", cal.retrain is not None),
                ):
                    if hit and cal_marks[key] is None:
                        cal_marks[key] = index - lead
            with clock.phase("shadow monitors (other tests)"):
                for sh in shadows:
                    decision = sh.step(start, summary)
                    named = any(
                        v.drifted and v.result.column == scenario.shift.column
                        for v in decision.verdicts
                    )
                    if not shifted:
                        out.shadows_before[sh.label] += decision.firing
                    elif decision.firing and named and shadow_marks[sh.label] is None:
                        shadow_marks[sh.label] = index - lead
            d = report.decision
            accuracy = report.performance.get("accuracy", math.nan)
            if not shifted:
                out.false_before += bool(d.alerts) + (d.retrain is not None)
                out.accuracy_before.append(accuracy)
                continue
            delay = index - lead
            out.windows_after += 1
            out.firing_after += d.firing
            out.accuracy_after.append(accuracy)
            for r in report.drift:
                if r.column == scenario.shift.column:
                    out.effect.append(r.statistic)
                    out.effect_test, out.effect_floor = r.test, r.threshold
            if d.drift_found and marks["drift"] is None:
                marks["drift"] = delay
            if d.firing and marks["alert"] is None:
                marks["alert"] = delay
                out.named_alert.update(reason_names(d.alerts[0].reasons) if d.alerts else ())
            if d.retrain is not None and marks["retrain"] is None:
                marks["retrain"] = delay
                out.named_retrain.update(reason_names(d.retrain.reasons))
            for q in report.quality:
                if q.column == scenario.shift.column and q.test == "unseen_category_rate":
                    out.unseen.append(q.statistic)
                    out.unseen_floor = q.threshold
            flagged = [q.column for q in report.quality if q.drifted]
            if flagged and marks["quality"] is None:
                marks["quality"] = delay
                out.named_quality.update(
                    f"{q.test}:{q.column}" for q in report.quality if q.drifted
                )
            if (
                repeat == 0
                and delay == 0
                and isinstance(evidently, EvidentlyWindows)
                and scenario.shift.kind != "concept"
            ):
                with clock.phase("Evidently"):
                    out.evidently = evidently.run(sample)
        out.drift_found.append(marks["drift"])
        out.alert.append(marks["alert"])
        out.retrain.append(marks["retrain"])
        out.quality.append(marks["quality"])
        for key, mark in cal_marks.items():
            out.calibrated[key].append(mark)
        for label, mark in shadow_marks.items():
            out.shadows[label].append(mark)
    return out


DELAYS = Table(
    Column("scenario", 33, align="<"),
    Column("drift found", 15, align="<"),
    Column("alert firing", 15, align="<"),
    Column("retrain", 15, align="<"),
    Column("quality flag", 15, align="<"),
    Column("firing after", 12, ".2f"),
    Column("false before", 12),
    indent="   ",
)


def print_scenarios(results: Sequence[tuple[Scenario, Detection]], lead: int, horizon: int) -> None:
    """The shift tables: delays, the delays of shadow monitors, what was named."""
    print(
        f"\n2. Injected shifts: {lead} stationary windows, then {horizon} shifted ones; delays in "
        "windows from the first shifted one (0 = noticed in it),\n"
        "   as median (min-max) and runs that noticed within the horizon; quality flag: the first "
        "data-quality result\n   flagged (e.g. unseen categories; reported, not judged by the "
        "policy)"
    )
    print(DELAYS.header())
    for scenario, r in results:
        print(
            DELAYS.row(
                scenario.name,
                first(r.drift_found),
                first(r.alert),
                first(r.retrain),
                first(r.quality),
                r.firing_after / max(r.windows_after, 1),
                r.false_before,
            )
        )
    _print_shadows(results)
    _print_named(results)


MODES = Table(
    Column("scenario", 33, align="<"),
    Column("fixed: drift", 15, align="<"),
    Column("fixed: alert", 15, align="<"),
    Column("calibrated: drift", 17, align="<"),
    Column("calibrated: alert", 17, align="<"),
    Column("calibrated: retrain", 19, align="<"),
    Column("false before f/c", 16, align="<"),
    indent="   ",
)


def print_modes(results: Sequence[tuple[Scenario, Detection]]) -> None:
    """Delays with the fixed floors beside ``drift.thresholds: calibrated``, same samples."""
    print(
        "\n   Both threshold modes on the same shifted streams (fixed: the floors above; "
        "calibrated: the model's budget\n   drift.false_positive_rate 0.001 a window over "
        "its columns, at the window's size); false before: alerts + retrain requests in "
        "the stationary lead"
    )
    print(MODES.header())
    for scenario, r in results:
        print(
            MODES.row(
                scenario.name,
                first(r.drift_found),
                first(r.alert),
                first(r.calibrated["drift"]),
                first(r.calibrated["alert"]),
                first(r.calibrated["retrain"]),
                f"{r.false_before}/{r.calibrated_false_before}",
            )
        )


def _print_shadows(results: Sequence[tuple[Scenario, Detection]]) -> None:
    print(
        "\n   The same shifted streams through monitors configured with each selectable test: "
        "delay until the alert\n   fires with the shifted column drifted; [n]: windows firing "
        "before the change, over all runs (no labels: no concept scenarios)"
    )
    for kind, choices in SHADOW_CHOICES.items():
        # A correlation flip leaves every marginal alone: its row shows the univariate tests
        # on the flipped feature staying quiet.
        shifted_kinds = ("mean", "correlation") if kind == "numeric" else ("new_category",)
        rows = [(sc, r) for sc, r in results if sc.shift.kind in shifted_kinds]
        if not rows:
            continue
        table = Table(
            Column(f"{kind} test", 33, align="<"),
            *(Column(test, 19, align="<") for _, test in choices),
            indent="   ",
        )
        print(table.header())
        for scenario, r in rows:
            cells = [
                f"{first(r.shadows[f'{setting} = {test}'])} "
                f"[{r.shadows_before[f'{setting} = {test}']}]"
                for setting, test in choices
            ]
            print(table.row(scenario.name, *cells))


def _print_named(results: Sequence[tuple[Scenario, Detection]]) -> None:
    print("\n   What was named (first alert / first retrain request), quality flags, accuracy")
    for scenario, r in results:
        ev = r.evidently
        ev_text = (
            "-"
            if ev is None
            else f"dataset drift {ev.dataset_drift}, share {ev.share:.3f}, "
            f"flagged {', '.join(ev.drifted) or 'none'}"
        )
        print(
            f"   {scenario.name}\n"
            f"      {r.effect_test} on {scenario.shift.column} after the change: mean "
            f"{np.mean(r.effect):.4f}, range {min(r.effect):.4f}-{max(r.effect):.4f} "
            f"(floor {r.effect_floor:g})\n"
            + (
                f"      unseen_category_rate on {scenario.shift.column} after the change: mean "
                f"{np.mean(r.unseen):.4f}, range {min(r.unseen):.4f}-{max(r.unseen):.4f} "
                f"(floor {r.unseen_floor:g}, reached in "
                f"{sum(u >= r.unseen_floor for u in r.unseen)}/{len(r.unseen)} windows)\n"
                if r.unseen
                else ""
            )
            + f"      alert: {names(r.named_alert)}; retrain: {names(r.named_retrain)}\n"
            f"      quality: {first(r.quality)} {names(r.named_quality)}; accuracy "
            f"{np.nanmean(r.accuracy_before):.4f} before, "
            f"{np.nanmean(r.accuracy_after):.4f} after\n"
            f"      Evidently on the first shifted window: {ev_text}"
        )
