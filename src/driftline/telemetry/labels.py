"""Metric label values that come from producers' input, bounded: beyond a cap, one ``(other)``.

Prometheus keeps a series per label value for as long as the process lives, and model names
are whatever producers send. :class:`ModelLabels` gives each configured model its own label,
the first ``others`` unconfigured models theirs, and every later one :data:`OTHER`, so a
process never has more than ``len(listed) + others + 1`` values of a ``model`` label.
"""

from __future__ import annotations

from collections.abc import Iterable

from driftline.config import Settings

__all__ = ["OTHER", "ModelLabels"]

OTHER = "(other)"
"""The label of every model beyond the cap (parenthesised, unlike a usual model name)."""


class ModelLabels:
    """The ``model`` label value of each model: its name, or :data:`OTHER` beyond the cap.

    Parameters
    ----------
    listed
        Models that always get their own label (the configured ones).
    others
        How many other models get their own label, first come first served, for the life
        of the process (a label once used stays: its series does).

    Examples
    --------
    >>> labels = ModelLabels(["fraud"], others=1)
    >>> [labels.of(m) for m in ("fraud", "churn", "spam", "churn")]
    ['fraud', 'churn', '(other)', 'churn']
    """

    def __init__(self, listed: Iterable[str] = (), others: int = 1000) -> None:
        if others < 0:
            raise ValueError(f"others must be at least 0, got {others}")
        self._listed = frozenset(listed)
        self._others = others
        self._named: set[str] = set()

    @classmethod
    def from_settings(cls, settings: Settings) -> ModelLabels:
        """The labels ``models_policy`` admits: the configured models, and with ``allow:
        any`` as many others as ``max_unknown``."""
        policy = settings.models_policy
        return cls(settings.models, policy.max_unknown if policy.allow == "any" else 0)

    def of(self, model: str) -> str:
        """The label value of ``model``."""
        if model in self._listed or model in self._named:
            return model
        if len(self._named) < self._others:
            self._named.add(model)
            return model
        return OTHER
