"""A replay whose windows the report's tests draw."""

from __future__ import annotations

import pytest

from driftline.config import Settings
from driftline.detectors.engine import WindowReport
from driftline.replay import replay
from driftline.testing.service import SEA_MODEL, sea_reference
from driftline.testing.synthetic import write_sea_files


@pytest.fixture(scope="session")
def reports(tmp_path_factory: pytest.TempPathFactory) -> list[WindowReport]:
    """Six ten-minute windows of SEA traffic, x3 shifted from the fourth on: drift, alerts
    and a retrain request in the later windows."""
    predictions, labels = write_sea_files(tmp_path_factory.mktemp("sea"), 36_000, shift_at=18_000)
    reference = sea_reference().reference
    result = replay(
        predictions,
        labels,
        settings=Settings(models={"sea": SEA_MODEL}),
        references={("sea", "1"): reference},
    )
    assert len(result.reports) == 6
    return list(result.reports)
