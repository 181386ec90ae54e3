"""Reading a report's data from the service's topics: the metrics outbox, alerts and models.

The metrics outbox holds the points stage 2 published for the InfluxDB writer.

Each topic is read whole, by assignment (no consumer group, nothing committed), from the
beginning of every partition to its end (:func:`driftline.streams.readback.read_to_end`); what
falls in the time range is kept (a point's or an alert's window end, a version's registration
time). The metrics topic must be readable; when the alerts or models topic is not, the report
goes on without them and says so. A record that does not decode is skipped and counted.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from pydantic import ValidationError

from driftline.config import KafkaSettings, TopicSettings
from driftline.errors import DecodeError, KafkaError
from driftline.report.data import ReportData, VersionMark, collect, outbox_points, version_mark
from driftline.schemas.events import to_epoch_ms
from driftline.schemas.outputs import DriftAlert
from driftline.sinks.points import MetricPoint
from driftline.streams.readback import read_to_end

__all__ = ["read_topics"]

_GROUP = "driftline-report"  # required by the client; never joined or committed


def read_topics(
    kafka: KafkaSettings,
    topics: TopicSettings,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    timeout: float = 120.0,
) -> ReportData:
    """The report's data from the metrics, alerts and models topics within ``[since,
    until]``. :class:`~driftline.errors.KafkaError` when the metrics topic cannot be read
    (no broker, no such topic) or is not read to its end within ``timeout`` seconds."""
    points: list[MetricPoint] = []
    alerts: list[DriftAlert] = []
    versions: list[VersionMark] = []
    skipped: dict[str, int] = {}
    notes: list[str] = []

    def keep(topic: str, decode: Callable[[bytes], None]) -> Callable[[str, bytes], None]:
        def on_value(_: str, value: bytes) -> None:
            try:
                decode(value)
            except (DecodeError, ValidationError, ValueError):
                skipped[topic] = skipped.get(topic, 0) + 1

        return on_value

    def read(topic: str, decode: Callable[[bytes], None]) -> None:
        read_to_end(
            kafka,
            [topic],
            keep(topic, decode),
            group=_GROUP,
            what=f"topic {topic!r}",
            timeout=timeout,
        )

    read(topics.metrics, lambda v: points.extend(outbox_points(v)))
    for topic, decode in (
        (topics.alerts, lambda v: alerts.append(DriftAlert.model_validate_json(v))),
        (topics.models, lambda v: versions.append(version_mark(v))),
    ):
        try:
            read(topic, decode)
        except KafkaError as exc:
            notes.append(f"not shown: {exc}")
    for topic, n in skipped.items():
        notes.append(f"{n} record{'s' if n != 1 else ''} of topic {topic!r} did not decode")
    return collect(
        points,
        alerts,
        versions,
        since_ms=None if since is None else to_epoch_ms(since),
        until_ms=None if until is None else to_epoch_ms(until),
        source=f"topics {topics.metrics}, {topics.alerts}, {topics.models} "
        f"on {kafka.bootstrap_servers}",
        notes=notes,
    )
