"""The producer SDK against a real broker."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from driftline.client import DriftlineProducer
from driftline.config import KafkaSettings, TopicSettings
from driftline.errors import DeliveryError, FailedDelivery, InvalidEventError
from driftline.schemas import PredictionEvent, decode_ground_truth, decode_prediction
from driftline.testing import TansuBroker
from driftline.topics import create_topics
from tests.streams.kafka_helpers import consume_all

N_EVENTS = 10_000


def features(rng: random.Random) -> dict[str, float | str | None]:
    values: dict[str, float | str | None] = {f"x{i}": rng.gauss(0, 1) for i in range(15)}
    values.update({f"c{i}": rng.choice(["a", "b", "c", None]) for i in range(5)})
    return values


def test_10000_predictions_come_back_equal_and_keyed_by_prediction_id(
    kafka: KafkaSettings, topics: TopicSettings
) -> None:
    create_topics(kafka, topics)
    rng = random.Random(7)
    sent: dict[str, PredictionEvent] = {}
    with DriftlineProducer(kafka, topics) as producer:
        for i in range(N_EVENTS):
            event = producer.send_prediction(
                model="fraud",
                model_version="3",
                features=features(rng),
                prediction=i % 2,
                scores={"0": 0.25, "1": 0.75},
                timestamp=1_764_000_000_000 + i,
            )
            sent[event.prediction_id] = event
    assert producer.delivered == N_EVENTS

    received = consume_all(kafka, topics.predictions, N_EVENTS)
    assert len(received) == N_EVENTS
    for message in received:
        decoded = decode_prediction(message.value(), key=message.key())
        original = sent.pop(decoded.prediction_id)
        assert message.key() == original.prediction_id.encode()
        assert decoded.features == original.features
        assert decoded.prediction == original.prediction
        assert decoded.scores == original.scores
        assert decoded.event_id == original.event_id
    assert sent == {}


def test_events_with_one_prediction_id_share_a_partition(
    kafka: KafkaSettings, topics: TopicSettings
) -> None:
    create_topics(kafka, topics)
    with DriftlineProducer(kafka, topics) as producer:
        ids = [
            producer.send_prediction(
                model="m", model_version="1", features={"x": 1.0}, prediction=0
            ).prediction_id
            for _ in range(40)
        ]
        for prediction_id in ids:
            producer.send_ground_truth(prediction_id=prediction_id, label=1)
    predictions = consume_all(kafka, topics.predictions, 40)
    outcomes = consume_all(kafka, topics.ground_truth, 40)
    where = {m.key(): m.partition() for m in predictions}
    assert len(set(where.values())) > 1  # the ids really are spread over partitions
    for message in outcomes:
        assert decode_ground_truth(message.value(), key=message.key()).label == 1
        assert where[message.key()] == message.partition()


def test_omitted_ids_and_timestamp_are_filled_in(
    kafka: KafkaSettings, topics: TopicSettings
) -> None:
    now = datetime(2026, 11, 22, 10, 30, tzinfo=UTC)
    create_topics(kafka, topics)
    with DriftlineProducer(kafka, topics, clock=lambda: now) as producer:
        first = producer.send_prediction(model="m", model_version="1", features={}, prediction=1)
        second = producer.send_prediction(model="m", model_version="1", features={}, prediction=1)
        truth = producer.send_ground_truth(prediction_id=first.prediction_id, label=0)
    assert first.timestamp == second.timestamp == truth.timestamp == now
    assert (
        len(
            {
                first.event_id,
                second.event_id,
                first.prediction_id,
                second.prediction_id,
                truth.event_id,
            }
        )
        == 5
    )
    received = consume_all(kafka, topics.predictions, 2)
    assert {decode_prediction(m.value()).event_id for m in received} == {
        first.event_id,
        second.event_id,
    }


def test_invalid_event_raises_before_anything_is_sent() -> None:
    producer = DriftlineProducer("127.0.0.1:1")
    with pytest.raises(InvalidEventError) as caught:
        producer.send_prediction(
            model="", model_version="1", features={"x": float("nan")}, prediction=None
        )
    assert set(caught.value.fields) >= {"model", "prediction"}
    assert any(f.startswith("features.x") for f in caught.value.fields)
    assert not producer.started  # nothing was produced, no client was even created


def test_delivery_failure_when_the_broker_is_down_is_raised_on_flush(
    tansu_factory: Callable[[], TansuBroker],
) -> None:
    broker = tansu_factory()
    kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
    topics = TopicSettings(input_partitions=2)
    create_topics(kafka, topics)
    reported: list[FailedDelivery] = []
    producer = DriftlineProducer(
        kafka, topics, delivery_timeout=3.0, on_delivery_error=reported.append
    )
    with producer:
        producer.send_prediction(model="m", model_version="1", features={}, prediction=0)
    assert producer.delivered == 1

    broker.stop()
    for _ in range(5):
        producer.send_prediction(model="m", model_version="1", features={}, prediction=0)
    with pytest.raises(DeliveryError) as caught:
        producer.flush()
    assert len(caught.value.failures) == 5
    assert all(f.topic == topics.predictions for f in caught.value.failures)
    assert "timed out" in caught.value.failures[0].error.lower()
    assert len(reported) == 5  # the callback saw each failure too
    assert producer.delivered == 1
