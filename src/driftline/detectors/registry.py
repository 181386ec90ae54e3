"""The drift tests by name, behind one signature.

Configuration names a test (``drift.numeric_test``, ``drift.categorical_test``, the keys of
``drift.thresholds``); stage 2 calls :func:`run_test` with that name and never imports a test
module itself, so a new test is added by registering it here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Protocol

from numpy.typing import ArrayLike

from driftline.detectors.distance import chi2_test, jensen_shannon_test, wasserstein_test
from driftline.detectors.ks import ks_test
from driftline.detectors.psi import psi_test
from driftline.detectors.result import ResultKind, TestResult
from driftline.errors import StatisticsError
from driftline.schemas.reference import CategoricalProfile, NumericProfile

__all__ = ["CATEGORICAL_TESTS", "NUMERIC_TESTS", "TESTS", "DriftTest", "run_test"]


class DriftTest(Protocol):
    """What every registered test is: window counts and a profile in, a result out."""

    def __call__(
        self,
        profile: NumericProfile | CategoricalProfile,
        counts: ArrayLike,
        n_reference: int,
        *,
        threshold: float,
        column: str,
        kind: ResultKind = "feature_drift",
    ) -> TestResult: ...


def _only_for(
    profile_type: type[NumericProfile] | type[CategoricalProfile],
    test: str,
    function: Callable[..., TestResult],
) -> DriftTest:
    """``function`` behind the common signature, refusing profiles it is not defined for."""

    def run(
        profile: NumericProfile | CategoricalProfile,
        counts: ArrayLike,
        n_reference: int,
        *,
        threshold: float,
        column: str,
        kind: ResultKind = "feature_drift",
    ) -> TestResult:
        if not isinstance(profile, profile_type):
            raise _unsupported(test, profile)
        return function(profile, counts, n_reference, threshold=threshold, column=column, kind=kind)

    return run


NUMERIC_TESTS = frozenset({"ks", "psi", "jensen_shannon", "wasserstein"})
"""Tests defined for numeric columns."""

CATEGORICAL_TESTS = frozenset({"chi2", "psi", "jensen_shannon"})
"""Tests defined for categorical columns."""

TESTS: Mapping[str, DriftTest] = MappingProxyType(
    {
        "ks": _only_for(NumericProfile, "ks", ks_test),
        "psi": psi_test,
        "jensen_shannon": jensen_shannon_test,
        "wasserstein": _only_for(NumericProfile, "wasserstein", wasserstein_test),
        "chi2": _only_for(CategoricalProfile, "chi2", chi2_test),
    }
)
"""Every test by name."""


def _unsupported(test: str, profile: NumericProfile | CategoricalProfile) -> StatisticsError:
    allowed = NUMERIC_TESTS if isinstance(profile, NumericProfile) else CATEGORICAL_TESTS
    return StatisticsError(
        f"test {test!r} is not defined for {profile.kind} columns; allowed: {sorted(allowed)}"
    )


def run_test(
    name: str,
    profile: NumericProfile | CategoricalProfile,
    counts: ArrayLike,
    n_reference: int,
    threshold: float,
    column: str,
    *,
    kind: ResultKind = "feature_drift",
) -> TestResult:
    """Run the drift test called ``name`` on a window's counts against a column's profile.

    Parameters
    ----------
    name
        One of :data:`TESTS`: ``"ks"``, ``"psi"``, ``"jensen_shannon"``, ``"wasserstein"``
        (numeric columns) or ``"chi2"`` (categorical columns); ``psi`` and ``jensen_shannon``
        take either.
    profile
        The column's reference profile.
    counts
        The window's count per bin of the profile: ``len(edges) + 1`` entries for a numeric
        column, one per listed category then the other/unseen count for a categorical one.
    n_reference
        Values the reference distribution was estimated from.
    threshold
        The statistic at or above which the column counts as drifted.
    column
        Name reported in the result.
    kind
        What the column is (a feature, the predictions, the labels).

    Raises
    ------
    StatisticsError
        For an unknown name, or a test not defined for the profile's kind; the message lists
        the allowed names.

    Examples
    --------
    >>> from driftline.schemas.reference import NumericProfile
    >>> profile = NumericProfile(edges=[0.0], probabilities=[0.5, 0.5], count=1000)
    >>> r = run_test("ks", profile, [500, 500], 1000, 0.1, "x")
    >>> r.test, r.statistic, r.drifted
    ('ks', 0.0, False)
    """
    test = TESTS.get(name)
    if test is None:
        raise StatisticsError(f"unknown test {name!r}; allowed: {sorted(TESTS)}")
    return test(profile, counts, n_reference, threshold=threshold, column=column, kind=kind)
