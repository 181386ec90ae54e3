"""Stage 2: the pure merge-and-close core, and the faust worker against a real broker."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import uuid
from collections import Counter
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
from driftline.detectors.performance import PerformanceSummary
from driftline.detectors.profile import build_profile
from driftline.detectors.summary import PaneSummary
from driftline.errors import DecodeError
from driftline.schemas.events import to_epoch_ms
from driftline.schemas.outputs import (
    DLQ_HEADER_KIND,
    DLQ_HEADER_OFFSET,
    DLQ_HEADER_TOPIC,
    DriftAlert,
    ModelVersionRegistered,
    RetrainRequest,
)
from driftline.schemas.reference import ReferenceProfile
from driftline.streams.partials import PanePartial, PartialKind, Watermark, encode
from driftline.streams.registry import publish_profile
from driftline.streams.stage2 import (
    AGENT_NAME,
    Activity,
    Holding,
    Output,
    Stage2State,
    broker_credentials,
    create_app,
)
from driftline.testing import free_port
from driftline.testing.service import start_monitor
from driftline.topics import create_topics
from tests.streams.kafka_helpers import consume_all
from tests.streams.scrape import health, sample, wait_for_samples

MINUTE = 60_000
WINDOW = 5 * MINUTE
LATENESS = MINUTE
IDLE = 30_000


# --- building blocks ------------------------------------------------------------------------


def make_profile(version: str = "1", seed: int = 0, n: int = 20_000) -> ReferenceProfile:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    score = 1 / (1 + np.exp(-x))
    return build_profile(
        "m",
        version,
        "binary",
        {"x": x, "city": rng.choice(["a", "b", "c"], size=n, p=[0.5, 0.3, 0.2])},
        prediction=(score > 0.5).astype(int),
        scores={"0": 1 - score, "1": score},
        labels=(rng.random(n) < score).astype(int),
    )


PROFILE = make_profile()


def model_config(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "task": "binary",
        "pane": "1m",
        "windows": [{"size": "5m"}],
        "allowed_lateness": "1m",
        "idle_timeout": "30s",
        "drift": {"min_samples": 200, "persistence_k": 1, "persistence_n": 1},
        "performance": {"min_labels": 100},
        "retrain": {"policy": "on_drift", "cooldown": "0s"},
    }
    return {**base, **changes}


def make_settings(input_partitions: int = 2, **changes: Any) -> Settings:
    return Settings(
        models={"m": ModelConfig(**model_config(**changes))},
        topics=TopicSettings(input_partitions=input_partitions),
    )


def traffic(
    pane_start: int, n: int, *, shift: float = 0.0, seed: int = 1
) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray, dict[str, np.ndarray]]:
    """n events inside one pane: times, features, predictions, scores."""
    rng = np.random.default_rng(seed)
    times = pane_start + np.sort(rng.integers(0, MINUTE, n))
    x = rng.normal(loc=shift, size=n)
    score = 1 / (1 + np.exp(-x))
    features = {"x": x, "city": rng.choice(["a", "b", "c"], size=n, p=[0.5, 0.3, 0.2])}
    return times, features, (score > 0.5).astype(int), {"0": 1 - score, "1": score}


def pane_summary(
    pane_start: int,
    n: int,
    *,
    shift: float = 0.0,
    seed: int = 1,
    profile: ReferenceProfile = PROFILE,
) -> PaneSummary:
    times, features, prediction, scores = traffic(pane_start, n, shift=shift, seed=seed)
    batch = ColumnBatch.from_columns(
        profile, features, prediction, event_time_ms=times, scores=scores
    )
    return PaneSummary(profile).fold(batch)


def labels_summary(pane_start: int, n: int, *, seed: int = 1) -> PerformanceSummary:
    _, _, prediction, scores = traffic(pane_start, n, seed=seed)
    rng = np.random.default_rng(seed + 1000)
    labels = (rng.random(n) < scores["1"]).astype(int)
    return PerformanceSummary.from_profile(PROFILE).fold(labels, prediction, scores)


def partial(
    summary: PaneSummary | PerformanceSummary,
    pane_start: int,
    source_partition: int,
    covered: int,
    *,
    watermark_ms: int | None = None,
    version: str = "1",
) -> PanePartial:
    kind: PartialKind = "features" if isinstance(summary, PaneSummary) else "performance"
    return PanePartial(
        "m",
        version,
        pane_start,
        MINUTE,
        source_partition,
        kind,
        covered,
        pane_start + MINUTE - 1 if watermark_ms is None else watermark_ms,
        summary.to_bytes(),
    )


def watermark(source_partition: int, watermark_ms: int, n_partitions: int = 2) -> Watermark:
    return Watermark("m", source_partition, watermark_ms, n_partitions)


def close_first_window(n_partitions: int = 2) -> list[Watermark]:
    """Every partition past the first window's end plus the lateness."""
    return [watermark(p, WINDOW + LATENESS, n_partitions) for p in range(n_partitions)]


def feed(
    state: Stage2State, messages: Sequence[PanePartial | Watermark], now_ms: int = 0
) -> list[Output]:
    outputs: list[Output] = []
    for message in messages:
        outputs += state.apply(message, now_ms)
    return outputs


def new_state(settings: Settings | None = None) -> Stage2State:
    return Stage2State(lambda model, version: PROFILE, settings or make_settings())


def points(output: Output) -> dict[tuple[str, str], dict[str, str]]:
    """A metrics record's lines as {(measurement and tags, timestamp): {field: value}}."""
    assert output.role == "metrics"
    parsed = {}
    for line in output.value.decode().splitlines():
        head, fields, timestamp = line.split(" ")
        parsed[(head, timestamp)] = dict(f.split("=", 1) for f in fields.split(","))
    return parsed


def n_predictions(output: Output) -> int:
    (coverage,) = [f for (head, _), f in points(output).items() if head.startswith("label_cov")]
    return int(coverage["n_predictions"].rstrip("i"))


def metrics(outputs: list[Output]) -> list[Output]:
    return [o for o in outputs if o.role == "metrics"]


# --- the pure core --------------------------------------------------------------------------


def test_a_partial_sent_twice_counts_once() -> None:
    state = new_state()
    a, b = pane_summary(0, 300, seed=1), pane_summary(0, 200, seed=2)
    outputs = feed(
        state,
        [partial(a, 0, 0, 10), partial(a, 0, 0, 10), partial(b, 0, 1, 7), *close_first_window()],
    )
    (record,) = metrics(outputs)
    assert n_predictions(record) == 500


def test_an_older_partial_after_a_newer_one_changes_nothing() -> None:
    state = new_state()
    newer, older = pane_summary(0, 400, seed=1), pane_summary(0, 100, seed=1)
    feed(state, [partial(newer, 0, 0, 20), partial(older, 0, 0, 10)])
    (record,) = metrics(feed(state, close_first_window()))
    assert n_predictions(record) == 400
    assert feed(state, [partial(older, 0, 0, 15)]) == []  # still older: no restatement


def test_merging_partials_of_every_source_partition_equals_one_summary_of_everything() -> None:
    parts = [
        pane_summary(pane * MINUTE, 150, seed=10 * pane + p) for pane in range(5) for p in range(3)
    ]
    split = new_state(make_settings(input_partitions=3))
    messages: list[PanePartial | Watermark] = [
        partial(parts[3 * pane + p], pane * MINUTE, p, pane + 1)
        for pane in range(5)
        for p in range(3)
    ]
    split_outputs = feed(split, [*messages, *close_first_window(3)])

    whole = new_state(make_settings(input_partitions=1))
    merged = []
    for pane in range(5):
        summary = parts[3 * pane]
        for other in parts[3 * pane + 1 : 3 * pane + 3]:
            summary = summary.merge(other)
        merged.append(partial(summary, pane * MINUTE, 0, pane + 1))
    whole_outputs = feed(whole, [*merged, *close_first_window(1)])

    assert metrics(split_outputs) == metrics(whole_outputs)
    assert n_predictions(metrics(split_outputs)[0]) == 5 * 3 * 150


def test_performance_partials_merge_across_source_partitions() -> None:
    state = new_state()
    outputs = feed(
        state,
        [
            partial(pane_summary(0, 300), 0, 0, 5),
            partial(labels_summary(0, 120, seed=1), 0, 0, 6),
            partial(labels_summary(0, 80, seed=2), 0, 1, 3),
            *close_first_window(),
        ],
    )
    (record,) = metrics(outputs)
    accuracy = [f for (head, _), f in points(record).items() if "metric=accuracy" in head]
    assert accuracy[0]["n_labels"] == "200i"


def test_a_concept_flag_on_any_source_partition_reaches_the_window_report() -> None:
    state = new_state()
    flagged = msgspec.structs.replace(
        partial(labels_summary(0, 80, seed=2), 0, 1, 3), concept_drift=True
    )
    outputs = feed(
        state,
        [
            partial(pane_summary(0, 300), 0, 0, 5),
            partial(labels_summary(0, 120, seed=1), 0, 0, 6),
            flagged,
            *close_first_window(),
        ],
    )
    (record,) = metrics(outputs)
    concept = [f for (head, _), f in points(record).items() if head.startswith("concept_drift")]
    assert concept == [{"drift": "true"}]


def test_a_drain_is_judged_whole_after_its_watermark_not_on_its_first_partial() -> None:
    """Stage 1 sends a drain's partials one by one, each stamped with the drain's watermark,
    then a Watermark: the window must wait for that, so it is judged once, complete."""
    state = new_state(make_settings(input_partitions=1))
    drain = [
        partial(
            pane_summary(start, 100, seed=start // MINUTE),
            start,
            0,
            7,
            watermark_ms=WINDOW + LATENESS + MINUTE,
        )
        for start in range(0, WINDOW, MINUTE)
    ]
    assert metrics(feed(state, drain)) == []
    (record,) = metrics(feed(state, [watermark(0, WINDOW + LATENESS + MINUTE, 1)]))
    assert n_predictions(record) == 100 * len(drain)


def test_a_window_closes_only_when_every_partition_passed_its_end_plus_lateness() -> None:
    state = new_state()
    feed(state, [partial(pane_summary(0, 300), 0, 0, 1), partial(pane_summary(0, 300), 0, 1, 1)])
    assert feed(state, [watermark(0, WINDOW + LATENESS)]) == []
    assert feed(state, [watermark(1, WINDOW + LATENESS - 1)]) == []
    assert len(metrics(feed(state, [watermark(1, WINDOW + LATENESS)]))) == 1


def test_an_idle_partition_is_not_waited_for_after_idle_timeout() -> None:
    state = new_state()
    feed(state, [partial(pane_summary(0, 300), 0, 1, 1, watermark_ms=30_000)], now_ms=0)
    assert feed(state, [watermark(0, WINDOW + LATENESS)], now_ms=1_000) == []
    assert state.tick(IDLE - 1) == []  # partition 1 last advanced at 0
    assert len(metrics(state.tick(IDLE))) == 1


def test_a_partition_that_never_reported_blocks_only_until_idle_timeout() -> None:
    state = new_state()
    outputs = feed(
        state, [partial(pane_summary(0, 300), 0, 0, 1), watermark(0, WINDOW + LATENESS)], now_ms=0
    )
    assert outputs == []  # partition 1 may still report: not closed at once
    assert state.tick(IDLE - 1) == []
    assert len(metrics(state.tick(IDLE))) == 1


def test_a_late_partial_restates_the_window_with_the_same_point_identities() -> None:
    state = new_state()
    feed(
        state,
        [
            partial(pane_summary(0, 300, seed=1), 0, 0, 10),
            partial(pane_summary(0, 200, seed=2), 0, 1, 4),
        ],
    )
    (first,) = metrics(feed(state, close_first_window()))
    grown = pane_summary(0, 300, seed=1).merge(pane_summary(0, 250, seed=3))
    assert feed(state, [partial(grown, 0, 0, 12)]) == []  # judged at the sender's watermark
    (second,) = metrics(feed(state, [watermark(0, WINDOW + LATENESS)]))
    assert points(first).keys() == points(second).keys()
    assert (n_predictions(first), n_predictions(second)) == (500, 750)


def test_a_burst_of_late_partials_restates_a_window_once_per_flush() -> None:
    """Late labels reach every pane of a window in one stage-1 flush: one re-judgement at
    the flush's watermark, not one per partial (each would write an in-between value)."""
    state = new_state()
    panes = [p * MINUTE for p in range(5)]
    feed(state, [partial(pane_summary(p, 100, seed=p), p, 0, 10) for p in panes])
    feed(state, [partial(pane_summary(0, 100, seed=9), 0, 1, 10)])
    (first,) = metrics(feed(state, close_first_window()))
    late = [partial(pane_summary(p, 150, seed=p), p, 0, 20) for p in panes]
    assert feed(state, late) == []
    (restated,) = metrics(feed(state, [watermark(0, WINDOW + LATENESS)]))
    assert (n_predictions(first), n_predictions(restated)) == (600, 850)
    assert metrics(feed(state, [watermark(1, WINDOW + LATENESS)])) == []  # nothing changed


def test_a_late_partial_without_a_watermark_is_judged_at_the_next_tick() -> None:
    state = new_state()
    feed(state, [partial(pane_summary(0, 300, seed=1), 0, 0, 10)])
    feed(state, [partial(pane_summary(0, 200, seed=2), 0, 1, 4)])
    feed(state, close_first_window())
    grown = pane_summary(0, 300, seed=1).merge(pane_summary(0, 250, seed=3))
    feed(state, [partial(grown, 0, 0, 12)])
    (restated,) = metrics(state.tick(0))
    assert n_predictions(restated) == 750


def test_partials_wait_for_a_profile_that_arrives_later() -> None:
    known: dict[tuple[str, str], ReferenceProfile] = {}
    state = Stage2State(lambda model, version: known.get((model, version)), make_settings())
    messages = [
        partial(pane_summary(0, 300), 0, 0, 1),
        partial(pane_summary(0, 100, seed=4), 0, 1, 1),
    ]
    assert feed(state, [*messages, *close_first_window()]) == []
    assert state.pending_versions("m") == ["1"]
    known[("m", "1")] = PROFILE
    (record,) = metrics(state.tick(0))
    assert n_predictions(record) == 400
    assert state.pending_versions("m") == []


def test_a_drifted_feature_raises_an_alert_and_a_retrain_request() -> None:
    state = new_state()
    messages: list[PanePartial | Watermark] = [
        partial(pane_summary(pane * MINUTE, 200, shift=2.0, seed=pane), pane * MINUTE, pane % 2, 1)
        for pane in range(5)
    ]
    outputs = feed(state, [*messages, *close_first_window()])
    alerts = [DriftAlert.model_validate_json(o.value) for o in outputs if o.role == "alerts"]
    requests = [RetrainRequest.model_validate_json(o.value) for o in outputs if o.role == "retrain"]
    assert [a.status for a in alerts] == ["firing"]
    assert "x" in {r.feature for r in alerts[0].reasons}
    assert len(requests) == 1
    assert requests[0].rule == "on_drift"
    assert {o.key for o in outputs} == {b"m"}


def test_stationary_partials_raise_no_alert_and_no_retrain_request() -> None:
    state = new_state()
    messages: list[PanePartial | Watermark] = [
        partial(
            pane_summary(pane * MINUTE, 200, seed=100 + pane), pane * MINUTE, pane % 2, pane + 1
        )
        for pane in range(20)
    ]
    outputs = feed(state, [*messages, watermark(0, 21 * MINUTE), watermark(1, 21 * MINUTE)])
    assert len(metrics(outputs)) == 4
    assert [o.role for o in outputs if o.role != "metrics"] == []


def test_a_summary_of_another_profile_is_rejected_and_changes_nothing() -> None:
    state = new_state()
    other = make_profile(seed=9)
    with pytest.raises(DecodeError, match="does not match the profile"):
        state.apply(partial(pane_summary(0, 50, profile=other), 0, 0, 99), 0)
    feed(state, [partial(pane_summary(0, 300), 0, 0, 1)])
    (record,) = metrics(feed(state, close_first_window()))
    assert n_predictions(record) == 300


def test_a_partial_of_another_pane_length_is_rejected() -> None:
    state = new_state()
    wrong = PanePartial("m", "1", 0, 30_000, 0, "features", 1, 0, pane_summary(0, 10).to_bytes())
    with pytest.raises(DecodeError, match="pane"):
        state.apply(wrong, 0)


def test_a_partial_older_than_the_retention_horizon_is_ignored() -> None:
    settings = Settings(
        models={"m": ModelConfig(**model_config())},
        topics=TopicSettings(input_partitions=2),
        monitor={"join_ttl": "0s"},
    )
    state = new_state(settings)
    first = [
        partial(pane_summary(0, 300, seed=1), 0, 0, 1),
        partial(pane_summary(0, 300, seed=2), 0, 1, 1),
    ]
    assert len(metrics(feed(state, [*first, *close_first_window()]))) == 1
    feed(state, [watermark(0, 60 * MINUTE), watermark(1, 60 * MINUTE)])
    # Alone, partition 0's re-emission would restate the window with half of its events.
    assert feed(state, [partial(pane_summary(0, 400, seed=1), 0, 0, 2)]) == []


def test_forgotten_models_are_dropped() -> None:
    state = new_state()
    feed(state, [partial(pane_summary(0, 10), 0, 0, 1)])
    state.forget(["m"])
    assert state.models == []
    assert state.holdings() == {}


# --- the pure core's account of what it did (for telemetry) ----------------------------------


def test_the_core_counts_partials_added_replaced_stale_and_expired_by_kind() -> None:
    settings = Settings(
        models={"m": ModelConfig(**model_config())},
        topics=TopicSettings(input_partitions=2),
        monitor={"join_ttl": "0s"},
    )
    state = new_state(settings)
    first = partial(pane_summary(0, 300, seed=1), 0, 0, 10)
    feed(
        state,
        [
            first,
            first,  # the same covered count again: stale
            partial(pane_summary(0, 350, seed=1), 0, 0, 12),  # covers more: replaces
            partial(labels_summary(0, 100), 0, 1, 3),
        ],
    )
    assert state.take_activity().partials == Counter(
        {
            ("features", "added"): 1,
            ("features", "stale"): 1,
            ("features", "replaced"): 1,
            ("performance", "added"): 1,
        }
    )
    feed(state, [watermark(0, 60 * MINUTE), watermark(1, 60 * MINUTE)])
    assert len(state.take_activity().windows) == 1
    feed(state, [partial(pane_summary(0, 400, seed=1), 0, 0, 20)])  # past the horizon
    assert state.take_activity() == Activity(partials=Counter({("features", "expired"): 1}))


def test_the_core_reports_a_window_finalised_then_restated_with_the_time_it_became_due() -> None:
    state = new_state()
    drifted = [
        partial(pane_summary(p * MINUTE, 200, shift=2.0, seed=p), p * MINUTE, p % 2, 1)
        for p in range(5)
    ]
    feed(state, drifted, now_ms=1_000)
    assert state.take_activity().windows == []
    outputs = feed(state, close_first_window(), now_ms=5_000)
    (closed,) = state.take_activity().windows
    assert (closed.model, closed.version, closed.window.end_ms) == ("m", "1", WINDOW)
    assert (closed.restated, closed.due_ms) == (False, 5_000)
    (record,) = metrics(outputs)
    assert closed.points == len(record.value.splitlines())
    assert (closed.alerts, closed.retrain) == (1, True)
    assert [o.role for o in outputs].count("alerts") == closed.alerts

    grown = pane_summary(0, 200, shift=2.0, seed=0).merge(pane_summary(0, 50, seed=7))
    feed(state, [partial(grown, 0, 0, 2), watermark(0, WINDOW + LATENESS)], now_ms=9_000)
    (again,) = state.take_activity().windows
    assert (again.window, again.restated, again.due_ms) == (closed.window, True, 9_000)
    assert state.take_activity() == Activity()  # taking it starts a new record


def test_a_window_closed_by_an_idle_timeout_is_due_at_that_tick() -> None:
    state = new_state()
    feed(state, [partial(pane_summary(0, 300), 0, 0, 1), watermark(0, WINDOW + LATENESS)])
    assert state.tick(IDLE - 1) == []
    assert len(metrics(state.tick(IDLE))) == 1
    (closed,) = state.take_activity().windows
    assert (closed.due_ms, closed.restated) == (IDLE, False)


def test_holdings_count_panes_partials_and_the_watermark_per_model() -> None:
    state = new_state()
    feed(
        state,
        [
            partial(pane_summary(0, 100, seed=1), 0, 0, 1),
            partial(pane_summary(0, 100, seed=2), 0, 1, 1),
            partial(labels_summary(0, 50), 0, 0, 2),  # the same pane, another kind
            partial(pane_summary(MINUTE, 100), MINUTE, 0, 1),
        ],
    )
    assert state.holdings() == {"m": Holding(panes=2, partials=4, watermark_ms=None)}
    feed(state, close_first_window())
    assert state.holdings() == {"m": Holding(panes=2, partials=4, watermark_ms=WINDOW + LATENESS)}


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


def test_security_settings_become_faust_credentials() -> None:
    assert broker_credentials(KafkaSettings()) is None
    sasl = broker_credentials(
        KafkaSettings(
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="SCRAM-SHA-256",
            sasl_username="monitor",
            sasl_password="secret",
        )
    )
    assert (sasl.username, sasl.password, sasl.mechanism.value, sasl.protocol.value) == (
        "monitor",
        "secret",
        "SCRAM-SHA-256",
        "SASL_PLAINTEXT",
    )
    tls = broker_credentials(
        KafkaSettings(
            security_protocol="SASL_SSL",
            sasl_mechanism="PLAIN",
            sasl_username="u",
            sasl_password="p",
        )
    )
    assert tls.protocol.value == "SASL_SSL"
    assert tls.ssl_context is not None


# --- the faust worker against the broker ----------------------------------------------------

# The worker runs in a process of its own, as `driftline monitor` would: faust installs signal
# handlers (main thread only), and its event loop and logging stay out of the test process.
WORKER = """
import sys
from datetime import timedelta
from pathlib import Path

from driftline.config import Settings
from driftline.schemas.reference import ReferenceProfile
from driftline.streams.stage2 import create_app, run_app

settings = Settings.model_validate_json(Path(sys.argv[1]).read_text())
profiles = {}
for line in Path(sys.argv[2]).read_text().splitlines():
    profile = ReferenceProfile.model_validate_json(line)
    profiles[(profile.model, profile.model_version)] = profile
app = create_app(
    settings,
    lambda model, version: profiles.get((model, version)),
    session_timeout=timedelta(seconds=6),  # Tansu joins take half of it
)
run_app(app)
"""
REPO = Path(__file__).resolve().parents[2]


class Worker:
    """A stage-2 worker process, its log kept for failure messages."""

    def __init__(self, tmp_path: Path, settings: Settings, name: str) -> None:
        settings_path = tmp_path / "settings.json"
        settings_path.write_text(settings.model_dump_json())
        profiles_path = tmp_path / "profiles.jsonl"
        profiles_path.write_text(PROFILE.model_dump_json() + "\n")
        self.log_path = tmp_path / f"{name}.log"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", WORKER, str(settings_path), str(profiles_path)],
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
    producer = Producer(kafka.client_config())
    for value in values:
        producer.produce(topic, key=b"m", value=value)
    assert producer.flush(10) == 0


def consume_many(kafka: KafkaSettings, expected: dict[str, int]) -> dict[str, list[Any]]:
    """consume_all on several topics at once: each waits ~3 s for its group join on Tansu."""
    with ThreadPoolExecutor(len(expected)) as pool:
        futures = {t: pool.submit(consume_all, kafka, t, n, 45.0) for t, n in expected.items()}
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
