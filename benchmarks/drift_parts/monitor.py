"""A model version watched window after window by driftline's own code, as the service would
watch it: pane summaries folded from column batches and handed over with ``set_pane`` as stage 2
does, labels folded and the error stream fed to the concept detector as ``replay`` does, each
hourly window judged once due; and shadow monitors configured with other tests, fed the same
pane summaries.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from drift_parts.population import Sample, draw
from driftline.config.settings import ModelConfig
from driftline.detectors.batch import ColumnBatch
from driftline.detectors.concept import ConceptDriftDetector, make_detector
from driftline.detectors.decision import Decision
from driftline.detectors.engine import ModelMonitor, WindowReport
from driftline.detectors.multivariate import MULTIVARIATE_COLUMN
from driftline.detectors.summary import PaneSummary
from driftline.schemas.outputs import Reason
from driftline.schemas.reference import NumericProfile, ReferenceProfile

HOUR_MS = 3_600_000
T0_MS = 1_767_225_600_000  # 2026-01-01T00:00Z: windows are aligned hours from here
LABEL_DELAY_MS = 60_000


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
        self, sample: Sample, *, fold_columns: bool = False, summary: PaneSummary | None = None
    ) -> tuple[WindowReport, PaneSummary]:
        """Fold one window of events and its labels, judge it; returns its report and counts.
        ``summary``: the window's pane summary, already folded by another stream."""
        start = self.start_ms
        self.window += 1
        times = start + (np.arange(sample.n, dtype=np.int64) * HOUR_MS) // sample.n
        scores = sample.scores()
        if summary is not None:
            self.monitor.set_pane(start, summary=summary)
        else:
            summary = self._fold(sample, times, scores, start, fold_columns)
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
            report = judge(self.monitor, start)
        return report, summary

    def _fold(
        self,
        sample: Sample,
        times: np.ndarray,
        scores: dict[str, np.ndarray],
        start: int,
        fold_columns: bool,
    ) -> PaneSummary:
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
        return summary


def judge(monitor: ModelMonitor, start: int) -> WindowReport:
    """Evaluate the hourly window starting at ``start``, due once the watermark passes its end
    and the allowed lateness, and prune what it no longer needs; the window must be the only
    one due (anything else is a bug)."""
    watermark = start + HOUR_MS + monitor.lateness_ms
    reports = [monitor.evaluate(w) for w in monitor.due(watermark)]
    monitor.prune(watermark)
    if len(reports) != 1 or reports[0].window.start_ms != start:
        raise RuntimeError(f"expected one due window starting at {start}, got {reports}")
    return reports[0]


@dataclass(frozen=True, slots=True)
class FoldCheck:
    """``fold_columns`` against ``set_pane`` of a folded summary, on the same windows."""

    identical: bool
    fold_columns_ms: float
    set_pane_ms: float


def check_fold_paths(profile: ReferenceProfile, rng: np.random.Generator, events: int) -> FoldCheck:
    """Whether both fold paths give identical reports on windows of ``events`` events, and
    what each costs per window."""
    by_columns, by_summary = Clock(), Clock()
    a_stream = Stream(profile, model_config(), by_columns)
    b_stream = Stream(profile, model_config(), by_summary)
    identical, windows = True, 5
    for _ in range(windows):
        sample = draw(events, rng)
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


def column_kind(profile: ReferenceProfile, column: str) -> str:
    """``numeric``, ``categorical``, ``prediction`` or ``multivariate``."""
    if column in ("prediction", MULTIVARIATE_COLUMN):
        return "multivariate" if column == MULTIVARIATE_COLUMN else column
    return "numeric" if isinstance(profile.features[column], NumericProfile) else "categorical"


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
        d = judge(self.monitor, start).decision
        self.drift_found += d.drift_found
        self.in_drift += d.in_drift
        self.retrains += d.retrain is not None
        self.named.update(v.result.column for v in d.verdicts if v.drifted)
        return d


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
