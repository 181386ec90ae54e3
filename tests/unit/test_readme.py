"""The README as a newcomer reads it: short, every link resolving, its replay example running."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_readme_stays_short() -> None:
    """References live in docs/: the README is at most about 12 KB."""
    assert len(README.encode("utf-8")) <= 12_500, len(README.encode("utf-8"))


def test_the_readme_starts_with_the_two_commands() -> None:
    """The first code block is ``./dev demo`` then ``./dev test``."""
    block = README.split("```bash\n", 1)[1].split("```", 1)[0]
    assert [line.split()[0] + " " + line.split()[1] for line in block.splitlines()] == [
        "./dev demo",
        "./dev test",
    ]


def test_every_relative_link_of_the_readme_resolves() -> None:
    """A link to a file of the repository names one that exists (anchors aside)."""
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README)
    local = [target for target in targets if "://" not in target]
    assert local, "the README links no document"
    missing = [target for target in local if not (ROOT / target).exists()]
    assert not missing, f"README links to missing files: {missing}"


def _replay_example() -> list[str]:
    block = next(
        body
        for body in re.findall(r"```bash\n(.*?)```", README, re.S)
        if "examples/river_stream.py" in body
    )
    return [line for line in block.replace("\\\n", " ").splitlines() if line.strip()]


def test_the_readme_replay_example_runs_as_written(tmp_path: Path) -> None:
    """The backtest commands run from the repository's root with their files redirected to
    a temporary folder, and the windows show the example's x3 shift flagged."""
    out = tmp_path / "sea"
    commands = []
    for line in _replay_example():
        words = shlex.split(line.split("#", 1)[0].replace("/tmp/sea", str(out)))
        if words[0].endswith("python"):
            words[0] = sys.executable
        elif words[0].endswith("driftline"):
            words[:1] = [sys.executable, "-m", "driftline"]
        commands.append(words)
    assert len(commands) == 2, commands
    for words in commands:
        done = subprocess.run(words, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, (words, done.stdout[-2000:], done.stderr[-2000:])
    windows = [json.loads(line) for line in (out / "windows.jsonl").read_text().splitlines()]
    assert len(windows) > 10
    flagged = {
        result["column"]
        for window in windows
        for result in window["drift"]
        if result["kind"] == "feature_drift" and result["drifted"]
    }
    assert "x3" in flagged, flagged
    assert "x1" not in flagged, flagged
    assert (out / "points.lp").stat().st_size > 0
