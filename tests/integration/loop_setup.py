"""The configuration of a whole loop (monitor, trainer, registry) on a test's own servers,
shared by the loop and rollout tests: written as YAML for the processes, topics created."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from driftline.config import Settings
from driftline.testing.servers import TansuBroker, VictoriaMetrics
from driftline.testing.service import loop_config
from driftline.topics import create_topics


def loop_settings(
    tmp_path: Path,
    broker: TansuBroker,
    victoria: VictoriaMetrics,
    name: str,
    models: dict[str, Any],
) -> tuple[Settings, Path]:
    """Settings of a loop named ``name`` with trainer and registry under ``tmp_path``, the
    path of their YAML file, and every topic created."""
    raw = loop_config(
        tmp_path,
        bootstrap_servers=broker.bootstrap_servers,
        influx_url=victoria.url,
        name=name,
        models=models,
    )
    settings = Settings(**raw)
    config = tmp_path / "driftline.yaml"
    config.write_text(yaml.safe_dump(raw))
    create_topics(settings.kafka, settings.topics)
    return settings, config
