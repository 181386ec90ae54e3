"""The configuration of a whole monitor on servers a test (or the demo) started itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

SEA_MODEL: dict[str, Any] = {
    "task": "binary",
    "pane": "1m",
    "windows": [{"size": "10m"}],
    "allowed_lateness": "1m",
    "drift": {"min_samples": 500},
    "performance": {"metric": "accuracy", "max_drop": 0.05, "min_labels": 500},
    "retrain": {"policy": "on_either", "cooldown": "1h"},
}
"""How the demo and the end-to-end tests watch a model of river's SEA stream: one-minute
panes, ten-minute windows, a minute of lateness, accuracy with a 5-point budget."""


def service_config(
    *,
    bootstrap_servers: str,
    influx_url: str,
    state_dir: Path,
    name: str,
    models: dict[str, dict[str, Any]],
    flush_interval: str = "500ms",
    log_level: str = "INFO",
) -> dict[str, Any]:
    """A ``driftline.yaml`` (as a dict) for ``monitor run``: four input partitions, two for
    the outputs, no metrics port; ``name`` is the client id and the consumer groups' prefix.

    >>> config = service_config(bootstrap_servers="127.0.0.1:9092", influx_url="http://i",
    ...     state_dir=Path("/s"), name="t", models={"sea": {**SEA_MODEL, "idle_timeout": "3s"}})
    >>> config["monitor"]["group_id"], config["models"]["sea"]["idle_timeout"]
    ('t', '3s')
    """
    return {
        "kafka": {"bootstrap_servers": bootstrap_servers, "client_id": name},
        "influxdb": {
            "url": influx_url,
            "token": "unused",
            "org": "driftline",
            "bucket": "driftline",
            "flush_interval": flush_interval,
        },
        "topics": {"input_partitions": 4, "output_partitions": 2},
        "monitor": {"state_dir": str(state_dir), "metrics_port": None, "group_id": name},
        "models": models,
        "log_level": log_level,
    }
