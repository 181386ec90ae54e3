"""Stage 1's apply, then stage 2 and line protocol, under random batches of valid but extreme
events mixed with a few invalid ones (issue 15, build 6): nothing raises, every message is
folded or dead-lettered exactly once, replay changes nothing, every record is bounded.

No broker: a :class:`~driftline.streams.partition.PartitionWorker` over a real RocksDB store,
driven the way the ingest loop drives it (containment included); its partials go through
:class:`~driftline.streams.stage2.state.Stage2State` and the window results through the
InfluxDB writer's own check of line protocol.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from driftline.config import Settings
from driftline.deadletter import fit, size
from driftline.detectors.performance import PerformanceSummary
from driftline.detectors.profile import build_profile
from driftline.detectors.summary import PaneSummary
from driftline.schemas.reasons import KINDS
from driftline.schemas.reference import ReferenceProfile
from driftline.sinks.outbox import decode_lines
from driftline.streams import partials as wire_partials
from driftline.streams.containment import contain
from driftline.streams.partials import PanePartial, Watermark
from driftline.streams.partition import PartitionWorker
from driftline.streams.result import ApplyResult
from driftline.streams.stage2.outputs import record_size, too_large
from driftline.streams.stage2.state import Stage2State
from driftline.streams.store import PartitionStore
from tests import strategies as ex
from tests.unit.streams.test_partition import PRED, TRUTH, Msg

NOW = 1_767_225_600_000
SKEW_MS = 5 * 60_000
MAX_OUTPUT = 20_000
LIMITS = {
    "max_message_bytes": 2048,
    "max_features": 5,
    "max_classes": 3,
    "max_segments": 2,
    "max_id_length": 12,
    "max_name_length": 12,
    "max_feature_name_length": 10,
    "max_string_length": 16,
}


def _config(task: str) -> dict[str, Any]:
    return {
        "task": task,
        "pane": "1m",
        "windows": [{"size": "5m"}],
        "allowed_lateness": "1m",
        "idle_timeout": "30s",
        "drift": {"min_samples": 20, "persistence_k": 1, "persistence_n": 1},
        "performance": {"min_labels": 5},
    }


SETTINGS = Settings(
    monitor={"limits": LIMITS, "max_clock_skew": "5m", "max_output_bytes": MAX_OUTPUT},
    models={"m": _config("binary"), "r": _config("regression")},
    models_policy={"allow": "any", "max_unknown": 3},
    topics={"input_partitions": 1},
)
BOUNDS = SETTINGS.monitor.limits.limits()


ODD = ('w\n,= "\\é', "v\t1 ,=")
ODD_FEATURES = ("x\n=, ", 'c"\\#')


def _profiles() -> dict[tuple[str, str], ReferenceProfile]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=2000)
    city = rng.choice(["a", "b", "\n,= \\"], size=2000)
    binary = build_profile(
        "m",
        "1",
        "binary",
        {"x": x, "city": city},
        prediction=(x > 0).astype(int),
        scores={"0": 1 / (1 + np.exp(x)), "1": 1 / (1 + np.exp(-x))},
        labels=(x > 0).astype(int),
    )
    regression = build_profile("r", "1", "regression", {"x": x}, prediction=2 * x, labels=2 * x)
    # An unconfigured model whose names hold what line protocol and JSON escape.
    odd = build_profile(
        ODD[0],
        ODD[1],
        "binary",
        {ODD_FEATURES[0]: x, ODD_FEATURES[1]: city},
        prediction=np.where(x > 0, "yes", "no"),
        labels=np.where(x > 0, "yes", "no"),
    )
    return {("m", "1"): binary, ("r", "1"): regression, ODD: odd}


PROFILES = _profiles()
LATE = {
    (model, "2"): PROFILES[(model, "1")].model_copy(update={"model_version": "2"})
    for model in ("m", "r")
}
"""Profiles of versions whose predictions are held until the test releases them."""
PROFILES.update(LATE)

# Few names and ids, so that events meet: duplicates, joins, both orders, unknown models.
MODELS = st.sampled_from(["m"] * 4 + ["r"] * 4 + [ODD[0]] * 2 + ["u\n,= \\", "é" * 12, "v"])
VERSIONS = st.sampled_from(["1", "1", "1", "2", ODD[1], ODD[1]])
PREDICTION_IDS = st.sampled_from([f"p{i}" for i in range(5)] + ['p"\\\n', "𝄞" * 12])
FEATURE_NAMES = st.sampled_from(["x", "x", "city", "", "\\" * 10, *ODD_FEATURES])
TIMES = st.one_of(st.integers(NOW - 600_000, NOW), ex.timestamps(NOW, SKEW_MS))


@st.composite
def messages(draw: st.DrawFn) -> list[tuple[str, bytes, bytes | None]]:
    """(topic, value, key) of a run of input messages: valid extreme events, repeats of
    earlier ones, and now and then an invalid one."""
    drawn: list[tuple[str, bytes, bytes | None]] = []
    for _ in range(draw(st.integers(1, 24))):
        what = draw(st.sampled_from(["prediction"] * 5 + ["label"] * 4 + ["repeat", "invalid"]))
        if what == "repeat" and drawn:
            drawn.append(draw(st.sampled_from(drawn)))
            continue
        if what in ("prediction", "repeat"):
            event = draw(
                ex.predictions(
                    BOUNDS,
                    models=MODELS,
                    versions=VERSIONS,
                    prediction_ids=PREDICTION_IDS,
                    times=TIMES,
                    feature_maps=ex.features(BOUNDS, FEATURE_NAMES),
                )
            )
            if draw(st.integers(0, 4)) == 0:  # often enough to reach stage 2 and the writer
                event.update(model=ODD[0], model_version=ODD[1])
            topic = PRED
        else:
            event = draw(
                ex.ground_truths(BOUNDS, models=MODELS, prediction_ids=PREDICTION_IDS, times=TIMES)
            )
            topic = TRUTH
        key: bytes | None = event["prediction_id"].encode()
        if what == "invalid":
            kind = draw(st.sampled_from(["over", "unkeyed", "mismatch", "junk"]))
            if kind == "over":
                event, _ = draw(ex.over_limit(event, BOUNDS))
            elif kind == "unkeyed":
                key = None
            elif kind == "mismatch":
                key = b"other"
            else:
                drawn.append((topic, draw(st.binary(max_size=40)), key))
                continue
        drawn.append((topic, ex.dumps(event, ascii_only=draw(st.booleans())), key))
    return drawn


def offsets(drawn: list[tuple[str, bytes, bytes | None]]) -> list[Msg]:
    """The messages with each topic's offsets counting from 0."""
    counters: Counter[str] = Counter()
    out = []
    for topic, value, key in drawn:
        out.append(Msg(topic, counters[topic], value, key))
        counters[topic] += 1
    return out


class Loop:
    """The ingest loop's part, without Kafka: apply, contain, persist at once."""

    def __init__(self, worker: PartitionWorker) -> None:
        self.worker = worker
        self.results: list[ApplyResult] = []
        self.partials: dict[tuple[str, str, int, int, str], PanePartial] = {}

    def queue(self, worker: PartitionWorker, result: ApplyResult) -> None:
        self.results.append(result)
        worker.persist(result)

    def apply(self, batch: list[Msg]) -> list[ApplyResult]:
        first = len(self.results)
        preds = [m for m in batch if m.topic() == PRED]
        truths = [m for m in batch if m.topic() == TRUTH]
        try:
            self.queue(self.worker, self.worker.apply_split(preds, truths, NOW))
        except Exception as exc:
            contain(
                self.worker,
                preds,
                truths,
                NOW,
                exc,
                settle=lambda: None,
                queue=self.queue,
                sleep=lambda _: None,
            )
        for partial in self.worker.drain():
            held = self.partials.get(partial.identity)
            assert held is None or held.covered <= partial.covered
            self.partials[partial.identity] = partial
        return self.results[first:]


def accounted(result: ApplyResult) -> int:
    """Messages of a batch that ended somewhere: skipped as applied before, dead-lettered,
    folded, too late, held, taken as a label, or dropped as a duplicate."""
    return (
        result.skipped
        + len(result.dead_letters)
        + result.predictions
        + result.too_late
        + result.waiting_for_profile
        + result.labels
        + result.duplicates
        + result.restored
    )


def summary_n(partial: PanePartial) -> int:
    if partial.kind == "features":
        profile = PROFILES[(partial.model, partial.version)]
        return PaneSummary.from_bytes(partial.summary, profile).n
    return PerformanceSummary.from_bytes(partial.summary).n


_UNESCAPE = {"n": "\n", "t": "\t", "r": "\r"}


def series_tags(line: str) -> dict[str, str]:
    """The tags of a line-protocol line, unescaped: what InfluxDB stores."""
    parts: list[list[str]] = [[""]]
    chars = iter(line)
    for char in chars:
        if char == "\\":
            escaped = next(chars)
            parts[-1][-1] += _UNESCAPE.get(escaped, escaped)
        elif char == " ":
            break
        elif char == ",":
            parts.append([""])
        elif char == "=" and len(parts) > 1:
            parts[-1].append("")
        else:
            parts[-1][-1] += char
    return {part[0]: part[-1] for part in parts[1:]}


def check_stage2(partials: list[PanePartial], watermark_ms: int) -> None:
    """The partials through stage 2's pure state, windows closed, their records checked."""
    state = Stage2State(lambda m, v: PROFILES.get((m, v)), SETTINGS)
    outputs = []
    for partial in partials:
        message = wire_partials.decode(wire_partials.encode(partial))
        outputs += state.apply(message, NOW)
    for model in sorted({p.model for p in partials}):
        outputs += state.apply(Watermark(model, 0, watermark_ms + 3_600_000, 1), NOW)
    outputs += state.tick(NOW + 3_600_000)
    assert state.take_failures() == []
    event(f"metric records: {min(sum(o.role == 'metrics' for o in outputs), 3)}+")
    if any(o.role == "metrics" and o.key == ODD[0].encode() for o in outputs):
        event("line protocol written for the model of odd names")
    for output in outputs:
        reason = too_large(output, MAX_OUTPUT)
        if output.role == "metrics":
            lines = decode_lines(output.value)  # raises on anything the writer would refuse
            for line in lines:  # names come back as they were, whatever they hold
                assert series_tags(line)["model"] == output.key.decode()
                assert (series_tags(line)["model"], series_tags(line)["version"]) in PROFILES
            assert reason is None or len(lines) == 1, reason
        else:
            assert reason is None or record_size(output.key, output.value) > MAX_OUTPUT


@settings(
    max_examples=35,
    deadline=None,
    # Each example opens a RocksDB store twice and writes it (slow by Hypothesis' measure),
    # and draws up to three runs of 24 events with strings at their bounds (large by it).
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(messages(), min_size=1, max_size=3), st.booleans())
def test_random_extreme_batches_are_folded_or_dead_lettered_once_and_replay_changes_nothing(
    runs: list[list[tuple[str, bytes, bytes | None]]], release: bool
) -> None:
    every = offsets([message for run in runs for message in run])
    batches, start = [], 0
    for run in runs:
        batches.append(every[start : start + len(run)])
        start += len(run)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "p0"
        released: set[tuple[str, str]] = set()

        def lookup(model: str, version: str) -> ReferenceProfile | None:
            held = (model, version) in LATE and (model, version) not in released
            return None if held else PROFILES.get((model, version))

        loop = Loop(PartitionWorker(0, PartitionStore(path), lookup, SETTINGS))
        for batch in batches:
            results = loop.apply(batch)
            assert sum(accounted(r) for r in results) == len(batch)
            assert sum(r.prediction_messages + r.truth_messages for r in results) == len(batch)
        if release:  # the held versions' profiles come: their predictions are folded
            held = loop.worker.held()
            for model, version in sorted(LATE):
                released.add((model, version))
                result = loop.worker.profile_arrived(model, version, NOW)
                loop.queue(loop.worker, result)
                letters = sum(d.source_topic == PRED for d in result.dead_letters)
                assert result.predictions + letters == held.get((model, version), 0)
            loop.apply([])
        results = loop.results
        letters = [letter for r in results for letter in r.dead_letters]
        assert {letter.kind for letter in letters} <= KINDS.keys()
        for kind in sorted({letter.kind for letter in letters}):
            event(f"dead letter: {kind}")
        sources = Counter((letter.source_topic, letter.source_offset) for letter in letters)
        assert max(sources.values(), default=1) == 1  # no message dead-lettered twice
        for letter in letters:
            assert size(fit(letter, MAX_OUTPUT)) <= MAX_OUTPUT
        # Folded: the partials' summaries count every prediction and joined pair once.
        partials = list(loop.partials.values())
        folded = sum(summary_n(p) for p in partials if p.kind == "features")
        assert folded == sum(r.predictions for r in results)
        joined = sum(summary_n(p) for p in partials if p.kind == "performance")
        assert joined == sum(r.joined for r in results)
        labeled = [record for r in results for record in r.labeled]
        # Joined examples of the models that make them (configured, retrained); the others'
        # predictions waited compact, with every extreme value this test draws.
        wanted = [p for p in partials if p.kind == "performance" and SETTINGS.examples(p.model)]
        assert len(labeled) == sum(summary_n(p) for p in wanted)
        event(f"joined: {min(joined, 3)}+; folded: {min(folded, 3)}+")
        if any(p.model == ODD[0] for p in partials):
            event("the model of odd names emitted partials")
        joined_ids = [orjson.loads(record.value)["prediction_id"] for record in labeled]
        assert len(set(joined_ids)) == len(joined_ids)  # each prediction joined at most once
        for partial in partials:
            assert len(wire_partials.encode(partial)) + len(partial.model.encode()) <= MAX_OUTPUT
        for record in labeled:
            assert record_size(record.key, record.value) <= MAX_OUTPUT
        # Replayed by the same worker, then by one restarted on the store: nothing changes.
        for batch in batches:
            (again,) = loop.apply(batch)
            assert again.skipped == len(batch)
            assert (again.dead_letters, again.labeled, again.predictions) == ([], [], 0)
        assert loop.worker.drain() == []
        loop.worker.store.close()
        restarted = PartitionWorker(0, PartitionStore(path), lookup, SETTINGS)
        assert {p.identity: p.summary for p in restarted.drain()} == {
            p.identity: p.summary for p in partials
        }
        for batch in batches:
            replay = restarted.apply_split(
                [m for m in batch if m.topic() == PRED],
                [m for m in batch if m.topic() == TRUTH],
                NOW,
            )
            assert replay.skipped == len(batch)
            restarted.persist(replay)
        restarted.store.close()
        check_stage2(partials, loop.worker.watermark_ms)


# --- what the properties found, pinned --------------------------------------------------------


def _run(tmp_path: Path, batches: list[list[tuple[str, dict[str, Any]]]]) -> Loop:
    loop = Loop(
        PartitionWorker(
            0, PartitionStore(tmp_path / "p0"), lambda m, v: PROFILES.get((m, v)), SETTINGS
        )
    )
    drawn = [
        (t, ex.dumps(event), event["prediction_id"].encode()) for b in batches for t, event in b
    ]
    every, start = offsets(drawn), 0
    for batch in batches:
        loop.apply(every[start : start + len(batch)])
        start += len(batch)
    return loop


def _prediction(pid: str, value: Any) -> tuple[str, dict[str, Any]]:
    event = {
        "event_id": f"e-{pid}",
        "prediction_id": pid,
        "model": "r",
        "model_version": "1",
        "timestamp": NOW - 60_000,
        "features": {"x": 0.5},
        "prediction": value,
    }
    return PRED, event


def _label(pid: str, value: Any) -> tuple[str, dict[str, Any]]:
    return TRUTH, {"event_id": f"t-{pid}", "prediction_id": pid, "timestamp": NOW, "label": value}


@pytest.mark.parametrize(
    ("prediction", "label"),
    [(1.0, "abc"), (1.0, True), ("abc", 1.0), (False, 2.0)],
    ids=["string label", "boolean label", "string prediction", "boolean prediction"],
)
def test_a_regression_pair_that_is_not_two_numbers_is_dead_lettered_not_lost(
    tmp_path: Path, prediction: Any, label: Any
) -> None:
    """Found by the property above: such a pair was joined (a joined example sent) but no
    performance summary counted it, nor any dead letter: the label vanished."""
    loop = _run(
        tmp_path,
        [
            [_prediction("p0", prediction), _prediction("p1", 1.0)],
            [_label("p0", label), _label("p1", 2.0)],
        ],
    )
    letters = [
        (d.source_topic, d.source_offset, d.kind) for r in loop.results for d in r.dead_letters
    ]
    assert letters == [(TRUTH, 0, "processing_error")]
    assert sum(r.joined for r in loop.results) == 1
    performance = [p for p in loop.partials.values() if p.kind == "performance"]
    assert sum(summary_n(p) for p in performance) == 1


@pytest.mark.parametrize("label", [1e300, "abc", True], ids=["1e300", "string", "boolean"])
def test_a_held_regression_label_it_cannot_take_is_dead_lettered_when_the_profile_comes(
    tmp_path: Path, label: Any
) -> None:
    """Before, folding the release raised (the ingest loop does not contain a release), and
    again after every restart: the registry replays the profile, the pair is still held."""
    profiles: dict[tuple[str, str], ReferenceProfile] = {}
    w = PartitionWorker(
        0, PartitionStore(tmp_path / "p0"), lambda m, v: profiles.get((m, v)), SETTINGS
    )
    events = [_prediction(f"p{i}", 1.0)[1] for i in range(3)]
    for held in events:
        held["model_version"] = "9"
    w.persist(
        w.apply_split(
            [Msg(PRED, i, ex.dumps(e), e["prediction_id"].encode()) for i, e in enumerate(events)],
            [],
            NOW,
        )
    )
    truths = [_label("p1", label)[1], _label("p2", 2.0)[1]]
    w.persist(
        w.apply_split(
            [],
            [Msg(TRUTH, i, ex.dumps(t), t["prediction_id"].encode()) for i, t in enumerate(truths)],
            NOW,
        )
    )
    profiles[("r", "9")] = PROFILES[("r", "1")].model_copy(update={"model_version": "9"})
    result = w.profile_arrived("r", "9", NOW)
    w.persist(result)
    assert [(d.source_topic, d.source_offset, d.key, d.kind) for d in result.dead_letters] == [
        (TRUTH, 0, b"p1", "processing_error")
    ]
    assert result.dead_letters[0].value == ex.dumps(truths[0])
    assert (result.predictions, result.joined) == (3, 1)  # p1 is folded, unlabelled
    assert w.held() == {}
