"""Versions whose traffic stopped: their open alert resolved once, their state then let go.

When a model's serving side switches from one version to the next (after a retrain, a
rollback), the old version gets no more panes, so no window of it is ever judged again and
its firing alert would stay open forever. :class:`Silences` closes it by this rule:

- Let ``E`` be the end of the latest window (of any configured series) holding the version's
  newest pane, and ``L`` the longest configured window. When the **model's** closing watermark
  reaches ``E + allowed_lateness + L`` and the version's alert still fires, one ``resolved``
  :class:`~driftline.schemas.outputs.DriftAlert` is published for it, with one
  ``traffic_stopped`` reason. By ``E + allowed_lateness`` every window with the version's
  traffic was closed and judged; a further ``L`` means the model's other versions carried a
  whole (longest) window of traffic with none of this one's.
- The model's watermark moves only with prediction event time (stage 1's watermark is the
  largest event time seen), so a model whose every version pauses never reaches that point:
  a pause of the whole model resolves nothing. A version paused for more than a window while
  others serve is treated as stopped.
- The alert's window is the silence: from the end of the version's newest pane to ``E + L``;
  its reason says ``silent_ms`` (that span) against a threshold of ``L``. Both come from the
  version's panes and the configuration alone, never from how far the watermark had got when
  the rule was checked, so a restart that re-judges the summaries topic makes the same record
  and the same ``alert_id`` (and the published-ids filter drops the repeat).
- From then on the version is *stopped*: its decision policies are reset, and restatements of
  its old windows (late labels, late partials) still publish metric points but no alerts and
  no retrain requests. A partial of a pane newer than its newest one means it *came back*: it
  is no longer stopped and is judged afresh (its policies reset again).

Bounded state: stage 2 forgets a version's monitor and these marks once the monitor holds no
pane, stage 2 holds no partial of the version, and it does not fire (or was stopped): no late
partial can reach it any more (they are older than the pruning horizon). A version seen again
after that starts afresh.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from driftline.detectors.engine import ModelMonitor
from driftline.schemas.events import EPOCH
from driftline.schemas.outputs import DriftAlert, Reason

__all__ = ["Silences", "stopped_alert"]

_MS = timedelta(milliseconds=1)


def stopped_alert(
    model: str, version: str, last_pane_end_ms: int, silent_until_ms: int, longest_ms: int
) -> DriftAlert:
    """The ``resolved`` alert of a version whose traffic stopped at ``last_pane_end_ms`` and
    stayed away until ``silent_until_ms`` (event time), a longest window being ``longest_ms``.

    >>> a = stopped_alert("fraud", "1", 300_000, 660_000, 300_000)
    >>> a.status, a.severity, a.reasons[0].kind, a.reasons[0].value
    ('resolved', 'info', 'traffic_stopped', 360000.0)
    >>> a.alert_id == stopped_alert("fraud", "1", 300_000, 660_000, 300_000).alert_id
    True
    """
    reason = Reason(
        kind="traffic_stopped",
        statistic="silent_ms",
        value=silent_until_ms - last_pane_end_ms,
        threshold=longest_ms,
    )
    return DriftAlert.create(
        model,
        version,
        EPOCH + last_pane_end_ms * _MS,
        EPOCH + silent_until_ms * _MS,
        severity="info",
        reasons=[reason],
        status="resolved",
    )


@dataclass
class _Traffic:
    newest_pane_ms: int
    stopped: bool = False


class Silences:
    """Per version of one model: its newest pane, and whether it was resolved as stopped.

    Examples
    --------
    >>> silences = Silences()
    >>> silences.saw("1", 0), silences.saw("1", 60_000), silences.stopped("1")
    (False, False, False)
    """

    def __init__(self) -> None:
        self._versions: dict[str, _Traffic] = {}

    def saw(self, version: str, pane_start_ms: int) -> bool:
        """Record a partial of ``version``'s pane; True when it brings a stopped version
        back (a pane newer than its newest one), which is then no longer stopped."""
        traffic = self._versions.get(version)
        if traffic is None:
            self._versions[version] = _Traffic(pane_start_ms)
            return False
        if pane_start_ms <= traffic.newest_pane_ms:
            return False
        traffic.newest_pane_ms = pane_start_ms
        came_back, traffic.stopped = traffic.stopped, False
        return came_back

    def stopped(self, version: str) -> bool:
        """Whether ``version``'s alert was resolved because its traffic stopped (and it has
        not come back since)."""
        traffic = self._versions.get(version)
        return traffic is not None and traffic.stopped

    def resolve(
        self, model: str, monitors: dict[str, ModelMonitor], watermark_ms: int, pane_ms: int
    ) -> list[DriftAlert]:
        """The ``resolved`` alerts of versions whose traffic stopped as of the model's
        closing watermark (the rule in the module's docstring); they are now stopped."""
        alerts = []
        for version in sorted(monitors):
            monitor, traffic = monitors[version], self._versions.get(version)
            if traffic is None or traffic.stopped or not monitor.firing:
                continue
            longest = monitor.longest_ms
            silent_until = monitor.last_window_end(traffic.newest_pane_ms) + longest
            if watermark_ms < silent_until + monitor.lateness_ms:
                continue
            traffic.stopped = True
            monitor.reset_policies()
            last_pane_end = traffic.newest_pane_ms + pane_ms
            alerts.append(stopped_alert(model, version, last_pane_end, silent_until, longest))
        return alerts

    def let_go(self, monitors: dict[str, ModelMonitor], held: set[str]) -> list[str]:
        """Remove from ``monitors``, and forget here, the versions no late partial can reach
        any more (the monitor holds no pane, no partial of the version is ``held``) that
        leave no alert open; returns them. A model with endless versions keeps only the
        recent ones."""
        gone = []
        for version in sorted(set(monitors) - held):
            monitor = monitors[version]
            if monitor.n_panes or (monitor.firing and not self.stopped(version)):
                continue
            del monitors[version]
            self._versions.pop(version, None)
            gone.append(version)
        for version in set(self._versions) - monitors.keys() - held:
            del self._versions[version]  # partials that never got a profile, pruned since
        return gone
