"""Which models stage 1 tracks: the configured ones, and unknown ones up to a cap and a TTL.

Every model name a producer sends would otherwise cost state for good: held predictions, a
warm-up baseline on the compacted models topic, summaries, Prometheus series. The
``models_policy`` settings (:class:`~driftline.config.settings.ModelsPolicy`) bound them;
:class:`ModelAdmission` applies them, one set lookup per distinct model of a batch, and
:func:`refuse_unknown` turns the predictions of a refused model into dead letters (kind
:data:`UNKNOWN_MODEL`) before they reach the join. One :class:`ModelAdmission` serves every
partition of a stage-1 process, so the cap counts models per process.
"""

from __future__ import annotations

import operator
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence

from driftline.config import Settings
from driftline.config.settings import ModelsPolicy
from driftline.deadletter import RawMessage, from_message
from driftline.schemas.reasons import UNKNOWN_MODEL
from driftline.schemas.wire import WirePrediction
from driftline.streams.intake import Columns
from driftline.streams.result import ApplyResult

"""The dead-letter kind of a prediction whose model ``models_policy`` does not admit."""
_MODEL = operator.attrgetter("model")
_NAME_IN_REASON = 100
"""Characters of a refused model's name quoted in the reason (names can be very long)."""


class ModelAdmission:
    """The models a stage-1 process tracks under ``models_policy``.

    Configured models (``models``) are always admitted. With ``allow: listed`` no other is;
    with ``allow: any`` up to ``max_unknown`` others are, each forgotten after
    ``unknown_ttl`` of wall-clock time without traffic.

    Parameters
    ----------
    policy
        The ``models_policy`` settings.
    listed
        The names of the configured models.
    clock
        Wall-clock seconds; injectable.

    Examples
    --------
    >>> from driftline.config.settings import ModelsPolicy
    >>> now = [0.0]
    >>> admission = ModelAdmission(
    ...     ModelsPolicy(max_unknown=1, unknown_ttl="1h"), {"fraud"}, clock=lambda: now[0])
    >>> admission.refused({"fraud", "churn"}), admission.refused({"spam"})
    ({}, {'spam': 'max_unknown'})
    >>> now[0] = 3600.0  # an hour without churn: forgotten, spam takes its place
    >>> admission.refused({"spam"}), admission.admitted("churn")
    ({}, False)
    """

    def __init__(
        self,
        policy: ModelsPolicy,
        listed: Iterable[str],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.policy = policy
        self._listed = frozenset(listed)
        self._cap = policy.max_unknown if policy.allow == "any" else 0
        self._ttl = policy.unknown_ttl.total_seconds()
        self._clock = clock
        self._unknown: OrderedDict[str, float] = OrderedDict()
        """Unconfigured models tracked, to the wall time of their last batch, oldest first."""

    @classmethod
    def from_settings(
        cls, settings: Settings, *, clock: Callable[[], float] = time.time
    ) -> ModelAdmission:
        """The admission of ``settings.models_policy`` over ``settings.models``."""
        return cls(settings.models_policy, settings.models, clock=clock)

    @property
    def unknown(self) -> int:
        """How many unconfigured models are tracked now."""
        return len(self._unknown)

    def admitted(self, model: str) -> bool:
        """Whether ``model`` is tracked now (asking does not count as traffic)."""
        if model in self._listed:
            return True
        seen = self._unknown.get(model)
        return seen is not None and self._clock() - seen < self._ttl

    def refused(self, models: Iterable[str]) -> dict[str, str]:
        """The models of a batch that are not admitted, each with the setting that refused
        it (``allow`` or ``max_unknown``); the admitted ones count as traffic."""
        listed, unknown = self._listed, self._unknown
        refused: dict[str, str] = {}
        now: float | None = None
        for model in models:
            if model in listed:
                continue
            if now is None:
                now = self._clock()
                self._forget(now)
            if model in unknown:
                unknown.move_to_end(model)
                unknown[model] = now
            elif len(unknown) < self._cap:
                unknown[model] = now
            else:
                refused[model] = "allow" if self.policy.allow == "listed" else "max_unknown"
        return refused

    def forget(self) -> None:
        """Forget the unconfigured models without traffic for ``unknown_ttl``."""
        self._forget(self._clock())

    def _forget(self, now: float) -> None:
        unknown, cutoff = self._unknown, now - self._ttl
        while unknown:
            model, seen = next(iter(unknown.items()))
            if seen > cutoff:
                return
            del unknown[model]

    def reason(self, model: str, setting: str) -> str:
        """Why ``model``'s events go to the DLQ, naming the setting."""
        name = model if len(model) <= _NAME_IN_REASON else f"{model[:_NAME_IN_REASON]}…"
        if setting == "allow":
            return (
                f"model {name!r} is not configured under models, and models_policy.allow is "
                "'listed': only configured models are tracked"
            )
        return (
            f"model {name!r} is not configured under models, and models_policy.max_unknown "
            f"({self.policy.max_unknown}) unconfigured models are tracked already; one is "
            "forgotten after models_policy.unknown_ttl without traffic"
        )


def refuse_unknown(
    predictions: Columns[WirePrediction],
    messages: Sequence[RawMessage],
    admission: ModelAdmission,
    restore_until: int,
    failed_at_ms: int,
    result: ApplyResult,
) -> Columns[WirePrediction]:
    """The batch's predictions whose model ``admission`` admits; each other one becomes a
    dead letter (none below ``restore_until``: the partition's previous owner sent it)."""
    if not predictions.events:
        return predictions
    refused = admission.refused(set(map(_MODEL, predictions.events)))
    if not refused:
        return predictions
    by_offset: Mapping[int | None, RawMessage] = {m.offset(): m for m in messages}
    kept: Columns[WirePrediction] = Columns([], [], [], [])
    reasons = {model: admission.reason(model, setting) for model, setting in refused.items()}
    for event, raw, pid, offset in zip(*predictions, strict=True):
        reason = reasons.get(event.model)
        if reason is None:
            kept.events.append(event)
            kept.values.append(raw)
            kept.ids.append(pid)
            kept.offsets.append(offset)
        elif offset < restore_until:
            result.restored += 1
        else:
            result.dead_letters.append(
                from_message(
                    by_offset[offset],
                    reason=reason,
                    kind=UNKNOWN_MODEL,
                    path="$.model",
                    failed_at=failed_at_ms,
                )
            )
    return kept
