"""Small helpers the broker tests share: consume a topic back to the end."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from driftline.config import KafkaSettings
from driftline.kafka_auth import confluent_config


def consume_all(
    kafka: KafkaSettings, topic: str, expected: int, timeout: float = 60.0
) -> list[Message]:
    """Read ``topic`` from the beginning until ``expected`` messages arrived or time ran out.

    End offsets from Tansu are unreliable (DESIGN §6), so a test says how many it expects
    and waits for them instead of asking the broker where the end is.
    """
    consumer = Consumer(
        {
            **confluent_config(kafka),
            "group.id": f"test-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
            "fetch.queue.backoff.ms": 5,
        }
    )
    consumer.subscribe([topic])
    messages: list[Message] = []
    deadline = time.monotonic() + timeout
    try:
        while len(messages) < expected and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=1000, timeout=0.5):
                if message.error() is None:
                    messages.append(message)
        # A little longer, so that a test also sees what it did not expect.
        messages.extend(
            m for m in consumer.consume(num_messages=1000, timeout=1.0) if m.error() is None
        )
    finally:
        consumer.close()
    return messages


def assigned_reader(kafka: KafkaSettings, topics: list[str], group: str) -> Consumer:
    """A consumer of every partition of ``topics`` from the beginning, by assignment (no group
    join, so no rebalance wait); ``group`` only names it, as librdkafka requires one."""
    consumer = Consumer(
        {
            **confluent_config(kafka),
            "group.id": group,
            "enable.auto.commit": False,
            "fetch.queue.backoff.ms": 5,
        }
    )
    assignment = []
    for topic in topics:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        assignment += [TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions]
    consumer.assign(assignment)
    return consumer
