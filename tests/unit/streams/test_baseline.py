"""A warm-up baseline over ``monitor.max_output_bytes`` is refused before any producer sees it."""

from __future__ import annotations

from driftline.detectors.profile import build_profile
from driftline.streams.baseline import publish_baseline


def test_a_baseline_over_max_output_bytes_is_refused_with_its_size_and_the_setting() -> None:
    columns = {f"f{j}": [f"value-{i}-{j}-abcdefghij" for i in range(60)] for j in range(40)}
    profile = build_profile("wide", "7", "binary", columns, prediction=[0, 1] * 30)
    # No producer: the size alone decides, before anything is produced.
    reason = publish_baseline(None, "driftline.models", profile, max_bytes=10_000)
    assert reason is not None
    assert reason.startswith("model wide version 7: its warm-up baseline of ")
    assert "bytes is over monitor.max_output_bytes (10000)" in reason
    assert "driftline reference publish" in reason
