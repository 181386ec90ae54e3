"""The InfluxDB writer of the metrics outbox, against Tansu and VictoriaMetrics (DESIGN §3).

Points are compared as sets: VictoriaMetrics keeps each rewrite of a point as a sample of its
own, where InfluxDB would overwrite it (see test_servers.py).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import urllib3
from confluent_kafka import TIMESTAMP_CREATE_TIME, Consumer, Producer, TopicPartition

from driftline.config import InfluxSettings, KafkaSettings, TopicSettings
from driftline.kafka_auth import confluent_config
from driftline.schemas.outputs import DeadLetter
from driftline.sinks.influx import InfluxWriter
from driftline.sinks.line_protocol import lines
from driftline.sinks.outbox import encode_points
from driftline.sinks.points import MetricPoint
from driftline.sinks.retry import Backoff
from driftline.telemetry.server import serve
from driftline.testing import VictoriaMetrics, free_port
from driftline.topics import create_topics
from tests.streams.scrape import health, sample, scrape
from tests.unit.sinks.test_outbox import MINUTE, T0, window_points

PRODUCED_AT_MS = 1_764_000_100_000  # the Kafka timestamp of the fakes' message at offset 0
FAILED_AT = datetime(2026, 11, 22, 9, tzinfo=UTC)
CONNECTION = urllib3.connection.HTTPConnection("influx", 8086)  # never connects

Stored = set[tuple[str, frozenset[tuple[str, str]], str, int, float]]


# --- helpers -------------------------------------------------------------------------------


def expected(points: list[MetricPoint]) -> Stored:
    return {
        (p.measurement, frozenset(p.tags), name, p.time_ms, float(value))
        for p in points
        for name, value in p.fields
        if not isinstance(value, str)
    }


def stored(server: Any, model: str) -> Stored:
    return {
        (s.measurement, frozenset(s.tags.items()), s.field, t, v)
        for s in server.series(model=model)
        for t, v in s.points
    }


def samples(server: Any, model: str) -> Counter[tuple[str, frozenset[tuple[str, str]], str, int]]:
    return Counter(
        (s.measurement, frozenset(s.tags.items()), s.field, t)
        for s in server.series(model=model)
        for t, _ in s.points
    )


def influx_settings(server: Any, **overrides: Any) -> InfluxSettings:
    return InfluxSettings(
        url=server.url,
        org=getattr(server, "org", "driftline"),
        bucket=getattr(server, "bucket", "driftline"),
        token=getattr(server, "token", "unused"),
        **overrides,
    )


def produce(
    kafka: KafkaSettings, topic: str, messages: list[tuple[bytes, bytes]]
) -> dict[int, int]:
    """Send ``(key, value)`` messages; returns each partition's offset after the last one."""
    ends: dict[int, int] = {}

    def delivered(err: Any, msg: Any) -> None:
        assert err is None, err
        ends[msg.partition()] = max(ends.get(msg.partition(), 0), msg.offset() + 1)

    producer = Producer(confluent_config(kafka))
    for key, value in messages:
        producer.produce(topic, key=key, value=value, on_delivery=delivered)
    assert producer.flush(30) == 0
    return ends


class Offsets:
    """Reads a group's committed offsets (without joining the group)."""

    def __init__(self, kafka: KafkaSettings, group: str, topic: str, partitions: int) -> None:
        self._consumer = Consumer({**confluent_config(kafka), "group.id": group})
        self._partitions = [TopicPartition(topic, p) for p in range(partitions)]

    def __call__(self) -> dict[int, int]:
        found = self._consumer.committed(self._partitions, timeout=10)
        return {tp.partition: tp.offset for tp in found if tp.offset >= 0}

    def close(self) -> None:
        self._consumer.close()


def read_topic(kafka: KafkaSettings, topic: str, partitions: int, expected_count: int) -> list[Any]:
    """Every message of ``topic`` from the start, by assignment (no group join to wait for)."""
    consumer = Consumer(
        {**confluent_config(kafka), "group.id": f"read-{uuid.uuid4().hex}", "fetch.wait.max.ms": 50}
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    found: list[Any] = []
    deadline = time.monotonic() + 15
    try:
        while time.monotonic() < deadline and len(found) < expected_count:
            found += [m for m in consumer.consume(100, timeout=0.2) if m.error() is None]
        found += [m for m in consumer.consume(100, timeout=0.5) if m.error() is None]
    finally:
        consumer.close()
    return found


def run_until(writer: InfluxWriter, done: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "timed out waiting for the writer"
        writer.run_once(0.5)


def wait_for(done: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)  # polling a condition the writer reaches asynchronously


def group() -> str:
    return f"writer-{uuid.uuid4().hex[:10]}"


# --- against the real servers --------------------------------------------------------------


def test_outbox_points_land_with_their_measurement_tags_fields_and_timestamps(
    kafka: KafkaSettings, topics: TopicSettings, metrics_server: Any
) -> None:
    create_topics(kafka, topics)
    model = f"fraud-{uuid.uuid4().hex[:8]}"
    windows = [window_points(model, i) for i in range(20)]
    ends = produce(kafka, topics.metrics, [(model.encode(), encode_points(w)) for w in windows])
    gid = group()
    offsets = Offsets(kafka, gid, topics.metrics, topics.output_partitions)
    try:
        with InfluxWriter(kafka, influx_settings(metrics_server), topics, group_id=gid) as writer:
            run_until(writer, lambda: offsets() == ends)
    finally:
        offsets.close()

    every_point = [p for w in windows for p in w]
    assert stored(metrics_server, model) == expected(every_point)
    [amount] = [
        s
        for s in metrics_server.series("feature_drift", model=model, feature="amount")
        if s.field == "statistic"
    ]
    assert amount.tags == {
        "model": model,
        "version": "3",
        "window": "1h",
        "feature": "amount",
        "test": "psi",
    }
    assert amount.points == [(T0 + i * MINUTE, round(0.01 * i, 4)) for i in range(20)]
    assert (writer.points_written, writer.messages_written) == (len(every_point), 20)
    assert (writer.failures, writer.dead_lettered) == (0, 0)


def test_an_influxdb_outage_loses_no_point_and_commits_only_after_the_write(
    kafka: KafkaSettings, topics: TopicSettings, tmp_path: Path
) -> None:
    """Also scraped over HTTP: failures labelled unavailable and retries during the outage,
    /healthz 503 once it lasts longer than the threshold and 200 after it."""
    create_topics(kafka, topics)
    model = "outage"
    windows = [window_points(model, i) for i in range(200)]
    values = [(model.encode(), encode_points(w)) for w in windows]
    gid = group()
    offsets = Offsets(kafka, gid, topics.metrics, topics.output_partitions)
    stop = threading.Event()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with VictoriaMetrics(workdir=tmp_path) as server:
        writer = InfluxWriter(
            kafka,
            influx_settings(server, batch_size=25, flush_interval=timedelta(milliseconds=200)),
            topics,
            group_id=gid,
            base_backoff=0.05,
            max_backoff=0.4,
            seed=1,
            unhealthy_after=1.0,
        )
        http = serve(writer.telemetry.registry, port, health=writer.health)
        thread = threading.Thread(target=writer.run, args=(stop,))
        thread.start()
        try:
            before = produce(kafka, topics.metrics, values[:50])
            wait_for(lambda: offsets() == before)
            wait_for(lambda: health(base)[0] == 200)

            server.stop()
            ends = produce(kafka, topics.metrics, values[50:])
            wait_for(lambda: writer.failures >= 4)
            assert writer.pending > 0
            assert offsets() == before  # nothing committed while InfluxDB is down
            wait_for(lambda: health(base)[0] == 503)
            status, body = health(base)
            assert status == 503
            assert "writes have failed for" in body["problem"]
            assert body["failing_for_seconds"] >= 1.0
            down = scrape(base)

            server.start()
            wait_for(lambda: offsets() == ends)
            # The end is committed, so every point must already be there.
            assert stored(server, model) == expected([p for w in windows for p in w])
            status, body = health(base)
            assert (status, body["status"], body["failing_for_seconds"]) == (200, "ok", None)
            up = scrape(base)
        finally:
            stop.set()
            thread.join(10)
            writer.close()
            offsets.close()
            http.shutdown()
            http.server_close()
    assert not thread.is_alive()
    assert writer.retries >= 4
    assert writer.dead_lettered == 0
    assert writer.messages_written == 200

    def metric(samples: dict[Any, float], name: str, **labels: str) -> float | None:
        return sample(samples, f"driftline_writer_{name}", **labels)

    assert (metric(down, "write_failures_total", reason="unavailable") or 0) >= 4
    assert (metric(down, "pending_messages") or 0) > 0
    assert (metric(down, "failing_since_seconds") or 0) > 0
    for partition, offset in before.items():
        partition_labels = {"topic": topics.metrics, "partition": str(partition)}
        assert metric(down, "committed_offset", **partition_labels) == offset
    assert metric(up, "write_failures_total", reason="unavailable") == writer.failures
    assert metric(up, "write_failures_total", reason="rejected") is None
    assert metric(up, "retries_total") == writer.retries
    assert (metric(up, "backoff_seconds_total") or 0) >= 0.05 * writer.retries / 2
    assert (metric(up, "points_written_total"), metric(up, "messages_written_total")) == (
        200 * len(windows[0]),
        200,
    )
    assert metric(up, "messages_in_total", topic=topics.metrics) == 200
    for partition, offset in ends.items():
        partition_labels = {"topic": topics.metrics, "partition": str(partition)}
        assert metric(up, "committed_offset", **partition_labels) == offset
        assert metric(up, "written_offset", **partition_labels) == offset
    # Each message's age was observed once, when its points were written.
    assert metric(up, "record_age_seconds_count") == 200
    assert (metric(up, "pending_messages"), metric(up, "failing_since_seconds")) == (0, 0)
    assert metric(up, "dead_letters_total", kind="rejected") is None


class Crash(BaseException):
    """Stands for the writer's process dying."""


class CrashingConsumer(Consumer):
    """A consumer whose process dies when it commits, once armed.

    It runs none of the writer's rebalance callbacks, as a dead process would not.
    """

    armed = False

    def subscribe(
        self, topics: list[str], on_assign: Any = None, on_revoke: Any = None, on_lost: Any = None
    ) -> None:
        super().subscribe(topics)

    def commit(self, *args: Any, **kwargs: Any) -> Any:
        if self.armed:
            raise Crash
        return super().commit(*args, **kwargs)


def test_a_writer_restarted_after_a_crash_between_write_and_commit_rewrites_only_that_batch(
    kafka: KafkaSettings, topics: TopicSettings, metrics_server: Any
) -> None:
    create_topics(kafka, topics)
    model = f"crash-{uuid.uuid4().hex[:8]}"
    windows = [window_points(model, i) for i in range(60)]
    every_point = [p for w in windows for p in w]
    ends = produce(kafka, topics.metrics, [(model.encode(), encode_points(w)) for w in windows])
    gid = group()
    settings = influx_settings(metrics_server, batch_size=20)
    consumers: list[CrashingConsumer] = []
    clients: list[Any] = []

    def crashing(config: dict[str, Any]) -> CrashingConsumer:
        consumers.append(CrashingConsumer(config))
        return consumers[-1]

    def client(**kwargs: Any) -> Any:
        from influxdb_client import InfluxDBClient

        clients.append(InfluxDBClient(**kwargs))
        return clients[-1]

    offsets = Offsets(kafka, gid, topics.metrics, topics.output_partitions)
    try:
        first = InfluxWriter(
            kafka, settings, topics, group_id=gid, consumer_factory=crashing, client_factory=client
        )
        run_until(first, lambda: first.batches >= 1)
        committed_before = offsets()
        written_before = first.points_written
        [consumer], [influx_client] = consumers, clients
        consumer.armed = True
        with pytest.raises(Crash):
            run_until(first, lambda: False)
        uncommitted_batch = first.points_written - written_before
        assert uncommitted_batch > 0
        assert offsets() == committed_before
        consumer.armed = False
        consumer.close()  # the dead process's connection drops; nothing else of it runs
        influx_client.close()

        with InfluxWriter(kafka, settings, topics, group_id=gid) as second:
            run_until(second, lambda: offsets() == ends)
    finally:
        offsets.close()
        for leftover in consumers:  # when an assertion failed before the "crash"
            with contextlib.suppress(RuntimeError):
                leftover.close()

    assert second.points_written == len(every_point) - written_before
    rewritten = first.points_written + second.points_written - len(every_point)
    assert rewritten == uncommitted_batch
    assert stored(metrics_server, model) == expected(every_point)
    if isinstance(metrics_server, VictoriaMetrics):
        # Each sample written twice is a field of a point of the rewritten batch.
        counts = samples(metrics_server, model)
        windows_rewritten, rest = divmod(rewritten, len(windows[0]))
        assert rest == 0
        assert max(counts.values()) == 2
        assert sum(n - 1 for n in counts.values()) == windows_rewritten * len(expected(windows[0]))


def test_a_malformed_outbox_message_goes_to_the_dlq_with_its_reason_and_the_writer_goes_on(
    kafka: KafkaSettings, topics: TopicSettings, metrics_server: Any
) -> None:
    create_topics(kafka, topics)
    model = f"bad-{uuid.uuid4().hex[:8]}"
    key = model.encode()
    good = [window_points(model, i) for i in range(3)]
    no_timestamp = b"feature_drift,model=" + key + b" statistic=0.1"
    not_utf8 = b"feature_drift,model=x statistic=0.1 1764000000000\xff"
    messages = [
        (key, encode_points(good[0])),
        (key, no_timestamp),
        (key, encode_points(good[1])),
        (key, not_utf8),
        (key, encode_points(good[2])),
    ]
    ends = produce(kafka, topics.metrics, messages)
    [(partition, _)] = ends.items()
    gid = group()
    offsets = Offsets(kafka, gid, topics.metrics, topics.output_partitions)
    try:
        with InfluxWriter(kafka, influx_settings(metrics_server), topics, group_id=gid) as writer:
            run_until(writer, lambda: offsets() == ends)
    finally:
        offsets.close()

    assert stored(metrics_server, model) == expected([p for w in good for p in w])
    assert writer.dead_lettered == 2
    dead = [
        DeadLetter.from_kafka(m.key(), m.value(), m.headers())
        for m in read_topic(kafka, topics.dlq, topics.output_partitions, 2)
    ]
    by_offset = {d.source_offset: d for d in dead}
    assert sorted(by_offset) == [1, 3]
    assert {d.source_topic for d in dead} == {topics.metrics}
    assert {d.source_partition for d in dead} == {partition}
    assert by_offset[1].value == no_timestamp
    assert by_offset[1].key == key
    assert by_offset[1].kind == "malformed_line_protocol"
    assert "no timestamp" in by_offset[1].reason
    assert by_offset[3].value == not_utf8
    assert by_offset[3].kind == "not_utf8"


def test_a_feature_named_with_a_newline_is_stored_with_every_other_point_of_its_window(
    kafka: KafkaSettings, topics: TopicSettings, metrics_server: Any
) -> None:
    """Issue 15: written raw, the newline split its line and the writer dead-lettered the
    window's whole message; escaped (as influxdb_client's Point does) every point lands."""
    create_topics(kafka, topics)
    model = f"newline-{uuid.uuid4().hex[:8]}"
    base = (("model", model), ("version", "3"), ("window", "1h"))
    odd = [
        MetricPoint(
            "feature_drift",
            tuple(sorted((*base, ("feature", feature), ("test", "psi")))),
            (("statistic", 0.5 + k), ("n", 1000)),
            T0,
        )
        for k, feature in enumerate(("a\nb", "tab\there", "cr\rhere"))
    ]
    window = [*window_points(model, 0), *odd]
    ends = produce(kafka, topics.metrics, [(model.encode(), encode_points(window))])
    gid = group()
    offsets = Offsets(kafka, gid, topics.metrics, topics.output_partitions)
    try:
        with InfluxWriter(kafka, influx_settings(metrics_server), topics, group_id=gid) as writer:
            run_until(writer, lambda: offsets() == ends)
    finally:
        offsets.close()

    assert writer.dead_lettered == 0
    # The server unescapes only what line protocol defines: the name reads back as escaped.
    readable = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}

    def as_stored(point: MetricPoint) -> MetricPoint:
        tags = tuple((k, "".join(readable.get(c, c) for c in v)) for k, v in point.tags)
        return MetricPoint(point.measurement, tags, point.fields, point.time_ms)

    assert stored(metrics_server, model) == expected([as_stored(p) for p in window])
    assert writer.points_written == len(window)


class FakeInflux(BaseHTTPRequestHandler):
    """An InfluxDB v2 write endpoint that answers 503 once, then refuses 'poison' lines.

    VictoriaMetrics drops lines it cannot parse and answers 204, so InfluxDB's 400 for
    unparseable data needs a server that answers like InfluxDB does.
    """

    accepted: list[str]
    requests: list[int]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        text = body.decode()
        self.requests.append(len(text.splitlines()))
        if len(self.requests) == 1:
            self._answer(503, {"code": "unavailable", "message": "busy"}, {"Retry-After": "0"})
        elif "poison" in text:
            message = "unable to parse 'poison v=1i 1764000000000': invalid field format"
            self._answer(400, {"code": "invalid", "message": message}, {})
        else:
            self.accepted.extend(text.splitlines())
            self.send_response(204)
            self.end_headers()

    def _answer(self, status: int, body: dict[str, str], headers: dict[str, str]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def fake_influx() -> Iterator[tuple[str, type[FakeInflux]]]:
    handler = type("Handler", (FakeInflux,), {"accepted": [], "requests": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_data_influxdb_refuses_is_dead_lettered_alone_after_transient_errors_are_retried(
    kafka: KafkaSettings, topics: TopicSettings, fake_influx: tuple[str, type[FakeInflux]]
) -> None:
    create_topics(kafka, topics)
    url, handler = fake_influx
    key = b"fraud"
    good = [window_points("fraud", i) for i in range(4)]
    poison = b"poison v=1i 1764000000000"  # passes our check; the server refuses it
    values = [encode_points(good[0]), encode_points(good[1]), poison]
    values += [encode_points(w) for w in good[2:]]
    ends = produce(kafka, topics.metrics, [(key, v) for v in values])
    gid = group()
    offsets = Offsets(kafka, gid, topics.metrics, topics.output_partitions)
    sleeps: list[float] = []
    try:
        with InfluxWriter(
            kafka,
            InfluxSettings(url=url),
            topics,
            group_id=gid,
            sleep=sleeps.append,
            seed=5,
        ) as writer:
            run_until(writer, lambda: offsets() == ends)
    finally:
        offsets.close()

    assert set(handler.accepted) == set(lines([p for w in good for p in w]))
    assert (writer.failures, writer.retries, len(sleeps)) == (1, 1, 1)
    assert writer.dead_lettered == 1
    registry = writer.telemetry.registry
    failures = "driftline_writer_write_failures_total"
    assert registry.get_sample_value(failures, {"reason": "unavailable"}) == 1
    # All five messages in one call, then the poison alone once the others were written.
    assert registry.get_sample_value(failures, {"reason": "rejected"}) == 2
    assert registry.get_sample_value("driftline_writer_write_calls_total") == len(handler.requests)
    dead_letters = "driftline_writer_dead_letters_total"
    assert registry.get_sample_value(dead_letters, {"kind": "rejected"}) == 1
    [message] = read_topic(kafka, topics.dlq, topics.output_partitions, 1)
    dead = DeadLetter.from_kafka(message.key(), message.value(), message.headers())
    assert (dead.value, dead.source_offset, dead.kind) == (poison, 2, "rejected")
    assert "unable to parse" in dead.reason
    assert "HTTP 400" in dead.reason


# --- pure: the writer's retry loop, with fake clients --------------------------------------


class FakeMessage:
    def __init__(self, offset: int, value: bytes, partition: int = 0) -> None:
        self._offset, self._value, self._partition = offset, value, partition

    def topic(self) -> str:
        return "driftline.metrics"

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes:
        return b"fraud"

    def value(self) -> bytes:
        return self._value

    def headers(self) -> None:
        return None

    def timestamp(self) -> tuple[int, int]:
        return TIMESTAMP_CREATE_TIME, PRODUCED_AT_MS + self._offset

    def error(self) -> None:
        return None


class FakeKafka:
    """Stands for the consumer and the producer; records what the writer did, in order.

    ``later`` holds what each consume call after the first does (as librdkafka runs the
    rebalance callbacks inside a poll), returning the messages that call hands back.
    """

    def __init__(self, messages: list[FakeMessage], log: list[str]) -> None:
        self.messages = messages
        self.log = log
        self.assigned = sorted({m.partition() for m in messages}) or [0]
        self.later: list[Callable[[FakeKafka], list[FakeMessage]]] = []
        self.on_revoke: Callable[[Any, list[TopicPartition]], None] | None = None

    def subscribe(self, topics: list[str], **callbacks: Any) -> None:
        self.on_revoke = callbacks["on_revoke"]
        self.log.append("subscribe")

    def consume(self, num_messages: int, timeout: float) -> list[FakeMessage]:
        if not self.messages and self.later:
            return self.later.pop(0)(self)
        batch, self.messages = self.messages[:num_messages], self.messages[num_messages:]
        return batch

    def revoke(self, partition: int) -> list[FakeMessage]:
        assert self.on_revoke is not None
        self.on_revoke(self, [TopicPartition("driftline.metrics", partition)])
        self.assigned.remove(partition)
        return []

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition("driftline.metrics", p) for p in self.assigned]

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.log.append("pause " + ",".join(str(p.partition) for p in partitions))

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.log.append("resume " + ",".join(str(p.partition) for p in partitions))

    def seek(self, partition: TopicPartition) -> None:
        self.log.append(f"seek {partition.partition}:{partition.offset}")

    def commit(self, offsets: list[TopicPartition], asynchronous: bool) -> list[TopicPartition]:
        assert asynchronous is False
        self.log.append("commit " + ",".join(f"{o.partition}:{o.offset}" for o in offsets))
        return offsets

    def close(self) -> None:
        self.log.append("close")

    def flush(self, timeout: float) -> int:
        return 0


class FakeClient:
    """An InfluxDBClient whose write calls numbered in ``fail`` (from 1) are refused."""

    def __init__(self, fail: set[int], log: list[str]) -> None:
        self.fail = fail
        self.calls = 0
        self.log = log

    def write_api(self, write_options: Any) -> FakeClient:
        return self

    def write(self, bucket: str, org: str, record: str, write_precision: str) -> None:
        assert write_precision == "ms"
        self.calls += 1
        if self.calls in self.fail:
            self.log.append("write failed")
            raise urllib3.exceptions.NewConnectionError(CONNECTION, "Connection refused")
        self.log.append(f"write {len(record.splitlines())} lines")

    def close(self) -> None:
        pass


def fake_writer(
    fail: set[int], messages: list[FakeMessage], **kwargs: Any
) -> tuple[InfluxWriter, FakeKafka, list[float]]:
    """A writer on fakes; each message holds one window's 4 points."""
    sleeps: list[float] = []
    log: list[str] = []
    kafka = FakeKafka(messages, log)
    writer = InfluxWriter(
        KafkaSettings(),
        InfluxSettings(batch_size=10),
        TopicSettings(),
        clock=lambda: FAILED_AT,
        sleep=kwargs.pop("sleep", sleeps.append),
        consumer_factory=lambda config: kafka,
        producer_factory=lambda config: kafka,
        client_factory=lambda **config: FakeClient(fail, log),
        **kwargs,
    )
    return writer, kafka, sleeps


def outbox(*where: tuple[int, int]) -> list[FakeMessage]:
    """Outbox messages at (partition, offset)."""
    return [FakeMessage(o, encode_points(window_points("fraud", o)), p) for p, o in where]


def test_a_failing_batch_is_retried_on_the_backoff_schedule_and_committed_after_success() -> None:
    messages = outbox(*((0, i) for i in range(6)))
    writer, kafka, sleeps = fake_writer({1, 2, 3, 4}, messages, seed=3, max_backoff=2.0)
    with writer:
        assert writer.run_once(0) == 6 * 4
    schedule = Backoff(base=0.5, cap=2.0)
    rng = random.Random(3)
    assert sleeps == [schedule.delay(n, rng) for n in range(1, 5)]
    assert kafka.log == [
        "subscribe",
        "write failed",
        "pause 0",
        "write failed",
        "pause 0",
        "write failed",
        "pause 0",
        "write failed",
        "pause 0",
        "write 24 lines",
        "commit 0:6",
        "resume 0",
        "close",
    ]
    assert (writer.failures, writer.retries, writer.batches) == (4, 4, 1)


def test_the_writer_counts_failures_retries_backoff_offsets_and_record_ages() -> None:
    wall = [PRODUCED_AT_MS / 1000 + 2.5]
    messages = outbox(*((0, i) for i in range(6)))
    writer, _, sleeps = fake_writer({1, 2, 3}, messages, seed=3, wall_clock=lambda: wall[0])
    with writer:
        writer.run_once(0)
        registry = writer.telemetry.registry

        def metric(name: str, **labels: str) -> float | None:
            return registry.get_sample_value(f"driftline_writer_{name}", labels)

        assert metric("write_failures_total", reason="unavailable") == 3
        assert metric("retries_total") == 3
        assert metric("backoff_seconds_total") == pytest.approx(sum(sleeps))
        assert metric("write_calls_total") == 4
        assert (metric("points_written_total"), metric("messages_written_total")) == (24, 6)
        assert metric("batches_total") == 1
        partition = {"topic": "driftline.metrics", "partition": "0"}
        assert metric("committed_offset", **partition) == 6
        assert metric("written_offset", **partition) == 6
        # The fakes' message at offset i was produced i ms after PRODUCED_AT_MS.
        assert metric("record_age_seconds_count") == 6
        assert metric("record_age_seconds_sum") == pytest.approx(6 * 2.5 - 0.015)
        assert metric("last_poll_seconds") == wall[0]
        assert (metric("pending_messages"), metric("failing_since_seconds")) == (0, 0)


def test_window_age_times_each_newer_window_from_its_end_and_leaves_restatements_out() -> None:
    """window_age: accept time minus the window end, once per window newer than the last."""
    wall = T0 / 1000 + 600
    restated = FakeMessage(6, encode_points(window_points("fraud", 2)))  # window 2 again
    split = FakeMessage(7, encode_points(window_points("fraud", 5)))  # window 5's 2nd record
    writer, _, _ = fake_writer(set(), [*outbox(*((0, i) for i in range(6))), restated, split],
                               wall_clock=lambda: wall)  # fmt: skip
    with writer:
        writer.run_once(0)
        registry = writer.telemetry.registry
        count = registry.get_sample_value("driftline_writer_window_age_seconds_count")
        total = registry.get_sample_value("driftline_writer_window_age_seconds_sum")
    assert count == 6
    assert total == pytest.approx(sum(600 - i * MINUTE / 1000 for i in range(6)))


def test_the_writer_is_unhealthy_only_while_failing_longer_than_its_threshold() -> None:
    wall = [1000.0]
    seen: list[tuple[bool, str]] = []
    holder: list[InfluxWriter] = []

    def sleep(seconds: float) -> None:
        ok, detail = holder[0].health()
        seen.append((ok, detail.get("problem", "")))
        wall[0] += 0.6  # each failed attempt and its wait take 0.6 s of the fake clock

    writer, _, _ = fake_writer(
        {1, 2, 3}, outbox((0, 0)), sleep=sleep, unhealthy_after=1.0, wall_clock=lambda: wall[0]
    )
    holder.append(writer)
    assert writer.health()[1]["problem"] == "not started"
    with writer:
        writer.run_once(0)
        assert [ok for ok, _ in seen] == [True, True, False]  # failing 0, 0.6 and 1.2 s
        assert "writes have failed for 1 s (limit 1 s)" in seen[2][1]
        assert "Connection refused" in seen[2][1]
        ok, detail = writer.health()
        assert (ok, detail["failing_for_seconds"], detail["pending"]) == (True, None, 0)


def test_the_writer_is_unhealthy_when_its_consumer_has_not_polled_for_stall_after() -> None:
    wall = [1000.0]
    writer, _, _ = fake_writer(set(), outbox((0, 0)), stall_after=30.0, wall_clock=lambda: wall[0])
    with writer:
        ok, detail = writer.health()
        assert (ok, detail["problem"]) == (False, "the outbox consumer has not polled yet")
        writer.run_once(0)
        assert writer.health()[0] is True
        wall[0] += 30.0
        ok, detail = writer.health()
        assert ok is False
        assert detail["problem"] == "the outbox consumer has not polled for 30 s (limit 30 s)"
        writer.run_once(0)  # an empty poll is a poll
        assert writer.health() == (
            True,
            {
                "part": "writer",
                "seconds_since_poll": 0.0,
                "failing_for_seconds": None,
                "pending": 0,
            },
        )


def test_a_revoked_partition_loses_its_offset_gauges() -> None:
    writer, kafka, _ = fake_writer(set(), outbox((0, 0), (1, 0)))
    with writer:
        writer.run_once(0)
        registry = writer.telemetry.registry
        name = "driftline_writer_committed_offset"
        assert registry.get_sample_value(name, {"topic": "driftline.metrics", "partition": "0"})
        kafka.revoke(0)
        assert (
            registry.get_sample_value(name, {"topic": "driftline.metrics", "partition": "0"})
            is None
        )
        assert (
            registry.get_sample_value(name, {"topic": "driftline.metrics", "partition": "1"}) == 1
        )


def test_a_batch_is_split_into_writes_of_at_most_max_lines_at_message_boundaries() -> None:
    writer, kafka, _ = fake_writer(
        set(), outbox(*((0, i) for i in range(10))), max_lines_per_write=9
    )
    with writer:
        writer.run_once(0)
    assert kafka.log[1:] == ["write 8 lines"] * 5 + ["commit 0:10", "close"]


def test_a_stop_during_an_outage_leaves_the_batch_uncommitted_and_pending() -> None:
    holder: list[InfluxWriter] = []

    def sleep(seconds: float) -> None:
        holder[0].stop()

    writer, kafka, _ = fake_writer(set(range(1, 100)), outbox((0, 0), (0, 1), (0, 2)), sleep=sleep)
    holder.append(writer)
    with writer:
        assert writer.run_once(0) == 0
        assert writer.pending == 3
    assert not any(entry.startswith("commit") for entry in kafka.log)
    assert kafka.log[-1] == "close"


def test_messages_handed_back_while_paused_are_sought_back_to_be_read_again() -> None:
    writer, kafka, _ = fake_writer({1}, outbox((0, 0), (0, 1)))
    kafka.later.append(lambda k: outbox((1, 7), (1, 8)))  # from a partition assigned meanwhile
    with writer:
        writer.run_once(0)
    assert kafka.log[1:] == [
        "write failed",
        "pause 0",
        "seek 1:7",
        "pause 1",
        "write 8 lines",
        "commit 0:2",
        "resume 0",
        "close",
    ]


def test_a_revoked_partition_keeps_what_was_written_and_leaves_the_rest_to_its_next_owner() -> None:
    messages = outbox((0, 0), (1, 0), (0, 1), (1, 1))
    writer, kafka, _ = fake_writer({2}, messages, max_lines_per_write=4)
    kafka.later.append(lambda k: k.revoke(0))  # the rebalance runs inside the paused poll
    with writer:
        assert writer.run_once(0) == 3 * 4
    assert kafka.log[1:] == [
        "write 4 lines",  # 0@0
        "write failed",  # 1@0
        "pause 0,1",
        "commit 0:1",  # partition 0 leaves: what was written of it is committed
        "write 4 lines",  # 1@0 again; 0@1 is left to partition 0's next owner
        "write 4 lines",  # 1@1
        "commit 1:2",
        "resume 1",  # partition 1 stayed paused through the rebalance
        "close",
    ]
