"""The anytime-valid confidence sequence: its inequality, hand-computed cases, a brute-force
oracle on raw values, and coverage uniformly over time on simulated streams."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.typing import NDArray

from driftline.detectors.confidence import LAMBDAS, difference_bounds, log_mixture, mean_bounds
from driftline.errors import StatisticsError

FloatArray = NDArray[np.float64]


def psi(lam: float) -> float:
    return -math.log1p(-lam) - lam


def test_fan_inequality_holds_for_every_bet_of_the_grid() -> None:
    """exp(l*y - psi(l)*y^2) <= 1 + l*y for y >= -1 (Fan, Grama & Liu 2015), which makes
    the mixture a supermartingale, checked on a fine grid of y."""
    y = np.concatenate([np.linspace(-1.0, 1.0, 20001), np.linspace(1.0, 50.0, 5001)])
    for lam in LAMBDAS.tolist():
        left = np.exp(lam * y - psi(lam) * y * y)
        assert (left <= 1.0 + lam * y + 1e-12).all(), lam


def test_mixture_is_the_mean_of_its_terms_by_hand() -> None:
    """log_mixture(s, v) = log(mean over the grid of exp(l*s - psi(l)*v))."""
    s, v = 12.0, 30.0
    by_hand = math.log(
        math.fsum(math.exp(lam * s - psi(lam) * v) for lam in LAMBDAS.tolist()) / LAMBDAS.size
    )
    assert float(log_mixture(s, v)) == pytest.approx(by_hand, rel=1e-12)
    assert LAMBDAS[0] == 0.5
    assert LAMBDAS.size == 26


def test_no_values_or_a_single_value_leave_the_whole_range() -> None:
    """n = 0: [a, b]. n = 1: the mixture is at most exp(1/2 - psi(1/2)) = 1.36 < 2/alpha, so
    nothing can be rejected and the interval is again the whole range."""
    lo, hi = mean_bounds(0, 0.0, 0.0, -1.0, 1.0, 0.05)
    assert (float(lo), float(hi)) == (-1.0, 1.0)
    assert math.exp(0.5 - psi(0.5)) < 2 / 0.05
    lo, hi = mean_bounds(1, 1.0, 0.0, -1.0, 1.0, 0.05)
    assert (float(lo), float(hi)) == (-1.0, 1.0)


def test_values_all_at_the_top_first_exclude_the_bottom_where_the_hand_sum_says() -> None:
    """n values equal to b (range 1): mu = a is rejected once
    sum_k exp(n (l_k - psi(l_k))) >= K * 2 / alpha; computed by hand, the lower bound leaves
    a exactly from that n on."""
    alpha = 0.05
    rates = [lam - psi(lam) for lam in LAMBDAS.tolist()]
    first = next(
        n
        for n in range(1, 200)
        if math.fsum(math.exp(n * r) for r in rates) >= LAMBDAS.size * 2 / alpha
    )
    assert first == 21
    below, _ = mean_bounds(first - 1, 1.0, 0.0, 0.0, 1.0, alpha)
    at, _ = mean_bounds(first, 1.0, 0.0, 0.0, 1.0, alpha)
    assert float(below) == 0.0
    assert float(at) > 0.0


def brute_log_mixture(values: list[float], mu: float, low: float, high: float) -> float:
    """The mixture straight from the raw values, no sums: log mean_k prod_i exp(...)."""
    span = high - low
    y: list[float] = [(x - mu) / span for x in values]
    s, v = math.fsum(y), math.fsum(t * t for t in y)
    logs: list[float] = [lam * s - psi(lam) * v for lam in LAMBDAS.tolist()]
    top = max(logs)
    return top + math.log(math.fsum(math.exp(t - top) for t in logs) / len(logs))


@pytest.mark.parametrize("seed", range(5))
def test_bounds_sit_where_the_raw_value_mixture_crosses_two_over_alpha(seed: int) -> None:
    """Oracle: computed from the values themselves, the mixture is below 2/alpha just inside
    each bound (kept) and at or above it just outside (rejected): the bounds sit within 1e-9
    of where it crosses, on both sides."""
    rng = np.random.default_rng(seed)
    low, high, alpha = -1.0, 1.0, 0.1
    values = rng.choice([-1.0, 0.0, 0.5, 1.0], p=[0.1, 0.6, 0.1, 0.2], size=400).tolist()
    n = len(values)
    mean = math.fsum(values) / n
    m2 = math.fsum((x - mean) ** 2 for x in values)
    lo, hi = (float(b) for b in mean_bounds(n, mean, m2, low, high, alpha))
    threshold = math.log(2 / alpha)
    mirrored = [low + high - x for x in values]
    assert lo < mean < hi
    assert brute_log_mixture(values, lo + 1e-9, low, high) < threshold
    assert brute_log_mixture(values, lo - 1e-9, low, high) >= threshold
    assert brute_log_mixture(mirrored, low + high - hi + 1e-9, low, high) < threshold
    assert brute_log_mixture(mirrored, low + high - hi - 1e-9, low, high) >= threshold


def test_bad_parameters_are_refused_by_name() -> None:
    """alpha outside (0, 1) and empty ranges are errors that name them."""
    with pytest.raises(StatisticsError, match="alpha"):
        mean_bounds(10, 0.0, 1.0, -1.0, 1.0, 1.5)
    with pytest.raises(StatisticsError, match="bounds"):
        mean_bounds(10, 0.0, 1.0, 1.0, 1.0, 0.05)


# --- coverage, uniformly over time ---------------------------------------------------------

N_STREAMS = 1000
N_VALUES = 2000
LOOK_EVERY = 40
ALPHA = 0.1
# The fraction of streams ever excluding the truth is binomial: at p = alpha over 1000 streams
# its standard deviation is 0.0095, so alpha + 0.03 is over three of them above alpha.
TOLERANCE = 0.03


def looks_of(values: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(n, mean, m2) of each stream (rows) at every look."""
    at = np.arange(LOOK_EVERY, values.shape[1] + 1, LOOK_EVERY)
    n = np.broadcast_to(at.astype(np.float64), (values.shape[0], at.size))
    total = np.cumsum(values, axis=1)[:, at - 1]
    squares = np.cumsum(values * values, axis=1)[:, at - 1]
    mean = total / n
    return n, mean, np.maximum(squares - total * mean, 0.0)


def ever_excluded(lo: FloatArray, hi: FloatArray, truth: float) -> float:
    return float(np.mean(((lo > truth) | (hi < truth)).any(axis=1)))


@pytest.mark.parametrize(
    ("support", "probabilities"),
    [
        ([-1.0, 0.0, 1.0], [0.10, 0.75, 0.15]),  # paired accuracy: a 5-point better challenger
        ([-1.0, 1.0], [0.98, 0.02]),  # skewed two-point values at the bounds
        ([-1.0, -0.2, 0.3, 1.0], [0.25, 0.25, 0.25, 0.25]),
    ],
)
def test_paired_sequence_covers_the_true_mean_at_every_look(
    support: list[float], probabilities: list[float]
) -> None:
    """CONTRACT: over 1000 streams of 2000 values, looked at every 40, the fraction whose
    sequence ever excludes the true mean is at most alpha (0.1) + 0.03."""
    rng = np.random.default_rng(7)
    values = rng.choice(support, p=probabilities, size=(N_STREAMS, N_VALUES))
    truth = float(np.dot(support, probabilities))
    lo, hi = mean_bounds(*looks_of(values), -1.0, 1.0, ALPHA)
    assert ever_excluded(lo, hi, truth) <= ALPHA + TOLERANCE
    assert float(np.median(hi[:, -1] - lo[:, -1])) < 0.2  # and it narrows: not the whole range


def test_unpaired_sequence_covers_the_true_difference_at_every_look() -> None:
    """CONTRACT: two independent Bernoulli streams (0.70 and 0.65), 1000 pairs of streams of
    2000 values looked at every 40: ever excluding 0.05 at most alpha + 0.03."""
    rng = np.random.default_rng(8)
    first = (rng.random((N_STREAMS, N_VALUES)) < 0.70).astype(np.float64)
    second = (rng.random((N_STREAMS, N_VALUES)) < 0.65).astype(np.float64)
    lo, hi = difference_bounds(looks_of(first), looks_of(second), 0.0, 1.0, ALPHA)
    assert ever_excluded(lo, hi, 0.05) <= ALPHA + TOLERANCE


def test_a_fixed_sample_interval_looked_at_every_window_fails_the_same_check() -> None:
    """The check has teeth: a 90 % normal interval recomputed at each of the 50 looks
    excludes the truth on far more than alpha of the streams."""
    rng = np.random.default_rng(9)
    values = rng.choice([-1.0, 0.0, 1.0], p=[0.10, 0.75, 0.15], size=(N_STREAMS, N_VALUES))
    n, mean, m2 = looks_of(values)
    half = 1.6449 * np.sqrt(m2 / (n - 1) / n)
    assert ever_excluded(mean - half, mean + half, 0.05) > 2 * ALPHA
