"""Stage 2's faust app as built, and its worker against a real broker."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
from confluent_kafka import Producer

from driftline.config import KafkaSettings, ModelConfig, Settings, TopicSettings
from driftline.detectors.batch import ColumnBatch
from driftline.detectors.profile import build_profile
from driftline.detectors.summary import PaneSummary
from driftline.kafka_auth import confluent_config
from driftline.schemas.events import to_epoch_ms
from driftline.schemas.outputs import (
    DLQ_HEADER_KIND,
    DLQ_HEADER_OFFSET,
    DLQ_HEADER_ORIGINAL_LENGTH,
    DLQ_HEADER_ORIGINAL_SHA256,
    DLQ_HEADER_TOPIC,
    DeadLetter,
    DriftAlert,
    ModelVersionRegistered,
    RetrainRequest,
)
from driftline.schemas.reference import ReferenceProfile
from driftline.sinks.influx import InfluxWriter
from driftline.streams.partials import Watermark, encode
from driftline.streams.registry import publish_profile
from driftline.streams.stage2.agent import AGENT_NAME, create_app
from driftline.streams.stage2.outputs import Output, record_size, too_large
from driftline.streams.stage2.published import read_published
from driftline.streams.stage2.state import Stage2State
from driftline.testing import free_port
from driftline.testing.service import start_monitor
from driftline.topics import create_topics
from tests.streams.kafka_helpers import consume_all
from tests.streams.scrape import health, sample, wait_for_samples
from tests.streams.test_influx_writer import influx_settings, run_until
from tests.unit.streams.stage2_helpers import (
    LATENESS,
    MINUTE,
    PROFILE,
    WINDOW,
    close_first_window,
    make_settings,
    metrics,
    model_config,
    n_predictions,
    pane_summary,
    partial,
)

# --- the faust app, as built -----------------------------------------------------------------


def test_the_app_names_its_agent_and_keeps_its_web_server_off_or_on_localhost() -> None:
    settings = make_settings()
    app = create_app(settings, lambda model, version: PROFILE)
    assert list(app.agents) == [AGENT_NAME]
    assert app.conf.web_enabled is False
    # Under the state directory, not faust's default of "<app id>-data" in the working one.
    assert app.conf.datadir == settings.monitor.state_dir / "stage2"
    served = create_app(settings, lambda model, version: PROFILE, web_port=16066)
    assert (served.conf.web_enabled, served.conf.web_bind, served.conf.web_port) == (
        True,
        "127.0.0.1",
        16066,
    )


# --- the faust worker against the broker ----------------------------------------------------

# The worker runs in a process of its own, as `driftline monitor` would: faust installs signal
# handlers (main thread only), and its event loop and logging stay out of the test process.
WORKER = """
import sys
from datetime import timedelta
from pathlib import Path

from driftline.config import Settings
from driftline.schemas.reference import ReferenceProfile
from driftline.streams.stage2.agent import create_app, run_app

settings = Settings.model_validate_json(Path(sys.argv[1]).read_text())
profiles = {}
for line in Path(sys.argv[2]).read_text().splitlines():
    profile = ReferenceProfile.model_validate_json(line)
    profiles[(profile.model, profile.model_version)] = profile
app = create_app(
    settings,
    lambda model, version: profiles.get((model, version)),
    session_timeout=timedelta(seconds=6),  # Tansu's group joins grow with it
)
run_app(app)
"""
REPO = Path(__file__).resolve().parents[2]


class Worker:
    """A stage-2 worker process, its log kept for failure messages."""

    def __init__(
        self,
        tmp_path: Path,
        settings: Settings,
        name: str,
        profiles: Sequence[ReferenceProfile] = (PROFILE,),
        inject: str = "",
    ) -> None:
        """``inject``: code run in the worker before its app is made (a fault to contain)."""
        settings_path = tmp_path / "settings.json"
        settings_path.write_text(settings.model_dump_json())
        profiles_path = tmp_path / "profiles.jsonl"
        profiles_path.write_text("".join(p.model_dump_json() + "\n" for p in profiles))
        self.log_path = tmp_path / f"{name}.log"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    WORKER.replace("app = create_app(", inject + "\napp = create_app("),
                    str(settings_path),
                    str(profiles_path),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> int:
        """SIGTERM, as a service manager stops it; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        return self.proc.returncode


@pytest.fixture
def stage2_settings(kafka: KafkaSettings, topics: TopicSettings, tmp_path: Path) -> Settings:
    create_topics(kafka, topics)
    return Settings(
        kafka=kafka,
        topics=topics,
        models={"m": ModelConfig(**model_config())},
        monitor={
            "group_id": f"stage2-{uuid.uuid4().hex[:8]}",
            "state_dir": str(tmp_path / "state"),
        },
    )


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.stop()


def produce(kafka: KafkaSettings, topic: str, values: list[bytes]) -> None:
    producer = Producer(confluent_config(kafka))
    for value in values:
        producer.produce(topic, key=b"m", value=value)
    assert producer.flush(10) == 0


def consume_many(kafka: KafkaSettings, expected: dict[str, int]) -> dict[str, list[Any]]:
    """consume_all on several topics at once: each waits for its own group join on Tansu.

    A topic expected empty is read for 10 s, long enough for a record to turn up."""
    with ThreadPoolExecutor(len(expected)) as pool:
        futures = {
            t: pool.submit(consume_all, kafka, t, n or 1, 45.0 if n else 10.0)
            for t, n in expected.items()
        }
        return {t: f.result() for t, f in futures.items()}


def test_the_worker_publishes_metrics_alerts_and_retrain_requests_and_dead_letters_bad_input(
    stage2_settings: Settings, workers: list[Worker], tmp_path: Path
) -> None:
    topics = stage2_settings.topics
    workers.append(Worker(tmp_path, stage2_settings, "worker"))
    drifted = [
        partial(pane_summary(p * MINUTE, 200, shift=2.0, seed=p), p * MINUTE, p % 2, 1)
        for p in range(5)
    ]
    bad = b"\x93not a summaries message"
    produce(
        stage2_settings.kafka,
        topics.summaries,
        [encode(m) for m in drifted[:3]]
        + [bad]
        + [encode(m) for m in [*drifted[3:], *close_first_window()]],
    )
    expected = {topics.metrics: 1, topics.alerts: 1, topics.retrain: 1, topics.dlq: 1}
    got = consume_many(stage2_settings.kafka, expected)
    assert {t: len(records) for t, records in got.items()} == expected, workers[0].log_tail()
    (record,) = got[topics.metrics]
    assert record.key() == b"m"
    assert n_predictions(Output("metrics", record.key(), record.value())) == 1000
    alert = DriftAlert.model_validate_json(got[topics.alerts][0].value())
    assert (alert.model, alert.status, to_epoch_ms(alert.window_end)) == ("m", "firing", WINDOW)
    assert "x" in {r.feature for r in alert.reasons}
    request = RetrainRequest.model_validate_json(got[topics.retrain][0].value())
    assert request.rule == "on_drift"
    (dead,) = got[topics.dlq]
    headers = dict(dead.headers() or [])
    assert (dead.key(), dead.value()) == (b"m", bad)
    assert headers[DLQ_HEADER_KIND] == b"invalid_summary"
    # Every message is keyed by the model, so the bad one is the fourth of one partition.
    assert headers[DLQ_HEADER_TOPIC] == topics.summaries.encode()
    assert headers[DLQ_HEADER_OFFSET] == b"3"
    assert workers[0].stop() == 0, workers[0].log_tail()
    assert "Traceback" not in workers[0].log_path.read_text()


def test_a_restarted_worker_rebuilds_its_state_from_the_summaries_topic(
    stage2_settings: Settings, workers: list[Worker], tmp_path: Path
) -> None:
    kafka, topics = stage2_settings.kafka, stage2_settings.topics
    first = Worker(tmp_path, stage2_settings, "first")
    workers.append(first)
    produce(
        kafka,
        topics.summaries,
        [
            encode(partial(pane_summary(0, 300, seed=1), 0, 0, 10)),
            encode(partial(pane_summary(0, 200, seed=2), 0, 1, 5)),
            *(encode(w) for w in close_first_window()),
        ],
    )
    before = consume_all(kafka, topics.metrics, 1, 45.0)
    assert len(before) == 1, first.log_tail()
    assert first.stop() == 0, first.log_tail()

    # Only partition 1's grown partial is new; partition 0's is known from the topic alone.
    grown = pane_summary(0, 200, seed=2).merge(pane_summary(0, 100, seed=3))
    produce(kafka, topics.summaries, [encode(partial(grown, 0, 1, 9))])
    second = Worker(tmp_path, stage2_settings, "second")
    workers.append(second)
    records = consume_all(kafka, topics.metrics, 3, 45.0)
    counts = [n_predictions(Output("metrics", r.key(), r.value())) for r in records]
    assert counts == [500, 500, 600], second.log_tail()
    assert records[1].value() == before[0].value()  # the replayed window, published again alike
    assert second.stop() == 0, second.log_tail()
    assert "Traceback" not in first.log_path.read_text() + second.log_path.read_text()


def test_the_merge_command_serves_metrics_of_what_its_worker_did_and_writes_nothing_in_its_cwd(
    stage2_settings: Settings, tmp_path: Path
) -> None:
    """`driftline monitor merge`, scraped over HTTP: the counters agree with the messages sent
    and with the records found on the output topics."""
    kafka, topics = stage2_settings.kafka, stage2_settings.topics
    publish_profile(
        kafka,
        topics,
        ModelVersionRegistered(
            model="m", model_version="1", registered_at=0, source="cli", reference=PROFILE
        ),
    )
    port = free_port()
    config = tmp_path / "driftline.yaml"
    config.write_text(  # JSON is YAML
        json.dumps(
            {
                "kafka": {"bootstrap_servers": kafka.bootstrap_servers},
                "topics": topics.model_dump(),
                "models": {"m": model_config()},
                "monitor": {
                    "group_id": stage2_settings.monitor.group_id,
                    "state_dir": str(stage2_settings.monitor.state_dir),
                    "metrics_port": port,
                },
            }
        )
    )
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    log_path = tmp_path / "merge.log"
    proc = start_monitor("merge", config, log_path, cwd=cwd)

    def alive() -> str | None:
        if proc.poll() is None:
            return None
        return f"monitor merge exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}"

    base = f"http://127.0.0.1:{port}"
    try:
        drifted = [
            partial(pane_summary(p * MINUTE, 200, shift=2.0, seed=p), p * MINUTE, p % 2, 1)
            for p in range(5)
        ]
        bad = b"\x93not a summaries message"
        produce(
            kafka,
            topics.summaries,
            [encode(m) for m in drifted] + [bad] + [encode(w) for w in close_first_window()],
        )
        finalised = "driftline_merge_windows_finalised_total"
        wait_for_samples(base, lambda s: sample(s, finalised, model="m") == 1, alive=alive)
        grown = pane_summary(0, 200, shift=2.0, seed=0).merge(pane_summary(0, 50, seed=7))
        # The first partial again (stale), then one that covers more (restates the window).
        produce(kafka, topics.summaries, [encode(drifted[0]), encode(partial(grown, 0, 0, 2))])
        restated = "driftline_merge_windows_restated_total"
        seen = wait_for_samples(base, lambda s: sample(s, restated, model="m") == 1, alive=alive)
        # The per-model gauges are set on each tick: wait for one after the restatement.
        tick = sample(seen, "driftline_merge_last_tick_seconds") or 0.0
        samples = wait_for_samples(
            base,
            lambda s: (sample(s, "driftline_merge_last_tick_seconds") or 0.0) > tick,
            alive=alive,
        )
        status, body = health(base)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
    log_text = log_path.read_text(errors="replace")
    assert proc.returncode == 0, log_text[-3000:]

    def v(name: str, **labels: str) -> float | None:
        return sample(samples, f"driftline_merge_{name}", **labels)

    assert v("messages_in_total", topic=topics.summaries) == 5 + 1 + 2 + 2
    assert v("partials_total", kind="features", outcome="added") == 5
    assert v("partials_total", kind="features", outcome="stale") == 1
    assert v("partials_total", kind="features", outcome="replaced") == 1
    assert v("dead_letters_total", kind="invalid_summary") == 1
    assert v("windows_finalised_total", model="m") == 1
    assert v("windows_restated_total", model="m") == 1
    # Only the first judgment of a window is a close: one latency observation.
    assert v("close_to_publish_seconds_count") == 1
    assert 0 < (v("close_to_publish_seconds_sum") or 0) < 30
    assert v("watermark_seconds", model="m") == (WINDOW + LATENESS) / 1000
    assert (v("panes_held", model="m"), v("partials_held", model="m")) == (5, 5)
    assert (status, body["status"], body["part"]) == (200, "ok", "merge")

    # The drifted window fires an alert and asks for a retrain; its restatement may again.
    alerts = int(v("alerts_total", model="m") or 0)
    requests = int(v("retrain_requests_total", model="m") or 0)
    assert alerts >= 1
    assert requests >= 1
    expected = {topics.metrics: 2, topics.alerts: alerts, topics.retrain: requests, topics.dlq: 1}
    got = consume_many(kafka, expected)
    assert {t: len(records) for t, records in got.items()} == expected
    for topic, n in expected.items():
        assert v("messages_out_total", topic=topic) == n
    lines = sum(len(r.value().splitlines()) for r in got[topics.metrics])
    assert v("metric_points_total", model="m") == lines

    # faust's data directory is under the state directory; the working directory stays empty.
    assert (stage2_settings.monitor.state_dir / "stage2").is_dir()
    assert list(cwd.iterdir()) == []


# --- alerts and retrain requests already published -----------------------------------------


def test_every_published_alert_and_request_id_is_read_back_from_every_partition(
    kafka: KafkaSettings, topics: TopicSettings
) -> None:
    """What a restarted (or rebalanced) worker reads before sending alerts or requests: every
    id on every partition of both topics, ending at the topics' end without waiting long."""
    create_topics(kafka, topics)
    assert read_published(kafka, {"alerts": topics.alerts, "retrain": topics.retrain}) == []
    reason = {"kind": "feature_drift", "statistic": "psi", "value": 0.5, "threshold": 0.2}
    window = {"model_version": "1", "window_start": 0, "window_end": WINDOW, "reasons": [reason]}
    alerts = [
        DriftAlert.model_validate(
            {**window, "alert_id": f"a{i}", "model": f"m{i}", "severity": "warning"}
        )
        for i in range(40)
    ]
    requests = [
        RetrainRequest.model_validate(
            {**window, "request_id": f"r{i}", "model": f"m{i}", "rule": "on_drift"}
        )
        for i in range(10)
    ]
    producer = Producer(confluent_config(kafka))
    for record in alerts:  # keyed by model: spread over both partitions
        producer.produce(topics.alerts, key=record.model.encode(), value=record.to_json())
    producer.produce(topics.alerts, key=b"x", value=b"someone else's record")
    for record in requests:
        producer.produce(topics.retrain, key=record.model.encode(), value=record.to_json())
    assert producer.flush(10) == 0
    started = time.monotonic()
    ids = read_published(kafka, {"alerts": topics.alerts, "retrain": topics.retrain}, idle=5.0)
    assert sorted(ids) == sorted([a.alert_id for a in alerts] + [r.request_id for r in requests])
    # Ended at the high watermarks its fetches reported, not after the idle time.
    assert time.monotonic() - started < 5.0


# --- every record bounded (issue 15) ---------------------------------------------------------


def named_profile(model: str, features: Sequence[str] = ("x", "city"), n: int = 5000) -> Any:
    """A profile like PROFILE's, of ``model``, its numeric features named ``features``."""
    rng = np.random.default_rng(0)
    columns: dict[str, Any] = {name: rng.normal(size=n) for name in features if name != "city"}
    if "city" in features:
        columns["city"] = rng.choice(["a", "b", "c"], size=n, p=[0.5, 0.3, 0.2])
    score = 1 / (1 + np.exp(-columns[features[0]]))
    return build_profile(
        model,
        "1",
        "binary",
        columns,
        prediction=(score > 0.5).astype(int),
        scores={"0": 1 - score, "1": score},
        labels=(rng.random(n) < score).astype(int),
    )


def pane_of(profile: Any, pane_start: int, n: int, *, shift: float, seed: int) -> PaneSummary:
    """A pane of ``n`` events of ``profile``'s features, every numeric one shifted by ``shift``."""
    rng = np.random.default_rng(seed)
    times = pane_start + np.sort(rng.integers(0, MINUTE, n))
    features: dict[str, Any] = {}
    for name in profile.features:
        if name == "city":
            features[name] = rng.choice(["a", "b", "c"], size=n, p=[0.5, 0.3, 0.2])
        else:
            features[name] = rng.normal(loc=shift, size=n)
    first = next(iter(features.values()))
    score = 1 / (1 + np.exp(-first)) if first.dtype.kind == "f" else np.full(n, 0.5)
    batch = ColumnBatch.from_columns(
        profile,
        features,
        (score > 0.5).astype(int),
        event_time_ms=times,
        scores={"0": 1 - score, "1": score},
    )
    return PaneSummary(profile).fold(batch)


def window_of(profile: Any, first_pane: int, *, shift: float = 0.0) -> list[Any]:
    """A window's partials (two source partitions) and the watermarks that close it."""
    model = profile.model
    partials = [
        msgspec.structs.replace(
            partial(pane_of(profile, p * MINUTE, 200, shift=shift, seed=p), p * MINUTE, p % 2, 1),
            model=model,
        )
        for p in range(first_pane, first_pane + 5)
    ]
    end = (first_pane + 5) * MINUTE + LATENESS
    return [*partials, *(Watermark(model, p, end, 2) for p in range(2))]


def test_a_window_too_large_for_one_outbox_message_is_split_and_every_point_is_written(
    stage2_settings: Settings, workers: list[Worker], tmp_path: Path, metrics_server: Any
) -> None:
    """Issue 15: with a model name of 71,000 characters a window's metrics (here 2 MB) were one
    record the producer refused; the agent crashed and the window was lost."""
    kafka, topics = stage2_settings.kafka, stage2_settings.topics
    model = f"long-{uuid.uuid4().hex[:8]}-" + "x" * 71_000
    settings = stage2_settings.model_copy(update={"models": {model: ModelConfig(**model_config())}})
    profile = named_profile(model, ("x", "city", "amount", "age", "tenure", "balance"))
    workers.append(Worker(tmp_path, settings, "worker", [profile]))
    messages = window_of(profile, 0)
    produce(kafka, topics.summaries, [encode(m) for m in messages])

    # The pure core, fed the same messages, says which records to expect: deterministic.
    core = Stage2State(lambda m, v: profile, settings)
    expected = metrics([o for m in messages for o in core.apply(m, 0)])
    assert len(expected) > 1
    records = consume_all(kafka, topics.metrics, len(expected), 60.0)
    assert [(r.key(), r.value()) for r in records] == [(o.key, o.value) for o in expected], workers[
        0
    ].log_tail()
    limit = settings.monitor.max_output_bytes
    assert all(record_size(r.key(), r.value()) <= limit for r in records)

    gid = f"writer-{uuid.uuid4().hex[:10]}"
    with InfluxWriter(kafka, influx_settings(metrics_server), topics, group_id=gid) as writer:
        run_until(writer, lambda: writer.messages_written == len(expected), timeout=60.0)
    lines = [line for o in expected for line in o.value.decode().splitlines()]
    assert (writer.points_written, writer.dead_lettered) == (len(lines), 0)
    fields = sum(len(line.split(" ")[1].split(",")) for line in lines)
    # VictoriaMetrics keeps the first 16 KiB of a label value: the model reads back cut.
    stored = [s for s in metrics_server.series() if s.tags.get("model", "").startswith(model[:40])]
    assert sum(len(s.points) for s in stored) == fields
    assert workers[0].stop() == 0, workers[0].log_tail()
    assert "Traceback" not in workers[0].log_path.read_text()


def test_an_alert_too_large_to_publish_is_dead_lettered_and_the_worker_goes_on(
    stage2_settings: Settings, workers: list[Worker], tmp_path: Path
) -> None:
    """A record that cannot be published whole (an alert whose reasons name features of 6,000
    characters, over a 50,000-byte bound) goes to the DLQ, cut to fit, and later windows are
    still judged and published."""
    kafka, topics = stage2_settings.kafka, stage2_settings.topics
    features = [f"f{i:02d}-" + "y" * 6000 for i in range(20)]
    profile = named_profile("wide", features)
    settings = stage2_settings.model_copy(
        update={
            "models": {"wide": ModelConfig(**model_config())},
            "monitor": stage2_settings.monitor.model_copy(update={"max_output_bytes": 50_000}),
        }
    )
    workers.append(Worker(tmp_path, settings, "worker", [profile]))
    first, second = window_of(profile, 0, shift=2.0), window_of(profile, 5)
    core = Stage2State(lambda m, v: profile, settings)
    outputs = [o for m in [*first, *second] for o in core.apply(m, 0)]
    oversized = [o for o in outputs if too_large(o, 50_000)]
    assert {o.role for o in oversized} == {"alerts", "retrain"}
    published = [o for o in outputs if o not in oversized]
    assert len(metrics(published)) > 2  # both windows, each split

    produce(kafka, topics.summaries, [encode(m) for m in first])
    got = consume_many(kafka, {topics.dlq: len(oversized)})
    produce(kafka, topics.summaries, [encode(m) for m in second])
    expected = {
        getattr(topics, role): sum(o.role == role for o in published)
        for role in ("metrics", "alerts", "retrain")
    }
    got |= consume_many(kafka, expected)
    log = workers[0].log_tail()
    assert {t: len(got[t]) for t in expected} == expected, log
    records = [r for t in expected for r in got[t]]
    assert sorted(r.value() for r in records) == sorted(o.value for o in published)
    letters = got[topics.dlq]
    assert len(letters) == len(oversized), log
    for record, output in zip(letters, oversized, strict=True):
        letter = DeadLetter.from_kafka(record.key(), record.value(), record.headers())
        headers = dict(record.headers() or [])
        assert letter.kind == "output_too_large"
        assert letter.path == output.role
        assert "over monitor.max_output_bytes (50000)" in letter.reason
        assert record_size(record.key(), record.value(), record.headers() or []) <= 50_000
        assert headers[DLQ_HEADER_ORIGINAL_LENGTH] == str(len(output.value)).encode()
        digest = hashlib.sha256(output.value).hexdigest().encode()
        assert headers[DLQ_HEADER_ORIGINAL_SHA256] == digest
        assert output.value.startswith(record.value())
    assert workers[0].proc.poll() is None
    assert workers[0].stop() == 0, workers[0].log_tail()
    assert "Traceback" not in workers[0].log_path.read_text()


# A bug, or an input no check foresaw, that breaks the engine when it judges model "bad".
BREAK_BAD = """
from driftline.detectors.engine import ModelMonitor

_evaluate = ModelMonitor.evaluate

def _failing(self, window):
    if self.profile.model == "bad":
        raise ArithmeticError("the engine broke on this window")
    return _evaluate(self, window)

ModelMonitor.evaluate = _failing
"""


def test_a_window_that_breaks_when_judged_is_dead_lettered_and_other_models_are_published(
    stage2_settings: Settings, workers: list[Worker], tmp_path: Path
) -> None:
    """Issue 15 (containment): the summaries message whose processing broke a window goes to
    the DLQ (processing_error) and the worker keeps judging every other model."""
    kafka, topics = stage2_settings.kafka, stage2_settings.topics
    profiles = [named_profile("bad"), named_profile("m")]
    settings = stage2_settings.model_copy(
        update={"models": {p.model: ModelConfig(**model_config()) for p in profiles}}
    )
    workers.append(Worker(tmp_path, settings, "worker", profiles, inject=BREAK_BAD))
    bad, good = (window_of(p, 0) for p in profiles)
    produce(kafka, topics.summaries, [encode(m) for m in [*bad, *good]])
    got = consume_many(kafka, {topics.dlq: 1, topics.metrics: 1})
    log = workers[0].log_tail()
    (record,) = got[topics.metrics]
    assert record.key() == b"m", log
    (dead,) = got[topics.dlq]
    letter = DeadLetter.from_kafka(dead.key(), dead.value(), dead.headers())
    assert letter.kind == "processing_error"
    assert "model 'bad' version '1' window ending 300000 not judged" in letter.reason
    assert "ArithmeticError: the engine broke on this window" in letter.reason
    assert letter.source_offset == len(bad) - 1  # the watermark that closed the window
    assert workers[0].proc.poll() is None, log
    assert workers[0].stop() == 0, workers[0].log_tail()
