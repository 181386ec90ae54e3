"""What driftline's statistics cost: folding events, testing a window, holding its state.

One run, one reference (50,000 rows of 20 numeric features of mixed shapes: normal, skewed,
heavy-tailed, bounded, integer-valued with ties; a binary classifier's prediction and scores)
profiled on 100 fine quantile bins, and one stream of JSON prediction events shaped as
producers send them (UUIDs, ISO timestamps with an offset, the 20 features, scores, a
segment), a few features of which have drifted.

1. Stage-1 throughput, events/s on one core, per batch size, against msgspec decoding of the
   same bytes (``decode_prediction``: ingest pays it anyway, so it is the baseline):
   ``columns_from_events`` on decoded batches, ``PaneSummary.fold`` of prepared
   ``ColumnBatch`` es, and decode + columns + fold, the whole stage-1 path.
2. The cost of judging one window of 10,000 events: driftline merges the window's 10 pane
   partials (1,000 events each) and runs KS, PSI, Jensen-Shannon and Wasserstein on each of the
   20 features from the merged counts; against ``scipy.stats.ks_2samp`` on the raw samples (20
   calls, one test) and Evidently's ``Report([DataDriftPreset()])`` on the same data as
   DataFrames (one test per column, chosen by Evidently). Evidently is optional: when it cannot
   be imported its row is skipped and the script says why.
3. The state a window needs: the bytes of a pane summary against the raw window as float64.

A sanity line prints driftline's binned KS distance with its stated bound next to the exact
``ks_2samp`` statistic for a few features: the exact value must lie in ``[D_b, D_b + bound]``.

Timings are best of a few repeats (fewer for Evidently, which takes seconds per report).

    python benchmarks/stats_speed.py            # or: --events 100000 --evidently-repeats 5
"""

from __future__ import annotations

import argparse
import time
import uuid
import warnings
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray
from scipy import stats

from driftline.detectors.batch import ColumnBatch, columns_from_events
from driftline.detectors.ks import ks_p_value
from driftline.detectors.profile import build_profile
from driftline.detectors.registry import run_test
from driftline.detectors.result import TestResult
from driftline.detectors.summary import PaneSummary
from driftline.schemas import WirePrediction, decode_prediction
from driftline.schemas.reference import NumericProfile, ReferenceProfile

N_FEATURES = 20
BATCH_SIZES = (1_000, 10_000)
REFERENCE_ROWS = 50_000
WINDOW_ROWS = 10_000
PANES = 10
BINS = 100
# The defaults of drift.thresholds (driftline.config.settings.DriftSettings).
THRESHOLDS = {"ks": 0.1, "psi": 0.2, "jensen_shannon": 0.1, "wasserstein": 0.1}
NAMES = [f"f{j}" for j in range(N_FEATURES)]
# Features whose window distribution differs from the reference: name -> what changed.
DRIFTED = {"f0": "mean +0.05 sd", "f1": "mean +0.3 sd", "f2": "sd x1.5", "f3": "rate x1.2"}
KS_SHOWN = ("f0", "f1", "f2", "f3", "f4", "f9")


def _sample(rng: np.random.Generator, n: int, *, drifted: bool) -> NDArray[np.float64]:
    """``n`` rows of the 20 features; with ``drifted`` the features of DRIFTED change."""
    cols = []
    for j in range(N_FEATURES):
        kind = j % 5
        if kind == 0:  # normal
            x = rng.normal(50.0, 20.0, n)
        elif kind == 1:  # right-skewed, positive
            x = rng.lognormal(3.0, 0.8, n)
        elif kind == 2:  # heavy-tailed
            x = rng.standard_t(3, n)
        elif kind == 3:  # integer counts: ties collapse quantile edges
            x = rng.poisson(4.0, n).astype(np.float64)
        else:  # bounded
            x = rng.uniform(0.0, 1.0, n)
        cols.append(x)
    if drifted:
        cols[0] = cols[0] + 0.05 * 20.0
        cols[1] = cols[1] * np.exp(0.3 * 0.8)
        cols[2] = cols[2] * 1.5
        cols[3] = rng.poisson(4.8, n).astype(np.float64)
    return np.column_stack(cols)


def _scores(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """A fixed logistic model of the features, so predictions follow the data."""
    z = (values[:, 0] - 50.0) / 20.0 + 0.5 * np.log(values[:, 1]) - 1.5 + values[:, 4]
    return np.asarray(1.0 / (1.0 + np.exp(-z)), dtype=np.float64)


def _events(values: NDArray[np.float64], seed: int) -> list[bytes]:
    """The JSON bytes a producer would send for each row."""
    rng = np.random.default_rng(seed)
    p = _scores(values).tolist()
    regions = ["eu", "us", "apac"]
    region = rng.integers(0, 3, values.shape[0]).tolist()
    start = datetime(2026, 11, 22, 10, tzinfo=timezone(timedelta(hours=1)))
    out = []
    for i, row in enumerate(values.tolist()):
        out.append(
            orjson.dumps(
                {
                    "event_id": str(uuid.UUID(bytes=rng.bytes(16))),
                    "prediction_id": str(uuid.UUID(bytes=rng.bytes(16))),
                    "model": "fraud",
                    "model_version": "3",
                    "timestamp": (start + timedelta(milliseconds=i)).isoformat(
                        timespec="milliseconds"
                    ),
                    "features": dict(zip(NAMES, row, strict=True)),
                    "prediction": int(p[i] > 0.5),
                    "scores": {"0": 1.0 - p[i], "1": p[i]},
                    "segments": {"region": regions[region[i]]},
                }
            )
        )
    return out


def _best(fn: Callable[[], object], repeats: int) -> float:
    """Best-of-``repeats`` seconds of ``fn()``."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _profile(reference: NDArray[np.float64]) -> ReferenceProfile:
    p = _scores(reference)
    return build_profile(
        "fraud",
        "3",
        "binary",
        {name: reference[:, j] for j, name in enumerate(NAMES)},
        (p > 0.5).astype(int),
        scores={"0": 1.0 - p, "1": p},
        bins=BINS,
    )


# --- 1. stage-1 throughput ------------------------------------------------------------------


def fold_throughput(profile: ReferenceProfile, messages: list[bytes], repeats: int) -> None:
    total = len(messages)
    print(
        f"\n1. Stage-1 throughput: {total:,} events, {N_FEATURES} numeric features, "
        f"best of {repeats}; 'vs decode' is the throughput over decoding's"
    )
    print(f"{'batch':>7}  {'stage':<26} {'events/s':>12} {'vs decode':>10}")
    verdicts = []
    for size in BATCH_SIZES:
        batches = [messages[i : i + size] for i in range(0, total, size)]
        decoded = [[decode_prediction(m) for m in b] for b in batches]
        columns = [columns_from_events(b, profile) for b in decoded]

        def decode(batches: list[list[bytes]] = batches) -> None:
            for b in batches:
                [decode_prediction(m) for m in b]

        def to_columns(decoded: list[list[WirePrediction]] = decoded) -> None:
            for b in decoded:
                columns_from_events(b, profile)

        def fold(columns: list[ColumnBatch] = columns) -> None:
            summary = PaneSummary(profile)
            for c in columns:
                summary.fold(c)

        def everything(batches: list[list[bytes]] = batches) -> None:
            summary = PaneSummary(profile)
            for b in batches:
                summary.fold(columns_from_events([decode_prediction(m) for m in b], profile))

        rates = {
            name: total / _best(fn, repeats)
            for name, fn in (
                ("(a) decode (baseline)", decode),
                ("(b) columns_from_events", to_columns),
                ("(c) fold of a ColumnBatch", fold),
                ("(d) decode + columns + fold", everything),
            )
        }
        baseline = rates["(a) decode (baseline)"]
        for name, rate in rates.items():
            print(f"{size:>7,}  {name:<26} {rate:>12,.0f} {rate / baseline:>9.2f}x")
        fold_rate = rates["(c) fold of a ColumnBatch"]
        verdicts.append(
            f"   batches of {size:,}: folding a prepared batch costs "
            f"{baseline / fold_rate:.0%} of decoding it: "
            + ("less than decoding" if fold_rate > baseline else "NOT less than decoding")
            + f"; columns_from_events costs {baseline / rates['(b) columns_from_events']:.0%}"
        )
    print("Does folding alone cost less than decoding?")
    print("\n".join(verdicts))


# --- 2. per-window test cost ----------------------------------------------------------------


def _driftline_tests(
    profile: ReferenceProfile, window: PaneSummary, tests: tuple[str, ...]
) -> list[TestResult]:
    results = []
    for name, column in profile.features.items():
        counts = window.counts(name)
        for test in tests:
            results.append(run_test(test, column, counts, column.count, THRESHOLDS[test], name))
    return results


def _merge(profile: ReferenceProfile, partials: list[PaneSummary]) -> PaneSummary:
    window = PaneSummary(profile)
    for partial in partials:
        window = window.merge(partial)
    return window


def _evidently() -> tuple[Callable[[Any, Any], Any] | None, str]:
    """Evidently's report runner, or None and why it is missing."""
    try:
        # Only visible with -W default: Evidently's own use of numpy.core and of litestar APIs.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"evidently")
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"litestar")
            import evidently
            from evidently import Report
            from evidently.presets import DataDriftPreset
    except ImportError as exc:
        return None, f"Evidently is not importable ({exc}): its row is skipped"

    def run(current: Any, reference: Any) -> Any:
        return Report([DataDriftPreset()]).run(current_data=current, reference_data=reference)

    return run, f"evidently {evidently.__version__}"


def window_cost(
    profile: ReferenceProfile,
    reference: NDArray[np.float64],
    window: NDArray[np.float64],
    window_messages: list[bytes],
    repeats: int,
    evidently_repeats: int,
) -> None:
    pane = WINDOW_ROWS // PANES
    partials = [
        PaneSummary(profile).fold_events(
            [decode_prediction(m) for m in window_messages[i : i + pane]]
        )
        for i in range(0, WINDOW_ROWS, pane)
    ]
    encoded = [p.to_bytes() for p in partials]
    merged = _merge(profile, partials)
    assert merged.n == WINDOW_ROWS
    tests = tuple(THRESHOLDS)
    ks_results = _driftline_tests(profile, merged, ("ks",))

    t_merge = _best(lambda: _merge(profile, partials), repeats)
    t_bytes = _best(lambda: [PaneSummary.from_bytes(b, profile) for b in encoded], repeats)
    t_test = {t: _best(lambda t=t: _driftline_tests(profile, merged, (t,)), repeats) for t in tests}
    t_p_values = _best(
        lambda: [ks_p_value(r.statistic, r.n_reference, r.n_current) for r in ks_results],
        repeats,
    )
    t_all = _best(lambda: _driftline_tests(profile, _merge(profile, partials), tests), repeats)
    t_ks_only = _best(
        lambda: _driftline_tests(profile, _merge(profile, partials), ("ks",)), repeats
    )

    def scipy_ks() -> list[Any]:
        return [stats.ks_2samp(reference[:, j], window[:, j]) for j in range(N_FEATURES)]

    t_scipy = _best(scipy_ks, repeats)

    run_evidently, evidently_note = _evidently()
    t_evidently = None
    snapshot = None
    if run_evidently is not None:
        import pandas as pd

        ref_df = pd.DataFrame(reference, columns=NAMES)
        cur_df = pd.DataFrame(window, columns=NAMES)
        t_evidently = float("inf")
        for _ in range(evidently_repeats):
            start = time.perf_counter()
            snapshot = run_evidently(cur_df, ref_df)
            t_evidently = min(t_evidently, time.perf_counter() - start)

    print(
        f"\n2. Per-window test cost: {WINDOW_ROWS:,} x {N_FEATURES} window against a "
        f"{REFERENCE_ROWS:,}-row reference; best of {repeats}"
        + (f" ({evidently_repeats} for Evidently)" if run_evidently else "")
    )
    print(f"{'approach':<62} {'ms/window':>10} {'vs driftline':>13}")

    def row(name: str, seconds: float, ratio: bool = True) -> None:
        tail = f"{seconds / t_all:>12.1f}x" if ratio else ""
        print(f"{name:<62} {seconds * 1e3:>10.2f} {tail}")

    row(f"driftline: merge {PANES} partials + 4 tests x {N_FEATURES} features", t_all)
    row(f"  merge of {PANES} pane partials alone", t_merge, ratio=False)
    for t in tests:
        row(f"  {t} x {N_FEATURES} features alone", t_test[t], ratio=False)
        if t == "ks":
            row("    of which the KS p-values (ks_p_value)", t_p_values, ratio=False)
    row(f"  (decoding the {PANES} partials from bytes, if they arrive so)", t_bytes, ratio=False)
    row(f"driftline: merge {PANES} partials + KS only x {N_FEATURES}", t_ks_only)
    row(f"scipy.stats.ks_2samp x {N_FEATURES} on raw samples", t_scipy)
    if t_evidently is not None:
        row("Evidently Report([DataDriftPreset()]).run", t_evidently)
    else:
        print(f"{'Evidently Report([DataDriftPreset()]).run':<62} {'skipped':>10}")
    print(
        f"ratios: scipy / driftline = {t_scipy / t_all:.1f}x (4 tests), "
        f"{t_scipy / t_ks_only:.1f}x (KS only)"
        + (f"; evidently / driftline = {t_evidently / t_all:,.0f}x" if t_evidently else "")
    )
    print(f"({evidently_note})")

    # Sanity: the exact statistic lies within the bound stated for the binned one.
    results = {r.column: r for r in ks_results}
    print(
        "KS sanity (binned D_b, stated bound, exact ks_2samp D; exact must be in [D_b, D_b+bound]):"
    )
    for name in KS_SHOWN:
        j = NAMES.index(name)
        r = results[name]
        exact = float(stats.ks_2samp(reference[:, j], window[:, j]).statistic)
        inside = r.statistic - 1e-12 <= exact <= r.statistic + r.bound + 1e-12
        column = profile.features[name]
        assert isinstance(column, NumericProfile)
        print(
            f"  {name} ({DRIFTED.get(name, 'no drift')}, {len(column.edges) + 1} bins): "
            f"D_b={r.statistic:.4f} bound={r.bound:.4f} exact D={exact:.4f} "
            + ("ok" if inside else "OUTSIDE THE BOUND")
        )
    verdicts = _driftline_tests(profile, merged, tests)
    drifted = {t: sorted(r.column for r in verdicts if r.test == t and r.drifted) for t in tests}
    print(f"drifted columns, truly drifted {sorted(DRIFTED)}:")
    for t in tests:
        print(f"  driftline {t} (>= {THRESHOLDS[t]}): {drifted[t]}")
    scipy_drifted = [n for n, r in zip(NAMES, scipy_ks(), strict=True) if r.pvalue < 0.05]
    print(f"  scipy ks_2samp (p < 0.05, uncorrected): {scipy_drifted}")
    if snapshot is not None:
        methods, flagged = _evidently_verdicts(snapshot)
        print(f"  evidently ({', '.join(sorted(methods))}): {flagged}")


def _evidently_verdicts(snapshot: Any) -> tuple[set[str], list[str]]:
    """Evidently's test per column and the columns it calls drifted."""
    methods: set[str] = set()
    flagged = []
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if config.get("type", "").endswith("ValueDrift"):
            methods.add(f"{config['method']}, threshold {config['threshold']}")
            # Distance methods drift at or above the threshold (p-value methods below it).
            if float(metric["value"]) >= float(config["threshold"]):
                flagged.append(config["column"])
    return methods, sorted(flagged, key=NAMES.index)


# --- 3. state -------------------------------------------------------------------------------


def state_size(profile: ReferenceProfile, window_messages: list[bytes]) -> None:
    summary = PaneSummary(profile).fold_events([decode_prediction(m) for m in window_messages])
    data = summary.to_bytes()
    raw = WINDOW_ROWS * N_FEATURES * 8
    profile_json = len(profile.model_dump_json())
    print(
        f"\n3. State: a pane summary of {summary.n:,} events is {len(data):,} bytes "
        f"(msgpack; 20 features x {BINS} bins, plus the prediction and 2 score histograms),"
    )
    print(
        f"   the raw window as float64 {raw:,} bytes ({raw / len(data):,.0f}x larger); "
        "the summary's size does not grow with the window."
    )
    print(
        f"   The reference profile is {profile_json:,} bytes of JSON; the raw reference "
        f"{REFERENCE_ROWS * N_FEATURES * 8:,} bytes."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000, help="events for throughput")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--evidently-repeats", type=int, default=3)
    args = parser.parse_args()
    fewest = max(*BATCH_SIZES, WINDOW_ROWS)
    if args.events < fewest:
        parser.error(f"--events must be at least {fewest:,}")
    started = time.perf_counter()
    rng = np.random.default_rng(7)
    reference = _sample(rng, REFERENCE_ROWS, drifted=False)
    live = _sample(rng, args.events, drifted=True)
    profile = _profile(reference)
    messages = _events(live, seed=11)
    size = sum(map(len, messages)) / len(messages)
    print(
        f"reference {REFERENCE_ROWS:,} rows, {N_FEATURES} numeric features, {BINS} fine bins; "
        f"events {size:.0f} bytes on average; drifted: "
        + ", ".join(f"{k} {v}" for k, v in DRIFTED.items())
    )
    fold_throughput(profile, messages, args.repeats)
    window_cost(
        profile,
        reference,
        live[:WINDOW_ROWS],
        messages[:WINDOW_ROWS],
        args.repeats,
        args.evidently_repeats,
    )
    state_size(profile, messages[:WINDOW_ROWS])
    print(f"\ntotal run time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
