"""The trainer's example store: bounds, eviction, dedup, replay skips, restarts, bad records."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driftline.config import Settings
from driftline.errors import StateStoreError
from driftline.trainer.examples import ExampleStore, LabeledRecord
from tests.unit.trainer.sea_helpers import labeled_records

NOW = 2_000_000_000_000


def value(t: int, *, model: str = "m", id: str | None = None, **extra: Any) -> bytes:
    record = {
        "id": id or f"id-{t}",
        "label": t % 2,
        "label_event_id": "l",
        "label_time": t + 5,
        "prediction_time": t,
        "model": model,
        "model_version": "1",
        "features": {"x": float(t), "c": "a"},
        "prediction": 0,
        "scores": {"0": 0.6, "1": 0.4},
        "timestamp": t,
        **extra,
    }
    return orjson.dumps(record)


def records(
    times: list[int], *, partition: int = 0, start: int = 0, **kw: Any
) -> list[LabeledRecord]:
    return [LabeledRecord(partition, start + i, value(t, **kw)) for i, t in enumerate(times)]


def test_sea_records_come_back_as_examples_in_time_order(tmp_path: Path) -> None:
    store = ExampleStore(tmp_path / "s")
    batch = labeled_records(300, partitions=3)
    # Each partition in order (as Kafka gives it), the partitions one after another.
    result = store.apply(sorted(batch, key=lambda r: -r.partition), now_ms=NOW)
    assert result.added == 300
    assert not result.rejected
    examples = store.examples("sea")
    assert len(examples) == 300 == store.count("sea")
    assert list(examples.times) == sorted(examples.times)
    first = examples.rows[0]
    assert set(first.features) == {"x1", "x2", "x3"}
    assert first.model_version == "1"
    assert first.label in (0, 1)
    assert first.scores is not None
    assert set(first.scores) == {"0", "1"}
    assert store.offsets() == {0: 100, 1: 100, 2: 100}
    store.close()


def test_rows_beyond_the_limit_evict_the_oldest_per_model(tmp_path: Path) -> None:
    store = ExampleStore(tmp_path / "s", max_rows=100)
    store.apply(records(list(range(150))), now_ms=NOW)
    store.apply(records(list(range(1000, 1030)), model="other", partition=1), now_ms=NOW)
    assert store.examples("m").times == tuple(range(50, 150))
    assert store.count("other") == 30
    # A backfill older than everything kept is evicted at once, not stored.
    result = store.apply(records([1, 2, 3], start=150), now_ms=NOW)
    assert (result.added, result.evicted) == (0, 3)
    assert store.examples("m").times == tuple(range(50, 150))
    store.close()


def test_examples_older_than_the_age_limit_before_the_newest_are_dropped(tmp_path: Path) -> None:
    store = ExampleStore(tmp_path / "s", max_age=timedelta(milliseconds=100))
    store.apply(records(list(range(0, 200, 10))), now_ms=NOW)
    assert store.examples("m").times == tuple(range(90, 200, 10))
    result = store.apply(records([50, 400], start=20), now_ms=NOW)
    assert result.rejected["expired"] == 1
    assert result.added == 1
    assert store.examples("m").times == (400,)
    store.close()


def test_a_repeated_example_is_stored_once(tmp_path: Path) -> None:
    store = ExampleStore(tmp_path / "s")
    first = store.apply(records([10, 20, 20]), now_ms=NOW)
    assert (first.added, first.duplicates) == (2, 1)
    again = store.apply(records([10, 20], partition=1), now_ms=NOW)
    assert (again.added, again.duplicates) == (0, 2)
    assert store.count("m") == 2
    store.close()


def test_a_replay_skips_what_was_applied_and_survives_a_restart(tmp_path: Path) -> None:
    store = ExampleStore(tmp_path / "s")
    store.apply(records([1, 2, 3], partition=4), now_ms=NOW)
    store.close()
    reopened = ExampleStore(tmp_path / "s")
    assert reopened.offsets() == {4: 3}
    assert reopened.examples("m").times == (1, 2, 3)
    result = reopened.apply(records([1, 2, 3, 4], partition=4), now_ms=NOW)
    assert (result.replayed, result.added, result.duplicates) == (3, 1, 0)
    assert reopened.offsets() == {4: 4}
    assert reopened.count("m") == 4
    reopened.close()


def test_since_and_limit_read_a_models_newest_examples_in_time_order(tmp_path: Path) -> None:
    store = ExampleStore(tmp_path / "s")
    store.apply(records(list(range(100))), now_ms=NOW)
    store.apply(records([5, 7], model="mm", partition=1), now_ms=NOW)
    assert store.examples("m", since_ms=90).times == tuple(range(90, 100))
    assert store.examples("m", limit=3).times == (97, 98, 99)
    assert store.examples("m", since_ms=98, limit=5).times == (98, 99)
    assert store.examples("m", since_ms=10**30).times == ()
    assert store.examples("nobody").times == ()
    assert store.models() == ["m", "mm"]
    store.close()


def test_bad_records_are_counted_by_reason_and_never_stored(tmp_path: Path) -> None:
    store = ExampleStore(tmp_path / "s", max_example_bytes=4096, max_features=10, max_models=1)
    bad = [
        b"\xff not json",
        orjson.dumps({"id": "x"}),
        value(1, features={f"f{i}": 1.0 for i in range(11)}),
        value(2, pad="x" * 5000),
        value(3, model="m" * 300),
        value(4, features={"c": "s" * 2000}),
        value(NOW + 3_600_000),
        value(5, model="second"),
        value(6, model="third"),
        value(2**63 - 1),
        value(-(2**63)),
    ]
    result = store.apply([LabeledRecord(0, i, v) for i, v in enumerate(bad)], now_ms=NOW)
    assert dict(result.rejected) == {
        "undecodable": 4,
        "too_many_features": 1,
        "too_large": 1,
        "too_long": 2,
        "future": 1,
        "too_many_models": 1,
    }
    assert result.added == 1
    assert store.models() == ["second"]
    assert store.offsets() == {0: len(bad)}  # rejected records are applied too: no retry loop
    store.close()


def test_a_model_whose_examples_all_go_frees_its_place(tmp_path: Path) -> None:
    store = ExampleStore(tmp_path / "s", max_models=1, max_age=timedelta(milliseconds=10))
    store.apply(records([1]), now_ms=NOW)
    assert (
        store.apply(records([1], model="n", partition=1), now_ms=NOW).rejected["too_many_models"]
        == 1
    )
    store.close()


def test_a_store_of_another_format_is_refused(tmp_path: Path) -> None:
    from rocksdict import Options, Rdict

    db = Rdict(str(tmp_path / "s"), Options(raw_mode=True))
    db.put(b"v", b"9")
    db.close()
    try:
        ExampleStore(tmp_path / "s")
    except StateStoreError as exc:
        assert "format 9" in str(exc)
    else:
        raise AssertionError("a store of format 9 was opened")


def test_the_store_is_built_from_the_trainer_settings(tmp_path: Path) -> None:
    s = Settings(trainer={"store_dir": str(tmp_path), "max_examples_per_model": 100})
    store = ExampleStore.from_settings(s.trainer)
    store.apply(records(list(range(120))), now_ms=NOW)
    assert store.count("m") == 100
    assert store.path == tmp_path / "examples"
    store.close()


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    batches=st.lists(
        st.lists(st.tuples(st.sampled_from("ab"), st.integers(0, 500)), max_size=30),
        max_size=6,
    ),
    max_rows=st.integers(1, 20),
    max_age=st.integers(1, 300),
)
def test_any_traffic_leaves_each_model_its_newest_examples_within_both_bounds(
    tmp_path_factory: Any, batches: list[list[tuple[str, int]]], max_rows: int, max_age: int
) -> None:
    """Model: per model, the distinct times sent, cut to those within max_age of the newest
    sent, then the newest max_rows of those (examples evicted earlier never come back)."""
    path = tmp_path_factory.mktemp("prop") / "s"
    store = ExampleStore(path, max_rows=max_rows, max_age=timedelta(milliseconds=max_age))
    offset = 0
    kept: dict[str, set[int]] = {"a": set(), "b": set()}
    newest: dict[str, int] = {}
    for batch in batches:
        recs = []
        for model, t in batch:
            recs.append(LabeledRecord(0, offset, value(t, model=model)))
            offset += 1
        store.apply(recs, now_ms=NOW)
        for model in "ab":
            times = {t for m, t in batch if m == model}
            if not times:
                continue
            newest[model] = max(newest.get(model, -1), *times)
            alive = {t for t in kept[model] | times if t >= newest[model] - max_age}
            kept[model] = set(sorted(alive)[-max_rows:])
    for model in "ab":
        assert store.examples(model).times == tuple(sorted(kept[model]))
        assert store.count(model) == len(kept[model])
    store.close()
