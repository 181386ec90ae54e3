"""The fault suite (issue 15): faults injected while traffic flows, and every produced event
accounted for at the end, against a real broker and a real InfluxDB write API.

Each scenario runs :class:`~tests.integration.faults.Rig`: 31,000 SEA predictions and their
labels into a monitor on a Tansu broker and a VictoriaMetrics of its own; the first 9,000 at
once, the rest at a steady pace once the first window's result is in. The fault is injected
two seconds later, and lifted; then every closed window must count each of its predictions
and labels exactly once, every prediction id must have its joined example, and nothing valid
may reach the dead-letter topic. The rows printed at the end of the run (the ``reliability``
section) are ``docs/reliability.md``'s table.

Run alone: ``./dev test -m faults`` (about seven minutes); without: ``-m 'not faults'``.
"""

from __future__ import annotations

import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.integration.faults import Outcome, Rig

pytestmark = pytest.mark.faults
Report = Callable[[dict[str, Any]], None]


def _first_results(rig: Rig, timeout: float = 120.0) -> None:
    """Wait until the first window's result is in VictoriaMetrics: the fault then hits a
    pipeline that is working, in the middle of the traffic (the rest flows from then on)."""
    deadline = time.monotonic() + timeout
    while not rig.running.wait(0.25):
        dead = {p: s for p, s in rig.alive().items() if s is not None}
        assert not dead, f"monitor parts exited: {dead}\n{rig.logs()}"
        assert time.monotonic() < deadline, f"no window results within {timeout} s\n{rig.logs()}"
    time.sleep(2.0)  # a tenth of the paced traffic: the fault lands while it flows
    assert not rig.traffic_done.is_set(), "the traffic ended before the fault"


def _assert_exact(rig: Rig, outcome: Outcome, report: Report) -> None:
    report(outcome.row())
    context = f"{outcome}\n{rig.logs()}"
    assert outcome.lost == 0, context
    assert outcome.counted_twice == 0, context
    assert outcome.ids_missing == 0, context
    assert outcome.complete_s is not None, context


@pytest.fixture
def split(tmp_path: Path) -> Iterator[Rig]:
    """The monitor as three processes: ingest, stage 2 (merge) and the InfluxDB writer."""
    with Rig(tmp_path, parts=("ingest", "merge", "write")) as rig:
        yield rig


@pytest.fixture
def whole(tmp_path: Path) -> Iterator[Rig]:
    """The monitor as one ``monitor run`` process."""
    with Rig(tmp_path) as rig:
        yield rig


@pytest.mark.parametrize("part", ["merge", "write"])
def test_a_part_killed_mid_stream_loses_nothing(split: Rig, part: str, reliability: Report) -> None:
    """SIGKILL of stage 2 (its faust worker rebuilds from the summaries topic) or of the
    InfluxDB writer (it starts again from its last commit), restarted at once."""
    split.produce()
    _first_results(split)
    split.kill(part)
    split.start_part(part)
    fault_end = time.monotonic()
    split.wait_for_traffic()
    split.settle()
    name = {"merge": "stage 2", "write": "InfluxDB writer"}[part]
    outcome = split.outcome(f"{name} killed", f"SIGKILL of `monitor {part}`, restarted", fault_end)
    _assert_exact(split, outcome, reliability)
    assert split.dead_letters() == []


def test_ingest_restarted_without_its_state_restores_from_kafka(
    split: Rig, reliability: Report
) -> None:
    """SIGKILL of stage 1, its state directory deleted (a new machine), restarted: the join
    store and pane partials are rebuilt from the input topics."""
    split.produce()
    _first_results(split)
    split.kill("ingest")
    shutil.rmtree(split.work / "state" / "ingest")
    split.start_part("ingest")
    fault_end = time.monotonic()
    split.wait_for_traffic()
    split.settle()
    outcome = split.outcome(
        "ingest state lost", "SIGKILL of `monitor ingest`, state directory deleted", fault_end
    )
    _assert_exact(split, outcome, reliability)
    assert split.dead_letters() == []


def test_a_stalled_broker_recovers_without_a_person(whole: Rig, reliability: Report) -> None:
    """The broker frozen (SIGSTOP) for 20 s mid-stream: the monitor neither exits nor loses
    anything, and catches up once it answers again."""
    whole.produce()
    _first_results(whole)
    whole.broker.pause()
    time.sleep(20.0)  # the fault's length
    whole.broker.resume()
    fault_end = time.monotonic()
    whole.wait_for_traffic()
    whole.settle()
    outcome = whole.outcome("broker stalled", "SIGSTOP of the broker for 20 s", fault_end)
    _assert_exact(whole, outcome, reliability)
    assert whole.alive() == {"run": None}
    assert whole.dead_letters() == []


def test_an_influxdb_outage_delays_points_and_loses_none(whole: Rig, reliability: Report) -> None:
    """The InfluxDB server stopped for 30 s mid-stream: the writer retries, stays in its
    group, and writes every point once the server is back."""
    whole.produce()
    _first_results(whole)
    whole.victoria.stop()
    time.sleep(30.0)  # the fault's length
    whole.victoria.start()
    fault_end = time.monotonic()
    whole.wait_for_traffic()
    whole.settle()
    outcome = whole.outcome("InfluxDB down", "the InfluxDB server stopped for 30 s", fault_end)
    _assert_exact(whole, outcome, reliability)
    assert whole.alive() == {"run": None}
    assert whole.dead_letters() == []


# -- the hostile flood ---------------------------------------------------------------------


def _hostile(i: int, prediction: dict[str, Any]) -> list[tuple[str, bytes | None, bytes, str]]:
    """The hostile messages after valid prediction ``i``: (topic role, key, value, the kind of
    dead letter expected). Two in nine predictions are followed by one: 10 % of all messages."""
    if i % 9 not in (2, 6):
        return []
    n = i // 9 * 2 + (i % 9 == 6)
    pid = f"hostile-{n}"
    base = {**prediction, "event_id": pid, "prediction_id": pid}
    key = pid.encode()
    label = {"event_id": f"{pid}-t", "prediction_id": pid, "timestamp": 0, "label": 1}
    rare = n % 400
    if rare == 7:  # a 1 MB value: beyond monitor.limits.max_message_bytes
        big = {**base, "features": {**base["features"], "x4": "v" * 1_000_000}}
        return [("predictions", key, orjson.dumps(big), "limit_exceeded")]
    if rare == 13:  # a 71,000-character model name
        return [
            ("predictions", key, orjson.dumps({**base, "model": "m" * 71_000}), "limit_exceeded")
        ]
    kinds: list[tuple[str, bytes | None, bytes, str]] = [
        ("predictions", key, b"this is not JSON {", "malformed_json"),
        ("predictions", key, b"[" * 10_000 + b"]" * 10_000, "invalid_event"),  # not an object
        (
            "predictions",
            key,
            orjson.dumps(base).replace(b'"x1":', b'"x1":NaN,"y":', 1),
            "malformed_json",
        ),
        (
            "predictions",
            key,
            orjson.dumps(base).replace(b'"x1":', b'"x1":1e999,"y":', 1),
            "invalid_event",
        ),
        (
            "predictions",
            key,
            orjson.dumps({**base, "timestamp": "2900-01-01T00:00:00Z"}),
            "clock_skew",
        ),
        (
            "predictions",
            key,
            orjson.dumps({**base, "model": f"intruder-{n % 50}"}),
            "unknown_model",
        ),
        ("predictions", None, orjson.dumps(base), "missing_key"),
        ("predictions", b"another-id", orjson.dumps(base), "key_mismatch"),
        (
            "predictions",
            key,
            orjson.dumps({**base, "timestamp": "2026-01-01T00:00:00"}),
            "invalid_event",
        ),
        ("predictions", key, orjson.dumps({**base, "colour": "red"}), "invalid_event"),
        ("predictions", key, orjson.dumps({**base, "features": "x1=1"}), "invalid_event"),
        (
            "predictions",
            key,
            orjson.dumps({**base, "features": {"x1": "s" * 5000}}),
            "limit_exceeded",
        ),
        ("ground_truth", None, orjson.dumps(label), "missing_key"),
        ("ground_truth", key, b"\xff\xfe not utf-8", "malformed_json"),
        (
            "ground_truth",
            key,
            orjson.dumps({**label, "timestamp": "2900-01-01T00:00:00Z"}),
            "clock_skew",
        ),
        ("ground_truth", key, orjson.dumps({**label, "label": [1, 2]}), "invalid_event"),
    ]
    return [kinds[n % len(kinds)]]


def test_a_flood_with_ten_percent_hostile_messages_counts_every_valid_event(
    tmp_path: Path, reliability: Report
) -> None:
    """One message in ten is hostile (every dead-letter reason of stage 1): each goes to the
    dead-letter topic with its reason, every valid event is counted once, and the one monitor
    process never stops."""
    expected_kinds: Counter[str] = Counter()

    def extra(i: int, prediction: dict[str, Any]) -> list[tuple[str, bytes | None, bytes]]:
        out = []
        for role, key, value, kind in _hostile(i, prediction):
            expected_kinds[kind] += 1
            out.append((role, key, value))
        return out

    with Rig(tmp_path, policy={"allow": "listed"}) as rig:
        rig.produce(extra)
        started = time.monotonic()
        rig.wait_for_traffic()
        rig.settle()
        hostile = sum(expected_kinds.values())
        outcome = rig.outcome(
            "hostile flood",
            f"{hostile:,} hostile messages (10 %) of {len(expected_kinds)} dead-letter kinds",
            started,
        )
        outcome.first_result_s = None  # no fault ends: the times run from the traffic's start
        letters = rig.dead_letters()
        _assert_exact(rig, outcome, reliability)
        assert rig.alive() == {"run": None}, rig.logs()
        got = Counter(d.kind for d in letters)
        assert got == expected_kinds, f"{got} != {expected_kinds}"
        assert all(d.reason for d in letters)
        log = rig.log("run").read_text(errors="replace")
        assert "Traceback" not in log, log[-3000:]
        assert hostile / outcome.produced == pytest.approx(0.10, abs=0.005)
