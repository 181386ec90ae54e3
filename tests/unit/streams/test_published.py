"""The check before stage 2 publishes alerts and retrain requests: ids already published are
not sent again, whoever published them and whenever the topics were read back."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from driftline.detectors.engine import Window
from driftline.schemas.outputs import DriftAlert, Reason, RetrainRequest, RolloutDecision
from driftline.streams.stage2.outputs import Output
from driftline.streams.stage2.published import (
    PublishedIds,
    PublishedRecords,
    record_id,
    without_repeats,
)
from driftline.streams.stage2.silence import stopped_alert
from driftline.streams.stage2.state import Activity, ClosedWindow
from tests.unit.streams.stage2_helpers import WINDOW

START, END = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 1, tzinfo=UTC)
REASON = Reason(kind="feature_drift", feature="x", statistic="psi", value=0.5, threshold=0.2)


def alert(model: str = "m", severity: str = "warning") -> Output:
    record = DriftAlert.create(model, "1", START, END, severity=severity, reasons=[REASON])  # type: ignore[arg-type]
    return Output("alerts", model.encode(), record.to_json())


def request(model: str = "m") -> Output:
    record = RetrainRequest.create(model, "1", START, END, rule="on_drift", reasons=[REASON])
    return Output("retrain", model.encode(), record.to_json())


METRICS = Output("metrics", b"m", b"decision,model=m firing=true 1")


def test_record_ids_are_read_from_alerts_and_requests_only() -> None:
    a, r = alert(), request()
    assert record_id("alerts", a.value) == DriftAlert.model_validate_json(a.value).alert_id
    assert record_id("retrain", r.value) == RetrainRequest.model_validate_json(r.value).request_id
    assert record_id("metrics", METRICS.value) is None
    assert record_id("alerts", b"not json") is None
    assert record_id("alerts", b"[1, 2]") is None


def test_the_id_set_forgets_its_oldest_ids_past_its_limit() -> None:
    ids = PublishedIds(limit=3)
    ids.update(["a", "b", "c"])
    ids.add("a")  # seen again: now the newest
    ids.add("d")
    assert ("a" in ids, "b" in ids, "c" in ids, "d" in ids, len(ids)) == (
        True,
        False,
        True,
        True,
        3,
    )
    with pytest.raises(ValueError, match="limit"):
        PublishedIds(limit=0)


def test_records_read_back_or_sent_before_are_not_sent_again_and_metrics_always_are() -> None:
    read_back = alert("m")
    reads: list[int] = []

    def reader() -> list[str]:
        reads.append(1)
        return [record_id("alerts", read_back.value) or ""]

    async def scenario() -> None:
        published = PublishedRecords(reader, limit=100)
        # Metrics alone wait for nothing, and read nothing.
        assert await published.fresh([METRICS]) == ([METRICS], [])
        assert reads == []
        changed = alert("m", severity="critical")  # another verdict: another id
        send, repeats = await published.fresh([METRICS, read_back, changed, request()])
        assert (send, repeats) == ([METRICS, changed, request()], [read_back])
        assert reads == [1]
        published.sent(send)
        assert await published.fresh([METRICS, changed, request()]) == (
            [METRICS],
            [changed, request()],
        )
        assert published.skipped == 3
        # Partitions gained: the topics are read again, and what was known stays known.
        published.restore()
        assert await published.fresh([read_back, changed]) == ([], [read_back, changed])
        assert reads == [1, 1]

    asyncio.run(scenario())


def test_a_failing_read_is_retried_then_reported_and_nothing_is_sent() -> None:
    failures: list[BaseException] = []
    attempts: list[int] = []

    def reader() -> list[str]:
        attempts.append(1)
        raise OSError("broker down")

    async def on_failure(exc: BaseException) -> None:
        failures.append(exc)

    async def scenario() -> None:
        published = PublishedRecords(
            reader, limit=10, attempts=3, retry_after=0.0, on_failure=on_failure
        )
        with pytest.raises(OSError, match="broker down"):
            await published.fresh([alert()])

    asyncio.run(scenario())
    assert len(attempts) == 3
    assert [str(f) for f in failures] == ["broker down"]


def test_counters_lose_the_repeats_so_they_say_what_was_published() -> None:
    def closed(model: str, alerts: int, retrain: bool) -> ClosedWindow:
        return ClosedWindow(model, "1", Window(WINDOW, 0, "5m"), False, 0, 10, alerts, retrain)

    activity = Activity(windows=[closed("m", 2, True), closed("n", 1, True), closed("m", 1, False)])
    taken = without_repeats(activity, [alert("m"), alert("m"), alert("m"), request("n")])
    assert [(w.model, w.alerts, w.retrain) for w in taken.windows] == [
        ("m", 0, True),
        ("n", 1, False),
        ("m", 0, False),
    ]
    assert without_repeats(activity, []) is activity


def test_a_repeated_stopped_alert_comes_off_the_stopped_count_not_a_windows() -> None:
    window = ClosedWindow("m", "2", Window(WINDOW, 0, "5m"), False, 0, 10, 1, False)
    activity = Activity(windows=[window], stopped=Counter({"m": 1}))
    repeat = Output("alerts", b"m", stopped_alert("m", "1", 0, 2 * WINDOW, WINDOW).to_json())
    taken = without_repeats(activity, [repeat])
    assert [w.alerts for w in taken.windows] == [1]
    assert taken.stopped == Counter({"m": 0})


def _decision(end: datetime | None = None) -> Output:
    record = RolloutDecision.create(
        "m",
        "1",
        "2",
        START,
        END if end is None else end,
        design="shadow",
        decision="promote",
        action="promote",
        metric="accuracy",
        estimate=0.1,
        lower=0.05,
        upper=0.15,
        n=900,
        alpha=0.05,
        margin=0.0,
        method="cs",
    )
    return Output("rollout", b"m", record.to_json())


def test_a_rollout_decision_published_before_is_not_sent_again() -> None:
    decision = _decision()
    found = record_id("rollout", decision.value)
    assert found is not None

    async def scenario() -> tuple[list[Output], list[Output]]:
        return await PublishedRecords(lambda: [found], limit=100).fresh([METRICS, decision])

    assert asyncio.run(scenario()) == ([METRICS], [decision])


def test_a_repeated_rollout_decision_is_not_counted_as_a_retrain_request() -> None:
    window = ClosedWindow("m", "1", Window(WINDOW, 0, "5m"), False, 0, 10, 0, True)
    activity = Activity(windows=[window])
    assert without_repeats(activity, [_decision()]).windows == [window]


def test_a_pair_decided_before_is_not_decided_again_at_another_window() -> None:
    # A restarted stage 2 may close a window later than the first run did (an idle timeout),
    # and decide the same pair at another window: another decision_id, the same pair.
    first, later = _decision(), _decision(END + timedelta(minutes=5))
    assert orjson.loads(first.value)["decision_id"] != orjson.loads(later.value)["decision_id"]
    found = record_id("rollout", first.value)
    assert found is not None

    async def scenario() -> tuple[list[Output], list[Output]]:
        return await PublishedRecords(lambda: [found], limit=100).fresh([later])

    assert asyncio.run(scenario()) == ([], [later])
