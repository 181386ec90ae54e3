"""Stage 2's Prometheus metrics and health (names prefixed ``driftline_merge_``).

The faust wiring feeds :class:`Stage2Telemetry` what stage 2's pure core did. The records it
reads are described here as protocols (:class:`MergeActivity`, :class:`JudgedWindow`,
:class:`HeldModel`) that :mod:`driftline.streams.stage2.state`'s records satisfy, so neither
module imports the other and the core stays free of Prometheus.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from driftline.telemetry.labels import OTHER, ModelLabels

__all__ = ["LATENCY_BUCKETS", "HeldModel", "JudgedWindow", "MergeActivity", "Stage2Telemetry"]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Seconds, for stage 2's close-to-publish latency: fine where a healthy broker answers,
wide enough for a slow one."""


class JudgedWindow(Protocol):
    """A window stage 2 judged: its model, whether it was judged before, the wall time (ms)
    at which it became due, and what its records hold."""

    @property
    def model(self) -> str: ...
    @property
    def restated(self) -> bool: ...
    @property
    def due_ms(self) -> int: ...
    @property
    def points(self) -> int: ...
    @property
    def alerts(self) -> int: ...
    @property
    def retrain(self) -> bool: ...


class MergeActivity(Protocol):
    """What stage 2's core did: partials by ``(kind, outcome)``, held partials dropped,
    windows judged, and per model the alerts it resolved because a version's traffic
    stopped (they belong to no window)."""

    @property
    def partials(self) -> Mapping[tuple[str, str], int]: ...
    @property
    def dropped(self) -> int: ...
    @property
    def windows(self) -> Sequence[JudgedWindow]: ...
    @property
    def stopped(self) -> Mapping[str, int]: ...


class HeldModel(Protocol):
    """What stage 2 holds of one model: panes, partials, its closing watermark (ms)."""

    @property
    def panes(self) -> int: ...
    @property
    def partials(self) -> int: ...
    @property
    def watermark_ms(self) -> int | None: ...


class Stage2Telemetry:
    """Metrics and health of stage 2 (names prefixed ``driftline_merge_``).

    The faust wiring (:func:`driftline.streams.stage2.agent.create_app`) feeds it: what came in,
    what the pure core did (:meth:`record`), what was published, what is held
    (:meth:`hold`), and each timer tick (:meth:`ticked`). :meth:`health` is unhealthy until
    the first tick and once ``stall_after`` seconds pass without one: the timer runs on the
    worker's event loop, so a missing tick means the worker is not running or its loop is
    stuck.

    Parameters
    ----------
    registry
        Where the metrics register; a new one by default.
    stall_after
        Seconds without a tick after which :meth:`health` is unhealthy.
    clock
        Unix seconds, for the tick times.
    models
        The ``model`` label of each model (model names come from producers: beyond the
        configured models and a cap, they share one label); 1,000 unconfigured models get
        their own by default.

    Examples
    --------
    >>> telemetry = Stage2Telemetry(clock=lambda: 100.0)
    >>> telemetry.health()[0]  # no tick yet: the worker has not started
    False
    >>> telemetry.ticked()
    >>> telemetry.health()
    (True, {'part': 'merge', 'seconds_since_tick': 0.0, 'models': 0})
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        stall_after: float = 30.0,
        clock: Callable[[], float] = time.time,
        models: ModelLabels | None = None,
    ) -> None:
        if not stall_after > 0:
            raise ValueError(f"stall_after must be positive seconds, got {stall_after}")
        self.registry = registry or CollectorRegistry()
        self.stall_after = stall_after
        self._clock = clock
        self._last_tick: float | None = None
        self._label = (models or ModelLabels()).of
        self._labels: set[str] = set()
        """``model`` label values of the gauges set by the last :meth:`hold`."""
        self._held_models = 0
        r = self.registry
        p = "driftline_merge"
        self.messages_in = Counter(
            f"{p}_messages_in", "Summaries messages consumed", ["topic"], registry=r
        )
        self.partials = Counter(
            f"{p}_partials",
            "Pane partials applied, by kind and outcome (added, replaced, stale, expired)",
            ["kind", "outcome"],
            registry=r,
        )
        self.partials_dropped = Counter(
            f"{p}_partials_dropped",
            "Partials held for a version without profile, dropped when it came (did not fit)",
            registry=r,
        )
        self.dead_letters = Counter(
            f"{p}_dead_letters", "Summaries messages sent to the DLQ", ["kind"], registry=r
        )
        self.windows_finalised = Counter(
            f"{p}_windows_finalised", "Windows judged for the first time", ["model"], registry=r
        )
        self.windows_restated = Counter(
            f"{p}_windows_restated",
            "Windows judged again because late partials changed them",
            ["model"],
            registry=r,
        )
        self.alerts = Counter(f"{p}_alerts", "Alerts published", ["model"], registry=r)
        self.retrain_requests = Counter(
            f"{p}_retrain_requests", "Retrain requests published", ["model"], registry=r
        )
        self.metric_points = Counter(
            f"{p}_metric_points", "Metric points published to the outbox", ["model"], registry=r
        )
        self.messages_out = Counter(
            f"{p}_messages_out",
            "Records published and acknowledged, per topic (DLQ included)",
            ["topic"],
            registry=r,
        )
        self.publish_errors = Counter(
            f"{p}_publish_errors",
            "Publications that failed (the agent restarts and re-reads its input)",
            registry=r,
        )
        self.panes_held = Gauge(
            f"{p}_panes_held", "Panes (version, pane start) held in memory", ["model"], registry=r
        )
        self.partials_held = Gauge(
            f"{p}_partials_held", "Partials (one per source partition) held", ["model"], registry=r
        )
        self.watermark = Gauge(
            f"{p}_watermark_seconds",
            "The model's closing watermark, epoch seconds of event time",
            ["model"],
            registry=r,
        )
        self.last_tick = Gauge(
            f"{p}_last_tick_seconds", "Unix time of the last timer tick", registry=r
        )
        self.close_to_publish = Histogram(
            f"{p}_close_to_publish_seconds",
            "Wall-clock seconds from a window becoming due (its watermark, an idle timeout or "
            "its profile arriving) to the acknowledgement of its last record",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )

    def received(self, topic: str) -> None:
        """One summaries message consumed."""
        self.messages_in.labels(topic).inc()

    def published(self, topic: str, n: int = 1) -> None:
        """``n`` records acknowledged on ``topic``."""
        if n:
            self.messages_out.labels(topic).inc(n)

    def record(self, activity: MergeActivity, published_at: float) -> None:
        """Count what the pure core did, once its records were acknowledged at
        ``published_at`` (Unix seconds, the clock that gave the core its ``now_ms``)."""
        for (kind, outcome), n in activity.partials.items():
            self.partials.labels(kind, outcome).inc(n)
        if activity.dropped:
            self.partials_dropped.inc(activity.dropped)
        for window in activity.windows:
            model = self._label(window.model)
            if window.restated:
                self.windows_restated.labels(model).inc()
            else:
                self.windows_finalised.labels(model).inc()
                self.close_to_publish.observe(max(0.0, published_at - window.due_ms / 1000))
            self.metric_points.labels(model).inc(window.points)
            if window.alerts:
                self.alerts.labels(model).inc(window.alerts)
            if window.retrain:
                self.retrain_requests.labels(model).inc()
        for name, n in activity.stopped.items():
            if n:
                self.alerts.labels(self._label(name)).inc(n)

    def hold(self, holdings: Mapping[str, HeldModel]) -> None:
        """Set the per-model gauges (summed over the models that share a label; no
        watermark for :data:`~driftline.telemetry.labels.OTHER`); labels no longer held
        lose theirs."""
        panes: dict[str, int] = {}
        partials: dict[str, int] = {}
        watermarks: dict[str, float] = {}
        for model, held in holdings.items():
            label = self._label(model)
            panes[label] = panes.get(label, 0) + held.panes
            partials[label] = partials.get(label, 0) + held.partials
            if held.watermark_ms is not None and label != OTHER:
                watermarks[label] = held.watermark_ms / 1000
        for label in self._labels - panes.keys():
            for gauge in (self.panes_held, self.partials_held, self.watermark):
                with contextlib.suppress(KeyError):  # a watermark may never have been set
                    gauge.remove(label)
        for label, n in panes.items():
            self.panes_held.labels(label).set(n)
            self.partials_held.labels(label).set(partials[label])
        for label, seconds in watermarks.items():
            self.watermark.labels(label).set(seconds)
        self._labels = set(panes)
        self._held_models = len(holdings)

    def ticked(self) -> None:
        """The worker's timer ran."""
        self._last_tick = self._clock()
        self.last_tick.set(self._last_tick)

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Healthy while the timer ticks; the body says how long since the last tick."""
        age = None if self._last_tick is None else self._clock() - self._last_tick
        detail: dict[str, Any] = {
            "part": "merge",
            "seconds_since_tick": None if age is None else round(age, 3),
            "models": self._held_models,
        }
        if age is None:
            detail["problem"] = "no timer tick yet: the faust worker is not running (yet)"
            return False, detail
        if age >= self.stall_after:
            detail["problem"] = (
                f"no timer tick for {age:.0f} s (limit {self.stall_after:g} s): the faust "
                "worker stopped or its event loop is stuck"
            )
            return False, detail
        return True, detail
