"""Stage 2: merge the pane partials of every source partition, judge windows, publish results.

Two layers (DESIGN §1, STYLE habit 6):

* :class:`Stage2State`, the pure core: no Kafka, no clock (wall time comes in as ``now_ms``).
  Per model it keeps, per partial identity, the partial with the highest ``covered`` (a partial
  is *replaced*, never added, so a re-emitted one changes nothing), merges the partials of all
  source partitions of a pane into its :class:`~driftline.detectors.engine.ModelMonitor`, and
  closes a window once every source partition's watermark passed its end plus the allowed
  lateness; a partition that has not advanced for ``idle_timeout`` (or never reported, once
  ``idle_timeout`` has passed since the model's first message) is not waited for. Closed and
  restated windows become :class:`Output` records: metric points for the InfluxDB outbox,
  alerts and retrain requests.
* :func:`create_app`, the faust wiring: one agent on the summaries topic and one timer, both
  feeding the same in-memory :class:`Stage2State`; undecodable messages go to the dead-letter
  topic. The core says what it did (:meth:`Stage2State.take_activity`,
  :meth:`Stage2State.holdings`) and the wiring hands that to
  :class:`~driftline.streams.telemetry.Stage2Telemetry`, with the wall-clock times of
  publication: the core stays free of clocks and of Prometheus.

**State and restarts.** The state lives in memory, per worker process. It is restored by
reading the summaries topic again: the summaries topic is consumed *without committing
offsets* (``acks=False``), so every partition this worker is assigned is read from its
beginning (the topic's retention) with ``auto_offset_reset=earliest``. Partials are
cumulative and applied by replacement, so re-reading rebuilds exactly the state that was
lost, and re-reading a partition the worker already held changes nothing. The outputs of the
replayed windows are published again; they are deterministic (same metric point identities,
same alert and request ids), so the InfluxDB writer overwrites and consumers drop repeats.
The summaries topic must therefore retain at least ``monitor.join_ttl`` plus the longest
window and its lateness: a pane whose partials retention has partly deleted would be judged
on the rest after a restart.

faust tables were measured and not used: on Tansu, table recovery stops at the end offsets
that ListOffsets reports, which are wrong there (five records, high watermark 1), so a
restarted worker silently recovered 199 of 200 entries (DESIGN §6).
"""

from __future__ import annotations

import logging
import ssl
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, NoReturn

import faust

from driftline.config.settings import KafkaSettings, ModelConfig, Settings
from driftline.detectors.engine import ModelMonitor, Window, WindowReport
from driftline.detectors.performance import PerformanceSummary
from driftline.detectors.summary import PaneSummary
from driftline.errors import DecodeError
from driftline.schemas.outputs import DeadLetter
from driftline.schemas.reference import ReferenceProfile
from driftline.sinks.outbox import encode_points
from driftline.sinks.points import MetricPoint, report_points
from driftline.streams.partials import Message, PanePartial, Watermark, decode
from driftline.streams.telemetry import Stage2Telemetry

__all__ = [
    "AGENT_NAME",
    "TIMER_NAME",
    "Activity",
    "ClosedWindow",
    "DroppedPartial",
    "Holding",
    "Output",
    "OutputRole",
    "ProfileLookup",
    "Stage2State",
    "broker_credentials",
    "create_app",
    "report_outputs",
    "run_app",
]

logger = logging.getLogger(__name__)

ProfileLookup = Callable[[str, str], ReferenceProfile | None]
"""``(model, version) -> profile``, or None while the version has none (yet)."""

OutputRole = Literal["metrics", "alerts", "retrain"]
"""The :class:`~driftline.config.settings.TopicSettings` field naming an output's topic."""

AGENT_NAME = "driftline.stage2.merge-summaries"
TIMER_NAME = "driftline.stage2.close-idle-windows"
TICK_INTERVAL_S = 1.0

_MS = timedelta(milliseconds=1)
_MAX_PARTITIONS = 10_000  # TopicSettings.input_partitions allows no more
_Slot = tuple[str, int, str]  # (version, pane start, kind)


def _ms(value: timedelta) -> int:
    return value // _MS


@dataclass(frozen=True, slots=True)
class Output:
    """One record to publish: to the topic of ``role``, with ``key`` and ``value`` bytes."""

    role: OutputRole
    key: bytes
    value: bytes


def report_outputs(report: WindowReport) -> list[Output]:
    """The records a window report publishes: its metric points, its alerts, its request."""
    return _outputs(report, report_points(report))


def _outputs(report: WindowReport, points: list[MetricPoint]) -> list[Output]:
    key = report.model.encode()
    outputs = [Output("metrics", key, encode_points(points))]
    outputs += [Output("alerts", key, alert.to_json()) for alert in report.decision.alerts]
    if report.decision.retrain is not None:
        outputs.append(Output("retrain", key, report.decision.retrain.to_json()))
    return outputs


PartialOutcome = Literal["added", "replaced", "stale", "expired"]
"""What became of a partial: the first of its identity, a replacement of one that covered
less, ignored because the one held covers as much or more, or ignored because no window
needs its pane any more."""


@dataclass(frozen=True, slots=True)
class ClosedWindow:
    """A window judged by :meth:`Stage2State.apply` or :meth:`Stage2State.tick`.

    ``due_ms`` is the ``now_ms`` of the call that judged it: the wall time at which the
    window became due (its watermark passed end plus lateness, an idle partition stopped
    being waited for, or its version's profile came). ``restated`` says it was judged before.
    """

    model: str
    version: str
    window: Window
    restated: bool
    due_ms: int
    points: int
    alerts: int
    retrain: bool


@dataclass
class Activity:
    """What :class:`Stage2State` did since :meth:`Stage2State.take_activity` was last called:
    partials by ``(kind, outcome)``, held partials dropped, windows judged."""

    partials: Counter[tuple[str, PartialOutcome]] = field(default_factory=Counter)
    dropped: int = 0
    windows: list[ClosedWindow] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Holding:
    """What :class:`Stage2State` holds of one model: panes (version, pane start) with
    partials, the partials themselves (one per source partition), the closing watermark."""

    panes: int
    partials: int
    watermark_ms: int | None


@dataclass(frozen=True, slots=True)
class DroppedPartial:
    """A partial held while its version had no profile, dropped when the profile came
    because the partial did not fit it."""

    identity: tuple[str, str, int, int, str]
    reason: str


@dataclass
class _ModelState:
    """Everything stage 2 holds for one model (all its versions)."""

    timing: ModelConfig
    """The model's configuration as far as time goes: pane, windows, lateness, idleness."""
    first_seen_ms: int
    n_partitions: int
    """Source partitions to wait for: what the latest watermarks said, else the configured
    input partitions, and at least one more than the largest partition seen."""
    reported_partitions: int | None = None
    watermarks: dict[int, int] = field(default_factory=dict)
    advanced_at_ms: dict[int, int] = field(default_factory=dict)
    watermark_ms: int | None = None
    partials: dict[_Slot, dict[int, PanePartial]] = field(default_factory=dict)
    monitors: dict[str, ModelMonitor] = field(default_factory=dict)
    pruned_before_ms: int | None = None
    changed: bool = False
    """Whether a pane changed since windows were last looked at."""
    judged: set[tuple[str, Window]] = field(default_factory=set)
    """(version, window) judged at least once, so a second judgment counts as a restatement."""


class Stage2State:
    """Stage 2's pure core: pane partials and watermarks in, records to publish out.

    Parameters
    ----------
    profiles
        ``(model, version) -> ReferenceProfile | None``. Partials of a version without a
        profile are kept and applied once the profile turns up.
    settings
        ``models`` configures each model (a model not named gets ``ModelConfig`` defaults for
        its profile's task); ``topics.input_partitions`` is how many source partitions to wait
        for until a :class:`~driftline.streams.partials.Watermark` says otherwise;
        ``monitor.join_ttl`` is how long panes are kept for late labels.

    Examples
    --------
    >>> import numpy as np
    >>> from driftline.detectors.profile import build_profile
    >>> from driftline.detectors.batch import ColumnBatch
    >>> rng = np.random.default_rng(0)
    >>> profile = build_profile("m", "1", "binary", {"x": rng.normal(size=2000)},
    ...                         prediction=rng.integers(0, 2, 2000).astype(str))
    >>> settings = Settings(models={"m": {"task": "binary", "windows": [{"size": "1m"}],
    ...                                   "allowed_lateness": "0s"}})
    >>> state = Stage2State(lambda model, version: profile, settings)
    >>> pane = PaneSummary(profile).fold(ColumnBatch.from_columns(
    ...     profile, {"x": rng.normal(size=300)}, np.array(["0", "1"] * 150, dtype=object),
    ...     event_time_ms=np.arange(300) * 100))
    >>> partial = PanePartial("m", "1", 0, 60_000, 0, "features", 300, 59_000, pane.to_bytes())
    >>> state.apply(partial, now_ms=0)
    []
    >>> done = [Watermark("m", 0, 60_000, 1)]
    >>> [o.role for o in state.apply(done[0], now_ms=1_000)]
    ['metrics']
    >>> activity = state.take_activity()  # what it did, for telemetry
    >>> dict(activity.partials), [(w.window.end_ms, w.restated) for w in activity.windows]
    ({('features', 'added'): 1}, [(60000, False)])
    """

    def __init__(self, profiles: ProfileLookup, settings: Settings) -> None:
        self._profiles = profiles
        self._settings = settings
        self._horizon = settings.monitor.join_ttl
        self.reset()

    def reset(self) -> None:
        """Forget every model."""
        self._models: dict[str, _ModelState] = {}
        self.dropped: list[DroppedPartial] = []
        self._activity = Activity()

    # --- reading ----------------------------------------------------------------------------

    @property
    def models(self) -> list[str]:
        """Models held, sorted."""
        return sorted(self._models)

    def watermark(self, model: str) -> int | None:
        """The model's closing watermark: windows ending at or before it minus the lateness
        are closed. None before one is known."""
        state = self._models.get(model)
        return None if state is None else state.watermark_ms

    def pending_versions(self, model: str) -> list[str]:
        """Versions of ``model`` with partials held but no profile yet."""
        state = self._models.get(model)
        if state is None:
            return []
        return sorted({v for v, _, _ in state.partials} - state.monitors.keys())

    def holdings(self) -> dict[str, Holding]:
        """What is held per model, for gauges."""
        return {
            model: Holding(
                panes=len({(version, pane) for version, pane, _ in state.partials}),
                partials=sum(len(held) for held in state.partials.values()),
                watermark_ms=state.watermark_ms,
            )
            for model, state in self._models.items()
        }

    def take_activity(self) -> Activity:
        """What was done since the last call (partials applied or ignored, windows judged),
        and start a new record. The wiring takes it after every :meth:`apply` and
        :meth:`tick`; the record grows until taken."""
        activity, self._activity = self._activity, Activity()
        return activity

    def config(self, model: str, profile: ReferenceProfile | None = None) -> ModelConfig:
        """How ``model`` is watched: its configuration, else the defaults for its task.

        Without a profile, only the timing fields (pane, windows, lateness, idle timeout)
        of the result are meaningful; they do not depend on the task.
        """
        configured = self._settings.models.get(model)
        if configured is not None:
            return configured
        return ModelConfig(task=profile.task if profile is not None else "binary")

    # --- messages in ------------------------------------------------------------------------

    def apply(self, message: Message, now_ms: int) -> list[Output]:
        """Take one summaries-topic message; return what became publishable.

        Raises :class:`~driftline.errors.DecodeError`, and applies nothing of the message, when
        it cannot be used: a summary that does not fit its version's profile, a pane that
        does not fit the model's configured pane, impossible partition numbers.
        """
        _check_message(message)
        state = self._model(message.model, message, now_ms)
        if not isinstance(message, Watermark):
            # Judged at the watermark that ends the sender's flush (or the next tick): a burst
            # of late labels reaches every pane of a window at once, and re-judging the window
            # once per partial wrote as many in-between values that no stage-1 state ever had.
            self._apply_partial(state, message, now_ms)
            return []
        if message.n_partitions != state.reported_partitions:
            state.reported_partitions = message.n_partitions
            state.n_partitions = max(message.n_partitions, max(state.watermarks, default=-1) + 1)
        self._observe(state, message.source_partition, message.watermark_ms, now_ms)
        return self._close(message.model, state, now_ms)

    def tick(self, now_ms: int) -> list[Output]:
        """Close what wall time alone makes closable (idle partitions), and apply partials
        whose version's profile has turned up since."""
        outputs: list[Output] = []
        for model in sorted(self._models):
            state = self._models[model]
            for version in self.pending_versions(model):
                self._monitor(model, state, version)
            outputs += self._close(model, state, now_ms)
        return outputs

    def forget(self, models: Iterable[str]) -> None:
        """Drop the state of models this worker no longer owns (after a rebalance)."""
        for model in models:
            self._models.pop(model, None)

    # --- internals --------------------------------------------------------------------------

    def _model(self, model: str, message: Message, now_ms: int) -> _ModelState:
        state = self._models.get(model)
        if state is None:
            state = _ModelState(
                timing=self.config(model),
                first_seen_ms=now_ms,
                n_partitions=self._settings.topics.input_partitions,
            )
            self._models[model] = state
        if message.source_partition >= state.n_partitions:
            state.n_partitions = message.source_partition + 1
        return state

    @staticmethod
    def _observe(state: _ModelState, partition: int, watermark_ms: int, now_ms: int) -> None:
        previous = state.watermarks.get(partition)
        if previous is None or watermark_ms > previous:
            state.watermarks[partition] = watermark_ms
            state.advanced_at_ms[partition] = now_ms

    def _apply_partial(self, state: _ModelState, partial: PanePartial, now_ms: int) -> None:
        pane_ms = _ms(state.timing.pane)
        if partial.pane_ms != pane_ms or partial.pane_start_ms % pane_ms:
            raise DecodeError(
                f"partial of pane [{partial.pane_start_ms}, +{partial.pane_ms} ms) does not fit "
                f"model {partial.model!r}'s pane of {pane_ms} ms (aligned to the epoch)",
                kind="invalid_summary",
            )
        slot: _Slot = (partial.version, partial.pane_start_ms, partial.kind)
        held = state.partials.get(slot, {})
        current = held.get(partial.source_partition)
        stale = current is not None and current.covered >= partial.covered
        too_old = (
            state.pruned_before_ms is not None
            and partial.pane_start_ms + pane_ms <= state.pruned_before_ms
        )
        if stale or too_old:
            # an older or repeated emission, or a pane no window needs any more
            self._activity.partials[partial.kind, "stale" if stale else "expired"] += 1
            return
        replaced = {**held, partial.source_partition: partial}
        monitor = self._monitor(partial.model, state, partial.version)
        unchanged = current is not None and current.summary == partial.summary
        if monitor is not None and not unchanged:
            _set_pane(monitor, slot, replaced)  # raises before anything is stored
            state.changed = True
        state.partials[slot] = replaced
        self._activity.partials[partial.kind, "added" if current is None else "replaced"] += 1
        # No watermark from a partial: stage 1 sends a drain's partials one by one and its
        # Watermark after the last of them, so advancing here would close a window on the
        # first partial of a drain and restate it for each following one (alerts decided on
        # incomplete windows meanwhile).

    def _monitor(self, model: str, state: _ModelState, version: str) -> ModelMonitor | None:
        monitor = state.monitors.get(version)
        if monitor is not None:
            return monitor
        profile = self._profiles(model, version)
        if profile is None:
            return None
        monitor = ModelMonitor(profile, self.config(model, profile), label_horizon=self._horizon)
        state.monitors[version] = monitor
        # Partials held while the profile was missing: apply every one that fits it.
        for slot in sorted(s for s in state.partials if s[0] == version):
            held = state.partials[slot]
            for partition, partial in sorted(held.items()):
                try:
                    _decode_summary(monitor, partial)
                except DecodeError as exc:
                    self.dropped.append(DroppedPartial(partial.identity, exc.reason))
                    self._activity.dropped += 1
                    del held[partition]
            try:
                if held:
                    _set_pane(monitor, slot, held)
            except DecodeError as exc:  # each fits the profile, yet they do not merge
                self.dropped += [DroppedPartial(p.identity, exc.reason) for p in held.values()]
                self._activity.dropped += len(held)
                held.clear()
            if not held:
                del state.partials[slot]
        state.changed = True
        return monitor

    def _closing_watermark(self, state: _ModelState, idle_ms: int, now_ms: int) -> int | None:
        partitions = set(range(state.n_partitions)) | state.watermarks.keys()
        waited_for = []
        for partition in partitions:
            since = state.advanced_at_ms.get(partition, state.first_seen_ms)
            if now_ms - since < idle_ms:
                waited_for.append(partition)
        if any(p not in state.watermarks for p in waited_for):
            return None  # a partition that may still report for the first time
        if waited_for:
            return min(state.watermarks[p] for p in waited_for)
        # Every partition is idle: the stream stopped, so everything seen may close.
        return max(state.watermarks.values(), default=None)

    def _close(self, model: str, state: _ModelState, now_ms: int) -> list[Output]:
        timing = state.timing
        candidate = self._closing_watermark(state, _ms(timing.idle_timeout), now_ms)
        advanced = candidate is not None and (
            state.watermark_ms is None or candidate > state.watermark_ms
        )
        if advanced:
            state.watermark_ms = candidate
        watermark = state.watermark_ms
        if watermark is None or not (advanced or state.changed):
            return []  # nothing can have become due: spare the tick a look at every pane
        state.changed = False
        outputs: list[Output] = []
        for version in sorted(state.monitors):
            monitor = state.monitors[version]
            for window in monitor.due(watermark):
                report = monitor.evaluate(window)
                points = report_points(report)
                outputs += _outputs(report, points)
                judged = (version, window)
                self._activity.windows.append(
                    ClosedWindow(
                        model=model,
                        version=version,
                        window=window,
                        restated=judged in state.judged,
                        due_ms=now_ms,
                        points=len(points),
                        alerts=len(report.decision.alerts),
                        retrain=report.decision.retrain is not None,
                    )
                )
                state.judged.add(judged)
            monitor.prune(watermark)
        self._prune(state, timing, watermark)
        return outputs

    def _prune(self, state: _ModelState, timing: ModelConfig, watermark_ms: int) -> None:
        # The same horizon as ModelMonitor.prune: a partial older than it can change no window
        # any more, and applying it alone (its siblings dropped) would restate one wrongly.
        longest = max(_ms(w.size) for w in timing.windows)
        oldest = watermark_ms - _ms(timing.allowed_lateness) - longest - _ms(self._horizon)
        pane_ms = _ms(timing.pane)
        for slot in [s for s in state.partials if s[1] + pane_ms <= oldest]:
            del state.partials[slot]
        if state.pruned_before_ms is None or oldest > state.pruned_before_ms:
            state.pruned_before_ms = oldest
            # As ModelMonitor.prune forgets the judgments of windows ending at or before it.
            state.judged = {j for j in state.judged if j[1].end_ms > oldest}


def _check_message(message: Message) -> None:
    if not message.model or (isinstance(message, PanePartial) and not message.version):
        raise DecodeError("model and version must be non-empty", kind="invalid_summary")
    if not 0 <= message.source_partition < _MAX_PARTITIONS:
        raise DecodeError(
            f"source_partition must be within 0..{_MAX_PARTITIONS - 1}, "
            f"got {message.source_partition}",
            kind="invalid_summary",
        )
    if isinstance(message, Watermark) and not 1 <= message.n_partitions <= _MAX_PARTITIONS:
        raise DecodeError(
            f"n_partitions must be within 1..{_MAX_PARTITIONS}, got {message.n_partitions}",
            kind="invalid_summary",
        )


def _decode_summary(
    monitor: ModelMonitor, partial: PanePartial
) -> PaneSummary | PerformanceSummary:
    if partial.kind == "features":
        return PaneSummary.from_bytes(partial.summary, monitor.profile)
    performance = PerformanceSummary.from_bytes(partial.summary)
    empty = PerformanceSummary.from_profile(
        monitor.profile, positive_class=monitor.config.positive_class
    )
    try:
        empty.merge(performance)
    except ValueError as exc:
        raise DecodeError(
            f"performance summary does not fit the profile: {exc}", kind="invalid_summary"
        ) from None
    return performance


def _set_pane(monitor: ModelMonitor, slot: _Slot, partials: Mapping[int, PanePartial]) -> None:
    """Merge a pane's partials (one per source partition) and hand the pane to the monitor."""
    _, pane_start, kind = slot
    decoded = [_decode_summary(monitor, partials[p]) for p in sorted(partials)]
    try:
        if kind == "features":
            summaries = [d for d in decoded if isinstance(d, PaneSummary)]
            merged_features = summaries[0]
            for other in summaries[1:]:
                merged_features = merged_features.merge(other)
            monitor.set_pane(pane_start, summary=merged_features)
        else:
            merged = PerformanceSummary.from_profile(
                monitor.profile, positive_class=monitor.config.positive_class
            )
            for performance in decoded:
                assert isinstance(performance, PerformanceSummary)
                merged = merged.merge(performance)
            concept = any(p.concept_drift for p in partials.values())
            monitor.set_pane(pane_start, performance=merged, concept_drift=concept)
    except ValueError as exc:
        raise DecodeError(
            f"partials of one pane do not merge: {exc}", kind="invalid_summary"
        ) from None


# --- faust wiring ---------------------------------------------------------------------------


def _broker_urls(kafka: KafkaSettings) -> list[str]:
    return [f"kafka://{host.strip()}" for host in kafka.bootstrap_servers.split(",")]


def _ssl_context(kafka: KafkaSettings) -> ssl.SSLContext:
    cafile = None if kafka.ssl_ca_location is None else str(kafka.ssl_ca_location)
    context = ssl.create_default_context(cafile=cafile)
    if kafka.ssl_certificate_location is not None and kafka.ssl_key_location is not None:
        password = kafka.ssl_key_password.get_secret_value() if kafka.ssl_key_password else None
        context.load_cert_chain(
            str(kafka.ssl_certificate_location), str(kafka.ssl_key_location), password
        )
    return context


def broker_credentials(kafka: KafkaSettings) -> Any:
    """faust's credentials for the security settings (None for PLAINTEXT).

    librdkafka-only properties (``kafka.librdkafka``) have no aiokafka equivalent and are not
    used by the faust worker.
    """
    protocol = kafka.security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = _ssl_context(kafka) if protocol in ("SSL", "SASL_SSL") else None
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    password = kafka.sasl_password.get_secret_value() if kafka.sasl_password else None
    return faust.SASLCredentials(
        username=kafka.sasl_username,
        password=password,
        ssl_context=context,
        mechanism=kafka.sasl_mechanism,
    )


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
            for role in ("metrics", "alerts", "retrain")
        }
        self.dlq = app.topic(topics.dlq, **raw)
        self.state = state
        self.clock = clock
        self.telemetry = telemetry
        self.models_of: dict[int, set[str]] = {}
        self.expected: dict[int, int] = {}
        """The next offset to apply per owned summaries partition (see :meth:`in_sequence`)."""
        self.rewinds: dict[int, tuple[int, int, float]] = {}
        """Per partition: the offset last rewound to, how often, when."""

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    async def publish(self, outputs: list[Output]) -> None:
        """Send the core's records, wait for their acknowledgement, then count what the core
        did (windows count as published once their records are acknowledged)."""
        try:
            pending = [
                await self.outputs[o.role].send(key=o.key, value=o.value, force=True)
                for o in outputs
            ]
            for future in pending:
                await future  # delivered before the next message is taken
        except Exception:
            self.telemetry.publish_errors.inc()
            raise
        for role, n in Counter(o.role for o in outputs).items():
            self.telemetry.published(self.outputs[role].get_topic_name(), n)
        self.telemetry.record(self.state.take_activity(), published_at=self.clock())
        for output in outputs:
            logger.debug("published %s record for model %s", output.role, output.key.decode())

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
        await self.publish(outputs)

    async def dead_letter(
        self, event: Any, reason: str, kind: str, path: str | None = None
    ) -> None:
        message = event.message
        letter = DeadLetter(
            source_topic=message.topic,
            source_partition=message.partition,
            source_offset=message.offset,
            reason=reason,
            kind=kind,
            path=path,
            key=message.key,
            value=message.value,
            original_headers=tuple((k, bytes(v)) for k, v in (message.headers or ())),
            failed_at=datetime.fromtimestamp(self.clock(), UTC),
        )
        try:
            future = await self.dlq.send(
                key=message.key, value=message.value, headers=letter.kafka_headers(), force=True
            )
            await future
        except Exception:
            self.telemetry.publish_errors.inc()
            raise
        self.telemetry.dead_letters.labels(kind).inc()
        self.telemetry.published(self.dlq.get_topic_name())
        logger.warning(
            "summaries message %s[%d]@%d rejected (%s: %s); sent to %s",
            message.topic,
            message.partition,
            message.offset,
            kind,
            reason,
            self.dlq.get_topic_name(),
        )

    async def on_tick(self) -> None:
        await self.publish(self.state.tick(self.now_ms()))
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
) -> faust.App:
    """Build the stage-2 faust app: one agent on the summaries topic, one idle-window timer.

    Parameters
    ----------
    settings
        Kafka connection (aiokafka transport; security settings mapped), topic names, model
        configurations; ``monitor.group_id`` is the consumer group unless ``app_id`` is given.
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
        than faust's 60 s: failover is faster, and Tansu delays every group join by half of
        it (measured: 30 s at faust's default, 3 s at 6 s). Heartbeats run in the consumer's
        own thread, so long window evaluations do not miss them.
    clock
        Wall time in seconds, for idle timeouts, dead-letter timestamps and the
        close-to-publish latency.
    telemetry
        Where the worker's metrics and health go (serve its registry with
        :func:`~driftline.streams.telemetry.serve`); a private one by default.

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
    app = faust.App(
        app_id or settings.monitor.group_id,
        broker=_broker_urls(settings.kafka),
        broker_credentials=broker_credentials(settings.kafka),
        broker_client_id=settings.kafka.client_id,
        key_serializer="raw",
        value_serializer="raw",
        autodiscover=False,
        store="memory://",
        topic_allow_declare=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=session_timeout.total_seconds(),
        broker_heartbeat_interval=min(3.0, session_timeout.total_seconds() / 3),
        # Nothing is ever acked on the summaries topic; do not wait for acks on rebalance.
        stream_wait_empty=False,
        # Outputs are sent as they are made, never held back until a commit that never comes.
        stream_publish_on_commit=False,
        datadir=Path(settings.monitor.state_dir) / "stage2",
        **web,
    )
    wiring = _Wiring(
        app, settings, Stage2State(profiles, settings), clock, telemetry or Stage2Telemetry()
    )

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
