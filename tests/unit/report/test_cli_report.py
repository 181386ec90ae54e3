"""``driftline report``'s errors: one line naming what failed, no traceback, exit 1."""

from __future__ import annotations

import socket
from pathlib import Path

import yaml
from typer.testing import CliRunner

from driftline.cli import app
from driftline.detectors.engine import WindowReport
from driftline.replay_output import write_json_lines


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["report", *args])
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def one_error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith("error: "), output
    return lines[0]


def test_a_missing_replay_file_is_named(tmp_path: Path) -> None:
    code, output = run("--replay", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "r.html"))
    assert code == 1
    assert "nope.jsonl: No such file" in one_error_line(output)
    assert not (tmp_path / "r.html").exists()


def test_an_invalid_replay_file_is_named_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"model": "m"}\n')
    code, output = run("--replay", str(path), "--out", str(tmp_path / "r.html"))
    assert code == 1
    assert "events.jsonl:1: not a window record" in one_error_line(output)


def test_an_empty_range_says_so(tmp_path: Path, reports: list[WindowReport]) -> None:
    path = tmp_path / "replay.jsonl"
    write_json_lines(reports, path)
    code, output = run("--replay", str(path), "--since", "2030-01-01T00:00:00Z")
    assert code == 1
    assert "no metric points between 2030-01-01T00:00:00Z and the end" in one_error_line(output)


def test_a_time_that_is_not_one_is_named(tmp_path: Path) -> None:
    code, output = run("--replay", str(tmp_path / "x"), "--until", "tomorrow")
    assert code == 1
    assert one_error_line(output).startswith("error: --until: 'tomorrow' is neither a time")


def test_a_replay_report_is_written(tmp_path: Path, reports: list[WindowReport]) -> None:
    path = tmp_path / "replay.jsonl"
    write_json_lines(reports, path)
    code, output = run("--replay", str(path), "--out", str(tmp_path / "r.html"), "--since", "0")
    assert code == 0, output
    assert "1 model, 168 points, 2 alerts" in output
    assert (tmp_path / "r.html").read_text().count("Plotly.newPlot(") == 4


def test_no_broker_is_one_line_naming_the_topic(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = tmp_path / "driftline.yaml"
    config.write_text(yaml.safe_dump({"kafka": {"bootstrap_servers": f"127.0.0.1:{port}"}}))
    code, output = run("--config", str(config), "--out", str(tmp_path / "r.html"), "--timeout", "5")
    assert code == 1
    assert "cannot read topic 'driftline.metrics'" in one_error_line(output)
