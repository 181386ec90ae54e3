"""Stage 1 and shadow predictions (issue 16): a shadow keyed by its champion's prediction_id is
a prediction of its own version, never a duplicate of the champion (in either order), and
never in the champion version's summaries."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson

from driftline.detectors.performance import PerformanceSummary
from driftline.detectors.profile import build_profile
from driftline.detectors.summary import PaneSummary
from driftline.schemas.reference import ReferenceProfile
from driftline.streams.store import PartitionStore
from tests.unit.streams.test_partition import PRED, T0, TRUTH, Msg, Worker, prediction, truth
from tests.unit.streams.test_partition import SETTINGS as BASE


def _profile(version: str) -> ReferenceProfile:
    x = np.random.default_rng(0).normal(size=2000)
    labels = (x > 0).astype(int)
    return build_profile("m", version, "binary", {"x": x}, prediction=labels, labels=labels)


PROFILES = {("m", "1"): _profile("1"), ("m", "2"): _profile("2")}


def shadow(i: int, *, x: float = 0.5) -> bytes:
    event = orjson.loads(prediction(i, x=x, version="2"))
    event.update(event_id=f"s{i}", prediction_id=f"p{i}/shadow/2", role="shadow", shadow_of=f"p{i}")
    return orjson.dumps(event)


def _worker(path: Path) -> Worker:
    return Worker(0, PartitionStore(path), lambda m, v: PROFILES.get((m, v)), BASE)


def _counts(w: Worker) -> tuple[dict[str, int], dict[str, int]]:
    features: dict[str, int] = {}
    performance: dict[str, int] = {}
    for p in w.drain():
        if p.kind == "features":
            n = PaneSummary.from_bytes(p.summary, PROFILES[("m", p.version)]).n
            features[p.version] = features.get(p.version, 0) + n
        else:
            n = PerformanceSummary.from_bytes(p.summary).n
            performance[p.version] = performance.get(p.version, 0) + n
    return features, performance


def test_a_shadow_and_its_champion_are_both_kept_in_either_order(tmp_path: Path) -> None:
    w = _worker(tmp_path / "db")
    batch = [
        Msg(PRED, 0, prediction(0), b"p0"),
        Msg(PRED, 1, shadow(0), b"p0"),
        Msg(PRED, 2, shadow(1), b"p1"),  # the shadow first
        Msg(PRED, 3, prediction(1), b"p1"),
        Msg(TRUTH, 0, truth(0, 1), b"p0"),
    ]
    result = w.apply(batch, T0)
    assert result.duplicates == 0
    assert result.dead_letters == []
    assert result.predictions == 4
    assert result.joined == 1
    features, performance = _counts(w)
    assert features == {"1": 2, "2": 2}
    # Model m's rollout mode is none: the label scores the champion only (pairing the shadow
    # in shadow mode: test_shadow_pairing.py).
    assert performance == {"1": 1}


def test_a_repeated_shadow_is_a_duplicate(tmp_path: Path) -> None:
    w = _worker(tmp_path / "db")
    w.apply([Msg(PRED, 0, prediction(0), b"p0"), Msg(PRED, 1, shadow(0), b"p0")], T0)
    again = w.apply([Msg(PRED, 2, shadow(0), b"p0"), Msg(PRED, 3, shadow(0), b"p0")], T0)
    assert again.duplicates == 2
    assert again.predictions == 0
