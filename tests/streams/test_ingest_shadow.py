"""Stage 1 against the real broker, in shadow rollout mode (issue 16): every shadow whose
label finds it is paired with its champion, the rollout partials on the summaries topic hold
exactly the evidence of those triples, and the counters say what paired and what could not."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Producer

from driftline.config import KafkaSettings, Settings, TopicSettings
from driftline.detectors.rollout_evidence import PairedEvidence, RolloutMetric
from driftline.detectors.rollout_sources import evidence_of_bytes, fold_shadow_pairs
from driftline.kafka_auth import confluent_config
from driftline.streams.ingest import Ingest
from driftline.streams.registry import ProfileRegistry, publish_profile
from driftline.testing.service import sea_reference
from driftline.testing.synthetic import sea_events
from tests.streams.test_ingest import latest_partials, run_until, set_up_sea


def _shadow(prediction: dict[str, Any], flip: bool) -> dict[str, Any]:
    pid = prediction["prediction_id"]
    guess = 1 - prediction["prediction"] if flip else prediction["prediction"]
    return {
        **prediction,
        "event_id": f"{prediction['event_id']}-s",
        "prediction_id": f"{pid}/shadow/2",
        "model_version": "2",
        "prediction": guess,
        "scores": {"0": float(1 - guess), "1": float(guess)},
        "role": "shadow",
        "shadow_of": pid,
    }


def test_shadows_are_paired_with_their_champions_once_and_counted(
    kafka: KafkaSettings, topics: TopicSettings, tmp_path: Path
) -> None:
    set_up_sea(kafka, topics)
    publish_profile(kafka, topics, sea_reference(version="2", rows=5000, seed=98))
    settings = Settings(
        kafka=kafka,
        topics=topics,
        monitor={"state_dir": tmp_path / "state", "group_id": "g-shadow"},
        models={
            "sea": {
                "task": "binary",
                "pane": "1m",
                "windows": [{"size": "10m"}],
                "rollout": {"mode": "shadow"},
            }
        },
    )
    n = 800
    events = list(sea_events(n + 1, seed=7))
    producer = Producer({**confluent_config(kafka), "linger.ms": 5})
    triples = []
    for i, event in enumerate(events[:n]):
        champion = event.prediction
        shadow = _shadow(champion, flip=i % 3 == 0)
        key = champion["prediction_id"].encode()
        # The shadow first on the predictions topic: whenever the label is read, it finds both.
        producer.produce(topics.predictions, key=key, value=orjson.dumps(shadow))
        producer.produce(topics.predictions, key=key, value=orjson.dumps(champion))
        producer.produce(topics.ground_truth, key=key, value=orjson.dumps(event.ground_truth))
        triples.append((event.ground_truth["label"], champion["prediction"], shadow["prediction"]))
    late = events[n]
    late_key = late.prediction["prediction_id"].encode()
    producer.produce(topics.predictions, key=late_key, value=orjson.dumps(late.prediction))
    producer.produce(topics.ground_truth, key=late_key, value=orjson.dumps(late.ground_truth))
    assert producer.flush(30) == 0
    registry = ProfileRegistry(kafka, topics).start()
    registry.wait_for("sea", "1")
    registry.wait_for("sea", "2")
    ingest = Ingest(settings, registry=registry, flush_interval=0.5, expire_interval=0.0).start()
    t = ingest.telemetry
    run_until(ingest, threading.Event(), lambda: t.joined._value.get() >= 2 * n + 1)
    # A shadow of the last request, after its champion joined its label: never paired.
    producer.produce(
        topics.predictions, key=late_key, value=orjson.dumps(_shadow(late.prediction, False))
    )
    assert producer.flush(30) == 0
    run_until(ingest, threading.Event(), lambda: t.shadows_unpaired._value.get() >= 1)
    ingest._emit(force=True)
    sample = t.registry.get_sample_value
    assert sample("driftline_ingest_shadow_pairs_total") == n
    assert sample("driftline_ingest_shadows_unpaired_total") == 1
    assert sample("driftline_ingest_shadow_pairs_unscored_total") == 0
    assert sample("driftline_ingest_messages_out_total", {"topic": topics.labeled}) == n + 1
    ingest.close()
    registry.close()
    kept = latest_partials(kafka, topics, 1)
    rollouts = [p for p in kept.values() if p.kind == "rollout"]
    assert {(p.version, p.champion) for p in rollouts} == {("2", "1")}
    merged = PairedEvidence(RolloutMetric("accuracy"))
    for partial in rollouts:
        evidence = evidence_of_bytes(partial.summary)
        assert isinstance(evidence, PairedEvidence)
        merged = merged.merge(evidence)
    labels, champions, shadows = map(list, zip(*triples, strict=True))
    expected = fold_shadow_pairs(
        PairedEvidence(RolloutMetric("accuracy")), labels, champions, shadows
    )
    assert merged == expected
    assert merged.n == n
