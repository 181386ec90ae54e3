"""Segment points come out of stage 1 and stage 2 tagged, end to end.

SDK -> ``driftline monitor run`` (stage 1 folds each pane's segment parts into its partial,
stage 2 merges and judges them, the writer writes the points) -> VictoriaMetrics, on a Tansu
broker and a VictoriaMetrics this test starts itself.

One SEA model watched per ``region`` (five values, recorded in its reference profile); in the
first ten-minute window ``x3`` is shifted in region ``c`` only. The window's ``feature_drift``
points of ``x3`` per region must carry ``segment_key=region`` and ``segment=<value>``, say
drifted in ``c`` and in no other region; the whole-model points carry no segment tag. If
stage 1 did not fold the segments, or stage 2 merged the partials without them, no segment
point would be written and the test would time out waiting for it.

The first window's labels follow, wrong for region c's predictions: its ``performance``
point of accuracy per region must carry the same tags and show the drop in ``c`` only. The
model makes no joined examples, so its predictions wait in the join as compact entries: the
slice of each comes back from the entry's segment bytes.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from driftline.client import DriftlineProducer
from driftline.config import Settings
from driftline.detectors.profile import top_segment_values
from driftline.schemas.events import GroundTruthEvent, PredictionEvent
from driftline.streams.registry import publish_profile
from driftline.testing.servers import Series, TansuBroker, VictoriaMetrics
from driftline.testing.service import (
    SEA_MODEL,
    sea_reference,
    service_config,
    start_monitor,
    stop_process,
)
from driftline.testing.synthetic import START_MS, STEP_MS, sea_events
from driftline.topics import create_topics

MODEL, VERSION = "sea", "1"
REGIONS = ("a", "b", "c", "d", "e")
WINDOW_MS = 10 * 60_000
PER_WINDOW = WINDOW_MS // STEP_MS  # 6,000 predictions in a ten-minute window
N_EVENTS = PER_WINDOW + PER_WINDOW // 2  # the first window closes, the second not
FIRST_END = START_MS + WINDOW_MS
TAGS = {"model": MODEL, "version": VERSION, "window": "10m"}
TIMEOUT = 60.0


def _region(i: int) -> str:
    return REGIONS[i % len(REGIONS)]


def _prediction(event: Any, i: int) -> PredictionEvent:
    """The SEA prediction tagged with its region; ``x3`` moved by 4 (of 0-10) in region c."""
    body = dict(event.prediction)
    if _region(i) == "c" and event.prediction["timestamp"] < FIRST_END:
        body["features"] = {**body["features"], "x3": body["features"]["x3"] + 4.0}
    return PredictionEvent.model_validate(
        {**body, "model": MODEL, "segments": {"region": _region(i)}}
    )


def _label(event: Any, i: int) -> GroundTruthEvent:
    """The SEA label, but the opposite of the prediction in region c."""
    body = {**event.ground_truth, "model": MODEL}
    if _region(i) == "c":
        body["label"] = 1 - int(event.prediction["prediction"])
    return GroundTruthEvent.model_validate(body)


@contextmanager
def _monitor(config: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    process = start_monitor("run", config, log)
    try:
        yield process
    finally:
        stop_process(process, 30)


def _log_tail(log: Path, lines: int = 60) -> str:
    text = log.read_text(errors="replace") if log.exists() else ""
    return "--- monitor log (tail)\n" + "\n".join(text.splitlines()[-lines:])


def _wait_for(
    what: str, check: Callable[[], bool], monitor: subprocess.Popen[bytes], log: Path
) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not check():
        assert monitor.poll() is None, f"the monitor exited waiting for {what}\n" + _log_tail(log)
        assert time.monotonic() < deadline, f"no {what} in {TIMEOUT:.0f} s\n" + _log_tail(log)
        time.sleep(0.25)  # polling VictoriaMetrics, bounded by TIMEOUT above


def _drifted_x3(victoria: VictoriaMetrics) -> list[Series]:
    return [
        s
        for s in victoria.series("feature_drift", **TAGS, feature="x3")
        if s.field == "drifted" and any(ms == FIRST_END for ms, _ in s.points)
    ]


def test_segment_points_come_out_of_both_stages_tagged_and_the_shift_is_in_its_segment(
    tmp_path: Path,
) -> None:
    events = list(sea_events(N_EVENTS, seed=7))
    with (
        TansuBroker(workdir=tmp_path / "tansu") as broker,
        VictoriaMetrics(workdir=tmp_path / "victoria-metrics") as victoria,
    ):
        raw = service_config(
            bootstrap_servers=broker.bootstrap_servers,
            influx_url=victoria.url,
            state_dir=tmp_path / "state",
            name="segments",
            models={
                MODEL: {
                    **SEA_MODEL,
                    "idle_timeout": "3s",
                    "segments": {"keys": ["region"]},
                    "retrain": {**SEA_MODEL["retrain"], "examples": False},
                }
            },
            flush_interval="200ms",
        )
        settings = Settings(**raw)
        config = tmp_path / "driftline.yaml"
        config.write_text(yaml.safe_dump(raw))
        create_topics(settings.kafka, settings.topics)
        registered = sea_reference(MODEL, VERSION, rows=10_000)
        regions = [_region(i) for i in range(registered.reference.n_rows)]
        reference = registered.reference.model_copy(
            update={"segments": top_segment_values({"region": regions}, 10)}
        )
        publish_profile(
            settings.kafka, settings.topics, registered.model_copy(update={"reference": reference})
        )
        log = tmp_path / "monitor.log"
        with _monitor(config, log) as monitor:
            with DriftlineProducer(
                settings.kafka, settings.topics, config={"linger.ms": 20}
            ) as producer:
                for i, event in enumerate(events):
                    producer.send(_prediction(event, i))
                for i, event in enumerate(events[:PER_WINDOW]):
                    producer.send(_label(event, i))

            def every_region_judged() -> bool:
                tagged = {s.tags.get("segment") for s in _drifted_x3(victoria)}
                return set(REGIONS) <= tagged

            _wait_for("x3's drift points of every region", every_region_judged, monitor, log)

            def accuracy_by_region() -> dict[str, float]:
                found = {}
                for s in victoria.series(
                    "performance", **TAGS, metric="accuracy", segment_key="region"
                ):
                    first = [v for ms, v in s.points if ms == FIRST_END]
                    if s.field == "value" and first:
                        found[s.tags["segment"]] = first[-1]
                return found

            def every_region_labelled() -> bool:
                return set(accuracy_by_region()) == set(REGIONS)

            _wait_for("accuracy points of every region", every_region_labelled, monitor, log)
            # Late labels restate the window: wait until region c's accuracy has settled low.
            _wait_for(
                "region c's accuracy drop", lambda: accuracy_by_region()["c"] < 0.3, monitor, log
            )
            accuracy = accuracy_by_region()

        series = _drifted_x3(victoria)
        context = "\n".join(f"{s.tags} {s.points}" for s in series) + "\n" + _log_tail(log)
        by_segment = {
            s.tags.get("segment"): [v for ms, v in s.points if ms == FIRST_END] for s in series
        }
        for s in series:
            if "segment" in s.tags:
                assert s.tags["segment_key"] == "region", context
        assert by_segment["c"][-1] == 1.0, context
        for region in ("a", "b", "d", "e"):
            assert set(by_segment[region]) == {0.0}, context
        assert None in by_segment, context  # the whole model's point, without a segment tag
        quality = victoria.series("data_quality", **TAGS, segment_key="region", feature="x3")
        assert {s.tags["segment"] for s in quality} == set(REGIONS), context
        for region in ("a", "b", "d", "e"):
            assert accuracy[region] > 0.7, (accuracy, context)
        whole = [
            s
            for s in victoria.series("performance", **TAGS, metric="accuracy")
            if "segment" not in s.tags and s.field == "value"
        ]
        assert len(whole) == 1, context  # the whole model's accuracy keeps its untagged point
        coverage = victoria.series("label_coverage", **TAGS, segment_key="region")
        assert {s.tags["segment"] for s in coverage} == set(REGIONS), context
