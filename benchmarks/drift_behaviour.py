"""driftline's statistical behaviour: false alarms on a stationary stream, delays on shifts.

One population: 20 numeric features (normal, lognormal, uniform, gamma, exponential, a
bimodal mixture, Student t, and two integer-valued ones with ties: Poisson counts and ages), 3
categorical features with Zipf-skewed frequencies over 5, 20 and 200 categories (the profile
keeps the top 50, the rest is ``other``), a binary classifier's prediction with its scores, and
labels drawn from the scores (the model is calibrated). The reference is a sample of 50,000
rows; every window is 10,000 fresh events of one hour, one pane per window, with every label
joined before the window is judged. Everything runs through driftline's own code with its
default settings, except ``retrain.policy = on_drift``: reference profile (100 fine bins),
pane summaries (``ColumnBatch`` + ``PaneSummary.fold``, handed to the monitor with
``ModelMonitor.set_pane`` as stage 2 does; a check at start shows ``fold_columns`` gives the
same reports), ``fold_labels``, ADWIN on the error stream flagging panes as ``replay`` does,
``ModelMonitor.evaluate`` (PSI on numeric, chi-square on categorical columns, BH at q = 0.05,
effect floors, 2-of-3 persistence) and ``DecisionPolicy``.

1. Stationary stream (1,000 windows, 10 million events): false retrain requests (goal 0),
   windows with drift found / in drift / alerting, the feature-level alert rate beside the
   configured FDR, what the significance guard alone (BH, no effect floor) would reject, and
   per test the raw false-positive rates without correction (statistic at or above its floor;
   p < 0.05 and p < 0.01, which a calibrated p-value meets 5 % and 1 % of the time), per test
   and per column. Evidently's ``DataDriftPreset`` runs on the first windows of the same stream
   (it takes about three seconds per window), its dataset-drift verdicts and drifted-column
   shares beside driftline's on the same windows. The same pane summaries also go through
   shadow monitors configured with the other selectable tests (KS, Jensen-Shannon, Wasserstein
   on numeric, PSI and Jensen-Shannon on categorical columns) and the same policy.
2. Injected shifts after ``--lead`` stationary windows, each repeated ``--repeats`` times with
   fresh seeds: a mean shift of 0.25 and 0.5 standard deviations on one feature the model does
   not use, a new category at 5 % in a fully listed categorical (20 categories) and in a long
   one (200 categories, 150 of them in ``other``), and a concept change that leaves the
   features and predictions alone (labels flip on a region of 20 % or 5 % of the traffic,
   defined by a feature the model does not use). Delays are in windows from the first
   shifted window (0: that window itself) to the first window with drift found, with the alert
   firing, and with a retrain request, with the columns or evidence named; plus data-quality
   flags (reported, not judged by the policy), Evidently's verdict on the first shifted window,
   and the delay of shadow monitors configured with each selectable test.

Timings of every phase and the total runtime are printed at the end. Run:
``python benchmarks/drift_behaviour.py`` (about 3 minutes on one core, 100 s of it Evidently), or
``--windows 100 --evidently-windows 5 --repeats 1`` for a quick look.
"""

from __future__ import annotations

import argparse
import math
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from driftline.config.settings import ModelConfig
from driftline.detectors.batch import ColumnBatch
from driftline.detectors.concept import ConceptDriftDetector, make_detector
from driftline.detectors.correction import adjust_p_values
from driftline.detectors.decision import Decision
from driftline.detectors.engine import ModelMonitor, WindowReport
from driftline.detectors.profile import build_profile
from driftline.detectors.registry import run_test
from driftline.detectors.summary import PaneSummary
from driftline.schemas.outputs import Reason
from driftline.schemas.reference import CategoricalProfile, NumericProfile, ReferenceProfile

FloatArray = NDArray[np.float64]
ObjectArray = NDArray[np.object_]

REFERENCE_ROWS = 50_000
WINDOW_EVENTS = 10_000
WINDOWS = 1_000
EVIDENTLY_WINDOWS = 30
LEAD = 10
HORIZON = 20
REPEATS = 3
HOUR_MS = 3_600_000
T0_MS = 1_767_225_600_000  # 2026-01-01T00:00Z: windows are aligned hours from here
LABEL_DELAY_MS = 60_000
SEED = 2026

# --- the population ------------------------------------------------------------------------

NORMALS = ((0.0, 1.0), (5.0, 2.0), (-3.0, 0.5), (100.0, 15.0), (0.0, 0.1), (10.0, 3.0))
LOGNORMAL_SIGMAS = (0.25, 0.5, 1.0, 1.5)
UNIFORMS = ((0.0, 1.0), (-5.0, 5.0), (10.0, 20.0), (0.0, 1000.0))
NORMAL = {f"normal_{j}": mu_sigma for j, mu_sigma in enumerate(NORMALS)}
CATEGORIES = {"cat_5": (5, 1.0), "cat_20": (20, 1.0), "cat_200": (200, 1.1)}  # (k, Zipf s)
NEW_CATEGORY = "unseen"
CLASSES = np.array(["0", "1"], dtype=object)


def _zipf(k: int, s: float) -> FloatArray:
    weights = 1.0 / np.arange(1, k + 1, dtype=np.float64) ** s
    probabilities: FloatArray = weights / weights.sum()
    return probabilities


@dataclass(frozen=True, slots=True)
class Shift:
    """A change of the population: ``kind`` on ``column`` by ``size``.

    ``mean``: add ``size`` standard deviations (``column`` must be one of the normals);
    ``new_category``: a category the reference never saw takes a ``size`` share of ``column``;
    ``concept``: labels follow ``1 - p`` instead of ``p`` where ``column`` (a normal) is above
    its ``1 - size`` quantile, so a ``size`` share of traffic has its rule flipped.
    """

    kind: Literal["mean", "new_category", "concept"]
    column: str
    size: float


@dataclass(frozen=True, slots=True)
class Sample:
    """A batch of events of the population, as columns."""

    numeric: dict[str, FloatArray]
    categorical: dict[str, ObjectArray]
    score: FloatArray  # P(class "1")
    prediction: ObjectArray
    label: ObjectArray

    @property
    def n(self) -> int:
        return int(self.score.shape[0])

    def features(self) -> dict[str, FloatArray | ObjectArray]:
        return {**self.numeric, **self.categorical}

    def scores(self) -> dict[str, FloatArray]:
        return {"0": 1.0 - self.score, "1": self.score}

    def errors(self) -> FloatArray:
        wrong: FloatArray = (self.label != self.prediction).astype(np.float64)
        return wrong


def draw(n: int, rng: np.random.Generator, shift: Shift | None = None) -> Sample:
    """``n`` events of the population (vectorised), changed by ``shift`` when given."""
    numeric: dict[str, FloatArray] = {}
    for j, (mu, sigma) in enumerate(NORMALS):
        numeric[f"normal_{j}"] = rng.normal(mu, sigma, n)
    for j, s in enumerate(LOGNORMAL_SIGMAS):
        numeric[f"lognormal_{j}"] = rng.lognormal(0.0, s, n)
    for j, (low, high) in enumerate(UNIFORMS):
        numeric[f"uniform_{j}"] = rng.uniform(low, high, n)
    numeric["gamma"] = rng.gamma(2.0, 1.5, n)
    numeric["exponential"] = rng.exponential(3.0, n)
    numeric["mixture"] = np.where(
        rng.random(n) < 0.3, rng.normal(-2.0, 0.5, n), rng.normal(1.5, 1.0, n)
    )
    numeric["student_t"] = rng.standard_t(3.0, n)
    numeric["poisson"] = rng.poisson(2.5, n).astype(np.float64)
    numeric["age"] = np.clip(np.rint(rng.normal(40.0, 12.0, n)), 18.0, 90.0)
    categorical: dict[str, ObjectArray] = {}
    for name, (k, s) in CATEGORIES.items():
        names = np.array([f"v{i:03d}" for i in range(k)] + [NEW_CATEGORY], dtype=object)
        codes = rng.choice(k, size=n, p=_zipf(k, s))
        if shift is not None and shift.kind == "new_category" and shift.column == name:
            codes = np.where(rng.random(n) < shift.size, k, codes)
        categorical[name] = names[codes]
    if shift is not None and shift.kind == "mean":
        numeric[shift.column] = numeric[shift.column] + shift.size * NORMAL[shift.column][1]

    # The model: a logistic score of three features and one category; labels follow it.
    (mu0, s0), (a, b), s_log = NORMALS[0], UNIFORMS[0], LOGNORMAL_SIGMAS[1]
    logit = (
        1.5 * (numeric["normal_0"] - mu0) / s0
        + 1.0 * (2.0 * (numeric["uniform_0"] - a) / (b - a) - 1.0)
        + 0.8 * np.log(numeric["lognormal_1"]) / s_log
        + 0.6 * (categorical["cat_5"] == "v000")
        - 0.3
    )
    score = 1.0 / (1.0 + np.exp(-logit))
    truth = score
    if shift is not None and shift.kind == "concept":
        mu, sigma = NORMAL[shift.column]
        region = numeric[shift.column] > mu + sigma * float(stats.norm.ppf(1.0 - shift.size))
        truth = np.where(region, 1.0 - score, score)
    label = CLASSES[(rng.random(n) < truth).astype(np.int64)]
    prediction = CLASSES[(score > 0.5).astype(np.int64)]
    return Sample(numeric, categorical, score, prediction, label)


def reference_profile(sample: Sample) -> ReferenceProfile:
    """The reference profile of a sample, with labels (so the baseline accuracy is known)."""
    return build_profile(
        "bench",
        "1",
        "binary",
        sample.features(),
        sample.prediction,
        scores=sample.scores(),
        labels=sample.label,
        feature_types={
            **dict.fromkeys(sample.numeric, "numeric"),
            **dict.fromkeys(sample.categorical, "categorical"),
        },
    )


def model_config(**drift: str) -> ModelConfig:
    """driftline's defaults, with hourly one-pane windows and drift allowed to ask for a retrain;
    ``drift`` overrides drift settings (e.g. ``numeric_test="ks"``)."""
    return ModelConfig(
        task="binary",
        pane="1h",
        windows=[{"size": "1h"}],
        retrain={"policy": "on_drift"},
        drift=drift,
    )


# --- timing --------------------------------------------------------------------------------


@dataclass
class Clock:
    """Seconds spent per phase."""

    spent: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.spent[name] += time.perf_counter() - start


# --- one monitored stream ------------------------------------------------------------------


@dataclass
class Stream:
    """One model version watched window after window, as the service would watch it."""

    profile: ReferenceProfile
    config: ModelConfig
    clock: Clock
    monitor: ModelMonitor = field(init=False)
    detector: ConceptDriftDetector = field(init=False)
    window: int = 0

    def __post_init__(self) -> None:
        self.monitor = ModelMonitor(self.profile, self.config)
        self.detector = make_detector(self.config.performance.concept_detector)

    @property
    def start_ms(self) -> int:
        """The start of the next window."""
        return T0_MS + self.window * HOUR_MS

    def step(
        self, sample: Sample, *, fold_columns: bool = False
    ) -> tuple[WindowReport, PaneSummary]:
        """Fold one window of events and its labels, judge it; returns its report and counts."""
        start = self.start_ms
        self.window += 1
        times = start + (np.arange(sample.n, dtype=np.int64) * HOUR_MS) // sample.n
        scores = sample.scores()
        with self.clock.phase("fold (ColumnBatch + PaneSummary)"):
            batch = ColumnBatch.from_columns(
                self.profile,
                sample.features(),
                sample.prediction,
                event_time_ms=times,
                scores=scores,
            )
            summary = PaneSummary(self.profile).fold(batch)
            if fold_columns:
                self.monitor.fold_columns(times, sample.features(), sample.prediction, scores)
            else:
                self.monitor.set_pane(start, summary=summary)
        with self.clock.phase("labels + ADWIN"):
            self.monitor.fold_labels(
                times,
                sample.label,
                sample.prediction,
                scores,
                np.full(sample.n, LABEL_DELAY_MS, dtype=np.int64),
            )
            # As replay does: errors in prediction order, the panes the detector fired in flagged.
            self.detector.update(sample.errors())
            self.monitor.flag_concept_drift(times[list(self.detector.drift_positions)].tolist())
        with self.clock.phase("evaluate + policy"):
            watermark = start + HOUR_MS + self.monitor.lateness_ms
            due = self.monitor.due(watermark)
            reports = [self.monitor.evaluate(w) for w in due]
            self.monitor.prune(watermark)
        return only_report(reports, start), summary


def only_report(reports: Sequence[WindowReport], start: int) -> WindowReport:
    """The one report due, of the window starting at ``start`` (anything else is a bug)."""
    if len(reports) != 1 or reports[0].window.start_ms != start:
        raise RuntimeError(f"expected one due window starting at {start}, got {reports}")
    return reports[0]


@dataclass(frozen=True, slots=True)
class FoldCheck:
    """``fold_columns`` against ``set_pane`` of a folded summary, on the same windows."""

    identical: bool
    fold_columns_ms: float
    set_pane_ms: float


def check_fold_paths(profile: ReferenceProfile, rng: np.random.Generator) -> FoldCheck:
    """Whether both fold paths give identical reports, and what each costs per window."""
    by_columns, by_summary = Clock(), Clock()
    a_stream = Stream(profile, model_config(), by_columns)
    b_stream = Stream(profile, model_config(), by_summary)
    identical, windows = True, 5
    for _ in range(windows):
        sample = draw(WINDOW_EVENTS, rng)
        a, _ = a_stream.step(sample, fold_columns=True)
        b, _ = b_stream.step(sample)
        identical &= (a.drift, a.quality, a.performance, a.decision) == (
            b.drift,
            b.quality,
            b.performance,
            b.decision,
        )
    phase = "fold (ColumnBatch + PaneSummary)"
    return FoldCheck(
        identical,
        # The fold_columns stream also built the summary the other path uses: take it out.
        1000 * (by_columns.spent[phase] - by_summary.spent[phase]) / windows,
        1000 * by_summary.spent[phase] / windows,
    )


# --- Evidently ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EvidentlyVerdict:
    """Evidently's ``DataDriftPreset`` on one window."""

    dataset_drift: bool
    share: float
    drifted: tuple[str, ...]


class Evidently:
    """``Report([DataDriftPreset()])`` against one reference, with declared column types."""

    def __init__(self, reference: Sample) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from evidently import DataDefinition, Dataset

        self._dataset = Dataset
        self._definition = DataDefinition(
            numerical_columns=list(reference.numeric),
            categorical_columns=list(reference.categorical),
        )
        self._reference = self._data(reference)

    def _data(self, sample: Sample) -> Any:
        import pandas as pd

        frame = pd.DataFrame(sample.features())
        return self._dataset.from_pandas(frame, data_definition=self._definition)

    def run(self, sample: Sample) -> EvidentlyVerdict:
        from evidently import Report
        from evidently.presets import DataDriftPreset

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            snapshot = Report([DataDriftPreset()]).run(
                current_data=self._data(sample), reference_data=self._reference
            )
        share, drift_share, drifted = math.nan, 0.5, []
        for metric in snapshot.dict()["metrics"]:
            config, value = metric["config"], metric["value"]
            if config["type"].endswith("DriftedColumnsCount"):
                share, drift_share = float(value["share"]), float(config["drift_share"])
            elif config["type"].endswith("ValueDrift"):
                # Distances drift at or above the threshold, p-values (small windows) below it.
                by_p_value = "p_value" in str(config.get("method", ""))
                if (value < config["threshold"]) if by_p_value else (value >= config["threshold"]):
                    drifted.append(str(config["column"]))
        # Evidently's dataset drift: at least drift_share of the columns drifted.
        return EvidentlyVerdict(share >= drift_share, share, tuple(drifted))


def evidently_or_reason(reference: Sample) -> Evidently | str:
    """Evidently, or why it cannot run (it is optional)."""
    try:
        return Evidently(reference)
    except ImportError as exc:
        return f"Evidently not available ({exc}); pip install 'evidently>=0.7,<0.8' 'pandas<3'"


# --- part 1: the stationary stream ----------------------------------------------------------

NUMERIC_EXTRA = ("ks", "jensen_shannon", "wasserstein")  # besides the configured psi
CATEGORICAL_EXTRA = ("psi", "jensen_shannon")  # besides the configured chi2
DRIFT_KINDS = ("feature_drift", "prediction_drift")


def column_kind(profile: ReferenceProfile, column: str) -> str:
    """``numeric``, ``categorical`` or ``prediction``."""
    if column == "prediction":
        return "prediction"
    return "numeric" if isinstance(profile.features[column], NumericProfile) else "categorical"


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

    def __post_init__(self) -> None:
        self.shadows = [Shadow.build(self.profile, setting, test) for setting, test in SHADOWS]

    def record(self, index: int, report: WindowReport, summary: PaneSummary) -> None:
        """Count one judged window; run the extra tests on its counts."""
        d = report.decision
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
        for name, column in summary.features.items():
            profile = self.profile.features[name]
            extra = NUMERIC_EXTRA if isinstance(profile, NumericProfile) else CATEGORICAL_EXTRA
            for test in extra:
                r = run_test(
                    test, profile, column.counts, profile.count, drift.thresholds[test], name
                )
                self.raw[(test, name)].append((r.statistic, nan_if_none(r.p_value)))


SHADOWS: tuple[tuple[str, str], ...] = (
    ("numeric_test", "ks"),
    ("numeric_test", "jensen_shannon"),
    ("numeric_test", "wasserstein"),
    ("categorical_test", "psi"),
    ("categorical_test", "jensen_shannon"),
)
"""Other tests a model may be configured with, run as shadows on the stationary stream."""

SHADOW_CHOICES: dict[str, tuple[tuple[str, str], ...]] = {
    "numeric": (("numeric_test", "psi"), *SHADOWS[:3]),
    "categorical": (("categorical_test", "chi2"), *SHADOWS[3:]),
}
"""Per kind of shifted column: the default test and the alternatives, for the shift table."""


@dataclass
class Shadow:
    """A monitor configured with another test, fed the same pane summaries (drift only: no
    labels, so no performance or concept evidence)."""

    setting: str
    test: str
    monitor: ModelMonitor
    drift_found: int = 0
    in_drift: int = 0
    retrains: int = 0
    named: Counter[str] = field(default_factory=Counter)

    @property
    def label(self) -> str:
        return f"{self.setting} = {self.test}"

    @classmethod
    def build(cls, profile: ReferenceProfile, setting: str, test: str) -> Shadow:
        return cls(setting, test, ModelMonitor(profile, model_config(**{setting: test})))

    def step(self, start: int, summary: PaneSummary) -> Decision:
        """Judge the window starting at ``start`` from its pane summary."""
        self.monitor.set_pane(start, summary=summary)
        watermark = start + HOUR_MS + self.monitor.lateness_ms
        reports = [self.monitor.evaluate(w) for w in self.monitor.due(watermark)]
        self.monitor.prune(watermark)
        d = only_report(reports, start).decision
        self.drift_found += d.drift_found
        self.in_drift += d.in_drift
        self.retrains += d.retrain is not None
        self.named.update(v.result.column for v in d.verdicts if v.drifted)
        return d


def nan_if_none(p: float | None) -> float:
    return math.nan if p is None else p


def reason_names(reasons: Sequence[Reason]) -> tuple[str, ...]:
    """What a list of reasons names: features, metrics (``accuracy``), ``concept``."""
    names: list[str] = []
    for r in reasons:
        if r.kind == "concept_drift":
            names.append("concept")
        elif r.feature is not None:
            names.append(r.feature)
        else:
            names.append(r.statistic)
    return tuple(dict.fromkeys(names))


def names(counter: Counter[str], top: int = 4) -> str:
    """The ``top`` most counted names, with their counts."""
    return ", ".join(f"{k} x{v}" if v > 1 else k for k, v in counter.most_common(top)) or "-"


def run_stationary(
    profile: ReferenceProfile,
    windows: int,
    events: int,
    rng: np.random.Generator,
    clock: Clock,
    evidently: Evidently | str,
    evidently_windows: int,
) -> tuple[Stationary, list[EvidentlyVerdict]]:
    """Feed ``windows`` stationary windows; Evidently judges the first ``evidently_windows``."""
    stream = Stream(profile, model_config(), clock)
    result = Stationary(profile)
    verdicts: list[EvidentlyVerdict] = []
    for index in range(windows):
        with clock.phase("generate"):
            sample = draw(events, rng)
        start = stream.start_ms
        report, summary = stream.step(sample)
        with clock.phase("extra raw tests"):
            result.record(index, report, summary)
        with clock.phase("shadow monitors (other tests)"):
            for shadow in result.shadows:
                shadow.step(start, summary)
        if isinstance(evidently, Evidently) and index < evidently_windows:
            with clock.phase("Evidently"):
                verdicts.append(evidently.run(sample))
    return result, verdicts


def rate(hits: int, total: int) -> str:
    """``hits/total = share``."""
    return f"{hits:,}/{total:,} = {hits / total:.4f}" if total else "n/a"


def print_table(rows: Sequence[tuple[str, str]], indent: str = "   ") -> None:
    """Label-value rows, labels padded to one width."""
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{indent}{label:<{width}}  {value}")


def print_stationary(s: Stationary, events: int) -> None:
    """The stationary stream's outcome, its raw per-test rates and its per-column rates."""
    drift = model_config().drift
    n_features = s.feature_windows // max(s.windows, 1)
    print(f"\n1. Stationary stream: {s.windows:,} windows x {events:,} events, one population")
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

    thresholds = drift.thresholds
    print("\n   Raw false-positive rates per test, no correction, columns of a kind pooled")
    print(
        f"   {'test':<15} {'columns':<15} {'floor':>5} {'>=floor':>8} {'p<0.05':>7} "
        f"{'p<0.01':>7} {'median':>8} {'p99':>8} {'max':>8}"
    )
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
        p05 = f"{np.mean(p < 0.05):.4f}" if has_p else "n/a"
        p01 = f"{np.mean(p < 0.01):.4f}" if has_p else "n/a"
        print(
            f"   {test:<15} {f'{columns[(kind, test)]} {kind}':<15} {thresholds[test]:>5.2f} "
            f"{np.mean(stat >= thresholds[test]):>8.4f} {p05:>7} {p01:>7} "
            f"{np.median(stat):>8.5f} {np.quantile(stat, 0.99):>8.5f} {stat.max():>8.5f}"
        )

    print(
        "\n   The same stream through monitors configured with another test "
        "(drift evidence only, same policy)"
    )
    print(
        f"   {'setting':<34} {'floor':>5} {'drift found':>12} {'in drift':>9} {'retrains':>9}"
        "  columns drifted (windows)"
    )
    for sh in s.shadows:
        print(
            f"   {sh.label:<34} {thresholds[sh.test]:>5.2f} "
            f"{sh.drift_found:>12,} {sh.in_drift:>9,} {sh.retrains:>9,}  {names(sh.named)}"
        )

    print("\n   Per column: the configured test (bins it compares), then KS on the fine bins")
    print(
        f"   {'column':<13} {'test':<5} {'bins':>4} {'p<0.05':>7} {'p<0.01':>7} "
        f"{'max stat':>9} | {'ks p<0.05':>9} {'ks max D':>8}"
    )
    for (test, column), values in s.raw.items():
        kind = column_kind(s.profile, column)
        if (test, kind) not in (
            ("psi", "numeric"),
            ("chi2", "categorical"),
            ("chi2", "prediction"),
        ):
            continue
        profile = s.profile.prediction if kind == "prediction" else s.profile.features[column]
        arr = np.array(values, dtype=np.float64)
        ks = s.raw.get(("ks", column))
        ks_part = "|"
        if ks is not None:
            k = np.array(ks, dtype=np.float64)
            ks_part = f"| {np.mean(k[:, 1] < 0.05):>9.4f} {k[:, 0].max():>8.4f}"
        print(
            f"   {column:<13} {test:<5} {tested_bins(profile):>4} "
            f"{np.mean(arr[:, 1] < 0.05):>7.4f} {np.mean(arr[:, 1] < 0.01):>7.4f} "
            f"{arr[:, 0].max():>9.5f} {ks_part}"
        )


def print_evidently(
    s: Stationary, verdicts: list[EvidentlyVerdict], evidently: Evidently | str
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
    print(f"   {'':<46} {'driftline':>10} {'Evidently':>10}")
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
        print(f"   {label:<46} {a:>10} {b:>10}")
    flagged = Counter(c for v in verdicts for c in v.drifted)
    if flagged:
        print(f"   Evidently flagged: {dict(flagged.most_common())}")


# --- part 2: injected shifts -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scenario:
    """A named shift."""

    name: str
    shift: Shift


SCENARIOS = (
    Scenario("(a) mean +0.25 sd, normal_2", Shift("mean", "normal_2", 0.25)),
    Scenario("(b) mean +0.5 sd, normal_2", Shift("mean", "normal_2", 0.5)),
    Scenario("(c1) new category 5%, cat_20", Shift("new_category", "cat_20", 0.05)),
    Scenario("(c2) new category 5%, cat_200", Shift("new_category", "cat_200", 0.05)),
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
    effect_floor: float = math.nan
    evidently: EvidentlyVerdict | None = None
    # "setting = test" -> per run, the delay until that shadow fired naming the shifted column
    shadows: dict[str, list[int | None]] = field(default_factory=lambda: defaultdict(list))
    shadows_before: Counter[str] = field(default_factory=Counter)  # firing before the change


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
    evidently: Evidently | str,
) -> Detection:
    """Each repeat: ``lead`` stationary windows, then ``horizon`` shifted ones."""
    out = Detection()
    for repeat, seed in enumerate(seeds):
        rng = np.random.default_rng(seed)
        stream = Stream(profile, model_config(), clock)
        marks: dict[str, int | None] = dict.fromkeys(("drift", "alert", "retrain", "quality"))
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
            flagged = [q.column for q in report.quality if q.drifted]
            if flagged and marks["quality"] is None:
                marks["quality"] = delay
                out.named_quality.update(
                    f"{q.test}:{q.column}" for q in report.quality if q.drifted
                )
            if (
                repeat == 0
                and delay == 0
                and isinstance(evidently, Evidently)
                and scenario.shift.kind != "concept"
            ):
                with clock.phase("Evidently"):
                    out.evidently = evidently.run(sample)
        out.drift_found.append(marks["drift"])
        out.alert.append(marks["alert"])
        out.retrain.append(marks["retrain"])
        out.quality.append(marks["quality"])
        for label, mark in shadow_marks.items():
            out.shadows[label].append(mark)
    return out


def print_scenarios(results: Sequence[tuple[Scenario, Detection]], lead: int, horizon: int) -> None:
    """The shift table: delays, what was named, quality flags, Evidently."""
    print(
        f"\n2. Injected shifts: {lead} stationary windows, then {horizon} shifted ones; delays in "
        "windows from the first shifted one (0 = noticed in it),\n"
        "   as median (min-max) and runs that noticed within the horizon"
    )
    print(
        f"   {'scenario':<33} {'drift found':<15} {'alert firing':<15} {'retrain':<15} "
        f"{'firing after':>12} {'false before':>12}"
    )
    for scenario, r in results:
        print(
            f"   {scenario.name:<33} {first(r.drift_found):<15} {first(r.alert):<15} "
            f"{first(r.retrain):<15} {r.firing_after / max(r.windows_after, 1):>12.2f} "
            f"{r.false_before:>12}"
        )
    print(
        "\n   The same shifted streams through monitors configured with each selectable test: "
        "delay until the alert\n   fires with the shifted column drifted; [n]: windows firing "
        "before the change, over all runs (no labels: no concept scenarios)"
    )
    for kind, choices in SHADOW_CHOICES.items():
        shifted_kind = "mean" if kind == "numeric" else "new_category"
        rows = [(sc, r) for sc, r in results if sc.shift.kind == shifted_kind]
        if not rows:
            continue
        print(f"   {f'{kind} test':<33} " + " ".join(f"{t:<19}" for _, t in choices).rstrip())
        for scenario, r in rows:
            cells = [
                f"{first(r.shadows[f'{setting} = {test}'])} "
                f"[{r.shadows_before[f'{setting} = {test}']}]"
                for setting, test in choices
            ]
            print(f"   {scenario.name:<33} " + " ".join(f"{c:<19}" for c in cells).rstrip())
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
            f"      alert: {names(r.named_alert)}; retrain: {names(r.named_retrain)}\n"
            f"      quality: {first(r.quality)} {names(r.named_quality)}; accuracy "
            f"{np.nanmean(r.accuracy_before):.4f} before, "
            f"{np.nanmean(r.accuracy_after):.4f} after\n"
            f"      Evidently on the first shifted window: {ev_text}"
        )


# --- main --------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--windows", type=int, default=WINDOWS, help="stationary windows")
    parser.add_argument("--events", type=int, default=WINDOW_EVENTS, help="events per window")
    parser.add_argument("--reference", type=int, default=REFERENCE_ROWS, help="reference rows")
    parser.add_argument(
        "--evidently-windows",
        type=int,
        default=EVIDENTLY_WINDOWS,
        help="stationary windows also judged by Evidently (0: no Evidently)",
    )
    parser.add_argument("--repeats", type=int, default=REPEATS, help="runs per shift scenario")
    parser.add_argument("--lead", type=int, default=LEAD, help="stationary windows before a shift")
    parser.add_argument("--horizon", type=int, default=HORIZON, help="shifted windows watched")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    clock = Clock()
    root = np.random.SeedSequence(args.seed)
    ref_seed, check_seed, stationary_seed, scenario_seed = root.spawn(4)
    with clock.phase("reference profile"):
        reference = draw(args.reference, np.random.default_rng(ref_seed))
        profile = reference_profile(reference)
    print(
        f"reference: {args.reference:,} rows, {len(profile.features)} features "
        f"(20 numeric, 3 categorical), 100 fine bins, top 50 categories; "
        f"baseline accuracy {profile.performance['accuracy']:.4f}"
    )
    with clock.phase("fold-path check"):
        check = check_fold_paths(profile, np.random.default_rng(check_seed))
    print(
        "fold paths: ModelMonitor.fold_columns and set_pane(PaneSummary.fold(ColumnBatch)) "
        f"give identical reports: {check.identical};\n"
        f"   per window of {WINDOW_EVENTS:,} events: fold_columns {check.fold_columns_ms:.0f} ms, "
        f"ColumnBatch + PaneSummary.fold + set_pane {check.set_pane_ms:.0f} ms (used below)"
    )
    evidently: Evidently | str = "skipped (--evidently-windows 0)"
    if args.evidently_windows > 0:
        with clock.phase("Evidently"):
            evidently = evidently_or_reason(reference)

    stationary, verdicts = run_stationary(
        profile,
        args.windows,
        args.events,
        np.random.default_rng(stationary_seed),
        clock,
        evidently,
        args.evidently_windows,
    )
    print_stationary(stationary, args.events)
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

    total = time.perf_counter() - started
    windows = args.windows + len(SCENARIOS) * args.repeats * (args.lead + args.horizon)
    print(f"\nRuntime: {total:.1f} s for {windows:,} driftline windows")
    for phase, seconds in sorted(clock.spent.items(), key=lambda kv: -kv[1]):
        print(f"   {phase:<36} {seconds:>7.1f} s")


if __name__ == "__main__":
    main()
