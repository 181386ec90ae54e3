"""The ``kafka`` section: how every driftline client connects to Kafka and authenticates."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator

from driftline.config.base import Section
from driftline.config.secrets import is_secret_key

__all__ = ["KafkaSettings"]


class KafkaSettings(Section):
    """How every driftline client connects to Kafka (:mod:`driftline.kafka_auth` maps it to
    each client library's settings)."""

    bootstrap_servers: str = Field("localhost:9092", min_length=1)
    client_id: str = Field("driftline", min_length=1)
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: Path | None = None
    ssl_certificate_location: Path | None = None
    ssl_key_location: Path | None = None
    ssl_key_password: SecretStr | None = None
    replication_factor: int = Field(1, ge=1, le=32)
    librdkafka: dict[str, str | int | float | bool | SecretStr] = Field(
        default_factory=dict,
        description="Extra librdkafka properties, passed as they are to every confluent-kafka "
        "client; the security ones stage 2 (aiokafka) understands reach it too, any other "
        "security one stops stage 2 at start-up (driftline.kafka_auth). Values of secret "
        "keys (driftline.config.secrets.is_secret_key) are kept as secrets, printed masked.",
    )

    @field_validator("librdkafka")
    @classmethod
    def _secret_values(
        cls, value: dict[str, str | int | float | bool | SecretStr]
    ) -> dict[str, str | int | float | bool | SecretStr]:
        return {
            key: SecretStr(str(item))
            if is_secret_key(key) and not isinstance(item, SecretStr)
            else item
            for key, item in value.items()
        }

    @model_validator(mode="after")
    def _security_complete(self) -> Self:
        if self.security_protocol.startswith("SASL"):
            missing = [
                name
                for name in ("sasl_mechanism", "sasl_username", "sasl_password")
                if getattr(self, name) is None
            ]
            if missing:
                raise ValueError(
                    f"security_protocol {self.security_protocol} needs {', '.join(missing)}"
                )
        if (self.ssl_certificate_location is None) != (self.ssl_key_location is None):
            raise ValueError(
                "ssl_certificate_location and ssl_key_location go together: set both or neither"
            )
        return self
