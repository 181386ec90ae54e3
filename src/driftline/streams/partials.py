"""What stage 1 tells stage 2 on the summaries topic: pane partials and watermarks.

Replay safety (DESIGN §1, §3) rests on one rule: **a partial is cumulative and identified by
(model, version, pane, source partition, kind)**. Stage 1 keeps, per source partition, the
summary of *every* event of that partition that falls in a pane (late ones included), in its
store together with the input offsets it has applied. Each emission carries the whole summary
so far and the applied offset (``covered``); stage 2 keeps, per identity, the partial with the
highest ``covered`` and *replaces* instead of adding. Re-emitting after a crash, a rebalance
or a restart therefore changes nothing, and a late event simply makes its pane's partial grow.

Joined labels follow the same rule with ``kind="performance"``: a (prediction, label) pair is
attributed to the prediction's pane and to the partition both events share (they are
co-partitioned by ``prediction_id``), whatever order they arrived in.

Shadow rollouts (issue 16) add ``kind="rollout"``: the paired evidence
(:class:`~driftline.detectors.rollout_evidence.PairedEvidence`) of a challenger version
(``version``) against its ``champion``, from the labels that scored both versions' predictions
of the same requests, attributed to the champion's prediction's pane; the same rule applies.

Messages are keyed by model, so every partial and watermark of a model reaches the same
stage-2 partition, in the order one stage-1 owner emitted them.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from driftline.errors import DecodeError

PartialKind = Literal["features", "performance", "rollout"]


class PanePartial(msgspec.Struct, frozen=True, tag="partial"):
    """One source partition's cumulative summary of one pane of one model version."""

    model: str
    version: str
    pane_start_ms: int
    pane_ms: int
    source_partition: int
    kind: PartialKind
    covered: int
    """Input offsets applied when this was emitted (predictions + ground truth of the
    partition, summed): grows with every event, so the larger one is the newer."""
    watermark_ms: int
    """The largest prediction event time the source partition had seen."""
    summary: bytes
    """``PaneSummary.to_bytes()``, ``PerformanceSummary.to_bytes()``, or for ``rollout``
    ``rollout_sources.evidence_bytes(PairedEvidence)``."""
    concept_drift: bool = False
    """For performance partials: the partition's concept-drift detector fired on the error
    stream of predictions in this pane."""
    champion: str = ""
    """For rollout partials: the champion version the challenger (``version``) is paired
    with; empty for the other kinds (and in messages written before rollouts existed)."""

    @property
    def identity(self) -> tuple[str, str, int, int, str, str]:
        """What stage 2 replaces by."""
        return (
            self.model,
            self.version,
            self.pane_start_ms,
            self.source_partition,
            self.kind,
            self.champion,
        )


class Watermark(msgspec.Struct, frozen=True, tag="watermark"):
    """A source partition's event-time progress, sent even when no partial changed."""

    model: str
    source_partition: int
    watermark_ms: int
    n_partitions: int
    """How many source partitions the inputs have: stage 2 waits for all of them."""


Message = PanePartial | Watermark
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Message)


def encode(message: Message) -> bytes:
    """A summaries-topic value.

    >>> p = PanePartial("fraud", "3", 60_000, 60_000, 2, "features", 41, 61_500, b"...")
    >>> decode(encode(p)) == p
    True
    """
    return _encoder.encode(message)


def decode(data: bytes) -> Message:
    """Read a summaries-topic value; :class:`DecodeError` when it is not one."""
    try:
        message: Message = _decoder.decode(data)
    except msgspec.MsgspecError as exc:
        raise DecodeError(f"not a summaries message: {exc}", kind="invalid_summary") from None
    return message
