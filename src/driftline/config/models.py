"""The ``models.<name>`` sections: how one model is watched, judged, retrained and rolled out."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any, Literal, Self

from pydantic import (
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from driftline.config.base import Duration, Section, format_duration
from driftline.schemas.events import Task

__all__ = [
    "CategoricalTest",
    "ClassificationMetric",
    "DriftSettings",
    "ModelConfig",
    "MultivariateSettings",
    "NumericTest",
    "PerformanceSettings",
    "QualitySettings",
    "RegressionMetric",
    "RetrainSettings",
    "RolloutSettings",
    "TrainingSettings",
    "WindowSpec",
]


NumericTest = Literal["psi", "ks", "jensen_shannon", "wasserstein"]
CategoricalTest = Literal["chi2", "psi", "jensen_shannon"]
ClassificationMetric = Literal["accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"]
RegressionMetric = Literal["mae", "rmse", "r2"]
_LOWER_IS_BETTER = {"log_loss", "mae", "rmse"}
_METRIC_RANGES = {
    **dict.fromkeys(("accuracy", "precision", "recall", "f1", "roc_auc"), (0.0, 1.0)),
    **dict.fromkeys(("log_loss", "mae", "rmse"), (0.0, math.inf)),
    "r2": (-math.inf, 1.0),
}
"""The values each performance metric can take, which ``performance.threshold`` must lie in."""


def _detail(kind: str, loc: tuple[int | str, ...], message: str, given: Any) -> InitErrorDetails:
    """One error for :meth:`ValidationError.from_exception_data`, its message kept as is."""
    error = PydanticCustomError(kind, "{message}", {"message": message})
    return InitErrorDetails(type=error, loc=loc, input=given)


class WindowSpec(Section):
    """A window: tumbling when ``hop`` is absent, hopping (sliding by ``hop``) otherwise."""

    size: Duration
    hop: Duration | None = None

    @model_validator(mode="after")
    def _hop_fits(self) -> Self:
        if self.size <= timedelta(0):
            raise ValueError("size must be positive")
        if self.hop is not None and not timedelta(0) < self.hop <= self.size:
            raise ValueError("hop must be positive and at most the window size")
        return self


class MultivariateSettings(Section):
    """Multivariate drift: PCA reconstruction error of the standardised numeric features."""

    enabled: bool = Field(
        True, description="Profile and judge the joint shape (needs 2+ numeric features)."
    )
    explained_variance: float = Field(
        0.65, gt=0.0, lt=1.0, description="Share of variance the kept components explain."
    )
    max_components: int = Field(
        20, ge=1, le=200, description="Most principal components a profile keeps."
    )
    max_features: int = Field(
        200, ge=2, le=2000, description="Most numeric features taken in (first by name)."
    )
    test: NumericTest = Field(
        "psi", description="The test of the window's errors against the reference's error bins."
    )
    threshold: float = Field(
        0.1,
        gt=0.0,
        description="Its effect-size floor (the error sums many features: shifts are damped).",
    )


class SegmentSettings(Section):
    """Which segment keys of the events (``PredictionEvent.segments``) slice the model."""

    keys: list[str] = Field(
        default_factory=list,
        max_length=16,
        description="Segment keys judged one slice per value, e.g. [region, channel].",
    )
    top_k: int = Field(
        10,
        ge=1,
        le=100,
        description="Values tracked per key: the most frequent in the reference profile; "
        "the rest (and events without the key) count under ``other``.",
    )


class DriftSettings(Section):
    """Which tests decide drift, their effect-size floors and the false-alarm budget."""

    numeric_test: NumericTest = "psi"
    categorical_test: CategoricalTest = "chi2"
    thresholds: dict[str, float] = Field(
        default_factory=lambda: {
            "psi": 0.2,
            "ks": 0.1,
            "jensen_shannon": 0.1,
            "wasserstein": 0.1,
            "chi2": 0.1,
        },
        description="Effect-size floor per test (chi2: Cramér's V); or ``calibrated``.",
    )
    threshold_mode: Literal["fixed", "calibrated"] = "fixed"
    """``fixed``: the floors in ``thresholds``. ``calibrated`` (written ``thresholds:
    calibrated``): per column and test, the effect size a window of the live size exceeds under
    no drift at ``false_positive_rate``, resampled from the reference when its profile is built;
    a profile without them is judged with the fixed floors."""
    false_positive_rate: float = Field(0.001, ge=0.001, le=0.01)
    """The model's per-window false-alarm budget of calibrated thresholds: divided equally over
    its calibrated columns (features and prediction; Bonferroni), each column's threshold is
    read at that per-test rate (a profile stores 0.01 to 1e-6; below, its tail is
    extrapolated)."""
    correction: Literal["bh", "bonferroni"] = "bh"
    fdr: float = Field(0.05, gt=0.0, lt=1.0, description="False-discovery (or family) rate.")
    min_samples: int = Field(500, ge=1, description="Smallest window that may be judged.")
    persistence_k: int = Field(2, ge=1, description="Drift in k of the last n windows...")
    persistence_n: int = Field(3, ge=1, description="...raises the alert.")
    bins: int = Field(100, ge=10, le=1000, description="Fine quantile bins per feature.")
    multivariate: MultivariateSettings = Field(
        default_factory=MultivariateSettings,
        description="Multivariate drift (column ``__multivariate__``).",
    )

    @model_validator(mode="before")
    @classmethod
    def _threshold_mode(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("thresholds") in ("fixed", "calibrated"):
            data = dict(data)
            data["threshold_mode"] = data.pop("thresholds")
        return data

    @field_validator("thresholds", mode="before")
    @classmethod
    def _floors_or_mode(cls, value: Any) -> Any:
        if isinstance(value, str):
            raise ValueError(f"must be 'fixed', 'calibrated' or a floor per test, got {value!r}")
        return value

    @field_validator("thresholds")
    @classmethod
    def _known_tests(cls, value: dict[str, float]) -> dict[str, float]:
        known = {"psi", "ks", "jensen_shannon", "wasserstein", "chi2"}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(f"unknown test(s) {unknown}; allowed: {sorted(known)}")
        if any(v <= 0 for v in value.values()):
            raise ValueError("thresholds must be positive")
        return value

    @model_validator(mode="after")
    def _k_of_n(self) -> Self:
        if self.persistence_k > self.persistence_n:
            raise ValueError("persistence_k must be at most persistence_n")
        return self


class QualitySettings(Section):
    """Data-quality checks per feature: how far a rate may move before it is flagged."""

    missing_rate: float = Field(
        0.05, gt=0.0, le=1.0, description="Largest tolerated change of the missing-value rate."
    )
    out_of_range: float = Field(
        0.02, gt=0.0, le=1.0, description="Largest tolerated share outside the reference range."
    )
    unseen_categories: float = Field(
        0.05, gt=0.0, le=1.0, description="Largest tolerated excess of unseen categories."
    )


class PerformanceSettings(Section):
    """The metric that judges a model's realised performance, and when it is too low."""

    metric: ClassificationMetric | RegressionMetric | None = Field(
        None, description="Default: accuracy for classifiers, rmse for regression."
    )
    threshold: float | None = Field(
        None, description="Absolute limit: a floor, or a ceiling for log_loss, mae and rmse."
    )
    max_drop: float | None = Field(
        0.05, ge=0.0, description="Largest tolerated change from the reference baseline."
    )
    min_labels: int = Field(200, ge=1, description="Labels needed before a window is judged.")
    concept_detector: Literal[
        "adwin", "ddm", "eddm", "hddm_a", "hddm_w", "page_hinkley", "kswin"
    ] = "adwin"


class RetrainSettings(Section):
    """When evidence becomes a retraining request."""

    policy: Literal["never", "on_drift", "on_performance", "on_either", "on_both"] = (
        "on_performance"
    )
    cooldown: Duration = timedelta(hours=6)
    examples: bool | None = None
    """Whether stage 1 sends a joined example (features + label) of each labelled prediction
    to ``driftline.labeled``, and so keeps each prediction's whole event while it waits for
    its label. None: when driftline's trainer retrains the model (it is configured under
    ``models:`` and ``policy`` is not ``never``). Off, a waiting prediction is kept compact
    (what performance needs: version, time, prediction, scores), and nothing is sent."""


_IMPORT_PATH = r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$"


class TrainingSettings(Section):
    """How the trainer retrains one model (``models.<name>.training``); how often is
    ``retrain.cooldown``."""

    trainer: str | None = Field(None, pattern=_IMPORT_PATH)
    """Import path (``"package.module:Name"``) of the model's trainer: a class or factory
    called with ``task=…``, or an object with ``fit(examples)``. None: river's default for
    the task (``driftline.trainer.builtin:RiverTrainer``)."""
    range: Literal["onset", "recent"] = "onset"
    """What a request trains on: ``onset``, the examples since the request's window start
    (the drift's onset); ``recent``, the newest ``recent_rows``. Both fall back to the newest
    ``trainer.min_train`` plus the holdout when too few."""
    recent_rows: int = Field(5000, ge=1, le=100_000_000)
    """Examples ``range: recent`` trains on (the holdout included)."""
    promote: Literal["if_better", "always"] = "if_better"
    """``if_better``: the candidate replaces the champion only when it beats it by more than
    ``margin`` on the holdout; ``always``: every candidate that trains is promoted."""
    margin: float = Field(0.0, ge=0.0, le=1e9)
    """How much the candidate must beat the champion by, in the units of the model's
    ``performance.metric`` (in its good direction: up for accuracy, down for RMSE)."""


class RolloutSettings(Section):
    """How a challenger version is judged against the champion on live traffic
    (``models.<name>.rollout``, issue 16); the decision is
    :class:`~driftline.detectors.rollout.RolloutPolicy`'s."""

    mode: Literal["none", "shadow", "canary"] = "none"
    """``none``: a new version replaces the champion at once; ``shadow``: both versions predict
    every request, the champion answers; ``canary``: the challenger answers ``canary_share``."""
    canary_share: float = Field(0.1, gt=0.0, lt=1.0)
    """The share of requests a canary answers (a hash of the request key picks them)."""
    min_labels: int = Field(500, ge=1, le=1_000_000_000)
    """Labels each version needs before any decision."""
    max_labels: int = Field(100_000, ge=1, le=1_000_000_000)
    """Labels of the challenger after which an undecided rollout ends with ``on_end``."""
    max_duration: Duration | None = None
    """Event time after which an undecided rollout ends with ``on_end`` (from the start of the
    first window with evidence to the end of the window looked at), e.g. ``7d``; none: only
    ``max_labels`` ends it. For a model whose labels are too few to reach ``max_labels``."""
    alpha: float = Field(0.05, gt=0.0, lt=1.0)
    """The chance of any wrong decision over every look (promoting a version no better by
    ``margin``, or rolling back one no worse by it)."""
    margin: float = Field(0.0, ge=0.0, le=1e9)
    """How much better (or worse) the challenger must be to promote (or roll back), in the units
    of the model's ``performance.metric``."""
    on_end: Literal["promote", "rollback"] = "rollback"
    """What an undecided rollout does at ``max_labels``: by default a challenger that has not
    shown it is better is rolled back."""
    cap: float | None = Field(None, gt=0.0, le=1e300)
    """The largest loss one prediction counts in the comparison, in the metric's units:
    required for a regression model in rollout (the absolute error for ``mae``, the squared
    error for ``rmse`` and ``r2``, in the target's units: the confidence sequence needs bounded
    scores), optional for ``log_loss`` (default 10); not used by accuracy."""

    @model_validator(mode="after")
    def _labels_ordered(self) -> Self:
        if self.max_duration is not None and self.max_duration <= timedelta(0):
            raise ValueError("max_duration must be positive")
        if self.max_labels < self.min_labels:
            raise ValueError(
                f"max_labels ({self.max_labels}) must be at least min_labels ({self.min_labels})"
            )
        return self


class ModelConfig(Section):
    """How one model is watched."""

    task: Task
    features: dict[str, Literal["numeric", "categorical"]] = Field(
        default_factory=dict, description="Feature types; empty means inferred from reference."
    )
    positive_class: str | None = Field(None, description="For binary tasks with string labels.")
    pane: Duration = timedelta(minutes=1)
    windows: list[WindowSpec] = Field(
        default_factory=lambda: [WindowSpec(size=timedelta(hours=1))], min_length=1
    )
    allowed_lateness: Duration = timedelta(minutes=5)
    idle_timeout: Duration = timedelta(seconds=30)
    warmup_events: int = Field(
        10_000, ge=0, description="Events to baseline a version with no reference; 0: never."
    )
    drift: DriftSettings = DriftSettings()
    quality: QualitySettings = QualitySettings()
    performance: PerformanceSettings = PerformanceSettings()
    retrain: RetrainSettings = RetrainSettings()
    training: TrainingSettings = TrainingSettings()
    rollout: RolloutSettings = RolloutSettings()
    segments: SegmentSettings = SegmentSettings()

    @model_validator(mode="wrap")
    @classmethod
    def _consistent(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> ModelConfig:
        """Every field error and every inconsistency between fields, reported together.

        With field errors, the fields that are valid are checked against each other too
        (the bad ones at their defaults, and the checks that read them left out), so a
        ``config check`` names every problem at once rather than one per run."""
        try:
            model: ModelConfig = handler(data)
        except ValidationError as exc:
            if not isinstance(data, dict):
                raise
            errors = exc.errors(include_url=False)
            bad = {str(e["loc"][0]) for e in errors if e["loc"]}
            try:
                partial: ModelConfig = handler({k: v for k, v in data.items() if k not in bad})
            except ValidationError:
                raise exc from None  # a required field is bad: nothing to check the rest with
            problems = partial._problems(bad)
        else:
            errors, problems = [], model._problems(set())
            if not problems:
                return model
        details = [_detail(e["type"], e["loc"], e["msg"], e["input"]) for e in errors]
        details += [_detail("inconsistent", (), message, data) for message in problems]
        raise ValidationError.from_exception_data(cls.__name__, details)

    def _problems(self, skip: set[str]) -> list[str]:
        """What is inconsistent between this model's fields, leaving out the checks that read
        a field of ``skip`` (fields that failed their own validation)."""
        found: list[str] = []
        if "pane" not in skip and self.pane <= timedelta(0):
            found.append("pane must be positive")
        elif not {"pane", "windows"} & skip:
            for i, window in enumerate(self.windows):
                for name in ("size", "hop"):
                    length = getattr(window, name)
                    if length is not None and length % self.pane:
                        found.append(
                            f"windows.{i}.{name} ({format_duration(length)}) must be a multiple "
                            f"of the pane ({format_duration(self.pane)})"
                        )
        if "rollout" not in skip and self.task == "regression":
            if self.rollout.mode == "canary":
                found.append(
                    "rollout.mode 'canary' is not judged for regression models yet (the "
                    "performance summaries keep no capped per-example errors); use 'shadow'"
                )
            elif self.rollout.mode != "none" and self.rollout.cap is None:
                found.append(
                    "rollout.cap is required for a regression model in rollout: the largest "
                    "absolute error (mae) or squared error (rmse, r2) one prediction counts, in "
                    "the target's units"
                )
        if "performance" in skip:
            return found
        metric = self.performance.metric
        if metric is not None and (metric in ("mae", "rmse", "r2")) != (self.task == "regression"):
            allowed = (
                "mae, rmse, r2"
                if self.task == "regression"
                else "accuracy, precision, recall, f1, roc_auc, log_loss"
            )
            found.append(
                f"performance.metric {metric!r} does not fit task {self.task!r}; allowed: {allowed}"
            )
            return found
        threshold = self.performance.threshold
        low, high = _METRIC_RANGES[self.metric]
        if threshold is not None and not low <= threshold <= high:
            span = f"between {low:g} and {high:g}" if high != math.inf else f"at least {low:g}"
            if low == -math.inf:
                span = f"at most {high:g}"
            found.append(
                f"performance.threshold {threshold:g} is outside the range of "
                f"{self.metric} ({span})"
            )
        return found

    @property
    def metric(self) -> str:
        """The performance metric in force (the configured one, or the task's default)."""
        if self.performance.metric is not None:
            return self.performance.metric
        return "rmse" if self.task == "regression" else "accuracy"

    @property
    def lower_is_better(self) -> bool:
        """Whether a smaller value of :attr:`metric` is better (log loss, MAE, RMSE)."""
        return self.metric in _LOWER_IS_BETTER
