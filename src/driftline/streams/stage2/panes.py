"""The summaries of one pane: decode each source partition's partial, merge them, hand the
pane to the model's :class:`~driftline.detectors.engine.ModelMonitor`.

A features partial from a source partition the pane has none of yet is merged into the pane
the monitor holds (:func:`add_to_pane`) instead of decoding every partial of the pane again:
a pane of ``k`` source partitions then costs ``k`` decodes, not ``k (k + 1) / 2``, and
:meth:`~driftline.detectors.summary.PaneSummary.merge` being exact, associative and
commutative, the pane is the same either way.

A partial that does not fit its version's profile, or partials of one pane that do not merge,
raise :class:`~driftline.errors.DecodeError` (kind ``invalid_summary``) before the monitor is
changed, so the caller can dead-letter or drop them and keep its state.
"""

from __future__ import annotations

from collections.abc import Mapping

from driftline.detectors.engine import ModelMonitor
from driftline.detectors.performance import PerformanceSummary
from driftline.detectors.summary import PaneSummary
from driftline.errors import DecodeError, StatisticsError
from driftline.streams.partials import PanePartial

__all__ = ["Slot", "add_to_pane", "decode_partial", "set_pane"]

Slot = tuple[str, int, str]
"""Where a pane's partials are held: (version, pane start in epoch ms, partial kind)."""


def decode_partial(monitor: ModelMonitor, partial: PanePartial) -> PaneSummary | PerformanceSummary:
    """The summary a partial carries, checked against the monitor's profile."""
    if partial.kind == "features":
        return PaneSummary.from_bytes(partial.summary, monitor.profile)
    performance = PerformanceSummary.from_bytes(partial.summary)
    empty = PerformanceSummary.from_profile(
        monitor.profile, positive_class=monitor.config.positive_class
    )
    try:
        empty.merge(performance)
    except StatisticsError as exc:
        raise DecodeError(
            f"performance summary does not fit the profile: {exc}", kind="invalid_summary"
        ) from None
    return performance


def add_to_pane(monitor: ModelMonitor, slot: Slot, partial: PanePartial) -> bool:
    """Merge one more source partition's features partial into the pane the monitor holds,
    which must be the merge of the pane's other partials; False (nothing changed) when the
    monitor holds no such pane or the partial is not a features one."""
    _, pane_start, kind = slot
    held = monitor.pane_summary(pane_start)
    if kind != "features" or held is None:
        return False
    summary = decode_partial(monitor, partial)
    assert isinstance(summary, PaneSummary)
    try:
        merged = held.merge(summary)
    except StatisticsError as exc:
        raise DecodeError(
            f"partials of one pane do not merge: {exc}", kind="invalid_summary"
        ) from None
    monitor.set_pane(pane_start, summary=merged)
    return True


def set_pane(monitor: ModelMonitor, slot: Slot, partials: Mapping[int, PanePartial]) -> None:
    """Merge a pane's partials (one per source partition) and hand the pane to the monitor."""
    _, pane_start, kind = slot
    decoded = [decode_partial(monitor, partials[p]) for p in sorted(partials)]
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
    except StatisticsError as exc:
        raise DecodeError(
            f"partials of one pane do not merge: {exc}", kind="invalid_summary"
        ) from None
