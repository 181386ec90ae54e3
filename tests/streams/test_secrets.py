"""No secret leaves a running monitor: its logs, ``/metrics``, ``/healthz``, ``config show``,
configuration errors and exception reprs are scanned for every configured secret, against the
real broker and VictoriaMetrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from driftline.cli import app
from driftline.config import KafkaSettings, TopicSettings, load_settings
from driftline.errors import ConfigError
from driftline.kafka_auth import confluent_config, faust_credentials
from driftline.testing import free_port
from driftline.testing.service import start_monitor, stop_process
from driftline.topics import create_topics
from tests.streams.scrape import get, wait_healthy

SECRETS = {
    "influx": "TOPSECRET-influx-7f3a",
    "sasl": "TOPSECRET-sasl-91c2",
    "key": "TOPSECRET-keypass-c0d4",
    "oauth": "TOPSECRET-oauth-5e8b",
}

runner = CliRunner(env={"COLUMNS": "200"})


def leaked(text: str) -> list[str]:
    return [name for name, secret in SECRETS.items() if secret in text]


def test_no_configured_secret_appears_anywhere_a_monitor_prints(
    kafka: KafkaSettings, topics: TopicSettings, metrics_server: Any, tmp_path: Path
) -> None:
    create_topics(kafka, topics)
    port = free_port()
    base_config = {
        "kafka": {
            "bootstrap_servers": kafka.bootstrap_servers,
            # Security properties that both clients honour (ignored on PLAINTEXT): they
            # reach librdkafka and aiokafka alike.
            "librdkafka": {"sasl.password": SECRETS["sasl"], "ssl.key.password": SECRETS["key"]},
        },
        "topics": topics.model_dump(),
        "influxdb": {
            "url": metrics_server.url,
            "org": getattr(metrics_server, "org", "driftline"),
            "bucket": getattr(metrics_server, "bucket", "driftline"),
            "token": SECRETS["influx"],
        },
        "monitor": {
            "group_id": f"secrets-{topics.summaries.split('.')[0]}",
            "state_dir": str(tmp_path / "state"),
            "metrics_port": port,
        },
        "log_level": "DEBUG",
        "log_format": "json",
    }
    config = tmp_path / "driftline.yaml"
    config.write_text(json.dumps(base_config))  # JSON is YAML
    printed: dict[str, str] = {}

    # A whole monitor, at DEBUG: its log, /metrics and /healthz.
    log_path = tmp_path / "monitor.log"
    proc = start_monitor("run", config, log_path, cwd=tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(proc, base, log_path)
        printed["/metrics"] = get(base + "/metrics")[1].decode()
        printed["/healthz"] = get(base + "/healthz")[1].decode()
    finally:
        stop_process(proc, 60)
    printed["log"] = log_path.read_text(errors="replace")
    assert "serving /metrics" in printed["log"]
    assert "driftline_ingest" in printed["/metrics"]

    # config show, and the configuration as Python shows it.
    shown = runner.invoke(app, ["config", "show", str(config)])
    assert shown.exit_code == 0, shown.output
    printed["config show"] = shown.output
    settings = load_settings(config, environ={})
    printed["repr(settings)"] = repr(settings)
    printed["repr(faust credentials)"] = repr(faust_credentials(settings.kafka))
    assert confluent_config(settings.kafka)["sasl.password"] == SECRETS["sasl"]

    # A configuration error on a secret, and a property stage 2 cannot honour.
    bad = tmp_path / "bad.yaml"
    bad.write_text(json.dumps({**base_config, "influxdb": {"token": 20260101}}))
    checked = runner.invoke(app, ["config", "check", str(bad)])
    assert checked.exit_code == 2
    printed["config check"] = checked.output
    with pytest.raises(ConfigError) as caught:
        load_settings(bad, environ={})
    printed["repr(ConfigError)"] = repr(caught.value)
    unhonoured = tmp_path / "oauth.yaml"
    kafka_oauth = {
        **base_config["kafka"],
        "librdkafka": {"sasl.oauthbearer.client.secret": SECRETS["oauth"]},
    }
    unhonoured.write_text(json.dumps({**base_config, "kafka": kafka_oauth}))
    refused = runner.invoke(app, ["monitor", "merge", "--config", str(unhonoured)])
    assert refused.exit_code == 2, refused.output
    assert "kafka.librdkafka.sasl.oauthbearer.client.secret" in refused.output
    printed["monitor merge refused"] = refused.output

    assert "20260101" not in printed["config check"]
    assert "20260101" not in printed["repr(ConfigError)"]
    leaks = {where: leaked(text) for where, text in printed.items() if leaked(text)}
    assert leaks == {}
