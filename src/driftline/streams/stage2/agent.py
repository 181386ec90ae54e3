"""Stage 2's faust wiring: the app, its agent on the summaries topic and its idle-window timer.

Both feed one in-memory :class:`~driftline.streams.stage2.state.Stage2State` per worker
process. Messages are decoded here and applied by the core; the records it returns are sent
and acknowledged before the next message is taken; undecodable messages, and those whose
processing failed, go to the dead-letter topic; what the core did is handed to
:class:`~driftline.telemetry.stage2.Stage2Telemetry` with the wall-clock time of publication.

No record kills the agent: one over ``monitor.max_output_bytes``, or one the client or the
broker refuses for its size, goes to the dead-letter topic in its place (kind
``output_too_large``, cut to fit). A send that fails otherwise (the broker) is tried
:data:`SEND_ATTEMPTS` times, then the worker stops with an error naming the topic: a crashed
agent would be restarted by faust past the message, and its windows lost.

The summaries topic is consumed without committing offsets (``acks=False``) and with
``auto_offset_reset=earliest``: each assignment reads its partitions from the beginning and
rebuilds the core's state (see :mod:`driftline.streams.stage2`). The agent and the timer have
explicit names (:data:`AGENT_NAME`, :data:`TIMER_NAME`), so moving this code renames nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, NoReturn

import faust

from driftline.config.settings import Settings
from driftline.deadletter import dead_letter, fit
from driftline.errors import DecodeError, KafkaError
from driftline.schemas.outputs import DeadLetter
from driftline.streams.faust_app import new_app
from driftline.streams.partials import decode
from driftline.streams.stage2.outputs import Output, record_size, too_large
from driftline.streams.stage2.published import (
    ID_FIELDS,
    PublishedRecords,
    read_published,
    without_repeats,
)
from driftline.streams.stage2.rollouts import ParentLookup
from driftline.streams.stage2.state import ProfileLookup, Stage2State
from driftline.telemetry.stage2 import Stage2Telemetry

__all__ = [
    "AGENT_NAME",
    "TICK_INTERVAL_S",
    "TIMER_NAME",
    "create_app",
    "run_app",
]

logger = logging.getLogger(__name__)

AGENT_NAME = "driftline.stage2.merge-summaries"
TIMER_NAME = "driftline.stage2.close-idle-windows"
TICK_INTERVAL_S = 1.0
SEND_ATTEMPTS = 5
"""Tries of a send that fails for another reason than the record's size, before the worker
stops; the waits between them double from :data:`SEND_BACKOFF_S`."""
SEND_BACKOFF_S = 0.5
_HEADROOM = 64 * 1024  # the producer's request limit above the largest record, for framing


_SIZE_ERRORS = frozenset(
    {"MessageSizeTooLargeError", "RecordTooLargeError", "RecordListTooLargeError"}
)


def _refused_for_size(exc: BaseException | None) -> bool:
    """Whether the client or the broker refused a record for its size (it will not pass);
    faust wraps aiokafka's errors (``ProducerSendError``), so their causes are looked at too."""
    seen = 0
    while exc is not None and seen < 10:
        if type(exc).__name__ in _SIZE_ERRORS:
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


class _Wiring:
    """What the agent, the timer and the rebalance hook share inside one worker process."""

    def __init__(
        self,
        app: faust.App,
        settings: Settings,
        state: Stage2State,
        clock: Callable[[], float],
        telemetry: Stage2Telemetry,
    ) -> None:
        topics = settings.topics
        raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
        # acks=False: offsets of the summaries topic are never committed, so each assignment
        # reads its partitions from the beginning and rebuilds the state (see module doc).
        self.summaries = app.topic(topics.summaries, acks=False, **raw)
        self.outputs = {
            role: app.topic(getattr(topics, role), **raw)
            for role in ("metrics", "alerts", "retrain", "rollout")
        }
        self.dlq = app.topic(topics.dlq, **raw)
        self.app = app
        self.state = state
        self.clock = clock
        self.telemetry = telemetry
        self.max_bytes = settings.monitor.max_output_bytes
        self.models_of: dict[int, set[str]] = {}
        self.expected: dict[int, int] = {}
        """The next offset to apply per owned summaries partition (see :meth:`in_sequence`)."""
        self.rewinds: dict[int, tuple[int, int, float]] = {}
        """Per partition: the offset last rewound to, how often, when."""
        self.published = PublishedRecords(
            partial(read_published, settings.kafka, {r: getattr(topics, r) for r in ID_FIELDS}),
            settings.monitor.published_ids_max,
            on_failure=app.crash,
        )
        """Alerts and retrain requests on their topics: never sent again (a restart re-judges
        every retained window)."""

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    async def publish(self, outputs: list[Output], source: Any = None) -> None:
        """Send the core's records one by one, each acknowledged before the next, then count
        what the core did (windows count as published once their records are acknowledged).

        A record too large to publish goes to the dead-letter topic in its place, with
        ``source`` (the summaries message whose processing made it, if any) as its origin.
        Alerts and retrain requests published before (by this worker or, before a restart or
        rebalance, by any) are not sent again.
        """
        outputs, repeats = await self.published.fresh(outputs)
        sent: Counter[str] = Counter()
        delivered: list[Output] = []
        for output in outputs:
            topic = self.outputs[output.role]
            problem = too_large(output, self.max_bytes)
            if problem is None:
                problem = await self.send(topic, output.key, output.value)
            if problem is None:
                sent[output.role] += 1
                delivered.append(output)
                logger.debug(
                    "published %s record for model %.200s", output.role, output.key.decode()
                )
                continue
            await self.dead_letter_output(output, problem, source)
        self.published.sent(delivered)
        for role, n in sent.items():
            self.telemetry.published(self.outputs[role].get_topic_name(), n)
        activity = without_repeats(self.state.take_activity(), repeats)
        self.telemetry.record(activity, published_at=self.clock())

    async def send(
        self, topic: Any, key: bytes | None, value: bytes | None, headers: Any = None
    ) -> str | None:
        """Send one record and wait for its acknowledgement: None once acknowledged, or why
        the record itself cannot be published (the client or the broker refused its size).

        Any other failure is tried again :data:`SEND_ATTEMPTS` times, then stops the worker
        (:meth:`stop_worker`) and raises :class:`~driftline.errors.KafkaError`.
        """
        name = topic.get_topic_name()
        for attempt in range(1, SEND_ATTEMPTS + 1):
            try:
                future = await topic.send(key=key, value=value, headers=headers, force=True)
                await future
                return None
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.telemetry.publish_errors.inc()
                if _refused_for_size(exc):
                    size = record_size(key, value, headers or ())
                    return f"{name} refused a record of {size} bytes: {type(exc).__name__}: {exc}"
                if attempt == SEND_ATTEMPTS:
                    error = KafkaError(
                        f"could not publish to {name} after {attempt} tries: "
                        f"{type(exc).__name__}: {exc}"
                    )
                    await self.stop_worker(error)
                    raise error from exc
                wait = SEND_BACKOFF_S * 2 ** (attempt - 1)
                logger.warning(
                    "publishing to %s failed (%s: %s); trying again in %.1f s",
                    name,
                    type(exc).__name__,
                    exc,
                    wait,
                )
                await asyncio.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    async def stop_worker(self, error: KafkaError) -> None:
        """Stop the whole worker on ``error``: faust stops every service, and the worker
        process ends by raising it (exit status 1), instead of a crash loop of the agent."""
        logger.critical("stage 2 stops: %s", error)
        await self.app.crash(error)

    async def on_event(self, event: Any) -> None:
        message = event.message
        if not await self.in_sequence(message):
            return
        self.telemetry.received(message.topic)
        outputs: list[Output] = []
        try:
            decoded = decode(event.value)
            self.models_of.setdefault(message.partition, set()).add(decoded.model)
            outputs = self.state.apply(decoded, self.now_ms())
        except DecodeError as exc:
            await self.dead_letter(event, exc.reason, exc.kind, exc.path)
        except Exception as exc:
            # A bug or an input no check foresaw: the message goes to the DLQ, the agent lives.
            logger.exception(
                "summaries message %s[%d]@%d failed; dead-lettered, continuing",
                message.topic,
                message.partition,
                message.offset,
            )
            await self.dead_letter(event, f"{type(exc).__name__}: {exc}", "processing_error")
        failures = self.state.take_failures()
        if failures:
            # The windows it could judge are published; the message is kept for the others.
            for failure in failures:
                logger.error("%s (summaries message @%d)", failure.describe(), message.offset)
            reason = "; ".join(f.describe() for f in failures)
            await self.dead_letter(event, reason, "processing_error")
        await self.publish(outputs, event)

    async def dead_letter(
        self, event: Any, reason: str, kind: str, path: str | None = None
    ) -> None:
        message = event.message
        letter = dead_letter(
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=message.key,
            value=message.value,
            headers=message.headers,
            reason=reason,
            kind=kind,
            path=path,
            failed_at=datetime.fromtimestamp(self.clock(), UTC),
        )
        await self.produce_letter(letter)
        logger.warning(
            "summaries message %s[%d]@%d rejected (%s: %.500s); sent to %s",
            message.topic,
            message.partition,
            message.offset,
            kind,
            reason,
            self.dlq.get_topic_name(),
        )

    async def dead_letter_output(self, output: Output, reason: str, source: Any) -> None:
        """Dead-letter a record stage 2 made but cannot publish, from the message that made it
        (``source``) or, made by a tick, from its own topic."""
        message = getattr(source, "message", None)
        letter = dead_letter(
            topic=message.topic
            if message is not None
            else self.outputs[output.role].get_topic_name(),
            partition=message.partition if message is not None else 0,
            offset=message.offset if message is not None else 0,
            key=output.key,
            value=output.value,
            headers=None,
            reason=reason,
            kind="output_too_large",
            path=output.role,
            failed_at=datetime.fromtimestamp(self.clock(), UTC),
        )
        await self.produce_letter(letter)
        logger.error(
            "a %s record of model %.200r was not published (%s); sent to %s instead",
            output.role,
            output.key,
            reason,
            self.dlq.get_topic_name(),
        )

    async def produce_letter(self, letter: DeadLetter) -> None:
        letter = fit(letter, self.max_bytes)
        key, value, headers = letter.key, letter.value, letter.kafka_headers()
        problem = await self.send(self.dlq, key, value, headers)
        if problem is not None:  # the broker's limit is below ours: keep what says why
            problem = await self.send(self.dlq, key[:1024] if key else key, b"", headers)
        if problem is not None:
            error = KafkaError(f"a dead letter could not be produced: {problem}")
            await self.stop_worker(error)
            raise error
        self.telemetry.dead_letters.labels(letter.kind).inc()
        self.telemetry.published(self.dlq.get_topic_name())

    async def on_tick(self) -> None:
        outputs = self.state.tick(self.now_ms())
        for failure in self.state.take_failures():
            logger.error("%s", failure.describe())
        await self.publish(outputs)
        self.telemetry.hold(self.state.holdings())
        self.telemetry.ticked()

    async def on_assigned(self, assigned: Iterable[Any]) -> None:
        topic = self.summaries.get_topic_name()
        owned = {tp.partition: tp for tp in assigned if tp.topic == topic}
        lost = [p for p in self.models_of if p not in owned]
        for partition in lost:
            models = self.models_of.pop(partition)
            self.state.forget(models)
            logger.info(
                "summaries partition %d no longer assigned; dropped the state of %d model(s)",
                partition,
                len(models),
            )
        for partition in [p for p in self.expected if p not in owned]:
            del self.expected[partition]
            self.rewinds.pop(partition, None)
        new = [tp for p, tp in owned.items() if p not in self.expected]
        if not new:
            return
        # Until the rebalance, another member may have published for these partitions' models.
        self.published.restore()
        try:
            earliest = await self.summaries.app.consumer.earliest_offsets(*new)
        except Exception as exc:  # the broker did not answer: take the first offset that comes
            logger.warning("no earliest offsets for %s (%s); not checking them for gaps", new, exc)
            return
        for tp, offset in earliest.items():
            self.expected[tp.partition] = offset

    async def in_sequence(
        self, message: Any, rewind_interval: float = 1.0, max_rewinds: int = 5
    ) -> bool:
        """Whether to apply a summaries message: the next one of its partition.

        A partition's state is only right if every message is applied in order: a newly
        assigned partition from its beginning, a kept one on from the last applied. faust
        (0.15) can drop a batch it fetched when a rebalance ends while the batch is handed
        out, and relies on seeking back to the committed offset to fetch it again, but the
        summaries topic has no committed offsets (the state is rebuilt by re-reading). So a
        message past the expected offset rewinds the partition to it (again after
        ``rewind_interval`` seconds if needed), and is skipped like any until the expected one
        arrives; one before it (the re-read of a kept partition) was applied already. After
        ``max_rewinds`` to one offset, the offsets up to the message are taken as missing on
        the broker.
        """
        partition, offset = message.partition, message.offset
        expected = self.expected.get(partition)
        if expected is None or offset == expected:
            self.expected[partition] = offset + 1
            return True
        if offset < expected:
            return False
        now = self.clock()
        target, n, at = self.rewinds.get(partition, (-1, 0, float("-inf")))
        if now - at < rewind_interval:
            return False
        if target == expected and n >= max_rewinds:
            logger.error(
                "summaries partition %d: offsets %d to %d do not come after %d rewinds; "
                "going on without them",
                partition,
                expected,
                offset - 1,
                n,
            )
            self.expected[partition] = offset + 1
            return True
        self.rewinds[partition] = (expected, n + 1 if target == expected else 1, now)
        consumer = self.summaries.app.consumer
        try:
            earliest = (await consumer.earliest_offsets(message.tp)).get(message.tp, expected)
            if earliest > expected:  # retention deleted what was expected: go on from there
                expected = self.expected[partition] = earliest
                if offset == expected:
                    self.expected[partition] = offset + 1
                    return True
            logger.warning(
                "summaries partition %d skipped from offset %d to %d; reading it again",
                partition,
                expected,
                offset,
            )
            await consumer.seek_wait({message.tp: expected})
        except Exception as exc:  # the broker did not answer: the next message tries again
            logger.warning("summaries partition %d not rewound (%s)", partition, exc)
        return False


def create_app(
    settings: Settings,
    profiles: ProfileLookup,
    *,
    app_id: str | None = None,
    web_port: int | None = None,
    session_timeout: timedelta = timedelta(seconds=10),
    clock: Callable[[], float] = time.time,
    telemetry: Stage2Telemetry | None = None,
    parents: ParentLookup | None = None,
) -> faust.App:
    """Build the stage-2 faust app: one agent on the summaries topic, one idle-window timer.

    Parameters
    ----------
    settings
        Kafka connection (aiokafka transport, through :mod:`driftline.kafka_auth`), topic
        names, model configurations; ``monitor.group_id`` is the consumer group unless
        ``app_id`` is given.
    profiles
        ``(model, version) -> ReferenceProfile | None``, asked whenever a version is first
        seen and every tick while it has none.
    app_id
        The faust app id, which is also the Kafka consumer group.
    web_port
        None (default) disables faust's web server; a port binds it to
        ``settings.monitor.web_host`` (127.0.0.1 unless configured), never faust's 0.0.0.0.
    session_timeout
        How long the group waits for a silent worker before its partitions move. Shorter
        than faust's default: failover is faster, and Tansu delays every group join in
        proportion to it (DESIGN §6). Heartbeats run in the consumer's own thread, so long
        window evaluations do not miss them.
    clock
        Wall time in seconds, for idle timeouts, dead-letter timestamps and the
        close-to-publish latency.
    telemetry
        Where the worker's metrics and health go (serve its registry with
        :func:`~driftline.telemetry.server.serve`); a private one by default.
    parents
        ``(model, version) -> parent_version`` (a canary's champion); None: the
        ``parent_version`` of the object ``profiles`` is bound to, if any, else no canaries.

    faust's data directory is ``<monitor.state_dir>/stage2`` (faust's default is relative
    to the working directory); stage 2 keeps its state in memory, so faust only creates it.
    The topics must exist (:func:`driftline.topics.create_topics`); the app declares none.
    Run it with :func:`run_app`.
    """
    web: dict[str, Any] = {
        "web_enabled": web_port is not None,
        "web_bind": settings.monitor.web_host,
        "web_host": settings.monitor.web_host,
    }
    if web_port is not None:
        web["web_port"] = web_port
    app = new_app(
        app_id or settings.monitor.group_id,
        settings,
        datadir=Path(settings.monitor.state_dir) / "stage2",
        session_timeout=session_timeout,
        # Nothing is ever acked on the summaries topic; do not wait for acks on rebalance.
        stream_wait_empty=False,
        # Outputs are sent as they are made, never held back until a commit that never comes.
        stream_publish_on_commit=False,
        # Records are bounded by monitor.max_output_bytes (see the module doc), not by faust.
        producer_max_request_size=settings.monitor.max_output_bytes + _HEADROOM,
        **web,
    )
    # `driftline monitor merge` passes a ProfileRegistry's `get`: its parent_version pairs canaries.
    parents = parents or getattr(getattr(profiles, "__self__", None), "parent_version", None)
    state = Stage2State(profiles, settings, parents)
    wiring = _Wiring(app, settings, state, clock, telemetry or Stage2Telemetry())

    @app.agent(wiring.summaries, name=AGENT_NAME)
    async def merge_summaries(stream: Any) -> None:
        async for event in stream.events():
            await wiring.on_event(event)

    @app.timer(TICK_INTERVAL_S, name=TIMER_NAME)  # type: ignore[untyped-decorator]
    async def close_idle_windows() -> None:
        await wiring.on_tick()

    async def on_partitions_assigned(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        (assigned,) = args  # faust sends the new assignment, a set of TP
        await wiring.on_assigned(assigned)

    # mode's handler type (mypy_extensions argument specs) does not accept this def's shape.
    app.on_partitions_assigned.connect(on_partitions_assigned)  # type: ignore[arg-type]
    return app


def run_app(app: faust.App, *, loglevel: str = "INFO", override_logging: bool = True) -> NoReturn:
    """Run a stage-2 app as a faust worker in this process until SIGTERM or SIGINT.

    Blocks, must run in the main thread (signal handlers), and ends by raising
    :class:`SystemExit`. ``override_logging=False`` keeps the caller's logging configuration.
    """
    from faust.worker import Worker

    # faust creates only the last directory of the path, and only once it runs.
    Path(app.conf.datadir).mkdir(parents=True, exist_ok=True)
    worker = Worker(app, loglevel=loglevel, quiet=True, override_logging=override_logging)
    worker.execute_from_commandline()
