"""``driftline monitor ingest --ingest-processes 2`` on a real broker: a clean stop by SIGTERM."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import yaml

from driftline.config import KafkaSettings, TopicSettings
from driftline.testing.service import start_monitor, stop_process
from driftline.topics import create_topics

ASSIGNED = re.compile(r"ingest assigned partitions \[([\d, ]*)\]")
CHILD = re.compile(r"ingest process \d+ of 2 started \(pid (\d+)\)")


def test_sigterm_stops_both_ingest_processes_each_releasing_its_partitions(
    tmp_path: Path, kafka: KafkaSettings, topics: TopicSettings
) -> None:
    """Once the two children share the input partitions, SIGTERM to the parent: each child
    emits its partials and releases its partitions, the parent exits 0, no child outlives it."""
    create_topics(kafka, topics)
    path = tmp_path / "driftline.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "kafka": {"bootstrap_servers": kafka.bootstrap_servers},
                "topics": topics.model_dump(),
                "monitor": {
                    "state_dir": str(tmp_path / "state"),
                    "metrics_port": None,
                    "group_id": f"stop-{topics.predictions.split('.')[0]}",
                },
            }
        )
    )
    log = tmp_path / "ingest.log"
    process = start_monitor("ingest", path, log, cwd=tmp_path, ingest_processes=2)
    try:
        deadline = time.monotonic() + 90
        while True:
            text = log.read_text(errors="replace")
            owned = [set(m.split(", ")) for m in ASSIGNED.findall(text) if m]
            if any(a.isdisjoint(b) for a in owned for b in owned if a != b):
                break  # both children own partitions
            assert process.poll() is None, f"monitor ingest exited:\n{text[-3000:]}"
            assert time.monotonic() < deadline, f"no split in 90 s:\n{text[-3000:]}"
            time.sleep(0.1)  # polling the log for the second child's assignment
        children = [int(pid) for pid in CHILD.findall(text)]
        assert len(children) == 2
        process.send_signal(signal.SIGTERM)
        status = process.wait(90)
    finally:
        stop_process(process, 10)
    text = log.read_text(errors="replace")
    assert status == 0, text[-3000:]
    assert text.count("after emitting their partials") >= 2, text[-3000:]
    for pid in children:
        assert not Path(f"/proc/{pid}").exists() or _zombie(pid), f"child {pid} outlived it"


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True
