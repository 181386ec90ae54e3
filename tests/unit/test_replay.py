"""driftline replay: backtesting files of events with the real engine."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from driftline.cli import app
from driftline.config import Settings
from driftline.replay import ReplayError, replay
from driftline.testing.synthetic import START_MS, STEP_MS, write_sea_files

# 10 events a second: 20,000 events of warm-up, a shift of x3 at 40,000 (minute 66:40) and a
# concept change at 60,000 (minute 100), ten-minute windows.
SETTINGS = Settings(
    models={
        "sea": {
            "task": "binary",
            "pane": "1m",
            "windows": [{"size": "10m"}],
            "allowed_lateness": "0s",
            "warmup_events": 20_000,
            "drift": {"min_samples": 500},
            "performance": {"metric": "accuracy", "max_drop": 0.05, "min_labels": 500},
            "retrain": {"policy": "on_either", "cooldown": "2h"},
        }
    }
)
WINDOW_MS = 600_000


@pytest.fixture(scope="module")
def sea(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("sea")
    return write_sea_files(directory, 80_000, shift_at=40_000, drift_at=60_000, seed=3)


def window_index(start_ms: int) -> int:
    return (start_ms - START_MS) // WINDOW_MS


def test_replay_flags_the_shift_and_the_concept_change_and_nothing_before(
    sea: tuple[Path, Path],
) -> None:
    result = replay(*sea, settings=SETTINGS)
    assert result.baselined == {("sea", "1"): 20_000}
    assert result.rejected == []
    assert result.unlabelled == 0
    shift_window = 40_000 * STEP_MS // WINDOW_MS  # the window the x3 shift starts in
    change_window = 60_000 * STEP_MS // WINDOW_MS  # the concept change is centred here
    judged = sorted(window_index(r.window.start_ms) for r in result.reports)
    assert judged == list(range(judged[0], judged[0] + len(judged)))  # no window skipped
    for report in result.reports:
        index = window_index(report.window.start_ms)
        d = report.decision
        if index < shift_window:
            assert not d.firing, f"false alarm in window {index}"
            assert d.retrain is None, f"false retrain request in window {index}"
        if index > shift_window:
            assert "x3" in d.drifted_features, f"x3 shift missed in window {index}"
        assert {"x1", "x2"}.isdisjoint(d.drifted_features)
        if index < change_window - 1:
            assert not d.performance_breach, f"false performance alarm in window {index}"
        if index > change_window:
            assert d.performance_breach, f"accuracy drop missed in window {index}"
    requests = [r.decision.retrain for r in result.reports if r.decision.retrain]
    assert len(requests) == len({r.request_id for r in requests}) >= 1
    assert any(r.concept_drift for r in result.reports)


def test_replay_is_deterministic(sea: tuple[Path, Path]) -> None:
    first, second = replay(*sea, settings=SETTINGS), replay(*sea, settings=SETTINGS)
    assert [r.decision.alerts for r in first.reports] == [r.decision.alerts for r in second.reports]
    assert [r.drift for r in first.reports] == [r.drift for r in second.reports]


def test_invalid_lines_are_reported_and_skipped(tmp_path: Path, sea: tuple[Path, Path]) -> None:
    broken = tmp_path / "predictions.jsonl"
    broken.write_bytes(sea[0].read_bytes() + b'{"event_id": "x"}\nnot json\n')
    result = replay(broken, settings=SETTINGS)
    assert [(r.line, r.reason.split(" ")[0]) for r in result.rejected] == [
        (80_001, "Object"),
        (80_002, "JSON"),
    ]


def test_a_version_without_reference_or_enough_traffic_is_refused(tmp_path: Path) -> None:
    predictions, _ = write_sea_files(tmp_path, 100, seed=5)
    with pytest.raises(ReplayError, match="no reference profile and 100 events"):
        replay(predictions, settings=SETTINGS)


def test_cli_replay_with_a_built_reference_writes_line_protocol_and_json(
    tmp_path: Path,
) -> None:
    runner = CliRunner(env={"COLUMNS": "200"})
    reference_rows, _ = write_sea_files(tmp_path / "ref", 5_000, seed=11)
    csv = tmp_path / "reference.csv"
    rows = [orjson.loads(line) for line in reference_rows.read_bytes().splitlines()]
    csv.write_text(
        "x1,x2,x3,prediction,score_0,score_1\n"
        + "".join(
            f"{r['features']['x1']},{r['features']['x2']},{r['features']['x3']},{r['prediction']},"
            f"{r['scores']['0']},{r['scores']['1']}\n"
            for r in rows
        )
    )
    built = runner.invoke(
        app,
        [
            "reference",
            "build",
            str(csv),
            "--model",
            "sea",
            "--version",
            "1",
            "--task",
            "binary",
            "--out",
            str(tmp_path / "ref.json"),
        ],
    )
    assert built.exit_code == 0, built.output
    assert "5000 rows, 3 features" in built.output

    predictions, truths = write_sea_files(tmp_path / "live", 12_000, shift_at=6_000, seed=12)
    config = tmp_path / "driftline.yaml"
    config.write_text(
        "models: {sea: {task: binary, windows: [{size: 10m}], "
        "allowed_lateness: 0s, drift: {min_samples: 500}}}\n"
    )
    result = runner.invoke(
        app,
        [
            "replay",
            str(predictions),
            "-g",
            str(truths),
            "-c",
            str(config),
            "--reference",
            str(tmp_path / "ref.json"),
            "--lp",
            str(tmp_path / "out.lp"),
            "--json",
            str(tmp_path / "out.jsonl"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "x3 psi=" in result.output
    records = [orjson.loads(line) for line in (tmp_path / "out.jsonl").read_bytes().splitlines()]
    assert [r["n_events"] for r in records] == [6000, 6000]
    assert [r["decision"]["drifted_features"] for r in records] == [[], ["x3"]]
    lp = (tmp_path / "out.lp").read_text().splitlines()
    assert any(line.startswith("feature_drift,feature=x3,model=sea,test=psi") for line in lp)


def test_cli_reference_build_rejects_an_unknown_task(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "reference",
            "build",
            str(tmp_path / "x.csv"),
            "--model",
            "m",
            "--version",
            "1",
            "--task",
            "ranking",
        ],
    )
    assert result.exit_code == 2
    assert "--task must be binary, multiclass or regression" in result.output
