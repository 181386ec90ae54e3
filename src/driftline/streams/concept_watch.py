"""Each model version's concept-drift detector in stage 1, and the panes it fired on.

A version's detector is restored from the partition's store the first time a batch joins one
of its pairs, fed that batch's error stream (:mod:`driftline.detectors.error_stream` holds
the arithmetic), and saved in the batch's own write, with the marks, so a restart resumes it
exactly. The panes it fired on are flagged in the store too, so that every later emission of
their performance partials carries the flag.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray

from driftline.config import ModelConfig
from driftline.detectors.concept import ConceptDriftDetector, detector_from_snapshot, make_detector
from driftline.detectors.error_stream import watch_errors
from driftline.schemas.reference import ReferenceProfile
from driftline.streams.store import PartitionStore, StoreBatch

_MS = timedelta(milliseconds=1)


class ConceptWatch:
    """The concept-drift detectors of one partition's model versions.

    Parameters
    ----------
    store
        The partition's store, which keeps each detector's snapshot and the flagged panes.
    """

    def __init__(self, store: PartitionStore) -> None:
        self._store = store
        self._detectors: dict[tuple[str, str], ConceptDriftDetector] = {}
        self._flagged: set[tuple[str, str, int]] = set()

    def watch(
        self,
        profile: ReferenceProfile,
        config: ModelConfig,
        labels: list[Any],
        guesses: list[Any],
        predicted_at: NDArray[np.int64],
        batch: StoreBatch,
    ) -> list[int]:
        """Feed joined pairs' errors (in the order they were joined) to the version's
        detector; flag, in ``batch``, the panes of the predictions it fired on, and keep its
        state there. Returns the flagged panes' starts."""
        model, version = profile.model, profile.model_version
        detector = self._detectors.get((model, version))
        if detector is None:
            stored = self._store.get_detector(model, version)
            detector = (
                detector_from_snapshot(orjson.loads(stored))
                if stored is not None
                else make_detector(config.performance.concept_detector)
            )
            self._detectors[(model, version)] = detector
        fired = watch_errors(
            detector, profile.task, labels, guesses, predicted_at, config.pane // _MS
        )
        if fired is None:
            return []
        for pane_start in fired:
            batch.flag_concept(model, version, pane_start)
            self._flagged.add((model, version, pane_start))
        batch.put_detector(model, version, orjson.dumps(detector.snapshot()))
        return fired

    def flagged(self, model: str, version: str, pane_start: int) -> bool:
        """Whether the detector fired on a prediction of this pane (in this process or
        before: the flag is stored)."""
        if (model, version, pane_start) in self._flagged:
            return True
        return self._store.concept_flagged(model, version, pane_start)
