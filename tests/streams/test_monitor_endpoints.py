"""`driftline monitor run` serves stage 1, stage 2 and the writer on one endpoint, against
the real broker and VictoriaMetrics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from driftline.config import KafkaSettings, TopicSettings
from driftline.testing import free_port
from driftline.testing.service import start_monitor, stop_process
from driftline.topics import create_topics
from tests.streams.scrape import sample, scrape, wait_healthy


def test_monitor_run_serves_every_part_on_one_endpoint_and_is_healthy_once_all_run(
    kafka: KafkaSettings, topics: TopicSettings, metrics_server: Any, tmp_path: Path
) -> None:
    create_topics(kafka, topics)
    port = free_port()
    config = tmp_path / "driftline.yaml"
    config.write_text(  # JSON is YAML
        json.dumps(
            {
                "kafka": {"bootstrap_servers": kafka.bootstrap_servers},
                "topics": topics.model_dump(),
                "influxdb": {
                    "url": metrics_server.url,
                    "org": getattr(metrics_server, "org", "driftline"),
                    "bucket": getattr(metrics_server, "bucket", "driftline"),
                    "token": getattr(metrics_server, "token", "unused"),
                },
                "monitor": {
                    "group_id": f"run-{topics.summaries.split('.')[0]}",
                    "state_dir": str(tmp_path / "state"),
                    "metrics_port": port,
                },
            }
        )
    )
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    log_path = tmp_path / "monitor.log"
    proc = start_monitor("run", config, log_path, cwd=cwd)
    base = f"http://127.0.0.1:{port}"
    body: dict[str, Any] = {}
    try:
        body = wait_healthy(proc, base, log_path)
        samples = scrape(base)
    finally:
        stop_process(proc, 60)
    log_text = log_path.read_text(errors="replace")
    assert proc.returncode == 0, log_text[-3000:]

    assert body["status"] == "ok"
    parts = body["parts"]
    assert sorted(parts) == ["ingest", "merge", "writer"]
    assert {p["status"] for p in parts.values()} == {"ok"}
    # Each part feeds the one page: its own heartbeat is there and recent.
    for name in (
        "driftline_ingest_last_poll_seconds",
        "driftline_merge_last_tick_seconds",
        "driftline_writer_last_poll_seconds",
    ):
        assert time.time() - (sample(samples, name) or 0) < 60, name
    assert list(cwd.iterdir()) == []


def test_monitor_run_exits_with_an_error_when_one_of_its_parts_dies(
    kafka: KafkaSettings, topics: TopicSettings, metrics_server: Any, tmp_path: Path
) -> None:
    """A stage-1 store of another format stops the ingest part; the whole process must stop
    (status 1, saying which part and why) rather than run on with stage 2 alone."""
    from rocksdict import Options, Rdict

    create_topics(kafka, topics)
    state = tmp_path / "state"
    for number in range(topics.input_partitions):
        old = Rdict(str(state / "ingest" / f"p{number}"), Options(raw_mode=True))
        old.put(b"m", b"\x92\x05\x03")  # marks of a store written without a format record
        old.close()
    config = tmp_path / "driftline.yaml"
    config.write_text(
        json.dumps(
            {
                "kafka": {"bootstrap_servers": kafka.bootstrap_servers},
                "topics": topics.model_dump(),
                "influxdb": {"url": metrics_server.url, "token": "unused"},
                "monitor": {
                    "group_id": f"dies-{topics.summaries.split('.')[0]}",
                    "state_dir": str(state),
                    "metrics_port": None,
                },
            }
        )
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "driftline",
            "monitor",
            "run",
            "--config",
            str(config),
            "--ingest-processes",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    output = done.stdout + done.stderr
    assert done.returncode == 1, output[-3000:]
    assert "ingest stopped on an error" in output
    assert "was written in format 1" in output
