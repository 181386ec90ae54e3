"""The population the behaviour benchmark draws from: 20 numeric features of varied shapes (ties
included; ``normal_4`` and ``normal_5`` correlated at :data:`RHO`), 3 Zipf-skewed categorical
features, a calibrated binary classifier's prediction and scores, labels drawn from the scores;
the shifts that change it; its reference profile.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from driftline.detectors.profile import build_profile
from driftline.schemas.reference import ReferenceProfile

FloatArray = NDArray[np.float64]
ObjectArray = NDArray[np.object_]

NORMALS = ((0.0, 1.0), (5.0, 2.0), (-3.0, 0.5), (100.0, 15.0), (0.0, 0.1), (10.0, 3.0))
LOGNORMAL_SIGMAS = (0.25, 0.5, 1.0, 1.5)
UNIFORMS = ((0.0, 1.0), (-5.0, 5.0), (10.0, 20.0), (0.0, 1000.0))
NORMAL = {f"normal_{j}": mu_sigma for j, mu_sigma in enumerate(NORMALS)}
CATEGORIES = {"cat_5": (5, 1.0), "cat_20": (20, 1.0), "cat_200": (200, 1.1)}  # (k, Zipf s)
NEW_CATEGORY = "unseen"
RHO = 0.9
"""The correlation of ``normal_4`` and ``normal_5`` (a ``correlation`` shift flips its sign)."""
PAIR = ("normal_4", "normal_5")
CLASSES = np.array(["0", "1"], dtype=object)


def _zipf(k: int, s: float) -> FloatArray:
    weights = 1.0 / np.arange(1, k + 1, dtype=np.float64) ** s
    probabilities: FloatArray = weights / weights.sum()
    return probabilities


@dataclass(frozen=True, slots=True)
class Shift:
    """A change of the population: ``kind`` on ``column`` by ``size``.

    ``mean``: add ``size`` standard deviations (``column`` must be one of the normals);
    ``scale``: multiply the deviations from the mean by ``size`` (a normal; a variance change);
    ``new_category``: a category the reference never saw takes a ``size`` share of ``column``;
    ``concept``: labels follow ``1 - p`` instead of ``p`` where ``column`` (a normal) is above
    its ``1 - size`` quantile, so a ``size`` share of traffic has its rule flipped;
    ``correlation``: the correlation of :data:`PAIR` (``column`` is its second) becomes ``size``
    instead of :data:`RHO`, every marginal unchanged.
    """

    kind: Literal["mean", "scale", "new_category", "concept", "correlation"]
    column: str
    size: float


@dataclass(frozen=True, slots=True)
class Sample:
    """A batch of events of the population, as columns."""

    numeric: dict[str, FloatArray]
    categorical: dict[str, ObjectArray]
    score: FloatArray  # P(class "1")
    prediction: ObjectArray
    label: ObjectArray

    @property
    def n(self) -> int:
        return int(self.score.shape[0])

    def features(self) -> dict[str, FloatArray | ObjectArray]:
        return {**self.numeric, **self.categorical}

    def scores(self) -> dict[str, FloatArray]:
        return {"0": 1.0 - self.score, "1": self.score}

    def errors(self) -> FloatArray:
        wrong: FloatArray = (self.label != self.prediction).astype(np.float64)
        return wrong


def draw(n: int, rng: np.random.Generator, shift: Shift | None = None) -> Sample:
    """``n`` events of the population (vectorised), changed by ``shift`` when given."""
    numeric: dict[str, FloatArray] = {}
    for j, (mu, sigma) in enumerate(NORMALS):
        numeric[f"normal_{j}"] = rng.normal(mu, sigma, n)
    rho = shift.size if shift is not None and shift.kind == "correlation" else RHO
    (mu_a, s_a), (mu_b, s_b) = NORMAL[PAIR[0]], NORMAL[PAIR[1]]
    z_a, z_b = (numeric[PAIR[0]] - mu_a) / s_a, (numeric[PAIR[1]] - mu_b) / s_b
    numeric[PAIR[1]] = mu_b + s_b * (rho * z_a + np.sqrt(1.0 - rho**2) * z_b)
    for j, s in enumerate(LOGNORMAL_SIGMAS):
        numeric[f"lognormal_{j}"] = rng.lognormal(0.0, s, n)
    for j, (low, high) in enumerate(UNIFORMS):
        numeric[f"uniform_{j}"] = rng.uniform(low, high, n)
    numeric["gamma"] = rng.gamma(2.0, 1.5, n)
    numeric["exponential"] = rng.exponential(3.0, n)
    numeric["mixture"] = np.where(
        rng.random(n) < 0.3, rng.normal(-2.0, 0.5, n), rng.normal(1.5, 1.0, n)
    )
    numeric["student_t"] = rng.standard_t(3.0, n)
    numeric["poisson"] = rng.poisson(2.5, n).astype(np.float64)
    numeric["age"] = np.clip(np.rint(rng.normal(40.0, 12.0, n)), 18.0, 90.0)
    categorical: dict[str, ObjectArray] = {}
    for name, (k, s) in CATEGORIES.items():
        names = np.array([f"v{i:03d}" for i in range(k)] + [NEW_CATEGORY], dtype=object)
        codes = rng.choice(k, size=n, p=_zipf(k, s))
        if shift is not None and shift.kind == "new_category" and shift.column == name:
            codes = np.where(rng.random(n) < shift.size, k, codes)
        categorical[name] = names[codes]
    if shift is not None and shift.kind == "mean":
        numeric[shift.column] = numeric[shift.column] + shift.size * NORMAL[shift.column][1]
    if shift is not None and shift.kind == "scale":
        mu = NORMAL[shift.column][0]
        numeric[shift.column] = mu + shift.size * (numeric[shift.column] - mu)

    # The model: a logistic score of three features and one category; labels follow it.
    (mu0, s0), (a, b), s_log = NORMALS[0], UNIFORMS[0], LOGNORMAL_SIGMAS[1]
    logit = (
        1.5 * (numeric["normal_0"] - mu0) / s0
        + 1.0 * (2.0 * (numeric["uniform_0"] - a) / (b - a) - 1.0)
        + 0.8 * np.log(numeric["lognormal_1"]) / s_log
        + 0.6 * (categorical["cat_5"] == "v000")
        - 0.3
    )
    score = 1.0 / (1.0 + np.exp(-logit))
    truth = score
    if shift is not None and shift.kind == "concept":
        mu, sigma = NORMAL[shift.column]
        region = numeric[shift.column] > mu + sigma * float(stats.norm.ppf(1.0 - shift.size))
        truth = np.where(region, 1.0 - score, score)
    label = CLASSES[(rng.random(n) < truth).astype(np.int64)]
    prediction = CLASSES[(score > 0.5).astype(np.int64)]
    return Sample(numeric, categorical, score, prediction, label)


def reference_profile(sample: Sample) -> ReferenceProfile:
    """The reference profile of a sample, with labels (so the baseline accuracy is known)."""
    return build_profile(
        "bench",
        "1",
        "binary",
        sample.features(),
        sample.prediction,
        scores=sample.scores(),
        labels=sample.label,
        feature_types={
            **dict.fromkeys(sample.numeric, "numeric"),
            **dict.fromkeys(sample.categorical, "categorical"),
        },
    )
