"""Publishing a warm-up baseline on the models topic, bounded by ``monitor.max_output_bytes``.

Stage 1 builds a version's warm-up baseline from the first predictions it holds
(:meth:`~driftline.streams.partition.PartitionWorker.baseline`). Its profile grows with the
events' features and distinct values, so a valid stream can make one larger than any record
Kafka takes. :func:`publish_baseline` publishes it only when it fits: over the bound, or
refused by the producer or the broker for its size, it says why instead of raising, and the
ingest loop dead-letters the version's held events (kind ``output_too_large``) rather than
stopping, and building the same baseline again after every restart.
"""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import KafkaError as LibrdkafkaError
from confluent_kafka import KafkaException

from driftline.errors import KafkaError
from driftline.schemas.outputs import ModelVersionRegistered, utc_now
from driftline.schemas.reference import ReferenceProfile
from driftline.streams.stage2.outputs import record_size

log = logging.getLogger(__name__)
ACK_TIMEOUT = 60.0
"""Seconds to wait for the broker to acknowledge a baseline before stopping."""


def refusal(profile: ReferenceProfile, size: int, why: str) -> str:
    """The reason a refused baseline's held events carry to the DLQ.

    >>> class P:
    ...     model, model_version = "m", "1"
    >>> refusal(P(), 5_000_000, "over monitor.max_output_bytes (1000000)")[:60]
    'model m version 1: its warm-up baseline of 5000000 bytes is '
    """
    return (
        f"model {profile.model} version {profile.model_version}: its warm-up baseline of "
        f"{size} bytes is {why}, so it cannot be published and the events held for it are "
        "dead-lettered; register a reference with `driftline reference publish`, or raise "
        "monitor.max_output_bytes (with the broker's and the models topic's limits), or "
        "send fewer features or distinct values"
    )


def publish_baseline(
    producer: Any, topic: str, profile: ReferenceProfile, max_bytes: int
) -> str | None:
    """Publish a warm-up baseline and wait for it; None once acknowledged, else why it
    cannot be published for its size (:func:`refusal`). Any other refusal by the broker
    raises :class:`~driftline.errors.KafkaError`."""
    record = ModelVersionRegistered(
        model=profile.model,
        model_version=profile.model_version,
        registered_at=utc_now(),
        source="warmup",
        reference=profile,
    )
    key, value = record.key(), record.to_json()
    size = record_size(key, value)
    if size > max_bytes:
        return refusal(profile, size, f"over monitor.max_output_bytes ({max_bytes})")
    errors: list[Any] = []

    def delivered(err: Any, msg: Any) -> None:
        if err is not None:
            errors.append(err)

    try:
        producer.produce(topic, key=key, value=value, on_delivery=delivered)
    except KafkaException as exc:
        if exc.args[0].code() == LibrdkafkaError.MSG_SIZE_TOO_LARGE:
            return refusal(profile, size, f"refused by the producer ({exc.args[0].str()})")
        raise KafkaError(f"cannot publish a warm-up baseline to {topic}: {exc}") from None
    if producer.flush(ACK_TIMEOUT):
        raise KafkaError(f"a warm-up baseline for {topic} was not acknowledged in 60 s")
    if errors:
        err = errors[0]
        if err.code() == LibrdkafkaError.MSG_SIZE_TOO_LARGE:
            return refusal(profile, size, f"refused by the broker ({err.str()})")
        raise KafkaError(f"a warm-up baseline was not delivered to {topic}: {err}")
    log.info(
        "published a warm-up baseline for model %s version %s (%d events)",
        profile.model,
        profile.model_version,
        profile.n_rows,
    )
    return None
