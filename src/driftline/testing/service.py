"""A whole monitor on servers a test (or the demo) started itself: its configuration, the
reference of river's SEA model, and ``driftline monitor`` processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Literal

from driftline.detectors.profile import build_profile
from driftline.schemas.outputs import ModelVersionRegistered, utc_now
from driftline.testing.synthetic import sea_events

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


def loop_config(
    workdir: Path,
    *,
    bootstrap_servers: str,
    influx_url: str,
    name: str,
    models: dict[str, dict[str, Any]],
    log_level: str = "INFO",
) -> dict[str, Any]:
    """A whole loop's ``driftline.yaml`` (as a dict): :func:`service_config` with the trainer's
    store and the registry under ``workdir`` too (the loop tests and the demo share it).

    >>> raw = loop_config(Path("/w"), bootstrap_servers="b:1", influx_url="http://i", name="l",
    ...     models={})
    >>> raw["registry"]["root"], raw["trainer"]["store_dir"]
    ('/w/registry', '/w/trainer')
    """
    raw = service_config(
        bootstrap_servers=bootstrap_servers,
        influx_url=influx_url,
        state_dir=workdir / "state",
        name=name,
        models=models,
        flush_interval="200ms",
        log_level=log_level,
    )
    raw["trainer"] = {"store_dir": str(workdir / "trainer")}
    raw["registry"] = {"root": str(workdir / "registry")}
    return raw


def sea_reference(
    model: str = "sea", version: str = "1", *, rows: int = 20_000, seed: int = 1000
) -> ModelVersionRegistered:
    """The registration of a SEA model's reference: ``rows`` training events (features x1-x3,
    prediction, scores of classes 0 and 1, labels) drawn with ``seed``.

    >>> record = sea_reference("m", rows=500)
    >>> record.model, sorted(record.reference.features), record.reference.n_rows
    ('m', ['x1', 'x2', 'x3'], 500)
    """
    events = list(sea_events(rows, seed=seed))
    predictions = [e.prediction for e in events]
    profile = build_profile(
        model,
        version,
        "binary",
        {k: [p["features"][k] for p in predictions] for k in ("x1", "x2", "x3")},
        [p["prediction"] for p in predictions],
        scores={c: [p["scores"][c] for p in predictions] for c in ("0", "1")},
        labels=[e.ground_truth["label"] for e in events],
    )
    return ModelVersionRegistered(
        model=model,
        model_version=version,
        registered_at=utc_now(),
        source="cli",
        reference=profile,
    )


def start_monitor(
    part: Literal["run", "ingest", "merge", "write"],
    config: Path,
    log: Path,
    *,
    cwd: Path | None = None,
    ingest_processes: int | None = 1,
) -> subprocess.Popen[bytes]:
    """Start ``driftline monitor <part> --config <config>`` with its output appended to
    ``log`` (unbuffered, so a test reading the log sees what happened so far).

    ``run`` and ``ingest`` get ``--ingest-processes`` (None: the command's default, one per
    core); 1 unless asked, so that a test not about several stage-1 processes runs stage 1
    in the monitor's own process, whatever the machine's cores."""
    command = [sys.executable, "-m", "driftline", "monitor", part, "--config", str(config)]
    if part in ("run", "ingest") and ingest_processes is not None:
        command += ["--ingest-processes", str(ingest_processes)]
    with log.open("ab") as out:
        return subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


def stop_process(process: subprocess.Popen[bytes], grace: float) -> int | None:
    """SIGTERM, then SIGKILL if the process has not exited ``grace`` seconds later; returns
    its exit status, or None when it had to be killed. A child that would sleep a minute ends
    at once, by the SIGTERM:

    >>> stop_process(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]), 5)
    -15
    """
    if process.poll() is None:
        process.terminate()
    try:
        return process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)
        return None
