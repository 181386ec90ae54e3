"""Evidently's ``Report([DataDriftPreset()])``, which benchmarks print beside driftline's figures.

Evidently is optional (the ``bench`` extra): :func:`evidently_or_reason` gives the runner or
the sentence to print instead. Its imports and reports run with warnings silenced: Evidently
raises deprecation warnings of its own dependencies that say nothing about the comparison.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

INSTALL = "pip install 'evidently>=0.7,<0.8' 'pandas>=2,<3'"


@contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@dataclass(frozen=True, slots=True)
class EvidentlyVerdict:
    """What one report said: dataset drift, the share and names of the columns it calls
    drifted (in its order), and the per-column tests it chose (``method, threshold t``)."""

    dataset_drift: bool
    share: float
    drifted: tuple[str, ...]
    methods: frozenset[str]


class Evidently:
    """Evidently's data-drift report with its defaults; raises ImportError without Evidently."""

    def __init__(self) -> None:
        with _quiet():
            import evidently
            from evidently import DataDefinition, Dataset, Report
            from evidently.presets import DataDriftPreset

        self.version: str = evidently.__version__
        self._report = Report
        self._preset = DataDriftPreset
        self._dataset = Dataset
        self._definition = DataDefinition

    def dataset(
        self, columns: dict[str, Any], *, numerical: Sequence[str], categorical: Sequence[str]
    ) -> Any:
        """An Evidently dataset of ``columns`` with the column types declared."""
        import pandas as pd

        definition = self._definition(
            numerical_columns=list(numerical), categorical_columns=list(categorical)
        )
        return self._dataset.from_pandas(pd.DataFrame(columns), data_definition=definition)

    def run(self, current: Any, reference: Any) -> Any:
        """The report's snapshot (DataFrames or datasets); read it with :func:`verdict`."""
        with _quiet():
            return self._report([self._preset()]).run(
                current_data=current, reference_data=reference
            )


def verdict(snapshot: Any) -> EvidentlyVerdict:
    """Read a snapshot of :meth:`Evidently.run`."""
    share, drift_share = math.nan, 0.5
    drifted: list[str] = []
    methods: set[str] = set()
    for metric in snapshot.dict()["metrics"]:
        config, value = metric["config"], metric["value"]
        kind = str(config.get("type", ""))
        if kind.endswith("DriftedColumnsCount"):
            share, drift_share = float(value["share"]), float(config["drift_share"])
        elif kind.endswith("ValueDrift"):
            methods.add(f"{config['method']}, threshold {config['threshold']}")
            # Distances drift at or above the threshold, p-values (small windows) below it.
            by_p_value = "p_value" in str(config.get("method", ""))
            value, threshold = float(value), float(config["threshold"])
            if (value < threshold) if by_p_value else (value >= threshold):
                drifted.append(str(config["column"]))
    # Evidently's dataset drift: at least drift_share of the columns drifted.
    return EvidentlyVerdict(share >= drift_share, share, tuple(drifted), frozenset(methods))


def evidently_or_reason() -> Evidently | str:
    """Evidently, or why it cannot run."""
    try:
        return Evidently()
    except ImportError as exc:
        return f"Evidently is not importable ({exc}); {INSTALL}"
