"""A batch of outbox messages: write calls at message boundaries, offsets done, lost partitions."""

from __future__ import annotations

from collections import deque

from driftline.deadletter import dead_letter
from driftline.sinks.batch import Batch, Entry


class Message:
    """What a batch reads of a consumed Kafka message: where it came from."""

    def __init__(self, partition: int, offset: int) -> None:
        self.where = ("metrics", partition, offset)

    def topic(self) -> str:
        return self.where[0]

    def partition(self) -> int:
        return self.where[1]

    def offset(self) -> int:
        return self.where[2]


def entry(partition: int, offset: int, n_lines: int = 3) -> Entry:
    return Entry(Message(partition, offset), ("m v=1 1",) * n_lines)


def dead(partition: int, offset: int) -> Entry:
    letter = dead_letter(
        topic="metrics",
        partition=partition,
        offset=offset,
        key=b"fraud",
        value=b"m v=1",
        headers=None,
        reason="no timestamp",
        kind="malformed_line_protocol",
        failed_at=1_764_000_000_000,
    )
    return Entry(Message(partition, offset), dead=letter)


def test_a_write_call_takes_whole_messages_up_to_max_lines_and_at_least_one() -> None:
    batch = Batch(deque([entry(0, 0), entry(0, 1), entry(0, 2, n_lines=20)]))
    assert [e.message.offset() for e in batch.chunk(max_lines=6)] == [0, 1]
    assert [e.message.offset() for e in batch.chunk(max_lines=5)] == [0]
    batch.pop()
    batch.pop()
    assert [e.message.offset() for e in batch.chunk(max_lines=5)] == [2]


def test_a_write_call_stops_before_a_dead_letter() -> None:
    batch = Batch(deque([entry(0, 0), dead(0, 1), entry(0, 2)]))
    assert [e.message.offset() for e in batch.chunk(max_lines=100)] == [0]


def test_one_by_one_writes_single_messages_until_that_many_are_popped() -> None:
    batch = Batch(deque(entry(0, n) for n in range(4)), one_by_one=2)
    assert len(batch.chunk(max_lines=100)) == 1
    batch.pop()
    assert len(batch.chunk(max_lines=100)) == 1
    batch.pop()
    assert len(batch.chunk(max_lines=100)) == 2


def test_done_offsets_are_the_next_to_commit_per_partition_and_taken_once() -> None:
    batch = Batch(deque([entry(0, 4), entry(1, 9), entry(0, 5)]))
    for _ in range(3):
        batch.pop()
    assert batch.take_done() == {("metrics", 0): 6, ("metrics", 1): 10}
    assert batch.take_done() == {}


def test_dropping_lost_partitions_keeps_the_others_in_order() -> None:
    batch = Batch(deque([entry(0, 0), entry(1, 0), entry(0, 1), entry(1, 1)]), one_by_one=4)
    assert batch.drop({("metrics", 0)}) == 2
    assert [(e.message.partition(), e.message.offset()) for e in batch.entries] == [(1, 0), (1, 1)]
    assert batch.one_by_one == 2
    assert batch.drop({("metrics", 7)}) == 0
