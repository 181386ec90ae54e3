"""Secrets never printed: the pass-through key rule, ``config show``, reprs, error messages
and log lines."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from driftline import logs
from driftline.cli import app
from driftline.cli._common import fail
from driftline.config import Settings, is_secret_key, load_settings, masked
from driftline.errors import ConfigError, TopicError
from driftline.kafka_auth import confluent_config

SECRET = "TOPSECRET-c1ient"

runner = CliRunner()


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("sasl.oauthbearer.client.secret", True),
        ("sasl.password", True),
        ("ssl.key.password", True),
        ("ssl.keystore.password", True),
        ("ssl.key.pem", True),
        ("sasl.oauthbearer.assertion.private.key.passphrase", True),
        ("sasl.oauthbearer.config", True),
        ("http.api_token", True),
        ("schema.registry.basic.auth.credentials", True),
        ("ssl.key.location", False),
        ("ssl.keystore.location", False),
        ("key.serializer", False),
        ("sasl.username", False),
        ("linger.ms", False),
        ("fetch.queue.backoff.ms", False),
    ],
)
def test_the_secret_rule_picks_secret_keys_and_leaves_harmless_ones(key: str, secret: bool) -> None:
    assert is_secret_key(key) is secret


def test_pass_through_secrets_are_masked_in_config_show_and_reprs_yet_reach_the_client(
    tmp_path: Path,
) -> None:
    path = tmp_path / "driftline.yaml"
    path.write_text(
        f"kafka:\n  librdkafka:\n    sasl.oauthbearer.client.secret: {SECRET}\n    linger.ms: 5\n"
    )
    result = runner.invoke(app, ["config", "show", str(path)])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)["kafka"]["librdkafka"]
    assert shown == {"sasl.oauthbearer.client.secret": "**********", "linger.ms": 5}
    assert SECRET not in result.output
    settings = load_settings(path, environ={})
    assert SECRET not in repr(settings)
    assert SECRET not in str(masked(settings))
    assert SECRET not in settings.model_dump_json()
    assert confluent_config(settings.kafka)["sasl.oauthbearer.client.secret"] == SECRET
    assert confluent_config(settings.kafka)["linger.ms"] == 5


@pytest.mark.parametrize(
    "text",
    [
        "kafka: {sasl_password: 987654321987}",  # not a string: pydantic quotes the input
        "influxdb: {token: 987654321987}",
    ],
)
def test_a_config_error_on_a_secret_does_not_quote_it(tmp_path: Path, text: str) -> None:
    path = tmp_path / "driftline.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    assert "987654321987" not in str(caught.value)
    assert "987654321987" not in repr(caught.value)
    result = runner.invoke(app, ["config", "check", str(path)])
    assert result.exit_code == 2
    assert "987654321987" not in result.output
    assert "(given: **********)" in result.output


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_log_lines_redact_the_configured_secrets(fmt: str, monkeypatch: pytest.MonkeyPatch) -> None:
    load_settings(
        None,
        environ={},
        kafka={"librdkafka": {"sasl.password": 'pa"ss' + SECRET, "ssl.key.password": SECRET}},
    )
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", list(root.handlers))
    monkeypatch.setattr(root, "level", root.level)
    logs.configure("INFO", fmt)
    stream = io.StringIO()
    handler = root.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    monkeypatch.setattr(handler, "stream", stream)
    log = logging.getLogger("driftline.test")
    log.warning("auth failed with %s", 'pa"ss' + SECRET, extra={"detail": SECRET})
    try:
        raise TopicError(f"broker said: bad password {SECRET}")
    except TopicError:
        log.exception("failed")
    output = stream.getvalue()
    assert "auth failed" in output
    assert "broker said" in output
    assert SECRET not in output


def test_the_command_line_redacts_secrets_from_the_errors_it_prints(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A library error that quotes a configured secret is printed redacted."""
    load_settings(None, environ={}, influxdb={"token": SECRET})
    stopped = fail(TopicError(f"broker said: bad password {SECRET}"))
    assert stopped.exit_code == 1
    printed = capsys.readouterr().err
    assert "broker said: bad password **********" in printed
    assert SECRET not in printed


def test_settings_reprs_mask_every_secret() -> None:
    settings = Settings(kafka={"librdkafka": {"ssl.key.pem": SECRET}}, influxdb={"token": SECRET})
    assert SECRET not in repr(settings)
    assert SECRET not in str(settings)
    assert SECRET not in repr(settings.kafka.librdkafka)
