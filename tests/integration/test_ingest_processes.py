"""Stage 1 in several processes (``--ingest-processes``): the same results as one, supervised.

The traffic and the comparison are the scale-out test's (:mod:`tests.integration.
test_scale_out`): one ``monitor run`` whose stage 1 runs in two child processes of one
consumer group must publish, for every window, exactly the points, alerts and retrain
requests of a monitor whose stage 1 runs in its own process. And a child killed with -9 takes
its monitor down with a line naming it; the monitor restarted on the same state then judges
every window on exactly its predictions and labels, none lost, none counted twice.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import pytest
import yaml

from driftline.config import Settings
from driftline.streams.registry import publish_profile
from driftline.testing.servers import TansuBroker, VictoriaMetrics
from driftline.testing.service import sea_reference, start_monitor, stop_process
from driftline.topics import create_topics
from tests.integration.test_scale_out import (
    MODELS,
    N_EVENTS,
    PUBLISH_RATE,
    RESULTS_TIMEOUT,
    VERSION,
    Results,
    TopicTail,
    _assignments,
    _config,
    _publish,
    _scenario,
    assert_same_results,
)

pytestmark = pytest.mark.scale_out

CHILD = re.compile(r"ingest process (\d+) of (\d+) started \(pid (\d+)\)")


def _children(log: Path) -> dict[int, int]:
    """Child number to pid, as the monitor logged them."""
    return {int(n): int(pid) for n, _, pid in CHILD.findall(log.read_text(errors="replace"))}


def test_two_ingest_processes_give_exactly_the_same_window_results_as_one(
    tansu_factory: Callable[[], TansuBroker], tmp_path: Path
) -> None:
    references = [sea_reference(model, VERSION) for model in MODELS]
    one = _scenario(1, tmp_path / "one", tansu_factory(), references, ingest_processes=1)
    two = _scenario(1, tmp_path / "two", tansu_factory(), references, ingest_processes=2)

    log = two.logs[0]
    assert sorted(_children(log)) == [1, 2], f"not two ingest processes:\n{two.tail()}"
    assert not _children(one.logs[0]), "the one-process monitor started ingest processes"
    # Both children owned input partitions (each logs its own assignments to the same log).
    owned = [set(a) for a in _assignments(log) if a]
    assert any(a.isdisjoint(b) for a in owned for b in owned if a != b), (
        f"the input partitions were never split between the two processes: {owned}"
    )
    assert_same_results(one, two, ("stage 1 in-process", "two ingest processes"))


def test_a_killed_ingest_process_takes_the_monitor_down_and_a_restart_loses_nothing(
    tansu_factory: Callable[[], TansuBroker], tmp_path: Path
) -> None:
    """SIGKILL of one ingest process mid-stream: the monitor exits non-zero naming the child
    and its status, its other child goes with it, and the monitor restarted on the same
    state judges every window on exactly its predictions and labels."""
    broker = tansu_factory()
    work = tmp_path / "killed"
    work.mkdir()
    results = Results()
    with ExitStack() as stack:
        victoria = stack.enter_context(VictoriaMetrics(workdir=work / "victoria-metrics"))
        raw = _config(broker, victoria, work)
        settings = Settings(**raw)
        config = work / "driftline.yaml"
        config.write_text(yaml.safe_dump(raw))
        create_topics(settings.kafka, settings.topics)
        for model in MODELS:
            publish_profile(settings.kafka, settings.topics, sea_reference(model, VERSION))
        outbox = TopicTail(settings.kafka, [settings.topics.metrics])
        stack.callback(outbox.close)
        logs = [work / "monitor-1.log", work / "monitor-2.log"]
        results.logs = logs
        monitor = start_monitor("run", config, logs[0], cwd=work, ingest_processes=2)
        stack.callback(stop_process, monitor, 60)

        ready = time.monotonic() + 60
        while not any(_assignments(logs[0])):
            assert monitor.poll() is None, f"the monitor exited:\n{results.tail()}"
            assert time.monotonic() < ready, f"no input partitions in 60 s:\n{results.tail()}"
            time.sleep(0.1)  # polling the log for the first assignment
        sent = [0]
        failures: list[BaseException] = []

        def publish() -> None:
            try:
                _publish(settings.kafka, settings.topics, sent)
            except BaseException as exc:  # re-raised in the test's thread
                failures.append(exc)

        publisher = threading.Thread(target=publish, name="publisher", daemon=True)
        publisher.start()

        # Mid-stream, once a window was judged: kill -9 the second ingest process.
        deadline = time.monotonic() + N_EVENTS / PUBLISH_RATE + RESULTS_TIMEOUT
        while not results.records:
            assert time.monotonic() < deadline, f"no window judged:\n{results.tail()}"
            assert monitor.poll() is None, f"the monitor exited:\n{results.tail()}"
            for _, value in outbox.read():
                results.take(value)
        children = _children(logs[0])
        assert sorted(children) == [1, 2], f"not two ingest processes:\n{results.tail()}"
        killed_after = sent[0]
        os.kill(children[2], signal.SIGKILL)
        try:
            status = monitor.wait(90)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the monitor outlived its killed ingest process:\n{results.tail()}")
        assert status != 0
        text = logs[0].read_text(errors="replace")
        said = f"ingest process 2 of 2 (pid {children[2]}) exited with status -9"
        assert said in text, f"no line naming the killed process:\n{results.tail()}"
        for pid in children.values():  # the sibling did not outlive the monitor
            assert not _running(pid), f"ingest process {pid} outlived its monitor"

        restarted = start_monitor("run", config, logs[1], cwd=work, ingest_processes=2)
        stack.callback(stop_process, restarted, 60)
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            assert restarted.poll() is None, f"the restarted monitor exited:\n{results.tail()}"
            assert not failures, f"publishing failed: {failures[0]!r}"
            values = outbox.read()
            for _, value in values:
                results.take(value)
            if values:
                quiet_since = time.monotonic()
            done = not publisher.is_alive() and time.monotonic() - quiet_since >= 1.0
            if done and not results.missing():
                break
        assert killed_after < N_EVENTS * 0.8, "the process was killed too late in the stream"
        assert not results.missing(), (
            "after the kill and restart, windows not judged on exactly their events "
            f"(model, end: (predictions, labels)): {results.missing()}\n{results.tail()}"
        )
        assert stop_process(restarted, 60) == 0, f"no clean stop:\n{results.tail()}"


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process (not a zombie); waits briefly for the kernel."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return False
        if state == "Z":
            return False
        time.sleep(0.1)  # PDEATHSIG is delivered asynchronously
    return True
