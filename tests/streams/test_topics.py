"""Topic creation against a real broker."""

from __future__ import annotations

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from driftline.config import KafkaSettings, TopicSettings
from driftline.errors import TopicError
from driftline.kafka_auth import confluent_config
from driftline.topics import create_topics


def describe(kafka: KafkaSettings) -> dict[str, int]:
    metadata = AdminClient(confluent_config(kafka)).list_topics(timeout=10)
    return {name: len(t.partitions) for name, t in metadata.topics.items()}


def cleanup_policy(kafka: KafkaSettings, topic: str) -> str:
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    admin = AdminClient(confluent_config(kafka))
    return str(
        admin.describe_configs([resource])[resource].result(timeout=10)["cleanup.policy"].value
    )


def test_every_topic_is_created_with_its_partitions_and_policy(
    kafka: KafkaSettings, topics: TopicSettings
) -> None:
    outcomes = create_topics(kafka, topics)
    assert {o.spec.name: o.status for o in outcomes} == dict.fromkeys(
        topics.names().values(), "created"
    )
    existing = describe(kafka)
    assert existing[topics.predictions] == existing[topics.ground_truth] == 4
    assert existing[topics.models] == 1
    for role in ("dlq", "alerts", "retrain", "metrics", "labeled", "summaries"):
        assert existing[getattr(topics, role)] == 2, role
    assert cleanup_policy(kafka, topics.models) == "compact"


def test_creating_twice_changes_nothing(kafka: KafkaSettings, topics: TopicSettings) -> None:
    create_topics(kafka, topics)
    before = describe(kafka)
    outcomes = create_topics(kafka, topics)
    assert {o.status for o in outcomes} == {"exists"}
    assert describe(kafka) == before


def test_input_topics_with_different_partition_counts_are_refused(
    kafka: KafkaSettings, topics: TopicSettings
) -> None:
    admin = AdminClient(confluent_config(kafka))
    for future in admin.create_topics(
        [NewTopic(topics.predictions, 4, 1), NewTopic(topics.ground_truth, 3, 1)]
    ).values():
        future.result(timeout=10)
    with pytest.raises(
        TopicError, match=r"\(4 partitions\) and .*\(3 partitions\) must have the same"
    ):
        create_topics(kafka, topics)
    assert topics.models not in describe(kafka)  # refused before creating anything


def test_missing_half_of_the_input_pair_follows_the_existing_half(
    kafka: KafkaSettings, topics: TopicSettings
) -> None:
    admin = AdminClient(confluent_config(kafka))
    admin.create_topics([NewTopic(topics.predictions, 3, 1)])[topics.predictions].result(10)
    create_topics(kafka, topics)  # configured for 4, but predictions already has 3
    assert describe(kafka)[topics.ground_truth] == 3


def test_uncompacted_models_topic_is_refused(kafka: KafkaSettings, topics: TopicSettings) -> None:
    admin = AdminClient(confluent_config(kafka))
    admin.create_topics([NewTopic(topics.models, 1, 1)])[topics.models].result(10)
    with pytest.raises(TopicError, match="must be compacted"):
        create_topics(kafka, topics)
