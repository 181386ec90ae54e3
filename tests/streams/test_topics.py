"""Topic creation against a real broker."""

from __future__ import annotations

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from driftline.config import KafkaSettings, Settings, TopicSettings
from driftline.errors import TopicError
from driftline.kafka_auth import confluent_config
from driftline.topics import check_retention, create_topics


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


def topic_config(kafka: KafkaSettings, topic: str, key: str) -> str:
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    admin = AdminClient(confluent_config(kafka))
    return str(admin.describe_configs([resource])[resource].result(timeout=10)[key].value)


def readme_settings(topics: TopicSettings) -> Settings:
    """The README's example: a week of join TTL and a day-long window hopping by the hour."""
    return Settings(
        topics=topics,
        monitor={"join_ttl": "7d"},
        models={
            "fraud": {
                "task": "binary",
                "windows": [{"size": "1h"}, {"size": "1d", "hop": "1h"}],
                "allowed_lateness": "10m",
            }
        },
    )


# join_ttl 7d + the longest window 1d and its lateness 10m + a day of margin.
README_RETENTION_MS = (9 * 86_400 + 600) * 1000


def test_retention_is_derived_from_the_settings(
    kafka: KafkaSettings, topics: TopicSettings
) -> None:
    create_topics(kafka, topics, settings=readme_settings(topics))
    for role in ("predictions", "ground_truth", "summaries"):
        assert topic_config(kafka, getattr(topics, role), "retention.ms") == str(
            README_RETENTION_MS
        ), role


def test_an_unconfigured_models_defaults_count_for_retention(
    kafka: KafkaSettings, topics: TopicSettings
) -> None:
    """A model without configuration gets the default window (1h) and lateness (5m)."""
    settings = Settings(
        topics=topics,
        monitor={"join_ttl": "2d"},
        models={"small": {"task": "binary", "pane": "1s", "windows": [{"size": "1m"}]}},
    )
    create_topics(kafka, topics, settings=settings)
    expected = (3 * 86_400 + 3600 + 300) * 1000
    assert topic_config(kafka, topics.predictions, "retention.ms") == str(expected)


def test_an_existing_topic_keeping_less_than_the_settings_need_is_refused(
    kafka: KafkaSettings, topics: TopicSettings
) -> None:
    admin = AdminClient(confluent_config(kafka))
    eight_days = str(8 * 86_400_000)
    for future in admin.create_topics(
        [
            NewTopic(topics.predictions, 4, 1, config={"retention.ms": eight_days}),
            NewTopic(topics.ground_truth, 4, 1, config={"retention.ms": "-1"}),
        ]
    ).values():
        future.result(timeout=10)
    settings = readme_settings(topics)
    with pytest.raises(TopicError) as caught:
        create_topics(kafka, topics, settings=settings)
    message = str(caught.value)
    assert (
        f"topic {topics.predictions!r} keeps records for 8d (retention.ms={eight_days}) but "
        f"the settings need at least 9d 10m (retention.ms={README_RETENTION_MS}" in message
    )
    assert "model 'fraud'" in message
    assert topics.ground_truth not in message  # kept forever is enough
    assert topics.models not in describe(kafka)  # refused before creating anything
    assert check_retention(kafka, settings)[0].need.name == topics.predictions
