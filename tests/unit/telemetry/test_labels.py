"""Model names come from producers: /metrics labels the admitted ones, the rest as one."""

from __future__ import annotations

from collections import Counter

import pytest
from prometheus_client import generate_latest

from driftline.config import Settings
from driftline.detectors.engine import Window
from driftline.streams.stage2.state import Activity, ClosedWindow, Holding
from driftline.telemetry.labels import OTHER, ModelLabels
from driftline.telemetry.stage2 import Stage2Telemetry


def window(model: str) -> ClosedWindow:
    return ClosedWindow(
        model=model,
        version="1",
        window=Window(600_000, 300_000, "5m"),
        restated=False,
        due_ms=0,
        points=10,
        alerts=1,
        retrain=True,
    )


def test_unknown_models_beyond_the_admitted_ones_have_no_series_of_their_own() -> None:
    settings = Settings(models={"fraud": {"task": "binary"}}, models_policy={"allow": "listed"})
    telemetry = Stage2Telemetry(models=ModelLabels.from_settings(settings))
    strangers = [f"stranger-{i}" for i in range(50)]
    telemetry.record(
        Activity(Counter(), 0, [window("fraud"), *map(window, strangers)]), published_at=1.0
    )
    telemetry.hold({m: Holding(panes=2, partials=3, watermark_ms=60_000) for m in strangers})
    text = generate_latest(telemetry.registry).decode()
    assert "stranger" not in text
    sample = telemetry.registry.get_sample_value
    assert sample("driftline_merge_windows_finalised_total", {"model": "fraud"}) == 1
    assert sample("driftline_merge_windows_finalised_total", {"model": OTHER}) == 50
    assert sample("driftline_merge_metric_points_total", {"model": OTHER}) == 500
    assert sample("driftline_merge_panes_held", {"model": OTHER}) == 100
    assert sample("driftline_merge_partials_held", {"model": OTHER}) == 150
    assert sample("driftline_merge_watermark_seconds", {"model": OTHER}) is None
    assert telemetry.health()[1]["models"] == 50


def test_with_allow_any_the_first_max_unknown_models_keep_their_label() -> None:
    settings = Settings(models_policy={"allow": "any", "max_unknown": 3})
    labels = ModelLabels.from_settings(settings)
    names = [labels.of(f"m{i}") for i in range(10)]
    assert names == ["m0", "m1", "m2", *[OTHER] * 7]
    assert labels.of("m1") == "m1"


def test_gauges_of_a_label_no_longer_held_are_removed() -> None:
    telemetry = Stage2Telemetry(models=ModelLabels(["a"], others=0))
    telemetry.hold({"a": Holding(1, 1, None), "x": Holding(1, 1, 5000)})
    telemetry.hold({"a": Holding(1, 1, 5000)})
    sample = telemetry.registry.get_sample_value
    assert sample("driftline_merge_panes_held", {"model": OTHER}) is None
    assert sample("driftline_merge_watermark_seconds", {"model": "a"}) == 5


def test_a_negative_cap_is_refused() -> None:
    with pytest.raises(ValueError, match="others"):
        ModelLabels(others=-1)
