"""Evidently's ``DataDriftPreset`` on the behaviour benchmark's windows, against one reference
sample, with the column types declared as driftline's profile has them.
"""

from __future__ import annotations

from typing import Any

from common.evidently_report import Evidently, EvidentlyVerdict, evidently_or_reason, verdict
from drift_parts.population import Sample


class EvidentlyWindows:
    """Judges samples against ``reference``."""

    def __init__(self, evidently: Evidently, reference: Sample) -> None:
        self._evidently = evidently
        self._numerical = list(reference.numeric)
        self._categorical = list(reference.categorical)
        self._reference = self._data(reference)

    def _data(self, sample: Sample) -> Any:
        return self._evidently.dataset(
            sample.features(), numerical=self._numerical, categorical=self._categorical
        )

    def run(self, sample: Sample) -> EvidentlyVerdict:
        """Evidently's verdict on one window."""
        return verdict(self._evidently.run(self._data(sample), self._reference))


def evidently_windows(reference: Sample) -> EvidentlyWindows | str:
    """The judge, or why Evidently cannot run (it is optional)."""
    evidently = evidently_or_reason()
    return evidently if isinstance(evidently, str) else EvidentlyWindows(evidently, reference)
