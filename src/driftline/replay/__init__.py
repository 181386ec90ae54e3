"""Backtesting: run the statistics engine over files of events, as the service would have.

``driftline replay predictions.jsonl [--ground-truth labels.jsonl]`` answers "what would
driftline have said last month": events are decoded with the same decoder as ingest,
deduplicated and joined by ``prediction_id`` as stage 1 does, folded into event-time panes,
labels attributed to their prediction's window, every window judged with the same policy as
stage 2 (:mod:`.run`, :mod:`.version`, :mod:`.join`).

The files are streamed: memory holds a chunk of lines, the panes of the windows not yet
judged, and a version's warm-up; the join's entries are on disk (``docs/replay.md``).

A model version judged needs a reference: a profile file (``--reference``, as written by
``driftline reference build``), or else its own first ``warmup_events`` events, which then
only build the baseline and are not judged.
"""

from __future__ import annotations

from driftline.errors import ReplayError
from driftline.replay.run import Rejected, ReplayResult, read_lines, replay

__all__ = ["Rejected", "ReplayError", "ReplayResult", "read_lines", "replay"]
