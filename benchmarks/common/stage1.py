"""Stage 1's summary path cut into steps that can be timed apart: decoding the events' bytes,
turning decoded batches into columns, folding columns into a pane summary, and their sums.

Each step's inputs are prepared when :class:`Stage1` is built, so a step's time is its own.
"""

from __future__ import annotations

from driftline.detectors.batch import columns_from_events
from driftline.detectors.summary import PaneSummary
from driftline.schemas import decode_prediction
from driftline.schemas.reference import ReferenceProfile


class Stage1:
    """The steps over ``messages`` cut in batches of ``batch_size`` (the last may be short)."""

    def __init__(self, profile: ReferenceProfile, messages: list[bytes], batch_size: int) -> None:
        self.profile = profile
        self.batches = [messages[i : i + batch_size] for i in range(0, len(messages), batch_size)]
        self.decoded = [[decode_prediction(m) for m in b] for b in self.batches]
        self.columns = [columns_from_events(b, profile) for b in self.decoded]

    def decode(self) -> None:
        """``decode_prediction`` on every message."""
        for b in self.batches:
            [decode_prediction(m) for m in b]

    def to_columns(self) -> None:
        """``columns_from_events`` on every decoded batch."""
        for b in self.decoded:
            columns_from_events(b, self.profile)

    def fold(self) -> PaneSummary:
        """``PaneSummary.fold`` of every prepared column batch; the summary of them all."""
        summary = PaneSummary(self.profile)
        for c in self.columns:
            summary.fold(c)
        return summary

    def columns_and_fold(self) -> None:
        """Columns of every decoded batch, folded."""
        summary = PaneSummary(self.profile)
        for b in self.decoded:
            summary.fold(columns_from_events(b, self.profile))

    def everything(self) -> None:
        """Decode, columns and fold of every batch: the whole stage-1 summary path."""
        summary = PaneSummary(self.profile)
        for b in self.batches:
            summary.fold(columns_from_events([decode_prediction(m) for m in b], self.profile))
