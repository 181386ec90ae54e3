"""driftline's statistical behaviour: false alarms on a stationary stream, delays on shifts.

One population: 20 numeric features (normal, lognormal, uniform, gamma, exponential, a bimodal
mixture, Student t, and two integer-valued ones with ties: Poisson counts and ages), 3 categorical
features with Zipf-skewed frequencies over 5, 20 and 200 categories (the profile keeps the top 50 as
bins, the rest is ``other``, named in its tail), a binary classifier's prediction with its scores,
and labels drawn from the scores (the model is calibrated). The reference is a sample of 50,000
rows; every window is 10,000 fresh events of one hour, one pane per window, with every label joined
before the window is judged. Everything runs through driftline's own code with its default settings,
except ``retrain.policy = on_drift``: reference profile (100 fine bins), pane summaries
(``ColumnBatch`` + ``PaneSummary.fold``, handed to the monitor with ``ModelMonitor.set_pane`` as
stage 2 does; a check at start shows ``fold_columns`` gives the same reports), ``fold_labels``,
ADWIN on the error stream flagging panes as ``replay`` does, ``ModelMonitor.evaluate`` (PSI on
numeric, chi-square on categorical columns, BH at q = 0.05, effect floors, 2-of-3 persistence) and
``DecisionPolicy``.

1. Stationary stream (1,000 windows, 10 million events): false retrain requests (goal 0),
   windows with drift found / in drift / alerting, the feature-level alert rate beside the
   configured FDR, what the significance guard alone (BH, no effect floor) would reject, and
   per test the raw false-positive rates without correction (statistic at or above its floor;
   p < 0.05 and p < 0.01, which a calibrated p-value meets 5 % and 1 % of the time), per test
   and per column. Evidently's ``DataDriftPreset`` runs on the first windows of the same stream
   (it is far slower than driftline per window), its dataset-drift verdicts and drifted-column
   shares beside driftline's on the same windows. The same pane summaries also go through
   shadow monitors configured with the other selectable tests (KS, Jensen-Shannon, Wasserstein
   on numeric, PSI and Jensen-Shannon on categorical columns) and the same policy.
2. Injected shifts after ``--lead`` stationary windows, each repeated ``--repeats`` times with fresh
   seeds: a mean shift of 0.25 and 0.5 standard deviations on one feature the model does not use, a
   new category at 5 % in a fully listed categorical (20 categories) and in a long one (200
   categories, 150 of them in ``other``: the tail tells them from the new one), and a concept change
   that leaves the features and predictions alone (labels flip on a region of 20 % or 5 % of the
   traffic, defined by a feature the model does not use), and a correlation flip (``normal_4`` and
   ``normal_5``, correlated at 0.9 in the population, at -0.9 after it: every marginal unchanged,
   only the multivariate column ``__multivariate__`` can see it). Delays are in windows from the
   first shifted window (0: that window itself) to the first window with drift found, with the alert
   firing, and with a retrain request, with the columns or evidence named; plus data-quality flags
   (reported, not judged by the policy: the unseen-category rate is the one that catches a new
   category in the long feature), Evidently's verdict on the first shifted window, and the delay of
   shadow monitors configured with each selectable test.
3. A shift confined to one segment of five (``models.<m>.segments``): a mean shift of 0.5
   standard deviations on ``normal_2`` in one of five equally used segments, its delay in both
   threshold modes, beside the whole model's own result on the column
   (:mod:`drift_parts.segments`). ``--only-segments`` runs the reference and this part alone.

Timings of every phase and the total runtime are printed at the end. Run:
``python benchmarks/drift_behaviour.py``, or
``--windows 100 --evidently-windows 5 --repeats 1`` for a quick look.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from common.report import parser
from drift_parts.beside_evidently import EvidentlyWindows, evidently_windows
from drift_parts.monitor import Clock, check_fold_paths
from drift_parts.population import draw, reference_profile
from drift_parts.segments import print_segment_scenario, run_segment_scenario
from drift_parts.shifts import SCENARIOS, print_scenarios, run_scenario
from drift_parts.shifts import print_modes as print_scenario_modes
from drift_parts.stationary import print_evidently, print_modes, print_stationary, run_stationary
from driftline.detectors.thresholds import calibrate_profile

REFERENCE_ROWS = 50_000
WINDOW_EVENTS = 10_000
WINDOWS = 1_000
EVIDENTLY_WINDOWS = 30
LEAD = 10
HORIZON = 20
REPEATS = 3
SEED = 2026


def main(argv: Sequence[str] | None = None) -> None:
    options = parser(__doc__)
    options.add_argument("--windows", type=int, default=WINDOWS, help="stationary windows")
    options.add_argument("--events", type=int, default=WINDOW_EVENTS, help="events per window")
    options.add_argument("--reference", type=int, default=REFERENCE_ROWS, help="reference rows")
    options.add_argument(
        "--evidently-windows",
        type=int,
        default=EVIDENTLY_WINDOWS,
        help="stationary windows also judged by Evidently (0: no Evidently)",
    )
    options.add_argument("--repeats", type=int, default=REPEATS, help="runs per shift scenario")
    options.add_argument("--lead", type=int, default=LEAD, help="stationary windows before a shift")
    options.add_argument("--horizon", type=int, default=HORIZON, help="shifted windows watched")
    options.add_argument("--seed", type=int, default=SEED)
    options.add_argument(
        "--only-segments",
        action="store_true",
        help="only the reference and the shift confined to one segment of five",
    )
    args = options.parse_args(argv)

    started = time.perf_counter()
    clock = Clock()
    root = np.random.SeedSequence(args.seed)
    ref_seed, check_seed, stationary_seed, scenario_seed, segment_seed = root.spawn(5)
    with clock.phase("reference profile"):
        reference = draw(args.reference, np.random.default_rng(ref_seed))
        profile = reference_profile(reference)
    with clock.phase("calibrated thresholds"):
        profile = calibrate_profile(profile)
    calibration_s = clock.spent["calibrated thresholds"]
    bare = len(profile.model_copy(update={"thresholds": None}).model_dump_json())
    print(
        f"reference: {args.reference:,} rows, {len(profile.features)} features "
        f"(20 numeric, 3 categorical), 100 fine bins, top 50 categories and their tails; "
        f"baseline accuracy {profile.performance['accuracy']:.4f}"
    )
    if args.only_segments:
        segments = run_segment_scenario(
            profile, segment_seed.spawn(args.repeats), args.lead, args.horizon, args.events, clock
        )
        print_segment_scenario(segments, args.lead, args.horizon)
        _timings(
            clock, time.perf_counter() - started, 2 * args.repeats * (args.lead + args.horizon)
        )
        return
    with clock.phase("fold-path check"):
        check = check_fold_paths(profile, np.random.default_rng(check_seed), WINDOW_EVENTS)
    print(
        f"calibrated thresholds (drift.thresholds: calibrated): {calibration_s:.1f} s for "
        f"{len(profile.features) + 1} columns, +{len(profile.model_dump_json()) - bare:,} bytes "
        f"of profile JSON ({bare:,} without)"
    )
    print(
        "fold paths: ModelMonitor.fold_columns and set_pane(PaneSummary.fold(ColumnBatch)) "
        f"give identical reports: {check.identical};\n"
        f"   per window of {WINDOW_EVENTS:,} events: fold_columns {check.fold_columns_ms:.0f} ms, "
        f"ColumnBatch + PaneSummary.fold + set_pane {check.set_pane_ms:.0f} ms (used below)"
    )
    evidently: EvidentlyWindows | str = "skipped (--evidently-windows 0)"
    if args.evidently_windows > 0:
        with clock.phase("Evidently"):
            evidently = evidently_windows(reference)

    stationary, calibrated, verdicts = run_stationary(
        profile,
        args.windows,
        args.events,
        np.random.default_rng(stationary_seed),
        clock,
        evidently,
        args.evidently_windows,
    )
    print_stationary(stationary, args.events)
    print_modes(stationary, calibrated, args.events)
    print_evidently(stationary, verdicts, evidently)

    results = []
    seeds = scenario_seed.spawn(len(SCENARIOS))
    for scenario, seed in zip(SCENARIOS, seeds, strict=True):
        results.append(
            (
                scenario,
                run_scenario(
                    scenario,
                    profile,
                    seed.spawn(args.repeats),
                    args.lead,
                    args.horizon,
                    args.events,
                    clock,
                    evidently,
                ),
            )
        )
    print_scenarios(results, args.lead, args.horizon)
    print_scenario_modes(results)
    segments = run_segment_scenario(
        profile, segment_seed.spawn(args.repeats), args.lead, args.horizon, args.events, clock
    )
    print_segment_scenario(segments, args.lead, args.horizon)

    per_run = args.lead + args.horizon
    windows = args.windows + (len(SCENARIOS) + 2) * args.repeats * per_run
    _timings(clock, time.perf_counter() - started, windows)


def _timings(clock: Clock, total: float, windows: int) -> None:
    print(f"\nRuntime: {total:.1f} s for {windows:,} driftline windows")
    for phase, seconds in sorted(clock.spent.items(), key=lambda kv: -kv[1]):
        print(f"   {phase:<36} {seconds:>7.1f} s")


if __name__ == "__main__":
    main()
