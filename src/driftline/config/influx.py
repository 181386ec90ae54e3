"""The ``influxdb`` section: where metric points go, and how they are batched."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, SecretStr

from driftline.config.base import Duration, Section

__all__ = ["InfluxSettings"]


class InfluxSettings(Section):
    """Where metric points go: an InfluxDB v2 write API."""

    url: str = Field("http://localhost:8086", pattern=r"^https?://")
    org: str = Field("driftline", min_length=1)
    bucket: str = Field("driftline", min_length=1)
    token: SecretStr = SecretStr("")
    batch_size: int = Field(5000, ge=1, le=100_000)
    flush_interval: Duration = timedelta(seconds=1)
    timeout: Duration = timedelta(seconds=10)
    gzip: bool = True
