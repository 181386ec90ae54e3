"""Concept-drift adapters: the factory, input checks, warnings and snapshots in detail.

The behaviour every detector shares (update, reset, determinism, snapshot round trip, detection
and false alarms) is in ``test_contract.py``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import river

from driftline.detectors.concept import (
    DETECTORS,
    detector_from_snapshot,
    make_detector,
)
from driftline.errors import StatisticsError

BINARY = ["ddm", "eddm", "hddm_a", "hddm_w"]


def test_factory_names_the_allowed_detectors_for_an_unknown_name() -> None:
    """The error lists every detector."""
    with pytest.raises(ValueError, match=r"allowed: .*'adwin'.*'kswin'"):
        make_detector("cusum")


def test_factory_names_the_allowed_parameters_for_an_unknown_one() -> None:
    """The error lists the detector's parameters."""
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['lambda_'\].*'delta'"):
        make_detector("page_hinkley", lambda_=3.0)


def test_factory_refuses_kswin_prefilled_window() -> None:
    """KSWIN's window argument is data, not a parameter, and is not offered."""
    with pytest.raises(ValueError, match="unknown parameter"):
        make_detector("kswin", window=[1.0, 2.0])


def test_values_river_rejects_become_value_errors_naming_the_detector() -> None:
    """EDDM's alpha below beta, KSWIN's alpha above 1."""
    with pytest.raises(ValueError, match="'eddm'"):
        make_detector("eddm", alpha=0.5, beta=0.9)
    with pytest.raises(ValueError, match="'kswin'"):
        make_detector("kswin", alpha=2.0)


def test_parameters_must_be_json_scalars() -> None:
    """A list is no parameter value."""
    with pytest.raises(ValueError, match="'delta'"):
        make_detector("adwin", delta=[0.1])


def test_parameters_include_river_defaults_and_kswin_is_seeded() -> None:
    """params shows every parameter; KSWIN's seed defaults to 0."""
    assert make_detector("adwin").params["delta"] == 0.002
    assert make_detector("kswin").params["seed"] == 0
    assert make_detector("kswin", seed=5).params["seed"] == 5


@pytest.mark.parametrize("name", BINARY)
def test_binary_detectors_accept_only_zeros_and_ones(name: str) -> None:
    """0.5 is no error indicator."""
    detector = make_detector(name)
    with pytest.raises(ValueError, match="0/1"):
        detector.update([0, 1, 0.5])
    detector.update(np.array([True, False, True]))
    assert detector.n_seen == 3


@pytest.mark.parametrize("name", DETECTORS)
def test_detectors_refuse_non_finite_values(name: str) -> None:
    """NaN and infinity are rejected before anything is updated."""
    detector = make_detector(name)
    with pytest.raises(ValueError, match="finite"):
        detector.update([0.0, float("nan")])
    assert detector.n_seen == 0


def test_residual_detectors_accept_real_values() -> None:
    """ADWIN, Page-Hinkley and KSWIN watch any numeric stream."""
    for name in ("adwin", "page_hinkley", "kswin"):
        assert make_detector(name).update([0.3, 1.7, 2.5]).n_seen == 3


def test_drift_positions_index_the_values_of_the_last_update() -> None:
    """Positions refer to the batch; the next quiet batch clears drift_detected."""
    rng = np.random.default_rng(0)
    detector = make_detector("ddm").update((rng.random(1000) < 0.1).astype(int))
    batch = np.ones(200, dtype=int)
    detector.update(batch)
    assert detector.drift_detected
    first = detector.drift_positions[0]
    assert 0 <= first < 200
    detector.update(np.zeros(5, dtype=int))
    assert not detector.drift_detected
    assert detector.drift_positions == ()
    assert detector.n_seen == 1205


def test_counts_carry_across_the_restart_after_a_drift() -> None:
    """River restarts a detector after a drift; n_seen and n_drifts keep counting."""
    rng = np.random.default_rng(1)
    detector = make_detector("hddm_a")
    for p in (0.05, 0.6, 0.05, 0.6):
        detector.update((rng.random(500) < p).astype(int))
    assert detector.n_seen == 2000
    assert detector.n_drifts >= 2


def test_ddm_enters_its_warning_zone_before_a_gradual_increase_becomes_a_drift() -> None:
    """A slowly rising error rate warns first."""
    rng = np.random.default_rng(2)
    detector = make_detector("ddm").update((rng.random(2000) < 0.1).astype(int))
    warned_before_drift = False
    for p in np.linspace(0.1, 0.5, 40):
        detector.update((rng.random(25) < p).astype(int))
        if detector.drift_detected:
            break
        warned_before_drift |= detector.warning_detected
    assert warned_before_drift
    assert detector.supports_warning


def test_detectors_without_a_warning_zone_never_warn() -> None:
    """ADWIN, Page-Hinkley and KSWIN have no warning zone."""
    rng = np.random.default_rng(3)
    for name in ("adwin", "page_hinkley", "kswin"):
        detector = make_detector(name)
        assert not detector.supports_warning
        detector.update((rng.random(300) < 0.1).astype(int))
        detector.update((rng.random(300) < 0.7).astype(int))
        assert not detector.warning_detected


@pytest.mark.parametrize("name", DETECTORS)
def test_snapshot_is_strict_json_without_bytes(name: str) -> None:
    """json.dumps(allow_nan=False) accepts it (infinities are encoded, Rust bytes base64)."""
    rng = np.random.default_rng(4)
    snapshot = make_detector(name).update((rng.random(300) < 0.2).astype(int)).snapshot()
    text = json.dumps(snapshot, allow_nan=False)
    assert json.loads(text) == snapshot
    assert snapshot["river_version"] == river.__version__


def test_kswin_snapshot_holds_at_most_its_window() -> None:
    """The sliding window bounds KSWIN's state, whatever it has seen."""
    detector = make_detector("kswin", window_size=50, stat_size=20)
    detector.update(np.random.default_rng(5).random(400))
    window = detector.snapshot()["state"]["window"]
    assert len(window["$deque"]) <= 50


def test_adwin_snapshot_stays_small_on_a_long_stream() -> None:
    """ADWIN compresses its window into buckets: 20 000 values fit in a few kilobytes."""
    detector = make_detector("adwin").update(np.random.default_rng(6).random(20_000) < 0.2)
    assert len(json.dumps(detector.snapshot())) < 8_000


def test_restore_refuses_another_detector_or_other_parameters() -> None:
    """A snapshot belongs to one detector name and one parameter set."""
    snapshot = make_detector("ddm").update([0, 1, 0]).snapshot()
    with pytest.raises(ValueError, match="not 'eddm'"):
        make_detector("eddm").restore(snapshot)
    with pytest.raises(ValueError, match="parameters"):
        make_detector("ddm", warm_start=10).restore(snapshot)


def test_restore_refuses_river_binary_state_from_another_river_version() -> None:
    """ADWIN's Rust bytes are tied to the river that wrote them."""
    snapshot = make_detector("adwin").update([0.1, 0.2]).snapshot()
    snapshot["river_version"] = "0.0.1"
    with pytest.raises(ValueError, match=r"river 0\.0\.1"):
        detector_from_snapshot(snapshot)


def test_restore_accepts_plain_state_from_another_river_version() -> None:
    """Page-Hinkley's state is numbers only, readable whatever river wrote it."""
    snapshot = make_detector("page_hinkley").update([0.1, 0.2]).snapshot()
    snapshot["river_version"] = "0.0.1"
    assert detector_from_snapshot(snapshot).n_seen == 2


def test_restore_refuses_a_snapshot_with_missing_state() -> None:
    """A state that does not match the detector's attributes is malformed."""
    snapshot = make_detector("ddm").update([0, 1]).snapshot()
    del snapshot["state"]["_p"]
    with pytest.raises(ValueError, match="attributes"):
        detector_from_snapshot(snapshot)


def test_restore_leaves_the_detector_unchanged_when_it_fails() -> None:
    """A refused snapshot does not half-overwrite the detector."""
    detector = make_detector("ddm").update([0, 1, 1])
    broken = detector.snapshot()
    broken["n_seen"] = "many"
    with pytest.raises(ValueError, match="malformed"):
        detector.restore(broken)
    assert detector.n_seen == 3


def rust_kinds(state: object) -> set[str]:
    """The kinds of Rust state a snapshot's state holds, at any depth."""
    if isinstance(state, dict):
        found = {state["$rust"]} if "$rust" in state else set()
        return found.union(*(rust_kinds(v) for v in state.values()))
    if isinstance(state, list):
        return set().union(*(rust_kinds(v) for v in state))
    return set()


@pytest.mark.parametrize(
    ("name", "kinds"), [("adwin", {"AdaptiveWindowing"}), ("hddm_w", {"RsEWMean"})]
)
def test_river_rust_state_is_still_found_through_pickling(name: str, kinds: set[str]) -> None:
    """The codec finds river's Rust objects by class name and the bytes they pickle to, with no
    import of river's private extension module; a river release that changes either fails here
    rather than in a stage-2 restore."""
    snapshot = make_detector(name).update([0, 1, 0, 1]).snapshot()
    assert rust_kinds(snapshot["state"]) == kinds, (
        f"river {river.__version__} no longer keeps {sorted(kinds)} in {name!r} as Rust objects "
        "that pickle to bytes: teach driftline/detectors/concept.py's codec the new layout"
    )
    restored = detector_from_snapshot(snapshot).update([1, 1])
    assert restored.snapshot() == make_detector(name).update([0, 1, 0, 1, 1, 1]).snapshot()


def test_restore_refuses_rust_state_in_the_wrong_place() -> None:
    """Rust bytes are rebuilt only where a fresh detector holds a Rust object of that kind."""
    snapshot = make_detector("adwin").update([0.1, 0.2]).snapshot()
    snapshot["state"]["delta"] = snapshot["state"]["_helper"]
    with pytest.raises(StatisticsError, match="unknown Rust state 'AdaptiveWindowing'"):
        detector_from_snapshot(snapshot)
