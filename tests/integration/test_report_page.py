"""``driftline report``'s page in a real browser: headless Chromium (Debian's package) opens
the file with no network, logs no console error, and draws every plot.

Fails, never skips, when Chromium is missing: ``./dev test`` installs it (as root), or point
``DRIFTLINE_CHROMIUM`` at one. The screenshot goes to the test's temporary directory, and to
``docs/report-screenshot.png`` too when ``DRIFTLINE_DOCS_SCREENSHOT=1``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import ConsoleMessage, Error, sync_playwright
from typer.testing import CliRunner

from driftline.cli import app
from driftline.config import Settings
from driftline.replay import replay
from driftline.replay_output import write_json_lines
from driftline.testing.service import SEA_MODEL, sea_reference
from driftline.testing.synthetic import write_sea_files

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("DRIFTLINE_CHROMIUM", "/usr/bin/chromium")

# Every plot div: drawn (an svg), one rendered trace per trace of its data, lines with a path.
DRAWN = """() => [...document.querySelectorAll('.js-plotly-plot')].map(d => ({
    id: d.id,
    svg: d.querySelectorAll('.main-svg').length,
    traces: d.data.length,
    drawn: d.querySelectorAll('.scatterlayer .trace').length,
    lines: [...d.querySelectorAll('.scatterlayer path.js-line')]
        .filter(p => (p.getAttribute('d') || '').length > 1).length,
}))"""


@pytest.fixture(scope="module")
def replay_json(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A replay of an hour of SEA traffic whose x3 shifts half-way: drift, alerts, a retrain."""
    directory = tmp_path_factory.mktemp("replay")
    predictions, labels = write_sea_files(directory, 36_000, shift_at=18_000)
    result = replay(
        predictions,
        labels,
        settings=Settings(models={"sea": SEA_MODEL}),
        references={("sea", "1"): sea_reference().reference},
    )
    path = directory / "replay.jsonl"
    write_json_lines(result.reports, path)
    return path


def test_the_report_opens_without_network_or_error_and_draws_every_plot(
    replay_json: Path, tmp_path: Path
) -> None:
    assert Path(CHROMIUM).exists(), (
        f"no Chromium at {CHROMIUM}: apt-get install chromium (./dev test does, as root), "
        "or set DRIFTLINE_CHROMIUM"
    )
    page_path = tmp_path / "report.html"
    result = CliRunner().invoke(
        app, ["report", "--replay", str(replay_json), "--out", str(page_path)]
    )
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output
    size = page_path.stat().st_size
    assert size < 8_000_000, f"{size} bytes: more than one copy of plotly.js?"

    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})

            def on_console(message: ConsoleMessage) -> None:
                if message.type == "error":
                    errors.append(message.text)

            def on_page_error(error: Error) -> None:
                errors.append(str(error))

            page.on("console", on_console)
            page.on("pageerror", on_page_error)
            page.on("request", lambda r: requests.append(r.url))
            page.goto(page_path.as_uri())
            page.wait_for_function(
                "() => { const ds = [...document.querySelectorAll('.js-plotly-plot')];"
                " return ds.length > 0 && ds.every(d => d.querySelector('.main-svg')); }",
                timeout=60_000,
            )
            plots = page.evaluate(DRAWN)
            shot = tmp_path / "report.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert errors == []
    assert [r for r in requests if not r.startswith("file:")] == []
    assert [p["id"] for p in plots] == ["m0-drift", "m0-performance", "m0-labels", "m0-quality"]
    for plot in plots:
        assert plot["svg"] > 0, plot
        assert plot["drawn"] == plot["traces"] > 0, plot
        assert plot["lines"] > 0, plot
    assert shot.stat().st_size > 10_000
    if os.environ.get("DRIFTLINE_DOCS_SCREENSHOT") == "1":
        shutil.copyfile(shot, ROOT / "docs" / "report-screenshot.png")
