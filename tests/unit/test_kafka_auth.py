"""One KafkaSettings, two client libraries: confluent-kafka's properties and faust's
credentials say the same thing."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import faust.auth  # noqa: F401  (imported before the TLS context is replaced: it builds its own)
import pytest

from driftline.config import KafkaSettings
from driftline.errors import ConfigError
from driftline.kafka_auth import confluent_config, faust_brokers, faust_credentials


class RecordingContext:
    """Stands in for the TLS context: what it was built from, without certificate files."""

    def __init__(self, cafile: str | None = None) -> None:
        self.cafile = cafile
        self.chain: tuple[str, str, str | None] | None = None

    def load_cert_chain(self, certfile: str, keyfile: str, password: str | None) -> None:
        self.chain = (certfile, keyfile, password)


SECURITY = {
    "plaintext": {},
    "tls with a client certificate": {
        "security_protocol": "SSL",
        "ssl_ca_location": "/etc/kafka/ca.pem",
        "ssl_certificate_location": "/etc/kafka/client.pem",
        "ssl_key_location": "/etc/kafka/client.key",
        "ssl_key_password": "key-secret",
    },
    "tls with the system's CAs": {"security_protocol": "SSL"},
    "sasl plain": {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_username": "monitor",
        "sasl_password": "secret",
    },
    "sasl over tls": {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_username": "monitor",
        "sasl_password": "secret",
        "ssl_ca_location": "/etc/kafka/ca.pem",
    },
}


@pytest.mark.parametrize("fields", SECURITY.values(), ids=SECURITY.keys())
def test_both_libraries_get_the_same_security_settings(
    fields: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ssl, "create_default_context", RecordingContext)
    kafka = KafkaSettings(bootstrap_servers="a:9092,b:9093", **fields)
    librdkafka = confluent_config(kafka)
    credentials = faust_credentials(kafka)

    assert faust_brokers(kafka) == [
        f"kafka://{h}" for h in librdkafka["bootstrap.servers"].split(",")
    ]
    protocol = librdkafka["security.protocol"]
    if protocol == "PLAINTEXT":
        assert credentials is None
        assert not any(key.startswith(("sasl.", "ssl.")) for key in librdkafka)
        return
    assert credentials.protocol.value == protocol
    if protocol.startswith("SASL"):
        assert (credentials.mechanism.value, credentials.username, credentials.password) == (
            librdkafka["sasl.mechanism"],
            librdkafka["sasl.username"],
            librdkafka["sasl.password"],
        )
    else:
        assert not any(key.startswith("sasl.") for key in librdkafka)
    context = credentials.context if protocol == "SSL" else credentials.ssl_context
    if protocol == "SASL_PLAINTEXT":
        assert context is None
        assert not any(key.startswith("ssl.") for key in librdkafka)
        return
    assert context.cafile == librdkafka.get("ssl.ca.location")
    certificate = librdkafka.get("ssl.certificate.location")
    expected_chain = (
        None
        if certificate is None
        else (certificate, librdkafka["ssl.key.location"], librdkafka["ssl.key.password"])
    )
    assert context.chain == expected_chain


def test_security_settings_become_faust_credentials() -> None:
    assert faust_credentials(KafkaSettings()) is None
    sasl = faust_credentials(
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
    tls = faust_credentials(
        KafkaSettings(
            security_protocol="SASL_SSL",
            sasl_mechanism="PLAIN",
            sasl_username="u",
            sasl_password="p",
        )
    )
    assert tls.protocol.value == "SASL_SSL"
    assert tls.ssl_context is not None


def test_librdkafka_extras_reach_only_the_confluent_clients_and_may_override() -> None:
    kafka = KafkaSettings(librdkafka={"socket.keepalive.enable": True, "client.id": "other"})
    config = confluent_config(kafka)
    assert config["socket.keepalive.enable"] is True
    assert config["client.id"] == "other"
    assert faust_credentials(kafka) is None


def test_paths_become_strings_for_librdkafka(tmp_path: Path) -> None:
    kafka = KafkaSettings(security_protocol="SSL", ssl_ca_location=tmp_path / "ca.pem")
    assert confluent_config(kafka)["ssl.ca.location"] == str(tmp_path / "ca.pem")


def _as_librdkafka(fields: dict[str, Any]) -> dict[str, Any]:
    """The same security settings given as librdkafka pass-through properties."""
    return {key.replace("_", "."): str(value) for key, value in fields.items()}


@pytest.mark.parametrize("fields", SECURITY.values(), ids=SECURITY.keys())
def test_security_given_through_librdkafka_reaches_stage_2_as_if_typed(
    fields: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both clients' effective configuration is the same whichever way security is given."""
    monkeypatch.setattr(ssl, "create_default_context", RecordingContext)
    typed = KafkaSettings(**fields)
    passed = KafkaSettings(librdkafka=_as_librdkafka(fields))
    assert confluent_config(passed) == confluent_config(typed)
    a, b = faust_credentials(typed), faust_credentials(passed)
    assert type(a) is type(b)
    if a is None:
        return
    assert vars(b).keys() == vars(a).keys()
    for name, value in vars(a).items():
        other = vars(b)[name]
        if isinstance(value, RecordingContext):
            assert (other.cafile, other.chain) == (value.cafile, value.chain), name
        else:
            assert other == value, name
    assert (a.protocol, a.mechanism if hasattr(a, "mechanism") else None) == (
        b.protocol,
        b.mechanism if hasattr(b, "mechanism") else None,
    )


def test_tls_verification_properties_reach_stage_2() -> None:
    kafka = KafkaSettings(
        librdkafka={
            "security.protocol": "SSL",
            "ssl.endpoint.identification.algorithm": "none",
        }
    )
    credentials = faust_credentials(kafka)
    assert credentials.context.check_hostname is False
    assert credentials.context.verify_mode == ssl.CERT_REQUIRED
    insecure = KafkaSettings(
        librdkafka={"security.protocol": "SSL", "enable.ssl.certificate.verification": False}
    )
    assert faust_credentials(insecure).context.verify_mode == ssl.CERT_NONE


def test_bootstrap_servers_given_through_librdkafka_reach_stage_2() -> None:
    kafka = KafkaSettings(librdkafka={"bootstrap.servers": "x:1,y:2"})
    assert faust_brokers(kafka) == ["kafka://x:1", "kafka://y:2"]


@pytest.mark.parametrize(
    "librdkafka",
    [
        {"sasl.oauthbearer.client.secret": "TOPSECRET", "sasl.oauthbearer.method": "oidc"},
        {"ssl.key.pem": "-----BEGIN PRIVATE KEY-----TOPSECRET"},
        {"ssl.keystore.location": "/k.p12", "ssl.keystore.password": "TOPSECRET"},
    ],
)
def test_a_security_property_stage_2_cannot_honour_stops_it_by_name(
    librdkafka: dict[str, str],
) -> None:
    kafka = KafkaSettings(librdkafka=librdkafka)
    with pytest.raises(ConfigError) as caught:
        faust_credentials(kafka)
    message = str(caught.value)
    for key in librdkafka:
        assert f"kafka.librdkafka.{key}: stage 2 (faust on aiokafka) cannot honour" in message
    assert "TOPSECRET" not in message


def test_a_sasl_mechanism_stage_2_cannot_honour_stops_it() -> None:
    kafka = KafkaSettings(
        librdkafka={"security.protocol": "SASL_SSL", "sasl.mechanism": "OAUTHBEARER"}
    )
    with pytest.raises(ConfigError, match=r"kafka.librdkafka.sasl.mechanism: stage 2"):
        faust_credentials(kafka)


def test_monitor_merge_refuses_to_start_on_an_unhonoured_property(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from driftline.cli import app

    path = tmp_path / "driftline.yaml"
    path.write_text(
        "kafka: {bootstrap_servers: '127.0.0.1:1', "
        "librdkafka: {sasl.oauthbearer.client.secret: TOPSECRET}}\n"
        "monitor: {metrics_port: null}\n"
    )
    for part in ("merge", "run"):
        result = CliRunner().invoke(app, ["monitor", part, "--config", str(path)])
        assert result.exit_code == 2, result.output
        assert "kafka.librdkafka.sasl.oauthbearer.client.secret" in result.output
        assert "TOPSECRET" not in result.output
