"""One KafkaSettings, two client libraries: confluent-kafka's properties and faust's
credentials say the same thing."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import faust.auth  # noqa: F401  (imported before the TLS context is replaced: it builds its own)
import pytest

from driftline.config import KafkaSettings
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
