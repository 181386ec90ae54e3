"""Stage 1 pairs a shadow prediction with its champion's through the one label they share
(issue 16): in every order where the label finds both, once across replays and restarts,
into rollout partials equal to ``fold_shadow_pairs`` of the same triples; a shadow that comes
after its champion joined its label stays unpaired and is counted."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from driftline.config import Settings
from driftline.detectors.performance import PerformanceSummary
from driftline.detectors.profile import build_profile
from driftline.detectors.rollout_evidence import PairedEvidence, RolloutMetric
from driftline.detectors.rollout_sources import evidence_of_bytes, fold_shadow_pairs
from driftline.schemas.reference import ReferenceProfile
from driftline.streams.partials import PanePartial
from driftline.streams.partition import PartitionWorker
from driftline.streams.result import ApplyResult
from driftline.streams.store import PartitionStore
from tests.unit.streams.test_partition import PRED, T0, TRUTH, Msg, Worker

MINUTE = 60_000


def _settings(mode: str = "shadow", metric: str | None = None) -> Settings:
    model: dict[str, Any] = {
        "task": "binary",
        "pane": "1m",
        "windows": [{"size": "10m"}],
        "allowed_lateness": "1m",
        "rollout": {"mode": mode},
    }
    if metric is not None:
        model["performance"] = {"metric": metric}
    return Settings(monitor={"max_clock_skew": "36500d"}, models={"m": model})


SHADOW = _settings()


def _profile(version: str) -> ReferenceProfile:
    x = np.random.default_rng(0).normal(size=2000)
    labels = (x > 0).astype(int)
    return build_profile("m", version, "binary", {"x": x}, prediction=labels, labels=labels)


def _profiles() -> dict[tuple[str, str], ReferenceProfile]:
    return {("m", "1"): _profile("1"), ("m", "2"): _profile("2"), ("m", "4"): _profile("4")}


def champion(i: int, guess: int = 1, *, ts: int | None = None, p1: float | None = None) -> bytes:
    event: dict[str, Any] = {
        "event_id": f"e{i}",
        "prediction_id": f"p{i}",
        "model": "m",
        "model_version": "1",
        "timestamp": T0 + i * 1000 if ts is None else ts,
        "features": {"x": 0.5},
        "prediction": guess,
    }
    if p1 is not None:
        event["scores"] = {"0": 1 - p1, "1": p1}
    return orjson.dumps(event)


def shadow(
    i: int,
    guess: int = 1,
    *,
    version: str = "2",
    ts: int | None = None,
    p1: float | None = None,
) -> bytes:
    event = orjson.loads(champion(i, guess, ts=ts, p1=p1))
    event.update(
        event_id=f"s{i}/{version}",
        prediction_id=f"p{i}/shadow/{version}",
        model_version=version,
        role="shadow",
        shadow_of=f"p{i}",
    )
    return orjson.dumps(event)


def label(i: int, value: object = 1) -> bytes:
    return orjson.dumps(
        {
            "event_id": f"t{i}",
            "prediction_id": f"p{i}",
            "timestamp": T0 + i * 1000 + 5000,
            "label": value,
        }
    )


class Feed:
    """Messages with offsets counted per topic, as a partition of each topic would give."""

    def __init__(self) -> None:
        self.next = {PRED: 0, TRUTH: 0}

    def __call__(self, value: bytes, key: str, topic: str = PRED) -> Msg:
        offset = self.next[topic]
        self.next[topic] += 1
        return Msg(topic, offset, value, key.encode())

    def c(self, i: int, guess: int = 1, **kw: Any) -> Msg:
        return self(champion(i, guess, **kw), f"p{i}")

    def s(self, i: int, guess: int = 1, **kw: Any) -> Msg:
        return self(shadow(i, guess, **kw), f"p{i}")

    def t(self, i: int, value: object = 1) -> Msg:
        return self(label(i, value), f"p{i}", TRUTH)


def _worker(
    path: Path,
    settings: Settings = SHADOW,
    profiles: dict[tuple[str, str], ReferenceProfile] | None = None,
) -> Worker:
    known = _profiles() if profiles is None else profiles
    return Worker(0, PartitionStore(path), lambda m, v: known.get((m, v)), settings)


def _rollouts(partials: list[PanePartial]) -> dict[tuple[str, str, int], PairedEvidence]:
    found = {}
    for p in partials:
        if p.kind == "rollout":
            evidence = evidence_of_bytes(p.summary)
            assert isinstance(evidence, PairedEvidence)
            found[(p.version, p.champion, p.pane_start_ms)] = evidence
    return found


def _performance_n(partials: list[PanePartial]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for p in partials:
        if p.kind == "performance":
            n = PerformanceSummary.from_bytes(p.summary).n
            counts[p.version] = counts.get(p.version, 0) + n
    return counts


def _total(results: list[ApplyResult], name: str) -> int:
    return sum(getattr(result, name) for result in results)


ORDERS = {
    # order of arrival, each in a batch of its own: paired?
    "champion, shadow, label": True,
    "shadow, champion, label": True,
    "label, shadow, champion": True,
    "shadow, label, champion": True,
    "champion, label, shadow": False,  # the label joined the champion: gone for the shadow
    "label, champion, shadow": False,
}


@pytest.mark.parametrize(("order", "paired"), ORDERS.items())
def test_a_shadow_pairs_whenever_the_label_finds_both(
    tmp_path: Path, order: str, paired: bool
) -> None:
    w, feed = _worker(tmp_path / "db"), Feed()
    make = {
        "champion": lambda: feed.c(0, 1),
        "shadow": lambda: feed.s(0, 0),
        "label": lambda: feed.t(0, 0),
    }
    results = [w.apply([make[name]()], T0) for name in order.split(", ")]
    partials = w.drain()
    rollouts = _rollouts(partials)
    assert _total(results, "shadow_pairs") == int(paired)
    assert _total(results, "shadows_unpaired") == int(not paired)
    assert _total(results, "duplicates") == 0
    assert len(_total_labeled(results)) == 1  # only the champion's joined example
    if paired:
        # label 0: the champion (1) is wrong, the shadow (0) right: +1
        assert list(rollouts) == [("2", "1", T0)]
        assert (rollouts[("2", "1", T0)].n, rollouts[("2", "1", T0)].estimate) == (1, 1.0)
        assert _performance_n(partials) == {"1": 1, "2": 1}
    else:
        assert rollouts == {}
        assert _performance_n(partials) == {"1": 1}
    again = w.apply([feed.s(0, 1, version="4")], T0)  # another shadow of the same champion
    assert (again.duplicates, again.predictions) == (1, 0)


def _total_labeled(results: list[ApplyResult]) -> list[Any]:
    return [record for result in results for record in result.labeled]


def test_champion_shadow_and_label_in_one_batch_pair_in_any_order(tmp_path: Path) -> None:
    w, feed = _worker(tmp_path / "db"), Feed()
    batch = [feed.t(0, 1), feed.s(0, 1), feed.c(0, 0), feed.c(1, 1), feed.t(1, 1), feed.s(1, 0)]
    result = w.apply(batch, T0)
    assert (result.shadow_pairs, result.shadows_unpaired, result.joined) == (2, 0, 4)
    evidence = _rollouts(w.drain())[("2", "1", T0)]
    assert (evidence.n, evidence.estimate) == (2, 0.0)  # +1 and -1


def _stream(
    feed: Feed, n: int, seed: int = 3
) -> tuple[list[list[Msg]], list[tuple[int, int, int, int]]]:
    """Batches of n champions, their shadows and labels in a mixed order, and the
    (i, label, champion's guess, shadow's guess) of each pairable triple."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n).tolist()
    ours = rng.integers(0, 2, n).tolist()
    theirs = rng.integers(0, 2, n).tolist()
    # Shadows dated a pane later than their champions: the evidence goes to the champion's.
    batches = [
        [feed.c(i, ours[i]) for i in range(0, n, 2)]
        + [feed.t(i, labels[i]) for i in range(1, n, 2)],
        [feed.s(i, theirs[i], ts=T0 + i * 1000 + MINUTE) for i in range(n)],
        [feed.c(i, ours[i]) for i in range(1, n, 2)]
        + [feed.t(i, labels[i]) for i in range(0, n, 2)],
    ]
    return batches, [(i, labels[i], ours[i], theirs[i]) for i in range(n)]


def _expected(
    triples: list[tuple[int, int, int, int]],
) -> dict[tuple[str, str, int], PairedEvidence]:
    by_pane: dict[int, list[tuple[int, int, int, int]]] = {}
    for triple in triples:
        by_pane.setdefault(T0 + (triple[0] * 1000) // MINUTE * MINUTE, []).append(triple)
    return {
        ("2", "1", pane): fold_shadow_pairs(
            PairedEvidence(RolloutMetric("accuracy")),
            [t[1] for t in rows],
            [t[2] for t in rows],
            [t[3] for t in rows],
        )
        for pane, rows in by_pane.items()
    }


def test_the_rollout_partials_equal_fold_shadow_pairs_of_the_same_triples(tmp_path: Path) -> None:
    w, feed = _worker(tmp_path / "db"), Feed()
    batches, triples = _stream(feed, 150)
    results = [w.apply(batch, T0) for batch in batches]
    assert _total(results, "shadow_pairs") == 150
    partials = w.drain()
    rollouts = _rollouts(partials)
    assert rollouts == _expected(triples)
    assert sorted(pane for _, _, pane in rollouts) == [T0, T0 + MINUTE, T0 + 2 * MINUTE]
    for p in partials:
        assert p.champion == ("1" if p.kind == "rollout" else "")
    # The challenger's own performance counts its pairs, in the panes of its own predictions.
    perf = {
        (p.version, p.pane_start_ms): PerformanceSummary.from_bytes(p.summary)
        for p in partials
        if p.kind == "performance"
    }
    assert sum(s.n for (version, _), s in perf.items() if version == "2") == 150
    assert min(pane for version, pane in perf if version == "2") == T0 + MINUTE
    correct = sum(t[1] == t[3] for t in triples)
    assert sum(round((s.accuracy or 0) * s.n) for (v, _), s in perf.items() if v == "2") == correct


def test_replays_and_a_restart_fold_each_pair_once(tmp_path: Path) -> None:
    feed = Feed()
    batches, triples = _stream(feed, 60)
    expected = _expected(triples)
    lookup = _profiles()
    plain = PartitionWorker(
        0, PartitionStore(tmp_path / "db"), lambda m, v: lookup.get((m, v)), SHADOW
    )
    plain.persist(plain.apply(batches[0], T0))
    plain.apply(batches[1], T0)  # killed before this batch is written
    plain.store.close()
    w = _worker(tmp_path / "db")
    for batch in batches:  # the consumer reads everything again
        w.apply(batch, T0)
    assert _rollouts(w.drain()) == expected
    for batch in batches:  # and again: all below the marks
        assert w.apply(batch, T0).skipped == len(batch)
    w.store.close()
    reopened = _worker(tmp_path / "db")
    assert _rollouts(reopened.drain()) == expected  # every stored partial is sent again


def test_log_loss_pairs_use_the_probability_of_class_1_and_skip_what_it_cannot_score(
    tmp_path: Path,
) -> None:
    w, feed = _worker(tmp_path / "db", _settings(metric="log_loss")), Feed()
    batch = [
        feed.c(0, p1=0.9),
        feed.s(0, p1=0.6),
        feed.t(0, 1),
        feed.c(1, p1=0.2),
        feed.s(1, p1=0.1),
        feed.t(1, 0),
        feed.c(2, p1=0.7),
        feed.s(2),
        feed.t(2, 1),  # the shadow gives no probability
        feed.c(3, p1=0.7),
        feed.s(3, p1=0.7),
        feed.t(3, 7),  # no class of a binary model
    ]
    result = w.apply(batch, T0)
    assert result.dead_letters == []
    assert (result.shadow_pairs, result.shadow_pairs_unscored) == (4, 2)
    partials = w.drain()
    expected = fold_shadow_pairs(
        PairedEvidence(RolloutMetric("log_loss")), [1, 0], [0.9, 0.2], [0.6, 0.1]
    )
    assert _rollouts(partials) == {("2", "1", T0): expected}
    assert _performance_n(partials) == {"1": 4, "2": 4}  # joined all the same


def test_a_shadow_held_for_its_profile_is_counted_unpaired_and_kept_for_its_version(
    tmp_path: Path,
) -> None:
    profiles = _profiles()
    w, feed = _worker(tmp_path / "db", profiles=profiles), Feed()
    result = w.apply([feed.c(0), feed.s(0, version="3"), feed.t(0, 1)], T0)
    assert (result.waiting_for_profile, result.shadows_unpaired, result.shadow_pairs) == (1, 1, 0)
    assert w.held() == {("m", "3"): 1}
    profiles[("m", "3")] = _profile("3")
    released = w.profile_arrived("m", "3")
    assert released.predictions == 1  # folded into its own version's features
    assert {p.version for p in w.drain() if p.kind == "features"} == {"1", "3"}


def test_a_held_champion_pairs_its_shadow_when_released(tmp_path: Path) -> None:
    profiles = _profiles()
    del profiles[("m", "1")]
    w, feed = _worker(tmp_path / "db", profiles=profiles), Feed()
    w.apply([feed.c(0, 1), feed.s(0, 0), feed.t(0, 0)], T0)
    assert _rollouts(w.drain()) == {}
    profiles[("m", "1")] = _profile("1")
    result = w.profile_arrived("m", "1")
    assert (result.joined, result.shadow_pairs) == (2, 1)
    assert _rollouts(w.drain())[("2", "1", T0)].estimate == 1.0


def _run(
    path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> tuple[PartitionWorker, list[list[bytes]]]:
    reads: list[list[bytes]] = []
    w = _worker(path, settings)
    original: Callable[..., list[bytes | None]] = w.store.get_entries

    def spy(ids: list[bytes]) -> list[bytes | None]:
        reads.append(list(ids))
        return original(ids)

    monkeypatch.setattr(w.store, "get_entries", spy)
    feed = Feed()
    w.apply([feed.c(i, i % 2) for i in range(40)], T0)
    w.apply([feed.t(i, 1) for i in range(30)] + [feed.c(i, 1) for i in range(40, 50)], T0)
    w.apply([feed.t(i, 0) for i in range(30, 50)] + [feed.t(99, 1)], T0)
    return w, reads


def test_batches_without_shadows_write_the_same_bytes_and_read_no_shadow_key_unless_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain, plain_reads = _run(tmp_path / "plain", _settings("none"), monkeypatch)
    shadowed, shadow_reads = _run(tmp_path / "shadowed", SHADOW, monkeypatch)
    assert dict(plain.store._scan(b"")) == dict(shadowed.store._scan(b""))
    assert list(plain.store.join_entries()) == list(shadowed.store.join_entries())
    assert [p.summary for p in plain.drain()] == [p.summary for p in shadowed.drain()]
    assert not any(key.endswith(b"\xffs") for ids in plain_reads for key in ids)
    # In shadow mode the labels' shadow keys ride on the batch's one multi-get.
    assert len(shadow_reads) == len(plain_reads)
    assert b"p0\xffs" in shadow_reads[1]


def test_shadow_entries_and_rollout_partials_expire_with_the_join_ttl(tmp_path: Path) -> None:
    w, feed = _worker(tmp_path / "db"), Feed()
    w.apply([feed.c(0), feed.s(0), feed.t(0, 1), feed.s(1)], T0)
    assert w.store.get_entry(b"p0\xffs") == b"J"
    assert [p[0] for p in w.store.partials()].count("rollout") == 1
    assert w.store.get_entry(b"p1\xffs") is not None
    w.apply([feed.c(4, ts=T0 + 30 * MINUTE)], T0)  # past every window, not past the TTL
    w.drain()  # a pane is evicted once emitted
    assert w.expire() == 0
    kinds = [p[0] for p in w.store.partials()]
    assert (kinds.count("features"), kinds.count("rollout")) == (1, 1)
    week = 7 * 24 * 60 * MINUTE
    w.apply([feed.c(5, ts=T0 + week + 2 * MINUTE)], T0)
    w.drain()
    assert w.expire() == 1  # the shadow p1 never met a label
    assert w.store.get_entry(b"p0\xffs") is None
    assert w.store.get_entry(b"p1\xffs") is None
    assert [p[0] for p in w.store.partials()].count("rollout") == 0  # kept as long as the TTL


def test_a_refused_held_shadow_is_dead_lettered_under_its_message_key(tmp_path: Path) -> None:
    w, feed = _worker(tmp_path / "db"), Feed()
    w.apply([feed.s(0, version="3")], T0)
    result = w.refuse_held("m", "3", "output_too_large", "no baseline", T0)
    assert [letter.key for letter in result.dead_letters] == [b"p0"]


def test_a_regression_shadow_that_is_no_number_costs_its_champion_nothing(
    tmp_path: Path,
) -> None:
    """A regression is judged on its capped absolute error (``rollout.cap``); a shadow
    prediction that is no number is counted unscored and left out of the challenger's
    performance instead of failing the label, which also scores the champion."""
    x = np.random.default_rng(0).normal(size=500)
    profiles = {
        ("m", v): build_profile("m", v, "regression", {"x": x}, prediction=x, labels=x)
        for v in ("1", "2")
    }
    settings = Settings(
        monitor={"max_clock_skew": "36500d"},
        models={
            "m": {
                "task": "regression",
                "pane": "1m",
                "performance": {"metric": "mae"},
                "rollout": {"mode": "shadow", "cap": 4.0},
            }
        },
    )
    w, feed = _worker(tmp_path / "db", settings, profiles), Feed()
    numbers = [feed.c(0, 1), feed.s(0, 2), feed.t(0, 3)]
    text = orjson.loads(shadow(1))
    text["prediction"] = "abc"
    words = [feed.c(1, 1), feed(orjson.dumps(text), "p1"), feed.t(1, 3)]
    result = w.apply(numbers + words, T0)
    assert result.dead_letters == []
    assert (result.shadow_pairs, result.shadow_pairs_unscored) == (1, 1)
    partials = w.drain()
    ((key, evidence),) = _rollouts(partials).items()
    assert key[:2] == ("2", "1")
    # label 3: the champion's 1 is 2 off, the shadow's 2 is 1 off: the shadow scores 1 better
    assert (evidence.metric.name, evidence.n, evidence.estimate) == ("absolute_error", 1, 1.0)
    assert _performance_n(partials) == {"1": 2, "2": 1}
