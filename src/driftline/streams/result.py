"""What applying one batch of input produced in stage 1, besides the store's own state.

:class:`ApplyResult` carries a batch's outputs (dead letters, joined examples), its counts
for telemetry, and the store changes that may be written once those outputs are safe in
Kafka. Every step of applying a batch adds to it; the ingest loop reads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from driftline.schemas.outputs import DeadLetter
from driftline.streams.labeled import Labeled
from driftline.streams.store import StoreBatch


@dataclass
class ApplyResult:
    """What one batch produced besides the store changes."""

    dead_letters: list[DeadLetter] = field(default_factory=list)
    labeled: list[Labeled] = field(default_factory=list)
    predictions: int = 0
    labels: int = 0
    joined: int = 0
    duplicates: int = 0
    skipped: int = 0
    too_late: int = 0
    waiting_for_profile: int = 0
    prediction_messages: int = 0
    """Messages of the predictions topic in the batch (valid or not, replayed or not)."""
    truth_messages: int = 0
    """Messages of the ground-truth topic in the batch (valid or not, replayed or not)."""
    shadow_pairs: int = 0
    """Shadow predictions paired with their champion through the label they share (each
    also counts in ``joined``)."""
    shadows_unpaired: int = 0
    """Shadow predictions that can never be paired: they came after their champion had
    joined its label, or their version was held for its profile when the label came."""
    shadow_pairs_unscored: int = 0
    """Shadow pairs joined but left out of the rollout evidence: the model's rollout metric
    cannot score them (e.g. no probability of class 1 for log loss, or a regression)."""
    restored: int = 0
    """Outputs not sent again while rebuilding (their inputs were applied before)."""
    batch: StoreBatch | None = None
    """The store changes, marks included, to
    :meth:`~driftline.streams.partition.PartitionWorker.persist` once the outputs above are
    acknowledged (a crash in between replays the batch: at-least-once)."""
