"""Replay's join store (memory front, Bloom filter, RocksDB) against a plain dict."""

from __future__ import annotations

import random

import pytest

from driftline.replay import join
from driftline.replay.join import JoinStore, label_entry, marked


def added(entry: bytes) -> int:
    """The event time an entry was added at (its bytes 1-8)."""
    return int.from_bytes(entry[1:9], "little", signed=True)


@pytest.mark.parametrize("front", [1, 7, 64, 10_000])
def test_the_store_reads_back_what_a_dict_holds_whatever_its_front(front: int) -> None:
    """Random writes and reads of 3,000 ids: every read equals a dict's, TTL included,
    whether the entries are in memory or were spilled to RocksDB."""
    rng = random.Random(front)
    ttl = 5_000
    oracle: dict[bytes, bytes] = {}
    ids = [f"id-{i}".encode() for i in range(3_000)]
    with JoinStore(ttl, front=front) as store:
        now = 0
        for _ in range(300):
            now += rng.randrange(0, 200)
            writes = [
                (
                    rng.choice(ids),
                    label_entry(now - rng.randrange(0, 3_000), rng.randrange(2))
                    if rng.random() < 0.5
                    else marked(join.JOINED, now - rng.randrange(0, 3_000)),
                )
                for _ in range(rng.randrange(0, 40))
            ]
            store.write(writes)
            oracle.update(writes)
            asked = rng.sample(ids, 50)
            cutoff = now - ttl
            expected = [
                None if (entry := oracle.get(key)) is None or added(entry) < cutoff else entry
                for key in asked
            ]
            assert store.get(asked, watermark_ms=now) == expected
        if front < 3_000:
            assert store._on_disk > 0  # the spill path ran
