"""The stage-1 store on a real RocksDB: the join family (hash memtable) against a dict."""

from __future__ import annotations

import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driftline.errors import StateStoreError
from driftline.streams.entries import JOINED, LABEL, PENDING, waiting_entry
from driftline.streams.store import Marks, PartitionStore

# Ids as the event contract allows them: short and long, sharing prefixes (the hash
# memtable buckets by the first 128 bytes, so ids longer than that share buckets).
_ids = st.one_of(
    st.binary(min_size=1, max_size=40),
    st.binary(min_size=1, max_size=8).map(lambda tail: b"x" * 130 + tail),
    st.sampled_from([b"p1", b"p10", b"p1\x00", b"\x00", b"\xff" * 3]),
)
_values = st.one_of(
    st.just(JOINED),
    st.tuples(st.sampled_from([PENDING, LABEL]), st.integers(0, 2**40), st.binary()).map(
        lambda t: waiting_entry(*t)
    ),
)
_ops = st.lists(
    st.one_of(
        st.tuples(st.just("put"), _ids, _values),
        st.tuples(st.just("delete"), _ids, st.none()),
        st.tuples(st.just("reopen"), st.none(), st.none()),
    ),
    max_size=60,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=_ops, batch_every=st.integers(1, 7))
def test_join_entries_behave_as_a_dict_across_batches_and_reopens(
    ops: list[tuple[str, bytes | None, bytes | None]], batch_every: int
) -> None:
    """Puts and deletes in atomic batches, reopens in between (which flush the memtables to
    files): every read (one id, many ids, the full scan) agrees with a plain dict."""
    model: dict[bytes, bytes] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "p0"
        store = PartitionStore(path)
        batch, pending = store.batch(), dict(model)
        try:
            for i, (op, pid, value) in enumerate(ops):
                if op == "reopen":
                    store.write(batch)
                    model = dict(pending)
                    store.close()
                    store = PartitionStore(path)
                    batch = store.batch()
                    continue
                assert pid is not None
                if op == "put":
                    assert value is not None
                    batch.put_entry(pid, value)
                    pending[pid] = value
                else:
                    batch.delete_entry(pid)
                    pending.pop(pid, None)
                if i % batch_every == 0:
                    store.write(batch)
                    model, batch = dict(pending), store.batch()
            store.write(batch)
            model = pending
            probe = sorted({pid for _, pid, _ in ops if pid is not None} | {b"never"})
            assert store.get_entries(probe) == [model.get(pid) for pid in probe]
            assert [store.get_entry(pid) for pid in probe] == [model.get(pid) for pid in probe]
            assert list(store.join_entries()) == sorted(model.items())
        finally:
            store.close()


def test_a_batch_written_after_a_crash_point_is_not_seen(tmp_path: Path) -> None:
    """The join family and the marks move together: an unwritten batch changes neither."""
    store = PartitionStore(tmp_path / "p0")
    batch = store.batch()
    batch.put_entry(b"p1", waiting_entry(PENDING, 3, b"{}"))
    batch.set_marks(Marks(predictions=4))
    store.write(batch)
    lost = store.batch()
    lost.put_entry(b"p1", JOINED)
    lost.put_entry(b"p2", JOINED)
    lost.set_marks(Marks(predictions=9))
    store.close()  # killed before ``lost`` was written
    again = PartitionStore(tmp_path / "p0")
    assert again.marks() == Marks(predictions=4)
    assert again.get_prediction(b"p1") == (False, b"{}")
    assert again.get_entry(b"p2") is None
    again.close()


def test_a_closed_store_releases_its_lock_though_a_batch_outlives_it(tmp_path: Path) -> None:
    store = PartitionStore(tmp_path / "p0")
    leftover = store.batch()
    leftover.put_entry(b"p1", JOINED)
    store.close()
    again = PartitionStore(tmp_path / "p0")  # would fail on RocksDB's lock if still open
    assert again.get_entry(b"p1") is None
    with pytest.raises(StateStoreError, match="closed"):
        leftover.put_entry(b"p2", JOINED)
    with pytest.raises(StateStoreError, match="closed"):
        store.get_entry(b"p1")
    again.close()


def test_the_size_counts_the_join_entries(tmp_path: Path) -> None:
    store = PartitionStore(tmp_path / "p0")
    empty_keys, _ = store.size()
    batch = store.batch()
    for i in range(500):
        batch.put_entry(f"p{i}".encode(), waiting_entry(PENDING, i, b"x" * 100))
    store.write(batch)
    keys, size = store.size()
    assert keys - empty_keys == 500
    assert size > 500 * 100
    store.close()


def test_a_store_of_the_previous_format_is_refused_with_its_path(tmp_path: Path) -> None:
    """Format 2 kept join entries in the default family; this driftline would not see them."""
    from rocksdict import Options, Rdict

    old = Rdict(str(tmp_path / "old"), Options(raw_mode=True))
    old.put(b"v", b"2")
    old.put(b"j\x00p1", waiting_entry(PENDING, 0, b"{}"))
    old.close()
    with pytest.raises(StateStoreError, match="format 2; this driftline reads 3") as caught:
        PartitionStore(tmp_path / "old")
    assert caught.value.path == str(tmp_path / "old")


def test_the_memory_counts_the_join_family_and_one_shared_cache(tmp_path: Path) -> None:
    store = PartitionStore(tmp_path / "p0")
    before = store.memory()
    batch = store.batch()
    for i in range(2000):
        batch.put_entry(f"p{i}".encode(), waiting_entry(PENDING, i, b"x" * 200))
    store.write(batch)
    assert store.memory() - before >= 2000 * 200  # in the join family's memtable
    store.close()
    store = PartitionStore(tmp_path / "p0")  # the entries are in a file now
    cache = "rocksdb.block-cache-usage"
    opened = store._db.property_int_value(cache) or 0
    assert store.get_entry(b"p7") is not None
    # The join family's block landed in the cache the default family reports: one cache.
    assert (store._db.property_int_value(cache) or 0) - opened >= 2048
    assert store.memory() >= 4096
    store.close()


_WRITE_AND_DIE = """
import os, sys, time
from pathlib import Path
from driftline.streams.store import (Marks, PartitionStore)
from driftline.streams.entries import (PENDING, waiting_entry)
store = PartitionStore(Path(sys.argv[1]), wal=sys.argv[2] == "wal")
value = waiting_entry(PENDING, 0, b"x" * 300)
for i in range(int(sys.argv[3])):
    if i == 250:  # the join family's first memtable is full: poll until its flush ends
        deadline = time.monotonic() + 60
        while not store.property_sum("rocksdb.live-sst-files-size"):
            if time.monotonic() > deadline:
                sys.exit("the join family did not flush within 60 s")
            time.sleep(0.02)  # a poll interval; RocksDB flushes in its own thread
    batch = store.batch()
    batch.put_entries([(b"%d:%d" % (i, j), value) for j in range(1000)])
    batch.set_marks(Marks(predictions=i + 1))
    store.write(batch)
os._exit(0)  # as SIGKILL would: no close, no flush
"""


@pytest.mark.parametrize("wal", ["wal", "no-wal"])
def test_after_a_crash_the_marks_and_the_join_entries_are_of_the_same_batches(
    tmp_path: Path, wal: str
) -> None:
    """250 batches of 1000 entries fill the join family's memtable (64 MiB), so it flushes
    while the marks' family holds little; 50 more follow. Killed then, the store comes
    back with exactly the batches below its marks (all of them with the write-ahead log; up
    to the last flush without it), never entries of batches the marks do not cover."""
    batches = 300
    subprocess.run(
        [sys.executable, "-c", _WRITE_AND_DIE, str(tmp_path / "p0"), wal, str(batches)],
        check=True,
        timeout=120,
    )
    store = PartitionStore(tmp_path / "p0")
    applied = store.marks().predictions
    assert applied == batches if wal == "wal" else 0 < applied < batches
    probe = [b"%d:%d" % (i, j) for i in range(batches) for j in (0, 999)]
    found = [entry is not None for entry in store.get_entries(probe)]
    assert found == [i < applied for i in range(batches) for _ in (0, 999)]
    logs = sum(f.stat().st_size for f in (tmp_path / "p0").glob("*.log"))
    assert logs < 64 << 20  # the log files before the flush went with it
    store.close()


_HOLD = """
import sys, time
from pathlib import Path
from driftline.streams.store import Marks, PartitionStore
store = PartitionStore(Path(sys.argv[1]))
batch = store.batch()
batch.set_marks(Marks(predictions=42, ground_truth=7))
store.write(batch)
print("holding", flush=True)
time.sleep(120)
"""


def _holder(path: Path) -> subprocess.Popen[str]:
    """Another process that opened the store at ``path``, wrote marks and keeps it open."""
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None
    ready, _, _ = select.select([holder.stdout], [], [], 60)
    assert ready
    assert holder.stdout.readline() == "holding\n"
    return holder


def _release(holder: subprocess.Popen[str]) -> None:
    holder.kill()
    holder.wait(10)
    assert holder.stdout is not None
    holder.stdout.close()


def test_a_store_another_process_holds_is_opened_once_that_process_is_killed(
    tmp_path: Path,
) -> None:
    """A stage-1 process taking over a partition number from a sibling waits for the
    sibling's RocksDB lock instead of failing; the kernel releases it on kill -9, and the
    store opens with everything the killed holder wrote."""
    holder = _holder(tmp_path / "p0")
    killer = threading.Timer(1.0, holder.send_signal, args=(signal.SIGKILL,))
    began = time.monotonic()
    killer.start()
    try:
        store = PartitionStore(tmp_path / "p0", lock_wait=30)
    finally:
        killer.cancel()
        _release(holder)
    assert time.monotonic() - began >= 0.9  # it waited for the holder
    assert store.marks() == Marks(predictions=42, ground_truth=7)
    store.close()


def test_a_store_still_held_after_the_wait_is_refused_naming_its_path(tmp_path: Path) -> None:
    holder = _holder(tmp_path / "p0")
    try:
        with pytest.raises(StateStoreError, match="still locked by another process") as caught:
            PartitionStore(tmp_path / "p0", lock_wait=0.5)
    finally:
        _release(holder)
    assert caught.value.path == str(tmp_path / "p0")
