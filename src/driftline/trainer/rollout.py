"""The trainer's side of a rollout: act on the monitor's :class:`RolloutDecision` records.

Stage 2 judges a ``challenger`` (a version the trainer registered in rollout, see
:mod:`driftline.trainer.handler`) beside the champion and publishes a decision on the
``rollout`` topic (key = model). :meth:`RolloutHandler.handle` applies one:

- ``action: promote``: the challenger becomes the champion (the old one retires) and its
  reference is published on the models topic, so the monitor re-baselines on it and serving
  followers switch;
- ``action: rollback`` (a ``rollback`` decision, or an ``end`` whose configured ``on_end`` is
  rollback): the challenger becomes ``rejected`` with the decision's figures in its history.
  Nothing is published (the champion's reference is unchanged); serving followers see the
  registry change on their next poll (:class:`driftline.serving.ChampionFollower`).

Each ``decision_id`` is handled once. The registry is the durable memory: a decision about a
version that is no longer the challenger (a person's ``driftline models promote|rollback``
came first, or an earlier decision did) changes nothing, so a decision delivered again after
a crash, or one overtaken by a person, is harmless. The one repair it makes: a promote
decision for the version that is already champion publishes that version's reference again
(a crash may have come between the promotion and the publication).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from driftline.errors import TrainingError
from driftline.schemas.outputs import RolloutDecision
from driftline.trainer.announce import version_record
from driftline.trainer.handler import Publisher
from driftline.trainer.registry import Registry

__all__ = ["DecisionLog", "RolloutHandler", "figures"]

logger = logging.getLogger(__name__)


@dataclass
class DecisionLog:
    """The decision ids this process has handled (what the registry already records)."""

    handled: set[str] = field(default_factory=set)

    def done(self, decision_id: str) -> bool:
        """Whether this decision was handled here already."""
        return decision_id in self.handled

    def add(self, decision_id: str) -> None:
        """Remember a handled decision."""
        self.handled.add(decision_id)


def figures(decision: RolloutDecision) -> str:
    """The decision's evidence on one line, for the registry's history.

    >>> from datetime import UTC, datetime
    >>> t = datetime(2026, 12, 1, tzinfo=UTC)
    >>> d = RolloutDecision(model="m", model_version="2", window_start=t, window_end=t,
    ...     decision_id="d-1", champion_version="1", challenger_version="2", design="shadow",
    ...     decision="rollback", action="rollback", metric="accuracy", estimate=-0.04,
    ...     lower=-0.06, upper=-0.02, n=900, alpha=0.05, margin=0.0, method="cs")
    >>> figures(d)[:70]
    'rollout decision d-1 (shadow, rollback): accuracy difference -0.04 [-0'
    >>> figures(d)[70:]
    '.06, -0.02] over 900 labels against version 1 (cs, alpha 0.05, margin 0)'
    """
    return (
        f"rollout decision {decision.decision_id} ({decision.design}, {decision.decision}): "
        f"{decision.metric} difference {decision.estimate:.4g} "
        f"[{decision.lower:.4g}, {decision.upper:.4g}] over {decision.n} labels against "
        f"version {decision.champion_version} ({decision.method}, alpha {decision.alpha:g}, "
        f"margin {decision.margin:g})"
    )


class RolloutHandler:
    """Applies rollout decisions to the registry and announces the result (module docstring)."""

    def __init__(
        self, *, registry: Registry, publisher: Publisher, log: DecisionLog | None = None
    ) -> None:
        self.registry = registry
        self.publisher = publisher
        self.log = log or DecisionLog()

    def handle(self, decision: RolloutDecision) -> str | None:
        """Apply one decision; returns what was done (``promoted``, ``rolled back``,
        ``republished``, ``stale``), or None for a decision handled before."""
        if self.log.done(decision.decision_id):
            return None
        result = self._apply(decision)
        self.log.add(decision.decision_id)
        logger.info(
            "rollout decision %s for %s %s: %s",
            decision.decision_id,
            decision.model,
            decision.challenger_version,
            result,
        )
        return result

    def _apply(self, decision: RolloutDecision) -> str:
        model, version = decision.model, decision.challenger_version
        if model not in self.registry.models():
            return "stale"
        current = self.registry.metadata(model, version)
        if current.status != "challenger":
            if decision.action == "promote" and current.status == "champion":
                self._announce(model, version)
                return "republished"
            return "stale"
        why = figures(decision)
        if decision.action == "promote":
            self.registry.promote(model, version, by="trainer", reason=why)
            self._announce(model, version)
            return "promoted"
        self.registry.set_status(model, version, "rejected", by="trainer", reason=why)
        return "rolled back"

    def _announce(self, model: str, version: str) -> None:
        record = version_record(self.registry, model, version, source="trainer")
        if record is None:
            raise TrainingError(f"version {version} of {model!r} has no reference")
        self.publisher.version(record)
