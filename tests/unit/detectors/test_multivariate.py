"""Multivariate drift: the reconstruction error against scikit-learn's PCA, its pane part's
merge laws, old profiles and partials, and a correlation flip no single feature shows."""

from __future__ import annotations

import itertools
from typing import Any

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.decomposition import PCA

from driftline.config.models import ModelConfig, MultivariateSettings
from driftline.detectors.batch import ColumnBatch
from driftline.detectors.engine import ModelMonitor
from driftline.detectors.multivariate import (
    ERROR_CAP,
    MULTIVARIATE_COLUMN,
    MultivariateSummary,
    multivariate_profile,
    reconstruction_errors,
)
from driftline.detectors.profile import build_profile, numeric_profile
from driftline.detectors.summary import PaneSummary
from driftline.schemas.reference import ReferenceProfile
from tests.unit.detectors.summary_helpers import PROFILE, batch_of


def _binner(errors: np.ndarray) -> Any:
    return numeric_profile(errors, bins=20)


# --- the oracle ------------------------------------------------------------------------------


def test_reconstruction_error_matches_scikit_learn_pca_on_standardised_features() -> None:
    """Errors and kept components equal a direct StandardScaler + PCA reconstruction, fitted
    on the reference's even rows (its odd rows give the error bins, out of sample)."""
    rng = np.random.default_rng(3)
    base = rng.normal(size=(3_000, 2))
    x = np.column_stack(
        [base[:, 0], base[:, 0] * 2 + 0.3 * base[:, 1], base[:, 1], rng.uniform(size=3_000)]
    )
    columns = {f"f{j}": x[:, j] for j in range(4)}
    mv = multivariate_profile(columns, MultivariateSettings(explained_variance=0.65), _binner)
    assert mv is not None
    fit = x[0::2]
    mean, sd = fit.mean(axis=0), fit.std(axis=0)
    z = (fit - mean) / sd
    pca = PCA().fit(z)
    k = int(np.searchsorted(np.cumsum(pca.explained_variance_ratio_), 0.65) + 1)
    assert len(mv.components) == k == 2
    pca_k = PCA(n_components=k).fit(z)
    live = rng.normal(size=(50, 4)) * 2
    live_z = (live - mean) / sd
    expected = np.linalg.norm(live_z - pca_k.inverse_transform(pca_k.transform(live_z)), axis=1)
    errors, imputed = reconstruction_errors(mv, live)
    np.testing.assert_allclose(errors, expected, rtol=1e-9, atol=1e-12)
    assert imputed == 0
    assert mv.explained_variance == pytest.approx(np.cumsum(pca.explained_variance_ratio_)[k - 1])
    held_out, _ = reconstruction_errors(mv, x[1::2])
    assert mv.error.count == 1_500
    assert (mv.error_mean, mv.error_sd) == (held_out.mean(), held_out.std())


def test_hand_picked_case_two_identical_features() -> None:
    """a == b: one component (1, 1)/√2; the row (1, -1) in standard units is all residual."""
    a = np.array([-1.0, -1.0, 1.0, 1.0])  # fitted on rows 0 and 2
    mv = multivariate_profile({"a": a, "b": a.copy()}, MultivariateSettings(), _binner)
    assert mv is not None
    assert len(mv.components) == 1
    np.testing.assert_allclose(np.abs(mv.components[0]), [2**-0.5, 2**-0.5])
    errors, _ = reconstruction_errors(mv, np.array([[1.0, -1.0], [1.0, 1.0]]))
    np.testing.assert_allclose(errors, [2**0.5, 0.0], atol=1e-12)


def test_missing_values_take_the_reference_mean_and_are_counted() -> None:
    rng = np.random.default_rng(4)
    a = rng.normal(size=500)
    mv = multivariate_profile(
        {"a": a, "b": a + rng.normal(size=500), "c": rng.normal(size=500)},
        MultivariateSettings(),
        _binner,
    )
    assert mv is not None
    filled = np.array([[0.5, mv.means[1], -1.0], [mv.means[0], mv.means[1], mv.means[2]]])
    gaps = np.array([[0.5, np.nan, -1.0], [np.nan, np.nan, np.nan]])
    errors, imputed = reconstruction_errors(mv, gaps)
    np.testing.assert_array_equal(errors, reconstruction_errors(mv, filled)[0])
    assert imputed == 4
    summary = MultivariateSummary(mv).fold_feature_dicts([{"a": 0.5, "b": "x", "c": -1.0}, {}])
    assert (summary.n, summary.imputed) == (2, 4)


def test_extreme_values_are_capped_and_sums_stay_finite() -> None:
    """A value that overflows the standardisation counts in the top bin, its error capped."""
    summary = MultivariateSummary(_mv_of(PROFILE))
    summary.fold(np.array([[1e308, 1e308], [-1e308, 1e308], [1.0, 30.0]]))
    assert summary.n == 3
    assert summary.counts[-1] >= 2
    assert summary.mean_error is not None
    assert summary.mean_error <= ERROR_CAP


def test_disabled_or_one_numeric_feature_has_no_multivariate_part() -> None:
    x = np.arange(10.0)
    assert (
        multivariate_profile({"a": x, "b": -x}, MultivariateSettings(enabled=False), _binner)
        is None
    )
    assert multivariate_profile({"a": x}, MultivariateSettings(), _binner) is None


def _mv_of(profile: ReferenceProfile) -> Any:
    assert profile.multivariate is not None
    return profile.multivariate


# --- merge laws of the pane part -------------------------------------------------------------

values = st.one_of(st.none(), st.floats(-1e6, 1e6), st.sampled_from([1e300, -1e300, "oops", True]))
matrix_rows = st.lists(st.fixed_dictionaries({"amount": values, "age": values}), max_size=40)


def _folded(rows: list[dict[str, Any]]) -> MultivariateSummary:
    return MultivariateSummary(_mv_of(PROFILE)).fold_feature_dicts(rows)


@settings(max_examples=80, deadline=None)
@given(matrix_rows, st.data())
def test_merge_of_the_parts_equals_the_fold_of_the_whole(
    rows: list[dict[str, Any]], data: st.DataObject
) -> None:
    cuts = sorted(data.draw(st.lists(st.integers(0, len(rows)), max_size=3)))
    bounds = [0, *cuts, len(rows)]
    parts = [_folded(rows[a:b]) for a, b in itertools.pairwise(bounds)]
    merged = parts[0]
    for part in parts[1:]:
        merged = merged.merge(part)
    whole = _folded(rows)
    assert merged == whole
    assert msgspec.msgpack.encode(merged.state()) == msgspec.msgpack.encode(whole.state())


@settings(max_examples=40, deadline=None)
@given(matrix_rows, matrix_rows, matrix_rows)
def test_merge_is_associative_and_commutative(
    a: list[dict[str, Any]], b: list[dict[str, Any]], c: list[dict[str, Any]]
) -> None:
    x, y, z = _folded(a), _folded(b), _folded(c)
    assert x.merge(y) == y.merge(x)
    assert x.merge(y).merge(z) == x.merge(y.merge(z))


def test_fold_events_and_fold_of_columns_give_the_same_pane() -> None:
    """Stage 1's path (feature dicts) and the columns path count the same errors."""
    from driftline.detectors.batch import columns_from_events
    from driftline.schemas import decode_prediction
    from tests.unit.detectors.summary_helpers import event_bytes

    rows = [{"amount": 10.0 * i, "age": 20 + i, "country": "FR"} for i in range(30)]
    rows[3]["age"] = "thirty"
    events = [decode_prediction(event_bytes(i, r, 1)) for i, r in enumerate(rows)]
    by_events = PaneSummary(PROFILE).fold_events(events)
    by_columns = PaneSummary(PROFILE).fold(columns_from_events(events, PROFILE))
    assert by_events == by_columns
    assert by_events.multivariate is not None
    assert by_events.multivariate.n == 30


# --- compatibility ---------------------------------------------------------------------------


def test_an_old_profile_reads_and_judges_as_before() -> None:
    """A profile JSON without the field: no multivariate part, no ``__multivariate__`` result."""
    old_json = PROFILE.model_dump_json(exclude={"multivariate"})
    old = ReferenceProfile.model_validate_json(old_json)
    assert old.multivariate is None
    summary = PaneSummary(old).fold(
        batch_of([{"amount": 1.0, "age": 30, "prediction": 1, "t": 0}], old)
    )
    assert summary.multivariate is None
    assert PaneSummary.from_bytes(summary.to_bytes(), old) == summary
    config = ModelConfig(task="binary", pane="1m", windows=[{"size": "1m"}], allowed_lateness="0s")
    monitor = ModelMonitor(old, config)
    monitor.set_pane(0, summary)
    report = monitor.evaluate(monitor.due(60_000)[0])
    assert MULTIVARIATE_COLUMN not in {r.column for r in (*report.drift, *report.quality)}


def test_a_partial_without_the_multivariate_part_decodes_as_empty() -> None:
    """A partial of a stage 1 of before (13 fields) decodes against a profile that has one."""
    summary = PaneSummary(PROFILE).fold(
        batch_of([{"amount": 1.0, "age": 30, "prediction": 1, "t": 0}])
    )
    old_bytes = msgspec.msgpack.encode(msgspec.msgpack.decode(summary.to_bytes())[:13])
    restored = PaneSummary.from_bytes(old_bytes, PROFILE)
    assert restored.n == 1
    assert restored.multivariate is not None
    assert restored.multivariate.n == 0


# --- the demonstration: a correlation flip ----------------------------------------------------


def _pair(rng: np.random.Generator, n: int, rho: float) -> dict[str, np.ndarray]:
    a = rng.normal(size=n)
    b = rho * a + np.sqrt(1 - rho**2) * rng.normal(size=n)
    return {
        "a": 10 + 2 * a,
        "b": -3 + 0.5 * b,
        "c": rng.normal(size=n),
        "d": rng.exponential(size=n),
    }


def test_a_correlation_flip_fires_multivariate_drift_and_no_feature() -> None:
    """Marginals unchanged (a, b stay normal with the same moments), correlation 0.9 -> -0.9:
    every per-feature test stays quiet, ``__multivariate__`` drifts, alerts and asks for a
    retrain (2 of 3 windows); stationary windows raise nothing."""
    rng = np.random.default_rng(2026)
    n_ref, n = 20_000, 5_000
    ref = _pair(rng, n_ref, 0.9)
    profile = build_profile("m", "1", "regression", ref, prediction=ref["c"])
    config = ModelConfig.model_validate(
        {
            "task": "regression",
            "pane": "1h",
            "windows": [{"size": "1h"}],
            "allowed_lateness": "0s",
            "retrain": {"policy": "on_drift"},
        }
    )
    monitor = ModelMonitor(profile, config)
    hour = 3_600_000
    reports = []
    for w, rho in enumerate([0.9] * 5 + [-0.9] * 2):
        live = _pair(rng, n, rho)
        monitor.fold_columns(np.full(n, w * hour), live, live["c"])
        reports.append(monitor.evaluate(monitor.due((w + 1) * hour)[0]))
    for report in reports[:5]:
        assert report.decision.drifted_features == []
        assert not report.decision.alerts
        assert report.decision.retrain is None
    for report in reports[5:]:
        by_column = {r.column: r for r in report.drift}
        assert report.decision.drifted_features == [MULTIVARIATE_COLUMN]
        assert not any(r.drifted for c, r in by_column.items() if c != MULTIVARIATE_COLUMN)
        assert by_column[MULTIVARIATE_COLUMN].drifted
        mean_error = next(r for r in report.quality if r.test == "reconstruction_error")
        assert mean_error.drifted
        assert mean_error.statistic > mean_error.threshold
    retrain = reports[6].decision.retrain
    assert retrain is not None
    assert [reason.feature for reason in retrain.reasons] == [MULTIVARIATE_COLUMN]
    assert reports[6].decision.alerts[0].reasons[0].feature == MULTIVARIATE_COLUMN


def test_the_multivariate_result_is_a_feature_of_the_correction_family() -> None:
    """One more p-value in the family of the window (the correction spans it), judged with
    ``drift.multivariate.test`` and its own floor."""
    rng = np.random.default_rng(5)
    ref = _pair(rng, 5_000, 0.5)
    profile = build_profile("m", "1", "regression", ref, prediction=ref["c"])
    config = ModelConfig(
        task="regression", pane="1m", windows=[{"size": "1m"}], allowed_lateness="0s"
    )
    monitor = ModelMonitor(profile, config)
    live = _pair(rng, 1_000, 0.5)
    batch = ColumnBatch.from_columns(
        profile, live, live["c"], event_time_ms=np.zeros(1_000, dtype=np.int64)
    )
    monitor.set_pane(0, PaneSummary(profile).fold(batch))
    report = monitor.evaluate(monitor.due(60_000)[0])
    judged = [v for v in report.decision.verdicts if v.judged]
    assert len(judged) == 6  # a, b, c, d, the prediction and __multivariate__
    mv = next(r for r in report.drift if r.column == MULTIVARIATE_COLUMN)
    assert (mv.test, mv.threshold, mv.kind) == ("psi", 0.1, "feature_drift")


def test_reference_errors_are_out_of_sample_like_a_live_windows() -> None:
    """Heavy-tailed features: the reference's mean error matches fresh data's (in-sample
    errors of the fitted rows run lower, and flagged stationary windows)."""
    rng = np.random.default_rng(11)

    def sample(n: int) -> dict[str, np.ndarray]:
        cols = {f"t{j}": rng.standard_t(3.0, n) for j in range(8)}
        cols |= {f"l{j}": rng.lognormal(0.0, 1.5, n) for j in range(8)}
        return cols

    mv = multivariate_profile(sample(4_000), MultivariateSettings(), _binner)
    assert mv is not None
    fresh = sample(200_000)
    errors, _ = reconstruction_errors(mv, np.column_stack([fresh[f] for f in mv.features]))
    se = mv.error_sd * np.sqrt(1 / 200_000 + 1 / mv.error.count)
    assert abs(errors.mean() - mv.error_mean) < 3 * se


def test_a_feature_named_like_the_multivariate_column_turns_it_off() -> None:
    """Results and points are keyed by column name: a real feature keeps the name."""
    x = np.arange(100.0)
    taken = build_profile("m", "1", "regression", {MULTIVARIATE_COLUMN: x, "b": -x}, prediction=x)
    free = build_profile("m", "1", "regression", {"a": x, "b": x % 7}, prediction=x)
    assert taken.multivariate is None
    assert free.multivariate is not None


def test_a_bad_multivariate_setting_names_its_field() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=r"drift\.multivariate\.explained_variance"):
        ModelConfig.model_validate(
            {"task": "binary", "drift": {"multivariate": {"explained_variance": 1.5}}}
        )
