"""Stage 2's pure core: pane partials and watermarks in, records to publish out.

:class:`Stage2State` holds, per model, the latest partial of each identity (a partial is
*replaced*, never added, so a re-emitted one changes nothing), merges the partials of all
source partitions of a pane into the model's :class:`~driftline.detectors.engine.ModelMonitor`,
and closes a window once every source partition's watermark passed its end plus the allowed
lateness; a partition that has not advanced for ``idle_timeout`` (or never reported, once
``idle_timeout`` has passed since the model's first message) is not waited for. Closed and
restated windows become :class:`~driftline.streams.stage2.outputs.Output` records: metric
points for the InfluxDB outbox, alerts and retrain requests. A window that raises while judged
is recorded as a :class:`JudgeFailure` (:meth:`Stage2State.take_failures`) and the other
windows and models are judged all the same. A version whose traffic stopped while its
model's went on has its firing alert resolved once, and its state let go when nothing can
need it (:mod:`driftline.streams.stage2.silence` states the rule).

No Kafka, no clock (wall time comes in as ``now_ms``), no Prometheus: the core says what it
did (:meth:`Stage2State.take_activity`, :meth:`Stage2State.holdings`) and the faust wiring
hands that to the telemetry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from driftline.config.settings import ModelConfig, Settings
from driftline.detectors.engine import ModelMonitor, Window
from driftline.errors import DecodeError
from driftline.schemas.reference import ReferenceProfile
from driftline.sinks.points import report_points
from driftline.streams.partials import Message, PanePartial, Watermark
from driftline.streams.stage2.activity import (
    Activity,
    ClosedWindow,
    DroppedPartial,
    Holding,
    JudgeFailure,
    PartialOutcome,
)
from driftline.streams.stage2.outputs import Output, report_outputs
from driftline.streams.stage2.panes import Slot, add_to_pane, decode_partial, set_pane
from driftline.streams.stage2.rollouts import ModelRollouts, ParentLookup
from driftline.streams.stage2.silence import Silences

__all__ = [
    "Activity",
    "ClosedWindow",
    "DroppedPartial",
    "Holding",
    "JudgeFailure",
    "PartialOutcome",
    "ProfileLookup",
    "Stage2State",
]

ProfileLookup = Callable[[str, str], ReferenceProfile | None]
"""``(model, version) -> profile``, or None while the version has none (yet)."""

_MS = timedelta(milliseconds=1)
_MAX_PARTITIONS = 10_000  # TopicSettings.input_partitions allows no more
_DROPPED_KEPT = 1_000  # the latest dropped rollout partials kept for the caller to read


def _ms(value: timedelta) -> int:
    return value // _MS


@dataclass
class _ModelState:
    """Everything stage 2 holds for one model (all its versions)."""

    timing: ModelConfig
    """The model's configuration as far as time goes: pane, windows, lateness, idleness."""
    first_seen_ms: int
    n_partitions: int
    """Source partitions to wait for: what the latest watermarks said, else the configured
    input partitions, and at least one more than the largest partition seen."""
    rollouts: ModelRollouts
    """Rollout partials and each (champion, challenger) pair's judge (issue 16)."""
    reported_partitions: int | None = None
    watermarks: dict[int, int] = field(default_factory=dict)
    advanced_at_ms: dict[int, int] = field(default_factory=dict)
    watermark_ms: int | None = None
    partials: dict[Slot, dict[int, PanePartial]] = field(default_factory=dict)
    monitors: dict[str, ModelMonitor] = field(default_factory=dict)
    pruned_before_ms: int | None = None
    changed: bool = False
    """Whether a pane changed since windows were last looked at."""
    judged: set[tuple[str, Window]] = field(default_factory=set)
    """(version, window) judged at least once, so a second judgment counts as a restatement."""
    silences: Silences = field(default_factory=Silences)
    """Each version's newest pane, and whether its traffic stopped."""


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
    >>> from driftline.detectors.summary import PaneSummary
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

    def __init__(
        self, profiles: ProfileLookup, settings: Settings, parents: ParentLookup | None = None
    ) -> None:
        self._profiles = profiles
        self._parents: ParentLookup = parents or (lambda model, version: None)
        self._settings = settings
        self._horizon = settings.monitor.join_ttl
        self.reset()

    def reset(self) -> None:
        """Forget every model."""
        self._models: dict[str, _ModelState] = {}
        self.dropped: list[DroppedPartial] = []
        self._failures: list[JudgeFailure] = []
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

    def versions(self, model: str) -> list[str]:
        """Versions of ``model`` whose monitor is held (judged, or awaiting late data)."""
        state = self._models.get(model)
        return [] if state is None else sorted(state.monitors)

    def holdings(self) -> dict[str, Holding]:
        """What is held per model, for gauges (rollout partials included)."""
        holdings = {}
        for model, state in self._models.items():
            rollout = state.rollouts.partials
            panes = {(version, pane) for version, pane, _ in state.partials}
            panes |= {(challenger, pane) for _, challenger, pane in rollout}
            held = [*state.partials.values(), *rollout.values()]
            holdings[model] = Holding(
                panes=len(panes),
                partials=sum(len(by_partition) for by_partition in held),
                watermark_ms=state.watermark_ms,
            )
        return holdings

    def take_activity(self) -> Activity:
        """What was done since the last call (partials applied or ignored, windows judged),
        and start a new record. The wiring takes it after every :meth:`apply` and
        :meth:`tick`; the record grows until taken."""
        activity, self._activity = self._activity, Activity()
        return activity

    def take_failures(self) -> list[JudgeFailure]:
        """Windows that raised while judged since the last call (:meth:`apply` and
        :meth:`tick` judge the rest and return their records), and start a new list."""
        failures, self._failures = self._failures, []
        return failures

    def config(self, model: str, profile: ReferenceProfile | None = None) -> ModelConfig:
        """How ``model`` is watched: its configuration, else the defaults for its task.

        Without a profile, only the timing fields (pane, windows, lateness, idle timeout)
        of the result are meaningful; they do not depend on the task.
        """
        return self._settings.model(model, profile.task if profile is not None else "binary")

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
            try:
                for version in self.pending_versions(model):
                    self._monitor(model, state, version)
                outputs += self._close(model, state, now_ms)
            except Exception as exc:  # one model's failure must not stop the others' windows
                self._failures.append(JudgeFailure(model, None, None, _reason(exc)))
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
                rollouts=ModelRollouts(model),
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
        if partial.kind == "rollout":  # never a monitor's: its own holder, its own judges
            try:
                outcome = state.rollouts.take(partial, self.config(partial.model))
            except DecodeError as exc:
                self.dropped.append(DroppedPartial(partial.identity, exc.reason))
                del self.dropped[:-_DROPPED_KEPT]  # a stream of them must not grow memory
                self._activity.dropped += 1
                return
            self._activity.partials["rollout", outcome] += 1
            return
        pane_ms = _ms(state.timing.pane)
        if partial.pane_ms != pane_ms or partial.pane_start_ms % pane_ms:
            raise DecodeError(
                f"partial of pane [{partial.pane_start_ms}, +{partial.pane_ms} ms) does not fit "
                f"model {partial.model!r}'s pane of {pane_ms} ms (aligned to the epoch)",
                kind="invalid_summary",
            )
        slot: Slot = (partial.version, partial.pane_start_ms, partial.kind)
        held = state.partials.get(slot, {})
        current = held.get(partial.source_partition)
        stale = current is not None and current.covered >= partial.covered
        too_old = (
            state.pruned_before_ms is not None
            and partial.pane_start_ms + pane_ms <= state.pruned_before_ms
        )
        if stale or too_old:
            # an older or repeated emission, or a pane no window needs any more
            ignored: PartialOutcome = "stale" if stale else "expired"
            self._activity.partials[partial.kind, ignored] += 1
            return
        replaced = {**held, partial.source_partition: partial}
        monitor = self._monitor(partial.model, state, partial.version)
        unchanged = current is not None and current.summary == partial.summary
        if monitor is not None and not unchanged:
            # Both raise before anything is stored. A new partition's partial adds to the pane
            # (which holds the merge of ``held``: every change of it comes through here or
            # _monitor), a replacing one has the pane merged again from its partials.
            if current is not None or not held or not add_to_pane(monitor, slot, partial):
                set_pane(monitor, slot, replaced)
            state.changed = True
        state.partials[slot] = replaced
        if state.silences.saw(partial.version, partial.pane_start_ms) and monitor is not None:
            monitor.reset_policies()  # it came back after its traffic stopped: judged afresh
        taken: PartialOutcome = "added" if current is None else "replaced"
        self._activity.partials[partial.kind, taken] += 1
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
                    decode_partial(monitor, partial)
                except DecodeError as exc:
                    self.dropped.append(DroppedPartial(partial.identity, exc.reason))
                    self._activity.dropped += 1
                    del held[partition]
            try:
                if held:
                    set_pane(monitor, slot, held)
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
                try:
                    report = monitor.evaluate(window)
                    points = report_points(report)
                    made = report_outputs(
                        report, points, max_bytes=self._settings.monitor.max_output_bytes
                    )
                except Exception as exc:  # a window that cannot be judged stops no other
                    self._failures.append(JudgeFailure(model, version, window, _reason(exc)))
                    continue
                stopped = state.silences.stopped(version)
                if stopped:  # its alert was resolved as stopped: restatements only measure
                    made = [o for o in made if o.role == "metrics"]
                outputs += made
                judged = (version, window)
                self._activity.windows.append(
                    ClosedWindow(
                        model=model,
                        version=version,
                        window=window,
                        restated=judged in state.judged,
                        due_ms=now_ms,
                        points=len(points),
                        alerts=0 if stopped else len(report.decision.alerts),
                        retrain=not stopped and report.decision.retrain is not None,
                    )
                )
                state.judged.add(judged)
            monitor.prune(watermark)
        outputs += self._judge_rollouts(model, state, watermark)
        key = model.encode()
        for alert in state.silences.resolve(model, state.monitors, watermark, _ms(timing.pane)):
            outputs.append(Output("alerts", key, alert.to_json()))
            self._activity.stopped[model] += 1
        self._prune(state, timing, watermark)
        for version in state.silences.let_go(state.monitors, {v for v, _, _ in state.partials}):
            state.judged = {j for j in state.judged if j[0] != version}
        return outputs

    def _judge_rollouts(self, model: str, state: _ModelState, watermark: int) -> list[Output]:
        look = state.rollouts.close(
            state.timing,
            watermark - _ms(state.timing.allowed_lateness),
            state.partials,
            self._parents,
            lambda version: self._profiles(model, version),
            settle_before_ms=self._oldest(state.timing, watermark),
        )
        for (_, challenger), reason in look.failures:
            self._failures.append(JudgeFailure(model, challenger, None, reason))
        return look.outputs(model, self._settings.monitor.max_output_bytes)

    def _oldest(self, timing: ModelConfig, watermark_ms: int) -> int:
        """The pruning horizon: the same as ModelMonitor.prune's; a partial of a pane ending
        at or before it can change no window any more."""
        longest = max(_ms(w.size) for w in timing.windows)
        return watermark_ms - _ms(timing.allowed_lateness) - longest - _ms(self._horizon)

    def _prune(self, state: _ModelState, timing: ModelConfig, watermark_ms: int) -> None:
        # Applying a partial older than the horizon alone (its siblings dropped) would
        # restate a window wrongly.
        oldest = self._oldest(timing, watermark_ms)
        pane_ms = _ms(timing.pane)
        for slot in [s for s in state.partials if s[1] + pane_ms <= oldest]:
            del state.partials[slot]
        if state.pruned_before_ms is None or oldest > state.pruned_before_ms:
            state.pruned_before_ms = oldest
            # As ModelMonitor.prune forgets the judgments of windows ending at or before it.
            state.judged = {j for j in state.judged if j[1].end_ms > oldest}


def _reason(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"


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
