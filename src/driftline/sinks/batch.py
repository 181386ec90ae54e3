"""A batch of outbox messages on its way to InfluxDB: what is left to write, and what is done.

The InfluxDB writer consumes up to ``batch_size`` outbox messages into a :class:`Batch` and
writes it front to back. This module owns the batch's bookkeeping: the next offset to commit
per partition as messages are written or dead-lettered, the split into write calls of at most
``max_lines`` lines at message boundaries (one message per call while the writer looks for the
message InfluxDB refuses), and dropping the messages of partitions the writer lost. Pure: no
client, no clock.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from driftline.schemas.outputs import DeadLetter
from driftline.sinks.offsets import TP

__all__ = ["Batch", "Entry"]


@dataclass
class Entry:
    """One consumed outbox message: its lines, or the dead letter it becomes."""

    message: Any
    lines: tuple[str, ...] = ()
    dead: DeadLetter | None = None

    @property
    def tp(self) -> TP:
        """The message's topic and partition."""
        return self.message.topic(), self.message.partition()


@dataclass
class Batch:
    """The messages of one consume call still to be written, and the offsets already done.

    >>> class Message:  # what a batch reads of a consumed Kafka message
    ...     def __init__(self, offset): self._offset = offset
    ...     def topic(self): return "metrics"
    ...     def partition(self): return 0
    ...     def offset(self): return self._offset
    >>> batch = Batch(deque(Entry(Message(n), ("m v=1 1",) * 3) for n in range(4)))
    >>> len(batch.chunk(max_lines=7))  # whole messages only
    2
    >>> [batch.pop().message.offset() for _ in range(2)]
    [0, 1]
    >>> batch.take_done()  # the next offset to commit
    {('metrics', 0): 2}
    """

    entries: deque[Entry]
    done: dict[TP, int] = field(default_factory=dict)  # next offset to commit, per partition
    one_by_one: int = 0  # the next entries are written one per call, to find a rejected one
    attempts: int = 0

    def pop(self) -> Entry:
        """Take the first entry off, written or dead-lettered: its offset is done."""
        entry = self.entries.popleft()
        tp = entry.tp
        self.done[tp] = max(self.done.get(tp, 0), entry.message.offset() + 1)
        self.one_by_one = max(0, self.one_by_one - 1)
        return entry

    def chunk(self, max_lines: int) -> list[Entry]:
        """The entries of the next write call, from the front: whole messages up to
        ``max_lines`` lines (at least one message), none past a dead letter."""
        if self.one_by_one:
            return [self.entries[0]]
        chunk: list[Entry] = []
        n_lines = 0
        for entry in self.entries:
            if entry.dead is not None:
                break
            if chunk and n_lines + len(entry.lines) > max_lines:
                break
            chunk.append(entry)
            n_lines += len(entry.lines)
        return chunk

    def take_done(self) -> dict[TP, int]:
        """The offsets done since the last call, which the batch then forgets."""
        done, self.done = self.done, {}
        return done

    def drop(self, partitions: set[TP]) -> int:
        """Forget the entries of ``partitions`` (revoked from the writer); returns how many."""
        kept = [entry for entry in self.entries if entry.tp not in partitions]
        dropped = len(self.entries) - len(kept)
        self.entries = deque(kept)
        self.one_by_one = min(self.one_by_one, len(kept))
        return dropped
