"""Building blocks for stage 2's tests: profiles, pane summaries, partials, watermarks and
readers of the records the core publishes (shared by the pure tests and the worker tests)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from driftline.config import ModelConfig, Settings, TopicSettings
from driftline.detectors.batch import ColumnBatch
from driftline.detectors.performance import PerformanceSummary
from driftline.detectors.profile import build_profile
from driftline.detectors.summary import PaneSummary
from driftline.schemas.reference import ReferenceProfile
from driftline.streams.partials import PanePartial, PartialKind, Watermark
from driftline.streams.stage2.outputs import Output
from driftline.streams.stage2.state import Stage2State

MINUTE = 60_000
WINDOW = 5 * MINUTE
LATENESS = MINUTE
IDLE = 30_000


def make_profile(version: str = "1", seed: int = 0, n: int = 20_000) -> ReferenceProfile:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    score = 1 / (1 + np.exp(-x))
    return build_profile(
        "m",
        version,
        "binary",
        {"x": x, "city": rng.choice(["a", "b", "c"], size=n, p=[0.5, 0.3, 0.2])},
        prediction=(score > 0.5).astype(int),
        scores={"0": 1 - score, "1": score},
        labels=(rng.random(n) < score).astype(int),
    )


PROFILE = make_profile()


def model_config(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "task": "binary",
        "pane": "1m",
        "windows": [{"size": "5m"}],
        "allowed_lateness": "1m",
        "idle_timeout": "30s",
        "drift": {"min_samples": 200, "persistence_k": 1, "persistence_n": 1},
        "performance": {"min_labels": 100},
        "retrain": {"policy": "on_drift", "cooldown": "0s"},
    }
    return {**base, **changes}


def make_settings(input_partitions: int = 2, **changes: Any) -> Settings:
    return Settings(
        models={"m": ModelConfig(**model_config(**changes))},
        topics=TopicSettings(input_partitions=input_partitions),
    )


def traffic(
    pane_start: int, n: int, *, shift: float = 0.0, seed: int = 1
) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray, dict[str, np.ndarray]]:
    """n events inside one pane: times, features, predictions, scores."""
    rng = np.random.default_rng(seed)
    times = pane_start + np.sort(rng.integers(0, MINUTE, n))
    x = rng.normal(loc=shift, size=n)
    score = 1 / (1 + np.exp(-x))
    features = {"x": x, "city": rng.choice(["a", "b", "c"], size=n, p=[0.5, 0.3, 0.2])}
    return times, features, (score > 0.5).astype(int), {"0": 1 - score, "1": score}


def pane_summary(
    pane_start: int,
    n: int,
    *,
    shift: float = 0.0,
    seed: int = 1,
    profile: ReferenceProfile = PROFILE,
    unseen_cap: int | None = None,
) -> PaneSummary:
    times, features, prediction, scores = traffic(pane_start, n, shift=shift, seed=seed)
    batch = ColumnBatch.from_columns(
        profile, features, prediction, event_time_ms=times, scores=scores
    )
    empty = (
        PaneSummary(profile) if unseen_cap is None else PaneSummary(profile, unseen_cap=unseen_cap)
    )
    return empty.fold(batch)


def labels_summary(pane_start: int, n: int, *, seed: int = 1) -> PerformanceSummary:
    _, _, prediction, scores = traffic(pane_start, n, seed=seed)
    rng = np.random.default_rng(seed + 1000)
    labels = (rng.random(n) < scores["1"]).astype(int)
    return PerformanceSummary.from_profile(PROFILE).fold(labels, prediction, scores)


def partial(
    summary: PaneSummary | PerformanceSummary,
    pane_start: int,
    source_partition: int,
    covered: int,
    *,
    watermark_ms: int | None = None,
    version: str = "1",
) -> PanePartial:
    kind: PartialKind = "features" if isinstance(summary, PaneSummary) else "performance"
    return PanePartial(
        "m",
        version,
        pane_start,
        MINUTE,
        source_partition,
        kind,
        covered,
        pane_start + MINUTE - 1 if watermark_ms is None else watermark_ms,
        summary.to_bytes(),
    )


def watermark(source_partition: int, watermark_ms: int, n_partitions: int = 2) -> Watermark:
    return Watermark("m", source_partition, watermark_ms, n_partitions)


def close_first_window(n_partitions: int = 2) -> list[Watermark]:
    """Every partition past the first window's end plus the lateness."""
    return [watermark(p, WINDOW + LATENESS, n_partitions) for p in range(n_partitions)]


def feed(
    state: Stage2State, messages: Sequence[PanePartial | Watermark], now_ms: int = 0
) -> list[Output]:
    outputs: list[Output] = []
    for message in messages:
        outputs += state.apply(message, now_ms)
    return outputs


def new_state(settings: Settings | None = None) -> Stage2State:
    return Stage2State(lambda model, version: PROFILE, settings or make_settings())


def points(output: Output) -> dict[tuple[str, str], dict[str, str]]:
    """A metrics record's lines as {(measurement and tags, timestamp): {field: value}}."""
    assert output.role == "metrics"
    parsed = {}
    for line in output.value.decode().splitlines():
        head, fields, timestamp = line.split(" ")
        parsed[(head, timestamp)] = dict(f.split("=", 1) for f in fields.split(","))
    return parsed


def n_predictions(output: Output) -> int:
    (coverage,) = [f for (head, _), f in points(output).items() if head.startswith("label_cov")]
    return int(coverage["n_predictions"].rstrip("i"))


def metrics(outputs: list[Output]) -> list[Output]:
    return [o for o in outputs if o.role == "metrics"]
