"""Containment in stage 1: a batch that fails to apply is applied again in parts, and each
event that fails on its own becomes a dead letter while the stream goes on.

When :meth:`~driftline.streams.partition.PartitionWorker.apply_split` raises, nothing of the
batch is written (the store is the truth). :func:`contain` tells the store's failures from the
events': the former are tried again with back-off, then stop the process with an error naming
the store; for the latter, the batches before are settled, the worker forgets the failed one
(:meth:`~driftline.streams.partition.PartitionWorker.reset`) and the batch is applied again in
halves, down to single events, each part sent and written as usual; an event that fails alone
is dead-lettered with kind ``processing_error`` and the exception as its reason
(:meth:`~driftline.streams.partition.PartitionWorker.reject`). The usual batch pays nothing
for this: the loop catches per batch, not per event.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from driftline.deadletter import RawMessage
from driftline.errors import StateStoreError
from driftline.streams.delivery import RETRY_DELAY, STORE_ATTEMPTS, not_the_events_fault
from driftline.streams.partition import PartitionWorker
from driftline.streams.result import ApplyResult

log = logging.getLogger(__name__)
Tagged = tuple[RawMessage, bool]
"""A message of a batch and whether it came from the predictions topic."""
Settle = Callable[[], None]
"""Waits for every output sent so far and writes the batches that made them."""
Queue = Callable[[PartitionWorker, ApplyResult], None]
"""Sends a batch's outputs; the batch is written at the next settle."""


def contain(
    worker: PartitionWorker,
    from_predictions: list[RawMessage],
    from_truth: list[RawMessage],
    now_ms: int,
    error: Exception,
    *,
    settle: Settle,
    queue: Queue,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Apply a batch whose ``apply_split`` raised ``error``, dead-lettering the events that
    fail on their own; raise :class:`~driftline.errors.StateStoreError` when the failure is
    the store's and persists."""
    delay = RETRY_DELAY
    attempt = 1
    while not_the_events_fault(error):
        if attempt == STORE_ATTEMPTS:
            raise _store_failed(worker, f"applying a batch failed {attempt} times", error)
        log.warning(
            "partition %d: applying a batch failed (%s: %s); retrying in %.1f s",
            worker.partition,
            type(error).__name__,
            error,
            delay,
        )
        sleep(delay)
        delay *= 2
        attempt += 1
        settle()
        worker.reset()
        try:
            queue(worker, worker.apply_split(from_predictions, from_truth, now_ms))
        except Exception as exc:
            error = exc
        else:
            return
    log.warning(
        "partition %d: applying a batch of %d messages failed (%s: %s); applying it again in "
        "parts to dead-letter the events that fail on their own",
        worker.partition,
        len(from_predictions) + len(from_truth),
        type(error).__name__,
        error,
    )
    settle()  # every batch before this one is written: the store is the truth
    worker.reset()
    tagged = [(m, True) for m in from_predictions] + [(m, False) for m in from_truth]
    _bisect(worker, tagged, now_ms, error, settle, queue)


def _bisect(
    worker: PartitionWorker,
    tagged: list[Tagged],
    now_ms: int,
    error: Exception,
    settle: Settle,
    queue: Queue,
) -> None:
    """Apply ``tagged``, which failed as a whole with ``error``, in halves and in order; a
    single message that fails is dead-lettered."""
    if len(tagged) == 1:
        queue(worker, worker.reject(tagged[0][0], error, now_ms))
        return
    half = len(tagged) // 2
    for part in (tagged[:half], tagged[half:]):
        predictions = [message for message, is_prediction in part if is_prediction]
        truths = [message for message, is_prediction in part if not is_prediction]
        try:
            result = worker.apply_split(predictions, truths, now_ms)
        except Exception as exc:
            if not_the_events_fault(exc):
                raise _store_failed(worker, "applying a batch again failed", exc) from exc
            settle()
            worker.reset()
            _bisect(worker, part, now_ms, exc, settle, queue)
        else:
            queue(worker, result)


def _store_failed(worker: PartitionWorker, what: str, exc: BaseException) -> StateStoreError:
    return StateStoreError(
        f"partition {worker.partition}: {what}, not because of its events "
        f"({type(exc).__name__}: {exc}); stopping",
        path=str(worker.store.path),
    )
