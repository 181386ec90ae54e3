"""Process-wide tuning for the long-running parts (called once, by the service commands).

CPython's cyclic garbage collector starts a young-generation pass after a few hundred
container allocations (its default threshold). Stage 1 allocates a dict or two per event (the
decoded features, the scores), so it ran a collection every few hundred events and every so
often a full one over all the long-lived objects (reference profiles, the loaded modules): a
sizeable share of ingest's time in ``benchmarks/e2e.py``. The events' own objects are freed
by reference counting; the collector only needs to find cycles, which the hot path does not
make.

glibc's allocator keeps memory freed by Python and RocksDB for reuse rather than returning it;
over millions of predictions that free-but-kept memory grows while everything in use outside
RocksDB does not (``benchmarks/e2e.py`` reports both). :func:`trim_heap`, called with the
periodic expiry, hands it back.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import os
import signal
from collections.abc import Callable

YOUNG_THRESHOLD = 50_000
_PR_SET_PDEATHSIG = 1


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


def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
        return trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        return None


_TRIM = _malloc_trim()


def trim_heap() -> bool:
    """Return the allocator's free memory to the system (glibc); False where unsupported.

    >>> trim_heap() in (True, False)
    True
    """
    if _TRIM is None:
        return False
    _TRIM(0)
    return True


def die_with_parent(parent: int) -> None:
    """Ask Linux to SIGKILL this process when its parent dies (best effort elsewhere); exits
    at once if ``parent`` already died before the request took effect. Called first thing
    in a child process (a training, a stage-1 process), so none outlives a killed parent."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)
