"""Output records: deterministic ids, and what changes them."""

from __future__ import annotations

from datetime import UTC, datetime

from driftline.schemas import DeadLetter, DriftAlert, Reason, RetrainRequest

START = datetime(2026, 11, 22, 9, tzinfo=UTC)
END = datetime(2026, 11, 22, 10, tzinfo=UTC)


def psi(feature: str, value: float) -> Reason:
    return Reason(
        kind="feature_drift",
        feature=feature,
        statistic="psi",
        value=value,
        threshold=0.2,
        p_value=1e-6,
    )


def alert(*reasons: Reason, severity: str = "warning") -> DriftAlert:
    return DriftAlert.create(
        "fraud",
        "3",
        START,
        END,
        severity=severity,  # type: ignore[arg-type]
        reasons=list(reasons),
    )


def test_a_restated_window_with_the_same_verdict_keeps_its_alert_id() -> None:
    assert alert(psi("amount", 0.31)).alert_id == alert(psi("amount", 0.33)).alert_id


def test_a_changed_verdict_gets_a_new_alert_id() -> None:
    base = alert(psi("amount", 0.31))
    assert base.alert_id != alert(psi("amount", 0.31), psi("age", 0.25)).alert_id
    assert base.alert_id != alert(psi("amount", 0.31), severity="critical").alert_id
    assert (
        base.alert_id
        != DriftAlert.create(
            "fraud",
            "3",
            START,
            END,
            severity="warning",
            reasons=[psi("amount", 0.31)],
            status="resolved",
        ).alert_id
    )


def test_reason_order_does_not_change_the_alert_id() -> None:
    assert alert(psi("a", 1), psi("b", 1)).alert_id == alert(psi("b", 1), psi("a", 1)).alert_id


def test_retrain_request_id_is_hash_of_model_version_rule_and_window() -> None:
    first = RetrainRequest.create(
        "fraud", "3", START, END, rule="on_drift", reasons=[psi("amount", 0.3)]
    )
    again = RetrainRequest.create(
        "fraud", "3", START, END, rule="on_drift", reasons=[psi("age", 0.9)]
    )
    assert first.request_id == again.request_id
    assert (
        first.request_id
        != RetrainRequest.create(
            "fraud", "4", START, END, rule="on_drift", reasons=[psi("amount", 0.3)]
        ).request_id
    )


def test_dead_letter_round_trips_arbitrary_bytes_through_headers() -> None:
    letter = DeadLetter(
        source_topic="t",
        source_partition=1,
        source_offset=9,
        reason="bad",
        kind="malformed_json",
        key=b"\xff\x00",
        value=b"\xfe\xff",
        original_headers=(("h", b"\x00"),),
        failed_at=1_764_000_000_000,
    )
    again = DeadLetter.from_kafka(letter.key, letter.value, letter.kafka_headers())
    assert again == letter
    assert DeadLetter.model_validate_json(letter.to_json()) == letter
