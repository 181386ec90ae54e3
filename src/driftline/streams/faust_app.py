"""How driftline builds a faust app: the settings every faust worker of driftline shares.

Stage 2 (:mod:`driftline.streams.stage2.agent`) and the trainer agent
(:mod:`driftline.trainer.agent`) are faust apps over raw bytes (they decode what they consume
themselves: a poison message must go to the dead-letter topic, not crash the agent), on the
aiokafka transport with the Kafka security of :mod:`driftline.kafka_auth`, declaring no
topics (``driftline topics create`` makes them), with a short session timeout (failover is
faster, and Tansu delays every group join in proportion to it, DESIGN §6).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import faust

from driftline.config import Settings
from driftline.kafka_auth import faust_brokers, faust_credentials

__all__ = ["new_app"]


def new_app(
    app_id: str,
    settings: Settings,
    *,
    datadir: Path,
    session_timeout: timedelta,
    **options: Any,
) -> faust.App:
    """A faust app with driftline's common settings; ``options`` adds or overrides faust
    settings (web server, stream and producer tuning). Heartbeats run every third of the
    session timeout, at most every 3 s."""
    seconds = session_timeout.total_seconds()
    common: dict[str, Any] = {
        "broker": faust_brokers(settings.kafka),
        "broker_credentials": faust_credentials(settings.kafka),
        "broker_client_id": settings.kafka.client_id,
        "key_serializer": "raw",
        "value_serializer": "raw",
        "autodiscover": False,
        "store": "memory://",
        "topic_allow_declare": False,
        "topic_disable_leader": True,
        "consumer_auto_offset_reset": "earliest",
        "broker_session_timeout": seconds,
        "broker_heartbeat_interval": min(3.0, seconds / 3),
        "datadir": datadir,
    }
    return faust.App(app_id, **{**common, **options})
