"""The report's inputs: a replay's --json records and outbox messages become the points
stage 2 writes; the range, restatements and bad files."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from driftline.detectors.engine import WindowReport
from driftline.errors import DecodeError, ReportError
from driftline.replay_output import report_record, write_json_lines
from driftline.report.data import (
    VersionMark,
    collect,
    outbox_points,
    read_replay_json,
    replay_points,
    version_mark,
)
from driftline.schemas.outputs import DriftAlert
from driftline.sinks.outbox import report_message
from driftline.sinks.points import MetricPoint, report_points
from driftline.testing.service import sea_reference
from driftline.testing.synthetic import START_MS

WINDOW_MS = 600_000


def _without(points: list[MetricPoint], dropped: set[tuple[str, str]]) -> list[MetricPoint]:
    return [
        MetricPoint(
            p.measurement,
            p.tags,
            tuple((k, v) for k, v in p.fields if (p.measurement, k) not in dropped),
            p.time_ms,
        )
        for p in points
    ]


def test_a_replay_record_becomes_the_points_stage2_writes_less_what_it_lacks(
    reports: list[WindowReport],
) -> None:
    """Oracle: :func:`report_points` of the same window; the record has no label delay and
    no ``drift_found``, so those two fields are the only difference."""
    for report in reports:
        record = orjson.loads(orjson.dumps(report_record(report), option=orjson.OPT_UTC_Z))
        expected = _without(
            report_points(report),
            {("label_coverage", "mean_label_delay_s"), ("decision", "drift_found")},
        )
        assert replay_points(record) == expected


def test_an_outbox_message_becomes_the_points_it_was_written_from(
    reports: list[WindowReport],
) -> None:
    for report in reports:
        assert outbox_points(report_message(report).value) == report_points(report)


def test_an_outbox_message_the_writer_would_refuse_is_refused() -> None:
    with pytest.raises(DecodeError, match="no timestamp"):
        outbox_points(b"m v=1")


def test_read_replay_json_reads_every_window_and_its_alerts(
    reports: list[WindowReport], tmp_path: Path
) -> None:
    path = tmp_path / "replay.jsonl"
    write_json_lines(reports, path)
    data = read_replay_json(path)
    assert data.models == ["sea"]
    assert len({p.time_ms for p in data.points}) == 6
    alerts = [a for r in reports for a in r.decision.alerts]
    assert alerts, "the shift should have raised an alert"
    assert {a.alert_id for a in data.alerts} == {a.alert_id for a in alerts}


def test_read_replay_json_keeps_only_windows_ending_in_the_range(
    reports: list[WindowReport], tmp_path: Path
) -> None:
    path = tmp_path / "replay.jsonl"
    write_json_lines(reports, path)
    since = datetime.fromtimestamp((START_MS + 2 * WINDOW_MS) / 1000, UTC)
    until = datetime.fromtimestamp((START_MS + 4 * WINDOW_MS) / 1000, UTC)
    data = read_replay_json(path, since=since, until=until)
    assert sorted({p.time_ms for p in data.points}) == [
        START_MS + 2 * WINDOW_MS,
        START_MS + 3 * WINDOW_MS,
        START_MS + 4 * WINDOW_MS,
    ]
    assert all(since <= a.window_end <= until for a in data.alerts)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match=r"cannot read .*nope\.jsonl: No such file"):
        read_replay_json(tmp_path / "nope.jsonl")


def test_a_file_of_events_is_not_a_replay_output_and_the_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"event_id": "e", "model": "m"}\n')
    with pytest.raises(ReportError, match=r"events\.jsonl:1: not a window record"):
        read_replay_json(path)


def test_a_line_that_is_not_json_is_named(reports: list[WindowReport], tmp_path: Path) -> None:
    path = tmp_path / "replay.jsonl"
    write_json_lines(reports[:1], path)
    path.write_text(path.read_text() + "{oops\n")
    with pytest.raises(ReportError, match=r"replay\.jsonl:2: not JSON"):
        read_replay_json(path)


def test_an_empty_file_holds_no_window(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("\n")
    with pytest.raises(ReportError, match="holds no window record"):
        read_replay_json(path)


def _alert(end_ms: int) -> DriftAlert:
    end = datetime.fromtimestamp(end_ms / 1000, UTC)
    start = datetime.fromtimestamp((end_ms - WINDOW_MS) / 1000, UTC)
    return DriftAlert.create("m", "1", start, end, severity="warning", reasons=[])


def test_collect_keeps_the_last_point_of_an_identity_and_the_range() -> None:
    """A restated window (late labels) replaces its earlier point; alerts, versions and
    points outside the range are left out."""
    tags = (("model", "m"), ("version", "1"), ("window", "10m"))
    first = MetricPoint("label_coverage", tags, (("coverage", 0.4),), START_MS)
    restated = MetricPoint("label_coverage", tags, (("coverage", 1.0),), START_MS)
    late = MetricPoint("label_coverage", tags, (("coverage", 1.0),), START_MS + 3 * WINDOW_MS)
    data = collect(
        [first, restated, late],
        [_alert(START_MS), _alert(START_MS + 3 * WINDOW_MS)],
        [VersionMark("m", "1", START_MS - 1, "cli"), VersionMark("m", "2", START_MS, "trainer")],
        since_ms=START_MS,
        until_ms=START_MS + WINDOW_MS,
    )
    assert data.points == (restated,)
    assert [a.window_end for a in data.alerts] == [_alert(START_MS).window_end]
    assert [m.version for m in data.versions] == ["2"]


def test_a_models_topic_record_becomes_a_version_mark() -> None:
    record = sea_reference("m", "7", rows=500)
    mark = version_mark(record.to_json())
    assert (mark.model, mark.version, mark.source) == ("m", "7", "cli")
    with pytest.raises(DecodeError, match="not a model version"):
        version_mark(b'{"model": "m"}')
