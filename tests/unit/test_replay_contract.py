"""driftline replay honours the event contract as the service does, in bounded memory:
repeats dropped by ``prediction_id``, too-late events counted, disorder within the horizon
harmless, and a file that holds no event of its kind refused."""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from driftline.cli import app
from driftline.config import Settings
from driftline.replay import ReplayError, ReplayResult, join, replay
from driftline.replay_output import replay_summary, report_record
from driftline.testing.synthetic import START_MS, STEP_MS, write_sea_files

# 10 events a second, ten-minute windows of one-minute panes, no lateness: a prediction is
# accepted up to 11 minutes (6,600 events) behind the newest one.
SETTINGS = Settings(
    models={
        "sea": {
            "task": "binary",
            "pane": "1m",
            "windows": [{"size": "10m"}],
            "allowed_lateness": "0s",
            "warmup_events": 6_000,
            "drift": {"min_samples": 500},
            "performance": {"metric": "accuracy", "max_drop": 0.05, "min_labels": 500},
            "retrain": {"policy": "on_either", "cooldown": "2h"},
        }
    }
)
HORIZON_EVENTS = 11 * 60_000 // STEP_MS


@pytest.fixture(scope="module")
def sea(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("sea")
    return write_sea_files(directory, 30_000, shift_at=15_000, drift_at=22_000, seed=7)


def records(result: ReplayResult) -> list[dict[str, Any]]:
    return [report_record(r) for r in result.reports]


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()


def write(path: Path, rows: list[bytes]) -> Path:
    path.write_bytes(b"".join(row + b"\n" for row in rows))
    return path


def shuffled_in_blocks(rows: list[bytes], block: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    out: list[bytes] = []
    for start in range(0, len(rows), block):
        part = rows[start : start + block]
        rng.shuffle(part)
        out.extend(part)
    return out


def test_a_file_shuffled_within_the_accepted_disorder_gives_identical_windows(
    tmp_path: Path, sea: tuple[Path, Path]
) -> None:
    """Blocks of 5 minutes shuffled (the horizon is 11): same windows, warm-up included."""
    expected = replay(*sea, settings=SETTINGS)
    assert expected.reports
    assert expected.too_late == 0
    block = HORIZON_EVENTS // 2
    predictions = write(tmp_path / "p.jsonl", shuffled_in_blocks(lines(sea[0]), block, 1))
    truths = write(tmp_path / "t.jsonl", shuffled_in_blocks(lines(sea[1]), block, 2))
    assert lines(predictions) != lines(sea[0])
    result = replay(predictions, truths, settings=SETTINGS, chunk=1_000)
    assert result.too_late == 0
    assert result.baselined == expected.baselined
    assert records(result) == records(expected)
    assert any(r.concept_drift for r in result.reports)


def without_concept_drift(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records without what the concept-drift detector decides (it sees the errors in the
    order the pairs join, so a shuffle may move a flag: docs/replay.md)."""
    out = []
    for row in rows:
        row = {k: v for k, v in row.items() if k not in ("concept_drift", "decision")}
        out.append(row)
    return out


def test_a_join_spilled_to_disk_gives_the_same_windows_shuffled_or_not(
    tmp_path: Path, sea: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With 300 join entries in memory (the rest in RocksDB, found through the Bloom
    filter), a shuffled file with repeats gives exactly what it gives with the join in
    memory, and the sorted file's windows (but for where the detector flags)."""
    expected = replay(*sea, settings=SETTINGS)
    block = HORIZON_EVENTS // 2
    rows = shuffled_in_blocks(lines(sea[0]), block, 4)
    rows = [*rows[:20_000], *rows[5_000:5_100], *rows[20_000:]]  # 100 repeats, 15k later
    predictions = write(tmp_path / "p.jsonl", rows)
    truths = write(tmp_path / "t.jsonl", shuffled_in_blocks(lines(sea[1]), block, 5))
    in_memory = replay(predictions, truths, settings=SETTINGS, chunk=1_000)
    monkeypatch.setattr(join, "FRONT", 300)
    result = replay(predictions, truths, settings=SETTINGS, chunk=1_000)
    assert (result.duplicates, result.too_late) == (100, 0)
    assert records(result) == records(in_memory)
    assert without_concept_drift(records(result)) == without_concept_drift(records(expected))
    assert [r["n_labels"] for r in records(result)] == [r["n_labels"] for r in records(expected)]


def test_two_percent_repeated_lines_give_the_same_windows(
    tmp_path: Path, sea: tuple[Path, Path]
) -> None:
    """Each repeat, predictions and labels alike, anywhere later in the file, counts once."""
    expected = replay(*sea, settings=SETTINGS)
    rng = random.Random(3)

    def with_repeats(rows: list[bytes]) -> tuple[list[bytes], int]:
        out = list(rows)
        picked = rng.sample(range(len(rows)), len(rows) // 50)
        for row in sorted(picked, reverse=True):
            out.insert(rng.randrange(row + 1, len(rows) + 1), rows[row])
        return out, len(picked)

    prediction_rows, repeated = with_repeats(lines(sea[0]))
    truth_rows, repeated_labels = with_repeats(lines(sea[1]))
    result = replay(
        write(tmp_path / "p.jsonl", prediction_rows),
        write(tmp_path / "t.jsonl", truth_rows),
        settings=SETTINGS,
    )
    assert (result.duplicates, result.duplicate_labels) == (repeated, repeated_labels)
    assert result.too_late == 0
    assert records(result) == records(expected)


def test_a_prediction_beyond_the_accepted_disorder_is_counted_too_late_not_folded(
    tmp_path: Path, sea: tuple[Path, Path]
) -> None:
    expected = replay(*sea, settings=SETTINGS)
    rows = lines(sea[0])
    moved = rows.pop(10_000)  # 1,000 s into the file, moved to its end: too late
    result = replay(write(tmp_path / "p.jsonl", [*rows, moved]), sea[1], settings=SETTINGS)
    assert result.too_late == 1
    window_ms = 600_000
    moved_at = START_MS + 10_000 * STEP_MS
    before = {r.window.start_ms: r.n_events for r in expected.reports}
    after = {r.window.start_ms: r.n_events for r in result.reports}
    start = moved_at - moved_at % window_ms
    assert after[start] == before[start] - 1
    assert {k: v for k, v in after.items() if k != start} == {
        k: v for k, v in before.items() if k != start
    }


def test_the_first_prediction_and_the_first_label_of_an_id_win_as_in_the_service(
    tmp_path: Path, sea: tuple[Path, Path]
) -> None:
    """Stage 1 keys its join (and its duplicates) by ``prediction_id``: a repeat with a new
    ``event_id`` is a duplicate, and a second label with another value changes nothing."""
    expected = replay(*sea, settings=SETTINGS)
    predictions, truths = lines(sea[0]), lines(sea[1])
    repeat = orjson.loads(predictions[20_000])
    repeat["event_id"] = "another"
    repeat["prediction"] = 1 - repeat["prediction"]
    relabel = orjson.loads(truths[20_000])
    relabel["event_id"] = "another"
    relabel["label"] = 1 - relabel["label"]
    result = replay(
        write(
            tmp_path / "p.jsonl",
            [*predictions[:20_100], orjson.dumps(repeat), *predictions[20_100:]],
        ),
        write(tmp_path / "t.jsonl", [*truths[:20_100], orjson.dumps(relabel), *truths[20_100:]]),
        settings=SETTINGS,
    )
    assert (result.duplicates, result.duplicate_labels) == (1, 1)
    assert records(result) == records(expected)


def test_a_ground_truth_file_as_predictions_is_refused_saying_what_it_holds(
    sea: tuple[Path, Path],
) -> None:
    with pytest.raises(ReplayError, match="none of its 30000 lines is a valid PredictionEvent"):
        replay(sea[1], settings=SETTINGS)
    with pytest.raises(ReplayError, match="it holds ground-truth events: pass it with"):
        replay(sea[1], settings=SETTINGS)
    with pytest.raises(ReplayError, match="none of its 30000 lines is a valid GroundTruthEvent"):
        replay(sea[0], sea[0], settings=SETTINGS)


def test_the_cli_exits_non_zero_on_an_entirely_invalid_file(sea: tuple[Path, Path]) -> None:
    result = CliRunner(env={"COLUMNS": "300"}).invoke(app, ["replay", str(sea[1])])
    assert result.exit_code == 1
    assert "is a valid PredictionEvent" in result.output


def test_the_summary_says_what_was_dropped(tmp_path: Path, sea: tuple[Path, Path]) -> None:
    rows = lines(sea[0])
    broken = write(tmp_path / "p.jsonl", [*rows, rows[5], b"not json", rows.pop(100)])
    result = replay(broken, sea[1], settings=SETTINGS)
    assert (result.duplicates, result.invalid, result.too_late) == (2, 1, 0)
    text = "\n".join(replay_summary(result))
    assert "2 duplicate predictions" in text
    assert "1 invalid line" in text
    assert "0 too late" in text
    assert f"{tmp_path / 'p.jsonl'}:30002" in text


def test_invalid_lines_are_all_counted_and_the_first_kept(tmp_path: Path) -> None:
    predictions, _ = write_sea_files(tmp_path, 7_000, seed=5)
    rows = lines(predictions)
    result = replay(write(tmp_path / "p.jsonl", [*rows, *[b"{}"] * 250]), settings=SETTINGS)
    assert result.invalid == 250
    assert len(result.rejected) == 100
    assert result.rejected[0].line == 7_001


def test_a_shorter_label_wait_judges_earlier_then_restates_or_lets_a_late_label_go(
    tmp_path: Path, sea: tuple[Path, Path]
) -> None:
    """100 labels of the window from 00:10 come late. Waiting for labels (the default) gives
    one report with them all; ``label_wait=0`` judges the window at the horizon, restates it
    for labels 20 minutes late (its panes are still held) and lets labels 2 hours late go."""
    truths = lines(sea[1])
    window = 600_000 + START_MS

    def delayed(delay_ms: int) -> Path:
        late = [orjson.loads(row) for row in truths[7_000:7_100]]
        for row in late:
            row["timestamp"] += delay_ms
        rows = [*truths[:7_000], *truths[7_100:]]
        at = late[0]["timestamp"]  # where they belong in a file sorted by time
        later = (i for i, row in enumerate(rows) if orjson.loads(row)["timestamp"] > at)
        where = next(later, len(rows))
        rows[where:where] = map(orjson.dumps, late)
        return write(tmp_path / f"t{delay_ms}.jsonl", rows)

    def labels_of(result: ReplayResult) -> list[int]:
        return [r.n_labels for r in result.reports if r.window.start_ms == window]

    soon, much_later = delayed(20 * 60_000), delayed(2 * 3_600_000)
    for labels in (soon, much_later):
        waited = replay(sea[0], labels, settings=SETTINGS, chunk=100)
        assert labels_of(waited) == [6_000]
        assert waited.labels_let_go == 0
    hurried = replay(sea[0], soon, settings=SETTINGS, chunk=100, label_wait=timedelta(0))
    restated = labels_of(hurried)  # as the late labels come, chunk after chunk
    assert restated[0] == 5_900
    assert restated[-1] == 6_000
    assert restated == sorted(restated)
    assert hurried.labels_let_go == 0
    hurried = replay(sea[0], much_later, settings=SETTINGS, chunk=100, label_wait=timedelta(0))
    assert labels_of(hurried) == [5_900]
    assert hurried.labels_let_go == 100


def test_the_cli_prints_what_was_dropped_and_takes_label_wait_and_workdir(
    tmp_path: Path, sea: tuple[Path, Path]
) -> None:
    rows = lines(sea[0])
    broken = write(tmp_path / "p.jsonl", [*rows, rows[5], b"not json"])
    work = tmp_path / "work"
    work.mkdir()
    runner = CliRunner(env={"COLUMNS": "300"})
    args = ["replay", str(broken), "-g", str(sea[1]), "--workdir", str(work)]
    result = runner.invoke(app, [*args, "--label-wait", "1h"])
    assert result.exit_code == 0, result.output
    assert "1 duplicate prediction," in result.output
    assert "1 invalid line" in result.output
    assert f"first invalid line: {broken}:" in result.output
    assert list(work.iterdir()) == []  # the join's temporary store is gone
    bad = runner.invoke(app, [*args, "--label-wait", "soon"])
    assert bad.exit_code == 1
    assert "--label-wait: expected a duration" in bad.output
