"""The asyncio producer against a real broker: each send awaits its own acknowledgement."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from driftline.client import AsyncDriftlineProducer
from driftline.config import KafkaSettings, TopicSettings
from driftline.errors import DeliveryError
from driftline.schemas import decode_prediction
from driftline.testing import TansuBroker
from driftline.topics import create_topics
from tests.streams.kafka_helpers import consume_all


def test_awaited_sends_are_acknowledged_and_readable(
    kafka: KafkaSettings, topics: TopicSettings
) -> None:
    create_topics(kafka, topics)

    async def main() -> list[str]:
        async with AsyncDriftlineProducer(kafka, topics) as producer:
            sent = await asyncio.gather(
                *(
                    producer.send_prediction(
                        model="m", model_version="1", features={"x": float(i)}, prediction=i % 2
                    )
                    for i in range(200)
                )
            )
            assert producer.delivered == 200  # every await returned after its ack
            await producer.send_ground_truth(prediction_id=sent[0].prediction_id, label=1)
        return [e.event_id for e in sent]

    ids = asyncio.run(main())
    received = consume_all(kafka, topics.predictions, 200)
    assert sorted(decode_prediction(m.value()).event_id for m in received) == sorted(ids)


def test_awaited_send_raises_when_the_broker_is_down(
    tansu_factory: Callable[[], TansuBroker],
) -> None:
    broker = tansu_factory()
    kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
    topics = TopicSettings(input_partitions=2)
    create_topics(kafka, topics)

    async def main() -> None:
        async with AsyncDriftlineProducer(kafka, topics, delivery_timeout=2.0) as producer:
            await producer.send_prediction(model="m", model_version="1", features={}, prediction=0)
            broker.stop()
            with pytest.raises(DeliveryError) as caught:
                await producer.send_prediction(
                    model="m", model_version="1", features={}, prediction=0
                )
            assert caught.value.failures[0].topic == topics.predictions

    asyncio.run(main())
