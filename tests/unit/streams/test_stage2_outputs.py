"""Stage 2's records bounded in size: a window's points split over outbox records, dead
letters cut to fit (issue 15)."""

from __future__ import annotations

import hashlib

import msgspec

from driftline.config import ModelConfig, Settings, TopicSettings
from driftline.deadletter import MAX_REASON, dead_letter, fit
from driftline.schemas.outputs import (
    DLQ_HEADER_ORIGINAL_HEADERS_DROPPED,
    DLQ_HEADER_ORIGINAL_LENGTH,
    DLQ_HEADER_ORIGINAL_SHA256,
    DeadLetter,
)
from driftline.streams.stage2.outputs import Output, record_size, too_large
from driftline.streams.stage2.state import Stage2State
from tests.unit.streams.stage2_helpers import (
    MINUTE,
    close_first_window,
    make_profile,
    metrics,
    model_config,
    pane_summary,
    partial,
)

LONG = "long-" + "x" * 20_000


def window_outputs(max_output_bytes: int) -> list[bytes]:
    """The metrics records of one window of model LONG, judged with that bound."""
    profile = make_profile().model_copy(update={"model": LONG})
    settings = Settings(
        models={LONG: ModelConfig(**model_config())},
        topics=TopicSettings(input_partitions=2),
        monitor={"max_output_bytes": max_output_bytes},
    )
    state = Stage2State(lambda model, version: profile, settings)
    messages = [
        partial(pane_summary(p * MINUTE, 200, seed=p, profile=profile), p * MINUTE, p % 2, 1)
        for p in range(5)
    ] + close_first_window()
    outputs = []
    for message in messages:
        outputs += state.apply(msgspec.structs.replace(message, model=LONG), 0)
    return [o.value for o in metrics(outputs)]


def test_a_window_over_the_bound_is_split_into_records_within_it_with_every_line_in_order() -> None:
    """Issue 15: a window's metrics of a long model name were one record, over the broker's
    limit, and the window was lost."""
    whole = window_outputs(100_000_000)
    assert len(whole) == 1
    split = window_outputs(100_000)
    assert len(split) > 1
    assert all(record_size(LONG.encode(), value) <= 100_000 for value in split)
    assert b"\n".join(split) == whole[0]
    assert window_outputs(100_000) == split  # deterministic: the same records every time


def test_a_record_over_the_bound_is_too_large_and_says_by_how_much() -> None:
    fits = Output("alerts", b"m", b"x" * (10_000 - 129))
    assert too_large(fits, 10_000) is None
    reason = too_large(Output("retrain", b"m", b"x" * 10_000), 10_000)
    assert reason == "retrain record of 10129 bytes is over monitor.max_output_bytes (10000)"


def letter(
    key: bytes, value: bytes, reason: str = "why", headers: list[tuple[str, bytes]] | None = None
) -> DeadLetter:
    return dead_letter(
        topic="driftline.alerts",
        partition=0,
        offset=0,
        key=key,
        value=value,
        headers=headers,
        reason=reason,
        kind="output_too_large",
        failed_at=0,
    )


def test_a_dead_letter_that_fits_is_produced_as_it_is() -> None:
    original = letter(b"m", b"{}")
    assert fit(original, 10_000) is original


def test_a_dead_letter_over_the_bound_is_cut_to_fit_with_the_original_length_and_hash() -> None:
    value = bytes(range(256)) * 400
    cut = fit(letter(b"k" * 5000, value, "r" * 5000), 10_000)
    headers = cut.kafka_headers()
    named = dict(headers)
    assert record_size(cut.key, cut.value, headers) <= 10_000
    assert cut.key == b"k" * 5000
    assert cut.value
    assert value.startswith(cut.value)
    assert named[DLQ_HEADER_ORIGINAL_LENGTH] == str(len(value)).encode()
    assert named[DLQ_HEADER_ORIGINAL_SHA256] == hashlib.sha256(value).hexdigest().encode()
    assert len(named["driftline.error.reason"]) <= MAX_REASON * 4  # a reason is cut too
    assert DeadLetter.from_kafka(cut.key, cut.value, headers).original_length == len(value)


def test_original_headers_too_large_to_keep_are_dropped_rather_than_the_letter() -> None:
    cut = fit(letter(b"k", b"v" * 100, headers=[("h", b"x" * 20_000)]), 10_000)
    headers = cut.kafka_headers()
    assert record_size(cut.key, cut.value, headers) <= 10_000
    assert "h" not in dict(headers)
    assert dict(headers)[DLQ_HEADER_ORIGINAL_HEADERS_DROPPED] == b"1"
