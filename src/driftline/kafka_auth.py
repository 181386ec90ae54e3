"""How every Kafka client driftline creates connects and authenticates.

driftline reaches Kafka through two libraries: confluent-kafka (librdkafka) for stage 1, the
profile registry, topic creation, :class:`~driftline.client.DriftlineProducer`, the InfluxDB
writer and the demo, and aiokafka under faust for stage 2. Both get the broker addresses, the
client id and the security settings from here, out of one
:class:`~driftline.config.settings.KafkaSettings`, so the two cannot disagree; each client adds
only the keys of its own role (group, acknowledgements, batching).

One effective configuration, :func:`confluent_config` (the typed settings, then
``kafka.librdkafka`` over them), is the source of both: stage 2's credentials are read from it,
so a security property given through ``kafka.librdkafka`` reaches aiokafka too. The librdkafka
security properties aiokafka can honour are mapped (:data:`STAGE2_SECURITY_KEYS`); any other
security property (``security.*``, ``sasl.*``, ``ssl.*``, ``enable.ssl.*``: OAUTHBEARER/OIDC,
in-memory PEM keys, keystores, Kerberos beyond the service name) stops stage 2 at start-up with a
:class:`~driftline.errors.ConfigError` naming it, rather than letting stage 2 connect without it.
Non-security properties (``linger.ms``, ``fetch.queue.backoff.ms``) tune the confluent-kafka
clients only; stage 2 has its own tuning and logs the ones it leaves to them.
"""

from __future__ import annotations

import logging
import ssl
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from driftline.config.settings import KafkaSettings
from driftline.errors import ConfigError, ConfigProblem

if TYPE_CHECKING:
    from faust.types.auth import CredentialsT

__all__ = [
    "STAGE2_SECURITY_KEYS",
    "confluent_config",
    "faust_brokers",
    "faust_credentials",
    "ssl_context",
]

log = logging.getLogger(__name__)

STAGE2_SECURITY_KEYS = frozenset(
    {
        "security.protocol",
        "sasl.mechanism",
        "sasl.mechanisms",
        "sasl.username",
        "sasl.password",
        "sasl.kerberos.service.name",
        "ssl.ca.location",
        "ssl.certificate.location",
        "ssl.key.location",
        "ssl.key.password",
        "ssl.endpoint.identification.algorithm",
        "enable.ssl.certificate.verification",
        "ssl.cipher.suites",
    }
)
"""The librdkafka security properties stage 2 (faust, aiokafka) honours, mapped to its
credentials and TLS context."""

_SECURITY_PREFIXES = ("security.", "sasl.", "ssl.", "ssl_", "enable.ssl.")
_STAGE2_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "GSSAPI")


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
    config.update(
        {
            key: value.get_secret_value() if isinstance(value, SecretStr) else value
            for key, value in kafka.librdkafka.items()
        }
    )
    return config


def faust_brokers(kafka: KafkaSettings) -> list[str]:
    """faust's broker URLs (aiokafka transport) for the effective bootstrap servers.

    >>> faust_brokers(KafkaSettings(bootstrap_servers="a:9092, b:9092"))
    ['kafka://a:9092', 'kafka://b:9092']
    """
    servers = str(confluent_config(kafka)["bootstrap.servers"])
    return [f"kafka://{host.strip()}" for host in servers.split(",")]


def ssl_context(kafka: KafkaSettings) -> ssl.SSLContext:
    """The TLS context of the effective security settings: the CA file (or the system's CAs),
    the client certificate and key when set, hostname and certificate verification."""
    return _ssl_context(confluent_config(kafka))


def _ssl_context(config: dict[str, Any]) -> ssl.SSLContext:
    ca = config.get("ssl.ca.location")
    cafile = None if ca in (None, "probe") else str(ca)
    context = ssl.create_default_context(cafile=cafile)
    certificate, key = config.get("ssl.certificate.location"), config.get("ssl.key.location")
    if (certificate is None) != (key is None):
        raise ConfigError(
            [
                ConfigProblem(
                    "kafka.librdkafka",
                    "ssl.certificate.location and ssl.key.location go together: set both or "
                    "neither",
                )
            ]
        )
    if certificate is not None and key is not None:
        password = config.get("ssl.key.password")
        context.load_cert_chain(str(certificate), str(key), password and str(password))
    if str(config.get("ssl.endpoint.identification.algorithm", "https")).lower() == "none":
        context.check_hostname = False
    if str(config.get("enable.ssl.certificate.verification", True)).lower() in ("false", "0"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if "ssl.cipher.suites" in config:
        context.set_ciphers(str(config["ssl.cipher.suites"]))
    return context


def _refuse_unhonoured(kafka: KafkaSettings) -> None:
    """Stop, naming them, on pass-through security properties stage 2 cannot honour; log the
    other pass-through properties, which tune the confluent-kafka clients only."""
    unhonoured = sorted(
        key
        for key in kafka.librdkafka
        if key.lower().startswith(_SECURITY_PREFIXES) and key not in STAGE2_SECURITY_KEYS
    )
    if unhonoured:
        raise ConfigError(
            [
                ConfigProblem(
                    f"kafka.librdkafka.{key}",
                    "stage 2 (faust on aiokafka) cannot honour this security property and "
                    "would connect without it; remove it, or use a property stage 2 maps: "
                    + ", ".join(sorted(STAGE2_SECURITY_KEYS)),
                )
                for key in unhonoured
            ]
        )
    tuning = sorted(k for k in kafka.librdkafka if not k.lower().startswith(_SECURITY_PREFIXES))
    if tuning:
        log.info("kafka.librdkafka %s tune the confluent-kafka clients only", ", ".join(tuning))


def faust_credentials(kafka: KafkaSettings) -> CredentialsT | None:
    """faust's ``broker_credentials`` for the effective security settings (None for
    PLAINTEXT); raises :class:`ConfigError` for security properties stage 2 cannot honour."""
    # Imported here: the confluent-kafka clients (the producer library in a model's service,
    # stage 1) use this module too and should not load faust and aiokafka with it.
    from faust.auth import GSSAPICredentials, SASLCredentials, SSLCredentials

    _refuse_unhonoured(kafka)
    config = confluent_config(kafka)
    protocol = str(config["security.protocol"]).upper()
    if protocol not in ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"):
        raise ConfigError(
            [ConfigProblem("kafka.librdkafka.security.protocol", "unknown protocol", protocol)]
        )
    if protocol == "PLAINTEXT":
        return None
    context = _ssl_context(config) if protocol in ("SSL", "SASL_SSL") else None
    if protocol == "SSL":
        return SSLCredentials(context)
    # librdkafka's own default mechanism is GSSAPI.
    mechanism = str(config.get("sasl.mechanism", config.get("sasl.mechanisms", "GSSAPI")))
    if mechanism.upper() not in _STAGE2_MECHANISMS:
        raise ConfigError(
            [
                ConfigProblem(
                    "kafka.librdkafka.sasl.mechanism",
                    "stage 2 (faust on aiokafka) supports " + ", ".join(_STAGE2_MECHANISMS),
                    mechanism,
                )
            ]
        )
    credentials: CredentialsT
    if mechanism.upper() == "GSSAPI":
        service = str(config.get("sasl.kerberos.service.name", "kafka"))
        credentials = GSSAPICredentials(kerberos_service_name=service, ssl_context=context)
    else:
        credentials = SASLCredentials(
            username=config.get("sasl.username"),
            password=config.get("sasl.password"),
            ssl_context=context,
            mechanism=mechanism.upper(),
        )
    return credentials


def _reveal(secret: SecretStr | None) -> str | None:
    # An empty secret counts as unset, as it always has for both libraries.
    return secret.get_secret_value() if secret else None
