"""Alerts and retrain requests already on their topics, so a restarted stage 2 sends none twice.

Stage 2 rebuilds its state by re-reading the summaries topic (:mod:`driftline.streams.stage2`)
and so judges every retained window again. Metric points may be written again (InfluxDB
overwrites a point of the same identity), but an alert or a retrain request reaches
consumers that act on it (page a person, start a training run): those must not repeat
(DESIGN §3).

**Where the marks come from: the output topics themselves.** Each alert and retrain request
carries a deterministic id (:mod:`driftline.schemas.ids`), and a record is published exactly
when it is on its topic. So when a worker starts, and whenever it gains summaries partitions
(another member may have published for those models until the rebalance), it reads the alerts
and retrain topics whole (:func:`read_published`: every partition, by assignment, without a
consumer group, as :mod:`driftline.streams.registry` reads the models topic) into a bounded
set of ids (:class:`PublishedIds`), and :class:`PublishedRecords` drops a record whose id is
there before it is sent; a record is added once its publication is acknowledged. The
alternative, a compacted topic of "sent" marks, was not taken: a mark and its record are two
writes with no transaction between them (Tansu has none, DESIGN §6), so a crash between them
either loses the record (mark first) or repeats it (record first), and it is one more topic
to create, size and retain. Reading the outputs has no such gap, and their retention bounds
what is read.

The set is bounded by ``monitor.published_ids_max`` (the oldest ids go first); windows older
than the summaries topic's retention are never judged again, so ids beyond it are not needed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import orjson

from driftline.config import KafkaSettings
from driftline.streams.readback import read_to_end
from driftline.streams.stage2.outputs import Output, OutputRole
from driftline.streams.stage2.state import Activity

__all__ = [
    "ID_FIELDS",
    "PublishedIds",
    "PublishedRecords",
    "Reader",
    "read_published",
    "record_id",
    "without_repeats",
]

logger = logging.getLogger(__name__)

ID_FIELDS: dict[OutputRole, str] = {
    "alerts": "alert_id",
    "retrain": "request_id",
    "rollout": "decision_id",
}
"""The roles whose records must not repeat, and the field of each that holds its id (a
rollout decision promotes or rolls back a version: it must not repeat either).

A rollout decision is recognised by its pair rather than its ``decision_id``
(:func:`record_id`): a (model, champion, challenger) pair is decided once. A restarted stage 2
re-judges the pair's windows from the summaries topic, but a window closed by an idle
timeout the first time may close later (with more evidence) in the re-read, and its decision
then comes at another window, with another id; the pair's first decision stands."""


def record_id(role: OutputRole, value: bytes) -> str | None:
    """The id of an alert or retrain request as published; None for another role, or a value
    that is not such a record (another producer's record on the topic).

    A rollout decision's id is its pair's: ``rollout`` and the model, champion and challenger
    versions, NUL-separated (see :data:`ID_FIELDS`).

    >>> record_id("alerts", b'{"alert_id": "a1", "model": "m"}'), record_id("metrics", b"x")
    ('a1', None)
    >>> record_id("rollout", b'{"model": "m", "champion_version": "1",'
    ...           b' "challenger_version": "2", "decision_id": "d"}').split("\\x00")
    ['rollout', 'm', '1', '2']
    """
    field = ID_FIELDS.get(role)
    if field is None:
        return None
    try:
        record = orjson.loads(value)
        found = record.get(field)
        if role == "rollout":
            pair = [record.get(k) for k in ("model", "champion_version", "challenger_version")]
            if not all(isinstance(part, str) for part in pair):
                return None
            found = "\x00".join(["rollout", *pair])
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return found if isinstance(found, str) else None


class PublishedIds:
    """Record ids, at most ``limit``; adding past it forgets the oldest first.

    >>> ids = PublishedIds(limit=2)
    >>> ids.update(["a", "b", "c"])
    >>> "a" in ids, "c" in ids, len(ids)
    (False, True, 2)
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        self.limit = limit
        self._ids: dict[str, None] = {}  # insertion-ordered: the oldest first

    def __contains__(self, record_id: object) -> bool:
        return record_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, record_id: str) -> None:
        """Remember one id (again: it becomes the newest)."""
        self._ids.pop(record_id, None)
        self._ids[record_id] = None
        while len(self._ids) > self.limit:
            del self._ids[next(iter(self._ids))]

    def update(self, record_ids: Iterable[str]) -> None:
        """Remember several ids, in order."""
        for record_id in record_ids:
            self.add(record_id)


def read_published(
    kafka: KafkaSettings,
    topics: dict[OutputRole, str],
    *,
    idle: float = 1.0,
    timeout: float = 300.0,
) -> list[str]:
    """Every alert and request id on ``topics`` (role -> topic name), read from the beginning
    of every partition by assignment, until caught up (:func:`~driftline.streams.readback.
    read_to_end`); in topic order per partition. :class:`~driftline.errors.KafkaError` when a
    topic cannot be listed, a fetch fails for good, or ``timeout`` seconds pass before the end
    is reached."""
    role_of = {topic: role for role, topic in topics.items()}
    ids: list[str] = []

    def take(topic: str, value: bytes) -> None:
        found = record_id(role_of[topic], value)
        if found is not None:
            ids.append(found)

    read_to_end(
        kafka,
        list(role_of),
        take,
        group="driftline-stage2-published",
        what=f"the alerts and retrain topics ({', '.join(sorted(role_of))})",
        idle=idle,
        timeout=timeout,
    )
    return ids


Reader = Callable[[], list[str]]
"""Reads the ids published so far (:func:`read_published` with its arguments bound)."""


class PublishedRecords:
    """The alerts and retrain requests published so far, and the check before sending more.

    :meth:`restore` (at start-up and whenever summaries partitions are gained) reads the
    topics again in a thread, retrying ``attempts`` times; :meth:`fresh` waits for the latest
    restore and drops the records already published; :meth:`sent` adds what was acknowledged.
    When every attempt fails, ``on_failure`` is awaited with the error (the wiring crashes
    the worker: publishing without the marks could page people twice) and :meth:`fresh`
    raises it.
    """

    def __init__(
        self,
        reader: Reader,
        limit: int,
        *,
        attempts: int = 3,
        retry_after: float = 1.0,
        on_failure: Callable[[BaseException], Awaitable[None]] | None = None,
    ) -> None:
        self.ids = PublishedIds(limit)
        self._reader = reader
        self._attempts = attempts
        self._retry_after = retry_after
        self._on_failure = on_failure
        self._restoring: asyncio.Task[None] | None = None
        self.skipped = 0
        """Records not sent because their id was published already."""

    def restore(self) -> None:
        """Read the topics again (after any restore under way), without waiting for it."""
        self._restoring = asyncio.ensure_future(self._restore(self._restoring))

    async def _restore(self, previous: asyncio.Task[None] | None) -> None:
        if previous is not None and not previous.done():
            await asyncio.gather(previous, return_exceptions=True)
        started = time.monotonic()
        for attempt in range(1, self._attempts + 1):
            try:
                ids = await asyncio.to_thread(self._reader)
                break
            except Exception as exc:
                if attempt == self._attempts:
                    logger.error(
                        "alerts and retrain requests already published could not be read "
                        "(%d attempts: %s); stopping rather than risk sending them again",
                        attempt,
                        exc,
                    )
                    if self._on_failure is not None:
                        await self._on_failure(exc)
                    raise
                logger.warning(
                    "reading the published alerts and retrain requests failed (%s); "
                    "trying again in %.0f s",
                    exc,
                    self._retry_after,
                )
                await asyncio.sleep(self._retry_after)
        self.ids.update(ids)
        logger.info(
            "%d alert and retrain request id(s) read back from their topics in %.1f s; "
            "none of them will be sent again",
            len(ids),
            time.monotonic() - started,
        )

    async def fresh(self, outputs: list[Output]) -> tuple[list[Output], list[Output]]:
        """``outputs`` split into those to send and the alerts and requests already published
        (waiting for the restore first when there are any of those)."""
        if not any(o.role in ID_FIELDS for o in outputs):
            return outputs, []
        if self._restoring is None:
            self.restore()
        assert self._restoring is not None
        await asyncio.shield(self._restoring)
        send: list[Output] = []
        repeats: list[Output] = []
        for output in outputs:
            found = record_id(output.role, output.value)
            (repeats if found is not None and found in self.ids else send).append(output)
        if repeats:
            self.skipped += len(repeats)
            logger.debug("not sending %d record(s) published before", len(repeats))
        return send, repeats

    def sent(self, outputs: Iterable[Output]) -> None:
        """Outputs whose publication was acknowledged."""
        for output in outputs:
            found = record_id(output.role, output.value)
            if found is not None:
                self.ids.add(found)


def without_repeats(activity: Activity, repeats: Iterable[Output]) -> Activity:
    """``activity`` with the alerts and requests of ``repeats`` taken off its windows' counts
    (per model, as the telemetry counts them), so that counters say what was published."""
    alerts: Counter[str] = Counter()
    retrain: Counter[str] = Counter()
    stopped = Counter(activity.stopped)
    for output in repeats:
        model = output.key.decode()
        if output.role == "alerts" and stopped[model] and _traffic_stopped(output.value):
            stopped[model] -= 1  # counted apart from windows' alerts (Activity.stopped)
        elif output.role in ("alerts", "retrain"):
            (alerts if output.role == "alerts" else retrain)[model] += 1
    if stopped != activity.stopped:
        activity = dataclasses.replace(activity, stopped=stopped)
    if not alerts and not retrain:
        return activity
    windows = []
    for window in activity.windows:
        changes: dict[str, Any] = {}
        taken = min(window.alerts, alerts[window.model])
        if taken:
            alerts[window.model] -= taken
            changes["alerts"] = window.alerts - taken
        if window.retrain and retrain[window.model]:
            retrain[window.model] -= 1
            changes["retrain"] = False
        windows.append(dataclasses.replace(window, **changes) if changes else window)
    return dataclasses.replace(activity, windows=windows)


def _traffic_stopped(value: bytes) -> bool:
    """Whether an alert as published resolves a version whose traffic stopped."""
    try:
        reasons = orjson.loads(value).get("reasons") or []
        return any(r.get("kind") == "traffic_stopped" for r in reasons)
    except (orjson.JSONDecodeError, AttributeError):
        return False
