"""Process-wide tuning for the long-running parts (called once, by the service commands).

CPython's cyclic garbage collector starts a young-generation pass every 700 container
allocations. Stage 1 allocates a dict or two per event (the decoded features, the scores), so
at 100k events/s it ran a collection every few microseconds of work and every so often a full
one over all the long-lived objects (reference profiles, the loaded modules): 17 % of ingest's
time in ``benchmarks/e2e.py``. The events' own objects are freed by reference counting; the
collector only needs to find cycles, which the hot path does not make.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 50_000


def tune_gc(young: int = YOUNG_THRESHOLD) -> tuple[int, int, int]:
    """Move everything allocated so far out of the collector's sight and let the young
    generation grow to ``young`` objects between passes; returns the previous thresholds.

    >>> previous = tune_gc()
    >>> gc.get_threshold()[0]
    50000
    >>> gc.set_threshold(*previous)
    """
    previous = gc.get_threshold()
    gc.freeze()  # the start-up heap (modules, settings, profiles) is never garbage
    gc.set_threshold(young, previous[1], previous[2])
    return previous
