"""Champion / challenger: the training range and holdout, figures against scikit-learn, the
decision at the margin."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as sk

from driftline.errors import NotEnoughExamplesError
from driftline.trainer.evaluation import evaluate, metric_value, training_data
from driftline.trainer.protocol import Example, Examples, FeatureValue, Label


class Fixed:
    """A candidate that answers from a table by the row's ``i`` feature."""

    def __init__(
        self, predictions: Sequence[Label], scores: Sequence[dict[str, float]] | None = None
    ) -> None:
        self.predictions = list(predictions)
        self.scores = None if scores is None else list(scores)

    def predict(self, rows: Sequence[Mapping[str, FeatureValue]]) -> list[Label]:
        return [self.predictions[int(r["i"])] for r in rows]  # type: ignore[arg-type]

    def predict_scores(
        self, rows: Sequence[Mapping[str, FeatureValue]]
    ) -> list[dict[str, float]] | None:
        if self.scores is None:
            return None
        return [self.scores[int(r["i"])] for r in rows]  # type: ignore[arg-type]

    def params(self) -> dict[str, object]:
        return {}


def holdout_of(
    labels: Sequence[Label],
    predictions: Sequence[Label],
    scores: Sequence[dict[str, float]] | None = None,
) -> Examples:
    return Examples(
        tuple(
            Example(str(i), i, {"i": i}, y, "1", p, None if scores is None else scores[i])
            for i, (y, p) in enumerate(zip(labels, predictions, strict=True))
        )
    )


binary_rows = st.lists(
    st.tuples(st.integers(0, 1), st.integers(0, 1), st.floats(0.001, 0.999)),
    min_size=2,
    max_size=80,
).filter(lambda rows: len({r[0] for r in rows}) == 2)


@settings(max_examples=60, deadline=None)
@given(binary_rows)
def test_binary_figures_match_scikit_learn(rows: list[tuple[int, int, float]]) -> None:
    y = [r[0] for r in rows]
    p = [r[1] for r in rows]
    s = [{"1": r[2]} for r in rows]
    prob = np.array([r[2] for r in rows])

    def ours(metric: str) -> float | None:
        return metric_value(metric, "binary", y, p, s, classes=("0", "1"))

    assert ours("accuracy") == pytest.approx(sk.accuracy_score(y, p))
    assert ours("precision") == pytest.approx(sk.precision_score(y, p, zero_division=0)) or (
        sum(p) == 0 and ours("precision") is None
    )
    assert ours("recall") == pytest.approx(sk.recall_score(y, p))
    assert ours("f1") == pytest.approx(sk.f1_score(y, p, zero_division=0)) or (
        sum(p) == 0 and ours("f1") is None
    )
    assert ours("log_loss") == pytest.approx(sk.log_loss(y, prob, labels=[0, 1]))
    # The monitor's AUC is on 1000 score bins: within the bound it reports of the exact one.
    assert (
        abs(ours("roc_auc") - sk.roc_auc_score(y, prob))
        <= (  # type: ignore[operator]
            metric_value("roc_auc_bound", "binary", y, p, s, classes=("0", "1")) or 0.0
        )
        + 1e-12
    )


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(-100_000, 100_000).map(lambda v: v / 100),
            st.integers(-100_000, 100_000).map(lambda v: v / 100),
        ),
        min_size=2,
        max_size=80,
    ).filter(lambda rows: len({r[0] for r in rows}) > 1)
)
def test_regression_figures_match_scikit_learn(rows: list[tuple[float, float]]) -> None:
    y = [r[0] for r in rows]
    p = [r[1] for r in rows]
    assert metric_value("mae", "regression", y, p) == pytest.approx(
        sk.mean_absolute_error(y, p), rel=1e-9, abs=1e-9
    )
    assert metric_value("rmse", "regression", y, p) == pytest.approx(
        math.sqrt(sk.mean_squared_error(y, p)), rel=1e-9, abs=1e-9
    )
    assert metric_value("r2", "regression", y, p) == pytest.approx(
        sk.r2_score(y, p), rel=1e-6, abs=1e-6
    )


def test_multiclass_accuracy_and_log_loss_match_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    y = list(rng.choice(["a", "b", "c"], 200))
    raw = rng.dirichlet([1, 1, 1], 200)
    scores = [dict(zip("abc", map(float, row), strict=True)) for row in raw]
    p = ["abc"[int(np.argmax(row))] for row in raw]
    assert metric_value("accuracy", "multiclass", y, p, scores) == pytest.approx(
        sk.accuracy_score(y, p)
    )
    assert metric_value("log_loss", "multiclass", y, p, scores) == pytest.approx(
        sk.log_loss(y, raw, labels=["a", "b", "c"])
    )


def test_the_champion_is_judged_on_its_own_predictions_and_the_candidate_on_its_own() -> None:
    labels = [1, 1, 0, 0, 1, 0, 1, 1]
    champion = [1, 0, 0, 1, 0, 0, 1, 0]  # 4/8
    candidate = [1, 1, 0, 0, 1, 0, 1, 0]  # 7/8
    result = evaluate(
        Fixed(candidate), holdout_of(labels, champion), task="binary", metric="accuracy"
    )
    assert (result.champion, result.candidate, result.n) == (0.5, 0.875, 8)
    assert result.promote
    assert result.improvement == 0.375
    assert "beats the champion's 0.5" in result.reason


@pytest.mark.parametrize(
    ("margin", "promote"), [(0.24, True), (0.25, False), (0.26, False), (0.0, True)]
)
def test_accuracy_promotes_only_above_the_margin(margin: float, promote: bool) -> None:
    labels = [1, 1, 1, 1]
    result = evaluate(
        Fixed([1, 1, 1, 0]),  # 0.75
        holdout_of(labels, [1, 1, 0, 0]),  # 0.5: the gain is exactly 0.25
        task="binary",
        metric="accuracy",
        margin=margin,
    )
    assert result.promote is promote, result.reason


@pytest.mark.parametrize(("margin", "promote"), [(0.49, True), (0.5, False)])
def test_a_lower_is_better_metric_promotes_a_smaller_value(margin: float, promote: bool) -> None:
    labels = [1.0, 2.0, 3.0, 4.0]
    result = evaluate(
        Fixed([1.5, 2.5, 3.5, 4.5]),  # MAE 0.5
        holdout_of(labels, [2.0, 3.0, 4.0, 5.0]),  # MAE 1.0
        task="regression",
        metric="mae",
        margin=margin,
    )
    assert (result.champion, result.candidate, result.lower_is_better) == (1.0, 0.5, True)
    assert result.improvement == 0.5
    assert result.promote is promote


def test_a_worse_candidate_is_rejected_unless_promote_is_always() -> None:
    holdout = holdout_of([0, 1, 0, 1], [0, 1, 0, 1])
    worse = Fixed([1, 0, 0, 1])
    rejected = evaluate(worse, holdout, task="binary", metric="accuracy")
    assert not rejected.promote
    assert "does not beat" in rejected.reason
    forced = evaluate(worse, holdout, task="binary", metric="accuracy", promote="always")
    assert forced.promote
    assert forced.reason == "promote: always"
    assert forced.champion == 1.0
    assert forced.candidate == 0.5


def test_a_champion_without_scores_has_no_log_loss_and_the_candidate_wins() -> None:
    holdout = holdout_of([0, 1], [0, 1])
    result = evaluate(
        Fixed([0, 1], [{"0": 0.9, "1": 0.1}, {"0": 0.2, "1": 0.8}]),
        holdout,
        task="binary",
        metric="log_loss",
    )
    assert result.champion is None
    assert result.candidate is not None
    assert result.promote
    assert "champion has no log_loss" in result.reason
    no_scores = evaluate(Fixed([0, 1]), holdout, task="binary", metric="log_loss")
    assert not no_scores.promote
    assert "candidate has no log_loss" in no_scores.reason


def rows(n: int) -> Examples:
    return Examples.of(Example(str(t), t, {}, 0, "1") for t in range(n))


def test_onset_trains_on_the_examples_since_the_onset_and_holds_out_the_newest() -> None:
    data = training_data(
        rows(1000),
        range="onset",
        onset_ms=600,
        recent_rows=0,
        holdout_fraction=0.25,
        min_holdout=50,
        min_train=100,
    )
    assert (len(data.train), len(data.holdout)) == (300, 100)
    assert data.train.times[0] == 600
    assert data.holdout.times == tuple(range(900, 1000))
    assert "400 examples since the onset" in data.reason


def test_recent_trains_on_the_newest_rows_with_at_least_min_holdout() -> None:
    data = training_data(
        rows(1000),
        range="recent",
        onset_ms=None,
        recent_rows=300,
        holdout_fraction=0.1,
        min_holdout=50,
        min_train=100,
    )
    assert (len(data.train), len(data.holdout), data.start_ms) == (250, 50, 700)


def test_too_few_since_the_onset_falls_back_to_the_newest_with_a_reason() -> None:
    data = training_data(
        rows(1000),
        range="onset",
        onset_ms=990,
        recent_rows=0,
        holdout_fraction=0.2,
        min_holdout=50,
        min_train=100,
    )
    assert (len(data.train), len(data.holdout)) == (100, 50)
    assert "too few for min_train 100" in data.reason


def test_too_few_examples_altogether_is_an_error_saying_how_many() -> None:
    with pytest.raises(NotEnoughExamplesError) as caught:
        training_data(
            rows(120),
            range="recent",
            onset_ms=None,
            recent_rows=5000,
            holdout_fraction=0.2,
            min_holdout=50,
            min_train=100,
        )
    assert (caught.value.needed, caught.value.found) == (150, 120)


@settings(max_examples=100, deadline=None)
@given(
    n=st.integers(0, 400),
    onset=st.integers(0, 400),
    fraction=st.floats(0.01, 0.9),
    min_holdout=st.integers(1, 50),
    min_train=st.integers(1, 100),
)
def test_the_holdout_is_always_newer_than_the_training_range_and_large_enough(
    n: int, onset: int, fraction: float, min_holdout: int, min_train: int
) -> None:
    try:
        data = training_data(
            rows(n),
            range="onset",
            onset_ms=onset,
            recent_rows=0,
            holdout_fraction=fraction,
            min_holdout=min_holdout,
            min_train=min_train,
        )
    except NotEnoughExamplesError as exc:
        assert exc.found == n < exc.needed
        return
    assert len(data.train) >= min_train
    assert len(data.holdout) >= min_holdout
    assert data.train.times[-1] < data.holdout.times[0]
    assert data.holdout.times[-1] == n - 1


def test_the_judged_metrics_are_the_detectors_own_but_the_bound_and_the_bias() -> None:
    """``evaluate`` takes every metric the monitor's summaries report except roc_auc_bound and
    mean_error, and names them all when it refuses one."""
    holdout = Examples.of(Example(str(i), i, {"i": i}, 1, "1", prediction=1) for i in range(4))
    allowed = (
        "['accuracy', 'f1', 'f1_macro', 'log_loss', 'mae', 'precision', 'precision_macro', "
        "'r2', 'recall', 'recall_macro', 'rmse', 'roc_auc']"
    )
    for refused in ("roc_auc_bound", "mean_error", "auc"):
        with pytest.raises(ValueError, match=re.escape(f"allowed: {allowed}")):
            evaluate(Fixed([1] * 4), holdout, task="binary", metric=refused)
    assert evaluate(Fixed([1] * 4), holdout, task="binary", metric="f1_macro").candidate == 1.0
