"""The error stream of joined predictions, as a concept-drift detector reads it.

Once a label meets its prediction, the pair makes one error: 0 or 1 for a classifier (the
label and the prediction compared as categories), the absolute residual for regression. A
batch of pairs, in the order they were joined, feeds a version's
:class:`~driftline.detectors.concept.ConceptDriftDetector`, and the panes of the predictions
it fired on are flagged. This module owns that arithmetic: which error a pair makes, which
pairs make none, and which panes a batch flags. Where the detector's state is kept between
batches, and how the flags travel, is stage 1's business
(:mod:`driftline.streams.concept_watch`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from driftline.detectors.concept import ConceptDriftDetector
from driftline.detectors.values import to_categorical, to_numeric
from driftline.schemas.events import Task


def pair_errors(
    task: Task, labels: Sequence[Any], guesses: Sequence[Any]
) -> tuple[NDArray[np.float64], NDArray[np.intp] | None]:
    """The errors of (label, prediction) pairs, and the pairs they came from (None: all).

    A regression pair whose label or prediction is no number (the performance summary counts
    it as a type error) carries no signal and makes no error.

    >>> errors, rows = pair_errors("binary", [1, "a", True], ["1", "b", "true"])
    >>> errors.tolist(), rows
    ([0.0, 1.0, 0.0], None)
    >>> errors, rows = pair_errors("regression", [1.0, "x", 4.0], [1.5, 2.0, 2.0])
    >>> errors.tolist(), rows.tolist()
    ([0.5, 2.0], [0, 2])
    """
    rows = None
    if task == "regression":
        truth, _ = to_numeric(labels)
        guess, _ = to_numeric(guesses)
        errors = np.abs(truth - guess)
        finite = np.isfinite(errors)
        if not finite.all():
            rows = np.flatnonzero(finite)
            errors = errors[rows]
    else:
        errors = (to_categorical(labels) != to_categorical(guesses)).astype(np.float64)
    return errors, rows


def watch_errors(
    detector: ConceptDriftDetector,
    task: Task,
    labels: Sequence[Any],
    guesses: Sequence[Any],
    predicted_at: NDArray[np.int64],
    pane_ms: int,
) -> list[int] | None:
    """Feed the pairs' errors to ``detector``, in order; the pane start of the prediction of
    each error it fired on (one per drift, in order). None when the detector cannot read
    these errors (a binary-only detector on residuals): then there is no signal, and the
    detector learned nothing.

    >>> from driftline.detectors.concept import make_detector
    >>> detector = make_detector("adwin")
    >>> at = np.arange(2000, dtype=np.int64) * 1000  # one pair per second, panes of a minute
    >>> labels = [0] * 2000
    >>> guesses = [0] * 1000 + [1] * 1000  # right for 1,000 s, then always wrong
    >>> flagged = watch_errors(detector, "binary", labels, guesses, at, 60_000)
    >>> bool(flagged) and 960_000 <= flagged[0] <= 1_080_000
    True
    >>> watch_errors(make_detector("ddm"), "regression", [1.0], [3.5], at[:1], 60_000) is None
    True
    """
    errors, rows = pair_errors(task, labels, guesses)
    try:
        detector.update(errors)
    except ValueError:
        return None
    starts = []
    for position in detector.drift_positions:
        ts = int(predicted_at[position if rows is None else rows[position]])
        starts.append(ts - ts % pane_ms)
    return starts
