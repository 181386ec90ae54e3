"""How every Kafka client driftline creates connects and authenticates.

driftline reaches Kafka through two libraries: confluent-kafka (librdkafka) for stage 1, the
profile registry, topic creation, :class:`~driftline.client.DriftlineProducer`, the InfluxDB
writer and the demo, and aiokafka under faust for stage 2. Both get the broker addresses, the
client id and the security settings from here, out of one
:class:`~driftline.config.settings.KafkaSettings`, so the two cannot disagree; each client adds
only the keys of its own role (group, acknowledgements, batching).

``kafka.librdkafka`` (extra librdkafka properties) has no aiokafka equivalent: it reaches the
confluent-kafka clients only.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from driftline.config.settings import KafkaSettings

if TYPE_CHECKING:
    from faust.types.auth import CredentialsT

__all__ = ["confluent_config", "faust_brokers", "faust_credentials", "ssl_context"]


def confluent_config(kafka: KafkaSettings) -> dict[str, Any]:
    """librdkafka properties for a confluent-kafka client (secrets revealed).

    The connection and security settings, then ``kafka.librdkafka`` as given (it may
    override them). Callers add their client's own keys to a copy.

    >>> confluent_config(KafkaSettings(bootstrap_servers="broker:9092"))
    {'bootstrap.servers': 'broker:9092', 'client.id': 'driftline', 'security.protocol': 'PLAINTEXT'}
    """
    config: dict[str, Any] = {
        "bootstrap.servers": kafka.bootstrap_servers,
        "client.id": kafka.client_id,
        "security.protocol": kafka.security_protocol,
    }
    optional: dict[str, Any] = {
        "sasl.mechanism": kafka.sasl_mechanism,
        "sasl.username": kafka.sasl_username,
        "sasl.password": _reveal(kafka.sasl_password),
        "ssl.ca.location": kafka.ssl_ca_location,
        "ssl.certificate.location": kafka.ssl_certificate_location,
        "ssl.key.location": kafka.ssl_key_location,
        "ssl.key.password": _reveal(kafka.ssl_key_password),
    }
    config.update({k: str(v) for k, v in optional.items() if v is not None})
    config.update(kafka.librdkafka)
    return config


def faust_brokers(kafka: KafkaSettings) -> list[str]:
    """faust's broker URLs (aiokafka transport) for the bootstrap servers.

    >>> faust_brokers(KafkaSettings(bootstrap_servers="a:9092, b:9092"))
    ['kafka://a:9092', 'kafka://b:9092']
    """
    return [f"kafka://{host.strip()}" for host in kafka.bootstrap_servers.split(",")]


def ssl_context(kafka: KafkaSettings) -> ssl.SSLContext:
    """The TLS context of the security settings: the CA file (or the system's CAs) and the
    client certificate and key, when set."""
    cafile = None if kafka.ssl_ca_location is None else str(kafka.ssl_ca_location)
    context = ssl.create_default_context(cafile=cafile)
    if kafka.ssl_certificate_location is not None and kafka.ssl_key_location is not None:
        context.load_cert_chain(
            str(kafka.ssl_certificate_location),
            str(kafka.ssl_key_location),
            _reveal(kafka.ssl_key_password),
        )
    return context


def faust_credentials(kafka: KafkaSettings) -> CredentialsT | None:
    """faust's ``broker_credentials`` for the security settings (None for PLAINTEXT)."""
    # Imported here: the confluent-kafka clients (the producer library in a model's service,
    # stage 1) use this module too and should not load faust and aiokafka with it.
    from faust.auth import SASLCredentials, SSLCredentials

    protocol = kafka.security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = ssl_context(kafka) if protocol in ("SSL", "SASL_SSL") else None
    if protocol == "SSL":
        return SSLCredentials(context)
    return SASLCredentials(
        username=kafka.sasl_username,
        password=_reveal(kafka.sasl_password),
        ssl_context=context,
        mechanism=kafka.sasl_mechanism,
    )


def _reveal(secret: SecretStr | None) -> str | None:
    # An empty secret counts as unset, as it always has for both libraries.
    return secret.get_secret_value() if secret else None
