"""Configuration: a wrong file stops start-up with a message that names the field."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from driftline.config import Settings, load_settings, masked, parse_duration
from driftline.errors import ConfigError
from driftline.kafka_auth import confluent_config

VALID = """
kafka:
  bootstrap_servers: broker-1:9092,broker-2:9092
  security_protocol: SASL_SSL
  sasl_mechanism: SCRAM-SHA-512
  sasl_username: driftline
  sasl_password: hunter2
influxdb:
  url: https://influx.example:8086
  token: influx-secret
topics:
  predictions: ml.predictions
  input_partitions: 12
models:
  fraud:
    task: binary
    pane: 30s
    windows:
      - {size: 1h}
      - {size: 1d, hop: 1h}
    drift: {correction: bonferroni, persistence_k: 2, persistence_n: 4}
    performance: {metric: roc_auc, threshold: 0.8}
    retrain: {policy: on_either, cooldown: 12h}
  demand:
    task: regression
    features: {temperature: numeric, store: categorical}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "driftline.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def problems(tmp_path: Path, text: str, **env: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text), environ=env)
    return [str(p) for p in caught.value.problems]


def test_valid_file_loads_every_section(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, VALID), environ={})
    assert isinstance(s, Settings)
    assert s.kafka.bootstrap_servers == "broker-1:9092,broker-2:9092"
    assert s.topics.predictions == "ml.predictions"
    assert s.topics.ground_truth == "driftline.ground-truth"
    assert s.topics.input_partitions == 12
    fraud = s.models["fraud"]
    assert fraud.pane == timedelta(seconds=30)
    assert fraud.windows[1].hop == timedelta(hours=1)
    assert fraud.drift.correction == "bonferroni"
    assert fraud.metric == "roc_auc"
    assert fraud.retrain.cooldown == timedelta(hours=12)
    assert s.models["demand"].metric == "rmse"
    assert s.models["demand"].lower_is_better


def test_settings_are_frozen(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, VALID), environ={})
    with pytest.raises(ValueError, match="frozen"):
        s.kafka.client_id = "x"  # type: ignore[misc]


def test_environment_overrides_the_file_and_arguments_override_both(tmp_path: Path) -> None:
    env = {
        "DRIFTLINE_KAFKA__BOOTSTRAP_SERVERS": "from-env:9092",
        "DRIFTLINE_TOPICS__INPUT_PARTITIONS": "24",
        "DRIFTLINE_MODELS__FRAUD__PANE": "1m",
        "UNRELATED": "x",
    }
    s = load_settings(write(tmp_path, VALID), environ=env)
    assert s.kafka.bootstrap_servers == "from-env:9092"
    assert s.topics.input_partitions == 24
    assert s.models["fraud"].pane == timedelta(minutes=1)
    assert s.models["fraud"].task == "binary"  # the rest of the file's model survives
    s = load_settings(
        write(tmp_path, VALID), environ=env, kafka={"bootstrap_servers": "from-args:9092"}
    )
    assert s.kafka.bootstrap_servers == "from-args:9092"


def test_config_path_comes_from_DRIFTLINE_CONFIG(tmp_path: Path) -> None:
    path = write(tmp_path, VALID)
    s = load_settings(environ={"DRIFTLINE_CONFIG": str(path)})
    assert "fraud" in s.models


def test_secrets_are_masked_when_shown_and_revealed_to_clients(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, VALID), environ={})
    shown = masked(s)
    assert shown["kafka"]["sasl_password"] == "**********"
    assert shown["influxdb"]["token"] == "**********"
    assert "hunter2" not in repr(s)
    assert "hunter2" not in str(shown)
    assert confluent_config(s.kafka)["sasl.password"] == "hunter2"
    assert confluent_config(s.kafka)["security.protocol"] == "SASL_SSL"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "kafka: {bootstrap_server: x}",
            "kafka.bootstrap_server: unknown setting; did you mean 'bootstrap_servers'?",
        ),
        (
            "kafka: {security_protocol: TLS}",
            "kafka.security_protocol: Input should be "
            "'PLAINTEXT', 'SSL', 'SASL_PLAINTEXT' or 'SASL_SSL'",
        ),
        (
            "kafka: {security_protocol: SASL_SSL}",
            "kafka: security_protocol SASL_SSL needs sasl_mechanism, sasl_username, sasl_password",
        ),
        ("influxdb: {url: influx:8086}", "influxdb.url: String should match pattern"),
        (
            "influxdb: {batch_size: 0}",
            "influxdb.batch_size: Input should be greater than or equal to 1",
        ),
        ("influxdb: {flush_interval: soon}", "influxdb.flush_interval: expected a duration"),
        ("topics: {input_partitions: 0}", "topics.input_partitions: Input should be greater"),
        ("topics: {dlq: 'bad name!'}", "topics: dlq: 'bad name!' is not a valid Kafka topic"),
        ("topics: {alerts: driftline.dlq}", "topics: alerts and dlq both name topic"),
        (
            "models: {fraud: {task: classification}}",
            "models.fraud.task: Input should be 'binary', 'multiclass' or 'regression'",
        ),
        ("models: {fraud: {}}", "models.fraud.task: Field required"),
        (
            "models: {fraud: {task: binary, features: {x: text}}}",
            "models.fraud.features.x: Input should be 'numeric' or 'categorical'",
        ),
        (
            "models: {fraud: {task: binary, windows: [{size: 90s}]}}",
            "windows.0.size (90s) must be a multiple of the pane (1m)",
        ),
        (
            "models: {fraud: {task: binary, windows: [{size: 1h, hop: 2h}]}}",
            "models.fraud.windows.0: hop must be positive and at most the window size",
        ),
        (
            "models: {fraud: {task: binary, performance: {metric: rmse}}}",
            "performance.metric 'rmse' does not fit task 'binary'; allowed: accuracy",
        ),
        (
            "models: {fraud: {task: binary, drift: {persistence_k: 4, persistence_n: 3}}}",
            "models.fraud.drift: persistence_k must be at most persistence_n",
        ),
        ("models: {fraud: {task: binary, drift: {fdr: 1.5}}}", "models.fraud.drift.fdr"),
        (
            "models: {fraud: {task: binary, drift: {thresholds: {psy: 0.2}}}}",
            "unknown test(s) ['psy']; allowed:",
        ),
        (
            "models: {fraud: {task: binary, drift: {thresholds: calibratd}}}",
            "models.fraud.drift.thresholds: must be 'fixed', 'calibrated' or",
        ),
        (
            "models: {fraud: {task: binary, drift: {false_positive_rate: 0.5}}}",
            "models.fraud.drift.false_positive_rate: Input should be less than or equal",
        ),
        (
            "models: {fraud: {task: binary, retrain: {policy: always}}}",
            "models.fraud.retrain.policy: Input should be 'never', 'on_drift'",
        ),
        ("log_level: LOUD", "log_level: Input should be 'DEBUG', 'INFO', 'WARNING' or 'ERROR'"),
        ("- just\n- a list", "file: the top level must be a mapping"),
        ("kafka: {bootstrap_servers: [unclosed", "file: not valid YAML"),
    ],
)
def test_invalid_setting_is_reported_with_its_field(
    tmp_path: Path, text: str, expected: str
) -> None:
    found = problems(tmp_path, text)
    assert any(expected in p for p in found), found


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    found = problems(tmp_path, "kafka: {client_id: ''}\ntopics: {output_partitions: -1}")
    assert len(found) == 2
    assert found[0].startswith("kafka.client_id")
    assert found[1].startswith("topics.output_partitions")


def test_bad_environment_override_is_named(tmp_path: Path) -> None:
    found = problems(tmp_path, VALID, DRIFTLINE_INFLUXDB__BATCH_SIZE="lots")
    assert any(p.startswith("influxdb.batch_size") for p in found)


def test_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"file: .*nope\.yaml does not exist"):
        load_settings(tmp_path / "nope.yaml", environ={})


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("250ms", 0.25),
        ("30s", 30),
        ("5m", 300),
        ("1.5h", 5400),
        ("7d", 604800),
        ("2w", 1209600),
        (12, 12),
        (0.5, 0.5),
    ],
)
def test_durations_parse(text: str | float, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["5 minutes", "-5s", "", "1y", True])
def test_bad_durations_are_rejected(text: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_settings_module_still_names_every_section_class() -> None:
    """The sections live in modules of their own; ``driftline.config.settings`` re-exports
    every public name of each, the same objects, so existing imports keep working."""
    import importlib

    import driftline.config.settings as settings_module

    for name in ("base", "influx", "kafka", "models", "monitor", "topics", "trainer"):
        section = importlib.import_module(f"driftline.config.{name}")
        for public in section.__all__:
            assert getattr(settings_module, public) is getattr(section, public), public
            assert public in settings_module.__all__, public
