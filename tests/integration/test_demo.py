"""``driftline demo --short``: the whole loop on its own servers and processes.

In process (:func:`~driftline.demo.run_demo`): calm windows without alerts, an alert on the
covariate shift of ``x3`` that resolves once it is over, an accuracy alert and a retrain
request after the concept change, version 2 trained, promoted and served, its accuracy above
version 1's during the change, version 1's alert resolved, every process stopped with status
0 and the working directory removed. As a command: Ctrl-C stops every process it started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from driftline.demo import WINDOW_MS, DemoOptions, DemoState, run_demo


def _report_command_exists() -> bool:
    probe = [sys.executable, "-m", "driftline", "report", "--help"]
    return subprocess.run(probe, capture_output=True, check=False).returncode == 0


def test_short_demo_alerts_retrains_promotes_recovers_and_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # its working directory lands here
    said: list[str] = []
    report = tmp_path / "report.html"
    state = run_demo(DemoOptions(short=True, timeout=300, report=report), say=said.append)
    status = state.status
    assert status is not None
    context = "\n".join(said)

    # Calm: no alert before the shift; the shift: x3 drifts and an alert fires about it.
    calm = [w for w in state.windows.values() if w.end_ms <= status.shift_ms]
    assert len(calm) >= 2, context
    assert not [w for w in calm if w.firing or w.drifted], context
    shifted = [
        w
        for w in state.windows.values()
        if w.end_ms - WINDOW_MS >= status.shift_ms and w.end_ms <= status.shift_end_ms
    ]
    assert shifted, context
    assert all(w.drifted == {"x3"} and w.firing for w in shifted), context
    alerts = sorted(state.alerts.values(), key=lambda a: (a.window_end, a.status))
    first = alerts[0]
    assert first.status == "firing", context
    assert first.window_start.timestamp() * 1000 >= status.shift_ms, context
    assert {r.feature for r in first.reasons} == {"x3"}, context
    # The shift's alert resolves at the clean window between the shift and the change.
    resolved = [a for a in alerts if a.status == "resolved"]
    assert resolved[0].window_end.timestamp() * 1000 <= status.change_ms + WINDOW_MS, context

    # The concept change: an accuracy alert and a retrain request about version 1.
    changed = [
        a
        for a in alerts
        if a.status == "firing" and a.window_start.timestamp() * 1000 >= status.change_ms
    ]
    assert changed, context
    # Every alert with evidence after the change cites accuracy (a window of version 1 cut
    # short by the switch can restate the alert without any).
    assert all(any(r.statistic == "accuracy" for r in a.reasons) for a in changed if a.reasons), (
        context
    )
    requests = list(state.requests.values())
    assert len(requests) == 1, context  # the cool-down holds back the others
    assert requests[0].model_version == "1"
    assert any(r.kind == "performance" and r.statistic == "accuracy" for r in requests[0].reasons)
    assert requests[0].window_end.timestamp() * 1000 > status.change_ms

    # Version 2 trained, promoted, published and served.
    promoted = [o for o in state.outcomes.values() if o.status == "succeeded" and o.promoted]
    assert [o.candidate_version for o in promoted] == ["2"], context
    assert state.versions["2"].source == "trainer"
    assert state.versions["2"].parent_version == "1"
    assert status.version == "2", context
    assert status.switched_ms is not None, context

    # Recovery: version 2 beats version 1 during the change, close to version 1 when calm.
    calm_accuracy = state.accuracy("1", "calm")
    during = state.accuracy("1", "concept change")
    after = state.accuracy("2", "promoted")
    assert calm_accuracy is not None, context
    assert during is not None, context
    assert after is not None, context
    assert during < calm_accuracy - 0.05, (calm_accuracy, during)
    assert after > during + 0.05, (during, after)
    assert after > calm_accuracy - 0.02, (calm_accuracy, after)
    # Version 1's alert resolves once its traffic stopped; version 2 raises none.
    v1 = [a for a in alerts if a.model_version == "1"]
    assert v1[-1].status == "resolved", context
    assert v1[-1].reasons[0].kind == "traffic_stopped", v1[-1]
    assert not [a for a in alerts if a.model_version == "2" and a.status == "firing"], context

    # It ends cleanly: every process stopped with status 0, the working directory removed,
    # and the report written or said to be unavailable.
    assert state.finished
    assert state.exit_codes == {"simulate": 0, "trainer": 0, "monitor": 0}, context
    assert not state.workdir.exists()
    assert state.points is not None, context
    assert state.points > 0, context  # the writer reached VictoriaMetrics
    if _report_command_exists():
        assert report.is_file(), context
    else:
        assert any("not available" in line for line in said), context


def _descendants(pid: int) -> set[int]:
    """Every process below ``pid``, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_ctrl_c_stops_every_process_the_demo_started(tmp_path: Path) -> None:
    """SIGINT once the simulation serves: exit 130, no child survives, nothing left behind;
    without the metrics server (the monitor runs without its writer)."""
    demo = subprocess.Popen(
        [sys.executable, "-m", "driftline", "demo", "--short", "--no-metrics-server"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "TMPDIR": str(tmp_path)},
        cwd=tmp_path,
    )
    assert demo.stdout is not None
    lines: list[str] = []
    serving = threading.Event()

    def read() -> None:
        assert demo.stdout is not None
        for raw in demo.stdout:
            lines.append(raw.decode(errors="replace"))
            if "serving sea version 1" in lines[-1]:
                serving.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert serving.wait(120), "".join(lines)
        # The interrupt under test is the one mid-run, with every child busy: a few seconds
        # after serving starts predictions flow; the children are counted before SIGINT.
        time.sleep(3.0)
        children = _descendants(demo.pid)
        assert len(children) >= 4, children  # Tansu, monitor, trainer, simulate at least
        demo.send_signal(signal.SIGINT)
        assert demo.wait(90) == 130, "".join(lines)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait(10)
    reader.join(10)
    demo.stdout.close()
    text = "".join(lines)
    assert "running without the metrics server" in text, text
    assert "interrupted" in text, text
    survivors = {pid for pid in children if _alive(pid)}
    assert not survivors, survivors
    assert not list(tmp_path.glob("driftline-demo-*")), text


def test_demo_state_phases_follow_the_simulation_status(tmp_path: Path) -> None:
    """A window is in the phase its whole span is in (the view and the recovery figure)."""
    from driftline.testing.simulate import Plan, Status

    plan = Plan.short()
    state = DemoState(workdir=tmp_path)
    state.status = Status(
        shift_ms=plan.ms(plan.shift_at),
        shift_end_ms=plan.ms(plan.shift_end),
        change_ms=plan.ms(plan.change_at),
        switched_ms=plan.ms(plan.change_at + 12_000),
    )
    assert state.phase_of(plan.ms(plan.shift_at)) == "calm"
    assert state.phase_of(plan.ms(plan.shift_at) + WINDOW_MS) == "covariate shift"
    assert state.phase_of(plan.ms(plan.shift_end) + WINDOW_MS) == "calm"
    assert state.phase_of(plan.ms(plan.change_at) + WINDOW_MS) == "concept change"
    assert state.phase_of(plan.ms(plan.change_at + 12_000) + WINDOW_MS) == "promoted"
