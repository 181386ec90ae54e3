"""Counts of one column over a reference's frozen bins or categories, and their state.

A :class:`NumericColumnSummary` counts a numeric column over the reference's quantile bins (plus
nulls, type errors and out-of-range values); a :class:`CategoricalColumnSummary` counts a
categorical column over the profile's categories plus one other slot, counting apart the values
that the reference never held (unseen: in neither its top-K nor its tail) and naming a bounded,
deterministic sample of them. Both fold whole columns at once (one
``np.searchsorted`` or one C-level dict look-up per value, then one ``np.bincount``), merge
exactly by addition, and turn into a plain :data:`ColumnState` for an encoding.
"""

from __future__ import annotations

import heapq
import math
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any, Literal, TypeAlias

import msgspec
import numpy as np

from driftline.detectors.fold import fold_numeric
from driftline.detectors.values import (
    FloatArray,
    IntArray,
    ObjectArray,
    category_codes,
    category_index,
    readonly,
)
from driftline.errors import StatisticsError
from driftline.schemas.reference import CategoricalProfile, NumericProfile

__all__ = [
    "CategoricalColumnState",
    "CategoricalColumnSummary",
    "ColumnState",
    "ColumnSummary",
    "NumericColumnState",
    "NumericColumnSummary",
    "column_summary",
]


class NumericColumnState(msgspec.Struct, array_like=True, frozen=True, tag="n"):
    """What a :class:`NumericColumnSummary` holds, as plain data for an encoding."""

    counts: list[int]
    nulls: int
    type_errors: int


class CategoricalColumnState(msgspec.Struct, array_like=True, frozen=True, tag="c"):
    """What a :class:`CategoricalColumnSummary` holds, as plain data for an encoding."""

    counts: list[int]
    nulls: int
    unseen: dict[str, int]
    # None (a state encoded before the profile kept its tail): every value of the other slot.
    unseen_total: int | None = None


ColumnState: TypeAlias = NumericColumnState | CategoricalColumnState


class NumericColumnSummary:
    """Counts of one numeric column over the reference's frozen bins.

    ``counts`` has ``len(edges) + 1`` entries, bin ``i`` being ``[edges[i-1], edges[i])`` with
    open outer bins, exactly as :class:`~driftline.schemas.reference.NumericProfile` defines
    them, so drift tests consume it against the profile's ``probabilities`` directly. Missing
    values are counted in ``nulls`` (and values that were not numbers in ``type_errors``),
    never in the bins; ``below_range`` / ``above_range`` count values outside the reference's
    ``[minimum, maximum]`` (they are also in the outer bins).

    Examples
    --------
    >>> from driftline.schemas import NumericProfile
    >>> col = NumericColumnSummary(NumericProfile(edges=[1.0, 2.0], probabilities=[0.25, 0.5,
    ...     0.25], minimum=0.5, maximum=2.5, count=4))
    >>> col.fold(np.array([0.0, 1.0, 1.5, 3.0, np.nan])).counts.tolist()
    [1, 2, 1]
    >>> col.nulls, col.below_range, col.above_range
    (1, 1, 1)
    """

    __slots__ = ("_counts", "_edges", "_nulls", "_ranged", "_type_errors")

    kind: Literal["numeric"] = "numeric"

    def __init__(self, profile: NumericProfile) -> None:
        edges = np.asarray(profile.edges, dtype=np.float64)
        low, high = profile.minimum, profile.maximum
        self._ranged = False
        if low is not None and high is not None:
            self._ranged = edges.shape[0] == 0 or bool(low <= edges[0] <= edges[-1] <= high)
        if self._ranged and low is not None and high is not None:
            # Values below the minimum land before it and values above the maximum after its
            # successor, so the one searchsorted also yields the out-of-range counts.
            top = math.nextafter(high, math.inf)
            edges = np.concatenate((np.array([low]), edges, np.array([top])))
        self._edges = edges
        self.reset()

    def reset(self) -> None:
        """Forget everything folded so far."""
        self._counts = np.zeros(self._edges.shape[0] + 1, dtype=np.int64)
        self._nulls = 0
        self._type_errors = 0

    def fold(self, values: FloatArray, type_errors: int = 0) -> NumericColumnSummary:
        """Count a float64 column (NaN = missing, ``type_errors`` of them not numbers)."""
        missing = int(np.count_nonzero(np.isnan(values)))
        counts = np.bincount(
            np.searchsorted(self._edges, values, side="right"), minlength=self._counts.shape[0]
        )
        counts[-1] -= missing  # NaN sorts after everything
        self._counts += counts
        self._nulls += missing - type_errors
        self._type_errors += type_errors
        return self

    @staticmethod
    def fold_feature_dicts(
        columns: Mapping[str, NumericColumnSummary], dicts: list[dict[str, Any]]
    ) -> None:
        """Count each named column's values straight from feature dicts, in one pass.

        The same counts as ``columns[name].fold(to_numeric([d.get(name) for d in dicts]))``
        for every name, without building the columns
        (:func:`~driftline.detectors.fold.fold_numeric`).
        """
        tallies = fold_numeric(
            dicts,
            tuple(columns),
            tuple(column._edges for column in columns.values()),
            tuple(column._counts for column in columns.values()),
        )
        for column, (missing, errors) in zip(columns.values(), tallies, strict=True):
            column._nulls += missing - errors
            column._type_errors += errors

    def merge(self, other: NumericColumnSummary) -> NumericColumnSummary:
        """A new column summary holding both (of the same profile column); exact."""
        merged = self.copy()
        merged._counts += other._counts
        merged._nulls += other._nulls
        merged._type_errors += other._type_errors
        return merged

    def copy(self) -> NumericColumnSummary:
        """An independent copy."""
        new = object.__new__(NumericColumnSummary)
        new._edges = self._edges
        new._ranged = self._ranged
        new._counts = self._counts.copy()
        new._nulls, new._type_errors = self._nulls, self._type_errors
        return new

    @property
    def counts(self) -> IntArray:
        """Values per reference bin, int64, length ``len(edges) + 1`` (read-only)."""
        if not self._ranged:
            return readonly(self._counts)
        inner = self._counts[1:-1].copy()
        inner[0] += self._counts[0]
        inner[-1] += self._counts[-1]
        return readonly(inner)

    @property
    def n(self) -> int:
        """Non-missing numeric values counted."""
        return int(self._counts.sum())

    @property
    def nulls(self) -> int:
        """Missing values (None, NaN, or the feature absent from the event)."""
        return self._nulls

    @property
    def type_errors(self) -> int:
        """Values that were not numbers (strings, booleans)."""
        return self._type_errors

    @property
    def below_range(self) -> int:
        """Values below the reference minimum."""
        return int(self._counts[0]) if self._ranged else 0

    @property
    def above_range(self) -> int:
        """Values above the reference maximum."""
        return int(self._counts[-1]) if self._ranged else 0

    def state(self) -> NumericColumnState:
        """Everything folded, as plain data (see :meth:`restore`)."""
        return NumericColumnState(self._counts.tolist(), self._nulls, self._type_errors)

    def restore(self, state: ColumnState) -> None:
        """Take over a :meth:`state` of a column of the same profile column."""
        if not isinstance(state, NumericColumnState):
            raise StatisticsError("a numeric column was encoded as a categorical one")
        if len(state.counts) != self._counts.shape[0]:
            raise StatisticsError(
                f"{len(state.counts)} bins encoded, the profile has {self._counts.shape[0]}"
            )
        self._counts = np.array(state.counts, dtype=np.int64)
        self._nulls, self._type_errors = state.nulls, state.type_errors

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NumericColumnSummary):
            return NotImplemented
        return (
            np.array_equal(self._edges, other._edges)
            and np.array_equal(self._counts, other._counts)
            and (self._nulls, self._type_errors) == (other._nulls, other._type_errors)
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"NumericColumnSummary(n={self.n}, bins={self.counts.shape[0]}, nulls={self.nulls})"


def _unseen_order(name: str) -> tuple[int, str]:
    # A stable hash (not Python's salted hash()): every worker must keep the same names.
    return zlib.crc32(name.encode("utf-8", "surrogatepass")), name


class CategoricalColumnSummary:
    """Counts of one categorical column, aligned with the profile's category order.

    ``counts`` has ``len(categories) + 1`` entries: the profile's categories in their order,
    then one slot for everything else (the profile's ``other``: values outside its top-K,
    whether in its ``tail`` or never seen in the reference); these are the drift tests' bins.
    ``unseen_total`` counts the values of that last slot that are in neither list (all of them
    for a profile without a tail), so a category the reference never held is unseen whatever
    its cardinality. ``unseen`` names them with their counts; when more than ``unseen_cap``
    distinct names turn up it keeps the ``unseen_cap`` names with the smallest CRC-32, a
    deterministic sample that merges exactly (every kept name's count is exact), while
    ``unseen_total`` always counts all.

    Examples
    --------
    >>> from driftline.schemas import CategoricalProfile
    >>> col = CategoricalColumnSummary(CategoricalProfile(categories={"FR": 0.75, "DE": 0.25},
    ...                                                   count=4))
    >>> col.fold(np.array(["DE", "FR", "IT", None, "IT"], dtype=object)).counts.tolist()
    [1, 1, 2]
    >>> col.unseen, col.nulls
    ({'IT': 2}, 1)
    >>> col = CategoricalColumnSummary(CategoricalProfile(categories={"FR": 0.75}, other=0.25,
    ...                                                   tail=["DE"], unseen_rate=0.0, count=4))
    >>> col.fold(np.array(["DE", "FR", "IT", None, "IT"], dtype=object)).counts.tolist()
    [1, 3]
    >>> col.unseen, col.unseen_total
    ({'IT': 2}, 2)
    """

    __slots__ = (
        "_cap",
        "_categories",
        "_counts",
        "_index",
        "_nulls",
        "_unseen",
        "_unseen_total",
    )

    kind: Literal["categorical"] = "categorical"

    def __init__(self, profile: CategoricalProfile, unseen_cap: int = 100) -> None:
        self._categories = tuple(profile.categories)
        self._index = category_index(self._categories, profile.tail)
        self._cap = unseen_cap
        self.reset()

    def reset(self) -> None:
        """Forget everything folded so far."""
        self._counts = np.zeros(len(self._categories) + 1, dtype=np.int64)
        self._nulls = 0
        self._unseen: dict[str, int] = {}
        self._unseen_total = 0

    def fold(self, values: ObjectArray) -> CategoricalColumnSummary:
        """Count an object column of category keys (None = missing)."""
        k = len(self._categories)
        # Slots: the categories, k for the tail, k + 1 missing, k + 2 in neither list.
        codes = category_codes(self._index, values, default=k + 2)
        counts = np.bincount(codes, minlength=k + 3)
        unseen = int(counts[k + 2])
        self._counts[:k] += counts[:k]
        self._counts[k] += int(counts[k]) + unseen
        self._nulls += int(counts[k + 1])
        if unseen:
            self._unseen_total += unseen
            self._add_unseen(Counter(values[codes == k + 2].tolist()).items())
        return self

    def _add_unseen(self, items: Iterable[tuple[str, int]]) -> None:
        unseen = self._unseen
        for name, count in items:
            unseen[name] = unseen.get(name, 0) + count
        if len(unseen) > self._cap:
            keep = heapq.nsmallest(self._cap, unseen, key=_unseen_order)
            self._unseen = {name: unseen[name] for name in keep}

    def merge(self, other: CategoricalColumnSummary) -> CategoricalColumnSummary:
        """A new column summary holding both (of the same profile column); exact."""
        merged = self.copy()
        merged._counts += other._counts
        merged._nulls += other._nulls
        merged._unseen_total += other._unseen_total
        merged._add_unseen(other._unseen.items())
        return merged

    def copy(self) -> CategoricalColumnSummary:
        """An independent copy."""
        new = object.__new__(CategoricalColumnSummary)
        new._categories, new._index = self._categories, self._index
        new._cap = self._cap
        new._counts = self._counts.copy()
        new._nulls = self._nulls
        new._unseen = dict(self._unseen)
        new._unseen_total = self._unseen_total
        return new

    @property
    def categories(self) -> tuple[str, ...]:
        """The profile's categories, in the order of ``counts``."""
        return self._categories

    @property
    def counts(self) -> IntArray:
        """Values per profile category, then the other/unseen slot (int64, read-only)."""
        return readonly(self._counts)

    @property
    def n(self) -> int:
        """Non-missing values counted."""
        return int(self._counts.sum())

    @property
    def nulls(self) -> int:
        """Missing values (None, NaN, or the feature absent from the event)."""
        return self._nulls

    @property
    def type_errors(self) -> int:
        """Always 0: any value can be counted as a category."""
        return 0

    @property
    def unseen(self) -> dict[str, int]:
        """Values in neither the profile's categories nor its tail, by name (at most
        ``unseen_cap`` names)."""
        return dict(self._unseen)

    @property
    def unseen_total(self) -> int:
        """All values in neither the profile's categories nor its tail."""
        return self._unseen_total

    def state(self) -> CategoricalColumnState:
        """Everything folded, as plain data (see :meth:`restore`)."""
        # Sorted, so equal summaries encode to equal bytes whatever order names arrived in.
        return CategoricalColumnState(
            self._counts.tolist(),
            self._nulls,
            dict(sorted(self._unseen.items())),
            self._unseen_total,
        )

    def restore(self, state: ColumnState) -> None:
        """Take over a :meth:`state` of a column of the same profile column."""
        if not isinstance(state, CategoricalColumnState):
            raise StatisticsError("a categorical column was encoded as a numeric one")
        if len(state.counts) != self._counts.shape[0]:
            raise StatisticsError(
                f"{len(state.counts)} category slots encoded, the profile has "
                f"{self._counts.shape[0]}"
            )
        self._counts = np.array(state.counts, dtype=np.int64)
        self._nulls = state.nulls
        self._unseen = dict(state.unseen)
        total = state.unseen_total
        self._unseen_total = int(self._counts[-1]) if total is None else total
        if not 0 <= self._unseen_total <= self._counts[-1]:
            raise StatisticsError(
                f"{self._unseen_total} unseen values encoded, more than the other slot's "
                f"{int(self._counts[-1])}"
            )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CategoricalColumnSummary):
            return NotImplemented
        return (
            self._categories == other._categories
            and np.array_equal(self._counts, other._counts)
            and self._nulls == other._nulls
            and self._unseen_total == other._unseen_total
            and self._unseen == other._unseen
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"CategoricalColumnSummary(n={self.n}, categories={len(self._categories)}, "
            f"unseen_total={self.unseen_total}, nulls={self.nulls})"
        )


ColumnSummary: TypeAlias = NumericColumnSummary | CategoricalColumnSummary


def column_summary(profile: NumericProfile | CategoricalProfile, unseen_cap: int) -> ColumnSummary:
    """An empty summary of a column of ``profile``'s kind."""
    if isinstance(profile, NumericProfile):
        return NumericColumnSummary(profile)
    return CategoricalColumnSummary(profile, unseen_cap)
