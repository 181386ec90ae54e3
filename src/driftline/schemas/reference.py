"""The reference profile of a model version: what "no drift" looks like.

Published once per model version on the compacted ``driftline.models`` topic inside a
:class:`~driftline.schemas.outputs.ModelVersionRegistered`; every worker reads it, so no worker
needs a shared file system. Bins are frozen here: stage 1 folds live traffic into counts over
exactly these bins, which is what makes pane partials mergeable by addition (DESIGN §1, §4).
"""

from __future__ import annotations

import math
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from driftline.schemas.events import Task
from driftline.schemas.thresholds import CalibratedThresholds

_SUM_TOLERANCE = 1e-6


class _Frozen(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, allow_inf_nan=False, protected_namespaces=()
    )


def _check_probabilities(values: list[float], what: str) -> None:
    if any(p < 0 for p in values):
        raise ValueError(f"{what} must be non-negative")
    total = math.fsum(values)
    if values and abs(total - 1.0) > _SUM_TOLERANCE:
        raise ValueError(f"{what} must sum to 1 (got {total!r})")


class NumericProfile(_Frozen):
    """Quantile bins of a numeric column.

    ``edges`` are the interior bin edges, strictly increasing; the ``len(edges) + 1`` bins are
    ``(-inf, e0), [e0, e1), ..., [e_last, +inf)`` with ``probabilities`` summing to 1 over the
    non-missing values. ``decile_edges`` are a subset of ``edges``, so PSI on deciles is exact.
    """

    kind: Literal["numeric"] = "numeric"
    edges: list[float]
    probabilities: list[float]
    decile_edges: list[float] = Field(default_factory=list)
    missing_rate: float = Field(0.0, ge=0.0, le=1.0)
    minimum: float | None = None
    maximum: float | None = None
    count: int = Field(ge=0, description="Non-missing values the profile was built from.")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if any(b <= a for a, b in zip(self.edges, self.edges[1:], strict=False)):
            raise ValueError("edges must be strictly increasing")
        if len(self.probabilities) != len(self.edges) + 1:
            raise ValueError(
                f"probabilities must have len(edges) + 1 = {len(self.edges) + 1} entries, "
                f"got {len(self.probabilities)}"
            )
        _check_probabilities(self.probabilities, "probabilities")
        if not set(self.decile_edges) <= set(self.edges):
            raise ValueError("decile_edges must be a subset of edges")
        return self


class CategoricalProfile(_Frozen):
    """Frequencies of the top categories of a column; everything else is ``other``.

    ``categories`` (the top-K) are the histogram's bins, ``other`` its last one. ``tail`` names
    the reference's other categories (most frequent first, up to the bound the profile was
    built with), so a live value is *unseen* only when it is in neither list; ``unseen_rate``
    is how often that happens under no drift (Good-Turing estimates of the mass of the
    categories beyond the bound and of those the sample missed). A profile without
    ``unseen_rate`` (built before these fields existed) compares unseen values against
    ``other`` instead: :attr:`expected_unseen_rate`.
    """

    kind: Literal["categorical"] = "categorical"
    categories: dict[str, float]
    other: float = Field(0.0, ge=0.0, le=1.0)
    missing_rate: float = Field(0.0, ge=0.0, le=1.0)
    count: int = Field(ge=0, description="Non-missing values the profile was built from.")
    tail: list[str] = Field(
        default_factory=list,
        description="The reference's categories beyond ``categories``, most frequent first.",
    )
    tail_dropped: int = Field(
        0, ge=0, description="Reference categories beyond the bound, in neither list."
    )
    unseen_rate: float | None = Field(
        None, ge=0.0, le=1.0, description="Expected share of values in neither list."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        _check_probabilities([*self.categories.values(), self.other], "category frequencies")
        tail = set(self.tail)
        if len(tail) != len(self.tail):
            raise ValueError("tail must not repeat a category")
        if not tail.isdisjoint(self.categories):
            raise ValueError("tail must not repeat one of categories")
        if self.unseen_rate is None and (self.tail or self.tail_dropped):
            raise ValueError("a profile with a tail must give its unseen_rate")
        return self

    @property
    def expected_unseen_rate(self) -> float:
        """How often a value in neither ``categories`` nor ``tail`` is expected under no drift
        (``other`` for a profile built before ``unseen_rate`` existed)."""
        return self.other if self.unseen_rate is None else self.unseen_rate


class MultivariateProfile(_Frozen):
    """The reference's joint shape: PCA of its standardised numeric features, and the
    distribution of the reconstruction error (:mod:`driftline.detectors.multivariate`).

    A live event is standardised with ``means`` and ``scales`` (a missing value takes the
    mean), projected on the ``components`` (orthonormal rows over ``features``) and back; its
    reconstruction error is the Euclidean distance between the two. ``error`` holds the
    quantile bins of the reference's errors, which panes count live errors over.
    """

    features: list[str] = Field(min_length=2)
    means: list[float]
    scales: list[float]
    components: list[list[float]] = Field(min_length=1)
    explained_variance: float = Field(ge=0.0, le=1.0)
    error: NumericProfile
    error_mean: float = Field(ge=0.0)
    error_sd: float = Field(ge=0.0)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        d = len(self.features)
        if len(set(self.features)) != d:
            raise ValueError("features must not repeat")
        if len(self.means) != d or len(self.scales) != d:
            raise ValueError(f"means and scales must have {d} entries, one per feature")
        if any(s <= 0 for s in self.scales):
            raise ValueError("scales must be positive")
        if any(len(row) != d for row in self.components) or len(self.components) >= d:
            raise ValueError(f"components must be fewer than {d} rows of {d} entries")
        return self


ColumnProfile = Annotated[NumericProfile | CategoricalProfile, Field(discriminator="kind")]


class ReferenceProfile(_Frozen):
    """Everything driftline compares live traffic of one model version against."""

    model: str = Field(min_length=1)
    model_version: str = Field(min_length=1)
    task: Task
    n_rows: int = Field(ge=1)
    features: dict[str, ColumnProfile]
    prediction: ColumnProfile
    scores: dict[str, NumericProfile] = Field(
        default_factory=dict, description="Per-class score distributions, for classifiers."
    )
    labels: ColumnProfile | None = None
    performance: dict[str, float] = Field(
        default_factory=dict, description="Baseline metrics, when the reference had labels."
    )
    content_hash: str = Field(
        description="Hash of the data the profile was built from; equal data, equal hash."
    )
    thresholds: CalibratedThresholds | None = Field(
        None, description="Calibrated drift thresholds (``drift.thresholds: calibrated``)."
    )
    multivariate: MultivariateProfile | None = Field(
        None, description="PCA reconstruction error of the numeric features (None: not judged)."
    )
    segments: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Per segment key (``models.<m>.segments.keys``), its most frequent values "
        "in the reference, most frequent first (at most ``segments.top_k``): the slices the "
        "version is judged in; a live value outside them counts under ``other``.",
    )
