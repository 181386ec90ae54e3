"""The compiled numeric fold against NumPy and a plain searchsorted oracle, bit for bit."""

from __future__ import annotations

import bisect
import json
import math
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeAlias
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driftline.detectors import fold as fold_module
from driftline.detectors import multivariate as multivariate_module
from driftline.detectors.batch import columns_from_events
from driftline.detectors.columns import NumericColumnSummary
from driftline.detectors.fold import _fold_numeric_numpy, fold_numeric
from driftline.detectors.multivariate import (
    ERROR_CAP,
    MultivariateSummary,
    reconstruction_errors,
)
from driftline.detectors.profile import build_profile
from driftline.detectors.summary import PaneSummary
from driftline.schemas import ReferenceProfile, WirePrediction, decode_prediction
from driftline.schemas.reference import MultivariateProfile, NumericProfile

Kernel: TypeAlias = Callable[..., list[tuple[int, int]] | None]
Dicts: TypeAlias = list[dict[str, Any]]
Case: TypeAlias = tuple[Dicts, tuple[str, ...], tuple[np.ndarray, ...], list[list[int]]]

NOT_BUILT = "compiled speed-up not built (no C compiler at install)"
NAMES = ("a", "b", "c", "d")
SPECIAL_FLOATS = [
    0.0,
    -0.0,
    math.nan,
    math.inf,
    -math.inf,
    5e-324,
    -5e-324,
    2.2250738585072014e-308,
    1.7976931348623157e308,
    -1.7976931348623157e308,
    0.1,
    1.0,
    2.0**53,
    2.0**63,
    -(2.0**63),
]
BOUNDARY_INTS = [
    0,
    1,
    -1,
    2**53,
    2**53 + 1,
    -(2**53) - 1,
    2**63 - 1,
    2**63,
    -(2**63),
    -(2**63) - 1,
    2**64,
    2**1023,
    -(2**1023),
]


@pytest.fixture(scope="module")
def compiled() -> Kernel:
    """The C kernel itself; skips only when the extension was not built."""
    module = pytest.importorskip("driftline.detectors._fold", reason=NOT_BUILT)
    kernel: Kernel = module.fold_numeric
    return kernel


# --- strategies -------------------------------------------------------------------------------

plain_values = (
    st.floats()
    | st.sampled_from(SPECIAL_FLOATS)
    | st.integers(min_value=-(2**1000), max_value=2**1000)
    | st.sampled_from(BOUNDARY_INTS)
    | st.booleans()
    | st.none()
    | st.text(max_size=4)
)
edge_values = st.floats(allow_nan=False) | st.sampled_from(
    [v for v in SPECIAL_FLOATS if not math.isnan(v)] + [float(v) for v in BOUNDARY_INTS]
)


@st.composite
def fold_cases(draw: st.DrawFn) -> Case:
    """Feature dicts, names, sorted (possibly empty or repeated) edges and pre-filled counts."""
    names = tuple(draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=len(NAMES))))
    edges = []
    for _ in names:
        drawn = sorted(draw(st.lists(edge_values, max_size=8)))
        if drawn and draw(st.booleans()):
            drawn = sorted(drawn + drawn[: draw(st.integers(1, len(drawn)))])  # repeat edges
        edges.append(np.array(drawn, dtype=np.float64))
    pool = [float(e) for column in edges for e in column]
    pool_ints = [int(e) for e in pool if math.isfinite(e) and e.is_integer()]
    value = plain_values
    if pool:  # values exactly on an edge, as floats and as the equal ints
        value = value | st.sampled_from(pool)
    if pool_ints:
        value = value | st.sampled_from(pool_ints)
    row = st.dictionaries(st.sampled_from([*NAMES, "other"]), value, max_size=5)
    dicts = draw(st.lists(row, max_size=30))
    counts = [
        draw(st.lists(st.integers(0, 2**40), min_size=e.size + 1, max_size=e.size + 1))
        for e in edges
    ]
    return dicts, names, tuple(edges), counts


def int64_counts(counts: list[list[int]]) -> tuple[np.ndarray, ...]:
    return tuple(np.array(c, dtype=np.int64) for c in counts)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def oracle(
    dicts: Dicts, names: tuple[str, ...], edges: tuple[np.ndarray, ...]
) -> tuple[list[list[int]], list[tuple[int, int]]]:
    """Bins by ``np.searchsorted(side="right")`` + ``np.bincount``; tallies by direct count."""
    bins, tallies = [], []
    for name, column in zip(names, edges, strict=True):
        raw = [d.get(name) for d in dicts]
        numbers = [float(v) for v in raw if _is_number(v) and not math.isnan(v)]
        errors = sum(1 for v in raw if isinstance(v, bool | str))
        x = np.array(numbers, dtype=np.float64)
        binned = np.bincount(
            np.searchsorted(column, x, side="right"), minlength=column.size + 1
        ).tolist()
        # The oracle checks itself against bisect (plain Python float comparisons).
        direct = [0] * (column.size + 1)
        for v in numbers:
            direct[bisect.bisect_right(column.tolist(), v)] += 1
        assert binned == direct
        bins.append(binned)
        tallies.append((len(raw) - len(numbers), errors))
    return bins, tallies


# --- the kernel against its oracles -----------------------------------------------------------


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fold_cases())
def test_compiled_kernel_matches_numpy_and_the_searchsorted_oracle(
    compiled: Kernel, case: Case
) -> None:
    """C kernel, NumPy path and searchsorted oracle add the same bins and give the same tallies."""
    dicts, names, edges, start = case
    c_counts, np_counts = int64_counts(start), int64_counts(start)
    c_tallies = compiled(dicts, names, edges, c_counts)
    np_tallies = _fold_numeric_numpy(dicts, names, edges, np_counts)
    bins, tallies = oracle(dicts, names, edges)
    expected = [
        [s + b for s, b in zip(s0, b0, strict=True)] for s0, b0 in zip(start, bins, strict=True)
    ]
    assert c_tallies == np_tallies == tallies
    assert [c.tolist() for c in c_counts] == [c.tolist() for c in np_counts] == expected
    assert all(c.dtype == np.int64 for c in c_counts)


@settings(max_examples=100, deadline=None)
@given(fold_cases())
def test_public_fold_numeric_matches_the_oracle(case: Case) -> None:
    """fold_numeric (whichever path it takes) adds the oracle's bins in place."""
    dicts, names, edges, start = case
    counts = int64_counts(start)
    bins, tallies = oracle(dicts, names, edges)
    assert fold_numeric(dicts, names, edges, counts) == tallies
    assert [c.tolist() for c in counts] == [
        [s + b for s, b in zip(s0, b0, strict=True)] for s0, b0 in zip(start, bins, strict=True)
    ]


def test_compiled_kernel_counts_values_on_edges_into_the_bin_they_open(compiled: Kernel) -> None:
    """A value equal to an edge (or to a run of repeated edges) lands right of all of them."""
    edges = (np.array([-1.0, 0.0, 0.0, 0.0, 2.0**53, math.inf]),)
    values = [-1.0, -0.0, 0, 0.0, 2**53 + 1, 2.0**53, math.inf, -math.inf, 1e-300, -1e-300]
    counts = (np.array([5, 0, 0, 0, 0, 0, 0], dtype=np.int64),)
    tallies = compiled([{"x": v} for v in values], ("x",), edges, counts)
    assert tallies == [(0, 0)]
    # -inf | -1.0, -1e-300 | (empty) x2 | -0.0, 0, 0.0, 1e-300 | 2**53 + 1 (rounds), 2**53 | inf
    assert counts[0].tolist() == [5 + 1, 2, 0, 0, 4, 2, 1]


def test_public_fold_numeric_uses_the_compiled_kernel_when_built(compiled: Kernel) -> None:
    """When the extension is built, fold_numeric calls it (no silent NumPy fallback)."""
    assert fold_module._compiled_fold_numeric is compiled


def test_compiled_kernel_tallies_missing_and_type_errors(compiled: Kernel) -> None:
    """None, absent and NaN are missing; bools and strings are missing type errors."""
    dicts: Dicts = [{"x": None}, {}, {"x": math.nan}, {"x": True}, {"x": "1.5"}, {"x": 1.5}]
    counts = (np.zeros(2, dtype=np.int64),)
    assert compiled(dicts, ("x",), (np.array([1.0]),), counts) == [(5, 2)]
    assert counts[0].tolist() == [0, 1]


def test_compiled_kernel_with_no_names_or_no_dicts_counts_nothing(compiled: Kernel) -> None:
    """Empty names give an empty list; empty dicts give zero tallies and unchanged counts."""
    assert compiled([{"x": 1.0}], (), (), ()) == []
    counts = (np.array([3, 4], dtype=np.int64),)
    assert compiled([], ("x",), (np.array([0.0]),), counts) == [(0, 0)]
    assert counts[0].tolist() == [3, 4]


# --- values the kernel declines ---------------------------------------------------------------

UNSUPPORTED = {
    "numpy int64": np.int64(3),
    "numpy float32": np.float32(1.5),
    "numpy bool": np.bool_(True),
    "list": [1],
    "dict": {"a": 1},
    "int beyond float64": 10**400,
    "negative int beyond float64": -(10**400),
    "int rounding to 2**1024": 2**1024 - 1,
}


@pytest.mark.parametrize("bad", UNSUPPORTED.values(), ids=UNSUPPORTED.keys())
def test_compiled_kernel_declines_unknown_values_and_changes_nothing(
    compiled: Kernel, bad: object
) -> None:
    """An unknown value, even after good dicts, makes the kernel return None, counts untouched."""
    dicts: Dicts = [{"x": 1.5, "y": 0.5}, {"x": "s", "y": None}, {"x": 0.2, "y": bad}, {"x": 9}]
    names = ("x", "y")
    edges = (np.array([0.0, 1.0]), np.array([1.0]))
    counts = (np.array([7, 8, 9], dtype=np.int64), np.array([1, 2], dtype=np.int64))
    assert compiled(dicts, names, edges, counts) is None
    assert [c.tolist() for c in counts] == [[7, 8, 9], [1, 2]]


@pytest.mark.parametrize("bad", UNSUPPORTED.values(), ids=UNSUPPORTED.keys())
def test_public_fold_numeric_falls_back_to_numpy_on_declined_values(bad: object) -> None:
    """fold_numeric then gives exactly what the NumPy path gives (result or error)."""
    dicts: Dicts = [{"x": 1.5, "y": 0.5}, {"x": "s", "y": None}, {"x": 0.2, "y": bad}, {"x": 9}]
    names = ("x", "y")
    edges = (np.array([0.0, 1.0]), np.array([1.0]))

    def start() -> tuple[np.ndarray, ...]:
        return np.array([7, 8, 9], dtype=np.int64), np.array([1, 2], dtype=np.int64)

    public, reference = start(), start()
    try:
        expected: object = _fold_numeric_numpy(dicts, names, edges, reference)
    except OverflowError as exc:  # NumPy cannot convert ints beyond float64 either
        with pytest.raises(OverflowError, match=re.escape(str(exc))):
            fold_numeric(dicts, names, edges, public)
    else:
        assert fold_numeric(dicts, names, edges, public) == expected
    assert [c.tolist() for c in public] == [c.tolist() for c in reference]


def test_compiled_kernel_declines_a_non_dict_row(compiled: Kernel) -> None:
    """A row that is not a dict is declined (None) with nothing counted."""
    counts = (np.zeros(2, dtype=np.int64),)
    assert compiled([{"x": 1.0}, [("x", 1.0)]], ("x",), (np.array([0.0]),), counts) is None
    assert counts[0].tolist() == [0, 0]


# --- bad arguments ----------------------------------------------------------------------------


def _args(**changes: Any) -> tuple[Any, ...]:
    args: dict[str, Any] = {
        "dicts": [{"x": 1.0, "y": 2.0}],
        "names": ("x", "y"),
        "edges": (np.array([0.0]), np.array([0.0, 1.0])),
        "counts": (np.zeros(2, dtype=np.int64), np.zeros(3, dtype=np.int64)),
    }
    args.update(changes)
    return args["dicts"], args["names"], args["edges"], args["counts"]


BAD_ARGUMENTS: dict[str, tuple[tuple[Any, ...], type[Exception], str]] = {
    "float64 counts": (
        _args(counts=(np.zeros(2, dtype=np.int64), np.zeros(3))),
        TypeError,
        r"counts\[1\] must be a 1-D int64 buffer, got format d",
    ),
    "int32 counts": (
        _args(counts=(np.zeros(2, dtype=np.int32), np.zeros(3, dtype=np.int64))),
        TypeError,
        r"counts\[0\] must be a 1-D int64 buffer",
    ),
    "uint64 counts": (
        _args(counts=(np.zeros(2, dtype=np.uint64), np.zeros(3, dtype=np.int64))),
        TypeError,
        r"counts\[0\] must be a 1-D int64 buffer",
    ),
    "2-D counts": (
        _args(counts=(np.zeros((1, 2), dtype=np.int64), np.zeros(3, dtype=np.int64))),
        TypeError,
        r"counts\[0\] must be a 1-D int64 buffer",
    ),
    "counts too short": (
        _args(counts=(np.zeros(2, dtype=np.int64), np.zeros(2, dtype=np.int64))),
        ValueError,
        r"counts\[1\] must have len\(edges\[1\]\) \+ 1 entries",
    ),
    "counts too long": (
        _args(counts=(np.zeros(3, dtype=np.int64), np.zeros(3, dtype=np.int64))),
        ValueError,
        r"counts\[0\] must have len\(edges\[0\]\) \+ 1 entries",
    ),
    "float32 edges": (
        _args(edges=(np.array([0.0], dtype=np.float32), np.array([0.0, 1.0]))),
        TypeError,
        r"edges\[0\] must be a 1-D float64 buffer",
    ),
    "int64 edges": (
        _args(edges=(np.array([0.0]), np.array([0, 1], dtype=np.int64))),
        TypeError,
        r"edges\[1\] must be a 1-D float64 buffer",
    ),
    "names a list": (_args(names=["x", "y"]), TypeError, r"argument 2 must be tuple, not list"),
    "names a str": (_args(names="xy"), TypeError, r"argument 2 must be tuple, not str"),
    "name not a str": (_args(names=("x", b"y")), TypeError, r"names\[1\] must be a str"),
    "dicts a tuple": (_args(dicts=({"x": 1.0},)), TypeError, r"argument 1 must be list"),
    "edges a list": (
        _args(edges=[np.array([0.0]), np.array([0.0, 1.0])]),
        TypeError,
        r"argument 3 must be tuple",
    ),
    "counts a list": (
        _args(counts=[np.zeros(2, dtype=np.int64), np.zeros(3, dtype=np.int64)]),
        TypeError,
        r"argument 4 must be tuple",
    ),
    "fewer edges than names": (
        _args(edges=(np.array([0.0]),)),
        ValueError,
        r"names, edges and counts must have the same length",
    ),
    "fewer counts than names": (
        _args(counts=(np.zeros(2, dtype=np.int64),)),
        ValueError,
        r"names, edges and counts must have the same length",
    ),
}


@pytest.mark.parametrize(
    ("args", "error", "message"), BAD_ARGUMENTS.values(), ids=BAD_ARGUMENTS.keys()
)
def test_compiled_kernel_rejects_bad_arguments_naming_them(
    compiled: Kernel, args: tuple[Any, ...], error: type[Exception], message: str
) -> None:
    """Wrong types, dtypes or lengths raise TypeError/ValueError naming the argument."""
    before = [c.copy() for c in args[3] if isinstance(c, np.ndarray)]
    with pytest.raises(error, match=message):
        compiled(*args)
    after = [c for c in args[3] if isinstance(c, np.ndarray)]
    assert all(np.array_equal(b, a) for b, a in zip(before, after, strict=True))


def test_compiled_kernel_refuses_read_only_or_strided_counts(compiled: Kernel) -> None:
    """Counts it cannot write in place (read-only, not contiguous) raise ValueError."""
    read_only = np.zeros(2, dtype=np.int64)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        compiled([{"x": 1.0}], ("x",), (np.array([0.0]),), (read_only,))
    strided = np.zeros(4, dtype=np.int64)[::2]
    with pytest.raises(ValueError, match="contiguous"):
        compiled([{"x": 1.0}], ("x",), (np.array([0.0]),), (strided,))
    assert read_only.tolist() == [0, 0]
    assert strided.tolist() == [0, 0]


# --- PaneSummary.fold_events against fold(columns_from_events(...)) ---------------------------

_RNG = np.random.default_rng(20261122)
_N = 400
_AMOUNT = _RNG.lognormal(3.0, 1.0, size=_N)
_P1 = _RNG.uniform(size=_N)
BINARY = build_profile(
    "fraud",
    "3",
    "binary",
    {
        "amount": _AMOUNT,
        "age": _RNG.integers(18, 90, size=_N),
        "few": _RNG.integers(0, 4, size=_N),
        "const": np.full(_N, 2.0),
        "empty": [None] * _N,
        "country": _RNG.choice(["FR", "DE", "IT", "ES"], p=[0.4, 0.3, 0.2, 0.1], size=_N),
        "vip": _RNG.choice([True, False], size=_N).tolist(),
    },
    (_P1 > 0.5).astype(int),
    scores={"0": 1.0 - _P1, "1": _P1},
    feature_types={"age": "numeric", "few": "numeric", "empty": "numeric"},
    bins=20,
    top_k=3,
)
REGRESSION = build_profile(
    "price",
    "1",
    "regression",
    {"amount": _AMOUNT, "country": _RNG.choice(["FR", "DE"], size=_N)},
    _AMOUNT * 2.0,
    bins=10,
)
CATEGORICAL_ONLY = build_profile(
    "cats",
    "1",
    "multiclass",
    {"country": _RNG.choice(["FR", "DE", "IT"], size=_N)},
    _RNG.choice(["a", "b", "c"], size=_N),
    scores={c: np.full(_N, 1 / 3) for c in "abc"},
    bins=5,
)
PROFILES = {"binary": BINARY, "regression": REGRESSION, "categorical only": CATEGORICAL_ONLY}

feature_values = (
    st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([0.0, -0.0, 2.0, 3.0, 5e-324, 1.7976931348623157e308, 18.0, 89.0])
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.sampled_from([-(2**63), 2**63 - 1, 2**53 + 1, 0, 1, 2, 3])
    | st.booleans()
    | st.none()
    | st.sampled_from(["FR", "DE", "IT", "ES", "PT", "", "1.5", "true"])
)
outcomes = (
    st.integers(min_value=-3, max_value=3)
    | st.sampled_from(["0", "1", "a", "b", "c", "z", True, False])
    | st.floats(allow_nan=False, allow_infinity=False)
)
probabilities = st.floats(min_value=0.0, max_value=1.0) | st.sampled_from([0.0, 1.0, 0.5])
timestamps = st.integers(min_value=0, max_value=253_402_300_799_999) | st.sampled_from(
    ["2026-11-22T10:00:00Z", "2026-11-22T11:00:00.123456+01:00", "1970-01-01T00:00:00Z"]
)


@st.composite
def wire_events(draw: st.DrawFn, profile: ReferenceProfile) -> list[WirePrediction]:
    """Decoded events with any mix of present, absent, null and wrongly typed features."""
    names = [*profile.features, "unknown"]
    events = []
    for i in range(draw(st.integers(min_value=0, max_value=15))):
        features = draw(st.dictionaries(st.sampled_from(names), feature_values, max_size=8))
        event: dict[str, Any] = {
            "event_id": f"e{i}",
            "prediction_id": f"p{i}",
            "model": profile.model,
            "model_version": profile.model_version,
            "timestamp": draw(timestamps),
            "features": features,
            "prediction": draw(outcomes),
        }
        scores = draw(
            st.none() | st.dictionaries(st.sampled_from(["0", "1", "a", "b", "x"]), probabilities)
        )
        if scores is not None or draw(st.booleans()):
            event["scores"] = scores
        events.append(decode_prediction(json.dumps(event, allow_nan=False).encode()))
    return events


@contextmanager
def numpy_only() -> Iterator[None]:
    """Force fold_numeric and the multivariate fold onto their NumPy fallbacks, as on an
    install without a C compiler."""
    with (
        mock.patch.object(fold_module, "_compiled_fold_numeric", None),
        mock.patch.object(multivariate_module, "_compiled_fold", None),
    ):
        yield


@pytest.mark.parametrize("profile_name", PROFILES)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fold_events_equals_fold_of_columns_from_events(
    profile_name: str, data: st.DataObject
) -> None:
    """fold_events, compiled or on NumPy, equals fold(columns_from_events(...)) (== and bytes)."""
    profile = PROFILES[profile_name]
    first = data.draw(wire_events(profile), label="first")
    second = data.draw(wire_events(profile), label="second")
    slow = PaneSummary(profile).fold(columns_from_events(first, profile))
    fast = PaneSummary(profile).fold_events(first)
    with numpy_only():
        fallback = PaneSummary(profile).fold_events(first)
    for summary in (fast, fallback):
        assert summary == slow
        assert summary.to_bytes() == slow.to_bytes()
    # Accumulating into summaries that are not empty.
    slow.fold(columns_from_events(second, profile))
    fast.fold_events(second)
    with numpy_only():
        fallback.fold_events(second)
    for summary in (fast, fallback):
        assert summary == slow
        assert summary.to_bytes() == slow.to_bytes()
    assert PaneSummary(profile).fold_events([*first, *second]) == slow
    assert slow.n == len(first) + len(second)


@pytest.mark.parametrize("profile_name", PROFILES)
def test_fold_events_of_no_events_changes_nothing(profile_name: str) -> None:
    """Folding an empty list of events leaves a summary equal to a fresh one."""
    profile = PROFILES[profile_name]
    assert PaneSummary(profile).fold_events([]) == PaneSummary(profile)
    assert PaneSummary(profile).fold_events([]).to_bytes() == PaneSummary(profile).to_bytes()


def test_a_key_that_empties_the_list_while_it_is_read_does_not_crash_the_kernel(
    compiled: Kernel,
) -> None:
    """The kernel holds each row while reading it and re-reads the list's length every row."""
    rows: list[dict[Any, Any]] = []

    class Clearing:
        def __hash__(self) -> int:
            return hash("x")

        def __eq__(self, other: object) -> bool:
            rows.clear()  # runs inside the kernel's dict look-up of "x"
            return False

    rows += [{Clearing(): 1}, {"x": 1.0}, {"x": 2.0}]
    counts = np.zeros(2, dtype=np.int64)
    assert compiled(rows, ("x",), (np.array([0.0]),), (counts,)) == [(1, 0)]
    assert counts.tolist() == [0, 0]


# --- the ordered fast path: rows that hold exactly the names, in one order ---------------------


class OddKey(str):
    """A str subclass key equal to its text: the kernel must not take it for the name."""


@st.composite
def ordered_cases(draw: st.DrawFn) -> Case:
    """Rows mostly holding exactly the names in one order (the shape the kernel reads in one
    walk of the dict), mixed with rows of another order, a name missing, an extra key, a
    str-subclass key or a repeated first row, anywhere in the batch."""
    k = draw(st.integers(1, 6))
    names = tuple(
        draw(st.lists(st.text(min_size=1, max_size=4), min_size=k, max_size=k, unique=True))
    )
    edges = tuple(
        np.array(sorted(draw(st.lists(edge_values, max_size=6))), dtype=np.float64) for _ in names
    )
    usual = draw(st.permutations(names))
    value = plain_values | st.sampled_from([None, math.nan, "s", True])
    dicts: Dicts = []
    for _ in range(draw(st.integers(0, 25))):
        shape = draw(st.sampled_from(["usual"] * 5 + ["shuffled", "missing", "extra", "odd"]))
        keys = list(usual)
        if shape == "shuffled":
            keys = draw(st.permutations(names))
        elif shape == "missing":
            keys.pop(draw(st.integers(0, k - 1)))
        elif shape == "extra":
            keys.insert(draw(st.integers(0, k)), "\x00other")
        row = {key: draw(value) for key in keys}
        if shape == "odd":
            row = {OddKey(key) if i == 0 else key: v for i, (key, v) in enumerate(row.items())}
        dicts.append(row)
    counts = [
        draw(st.lists(st.integers(0, 2**40), min_size=e.size + 1, max_size=e.size + 1))
        for e in edges
    ]
    return dicts, names, edges, counts


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ordered_cases())
def test_rows_in_the_usual_order_count_as_the_oracle_says(compiled: Kernel, case: Case) -> None:
    dicts, names, edges, start = case
    c_counts = int64_counts(start)
    tallies = compiled(dicts, names, edges, c_counts)
    bins, expected_tallies = oracle(dicts, names, edges)
    assert tallies == expected_tallies
    assert [c.tolist() for c in c_counts] == [
        [s + b for s, b in zip(s0, b0, strict=True)] for s0, b0 in zip(start, bins, strict=True)
    ]


def test_a_str_subclass_name_or_key_is_looked_up_not_walked(compiled: Kernel) -> None:
    """Equal text is not enough for the walk: a subclass may define equality otherwise, so
    such rows (and names) go through the dict's own look-up."""

    class Never(str):
        def __eq__(self, other: object) -> bool:
            return False

        def __hash__(self) -> int:
            return str.__hash__(self)

    edges = (np.array([0.0]), np.array([0.0]))
    counts = (np.zeros(2, dtype=np.int64), np.zeros(2, dtype=np.int64))
    rows = [{"a": 1.0, "b": -1.0}, {Never("a"): 1.0, "b": -1.0}, {"a": 1.0, "b": -1.0}]
    assert compiled(rows, ("a", "b"), edges, counts) == [(1, 0), (0, 0)]
    assert [c.tolist() for c in counts] == [[0, 2], [3, 0]]
    counts = (np.zeros(2, dtype=np.int64), np.zeros(2, dtype=np.int64))
    assert compiled(rows[:1], (Never("a"), "b"), edges, counts) == [(1, 0), (0, 0)]


# --- the multivariate part: each event's reconstruction error in the same walk ---------------

MultiKernel: TypeAlias = Callable[..., tuple[list[tuple[int, int]], int] | None]
MV_POOL = ("a", "b", "c", "d", "e", "f")

mv_values = (
    st.floats(min_value=-10.0, max_value=10.0)
    | st.floats()
    | st.sampled_from([*SPECIAL_FLOATS, 1e300, -1e300, 1e154])
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.sampled_from([b for b in BOUNDARY_INTS if abs(b) < 2**1000])
    | st.booleans()
    | st.none()
    | st.text(max_size=3)
)


@pytest.fixture(scope="module")
def compiled_multivariate() -> MultiKernel:
    """The fused C kernel itself; skips only when the extension was not built."""
    module = pytest.importorskip("driftline.detectors._fold", reason=NOT_BUILT)
    kernel: MultiKernel | None = getattr(module, "fold_numeric_multivariate", None)
    if kernel is None:
        pytest.fail(
            "the built driftline.detectors._fold predates fold_numeric_multivariate: rebuild "
            "it (python setup.py build_ext --inplace)"
        )
    return kernel


@st.composite
def multivariate_cases(
    draw: st.DrawFn,
) -> tuple[MultivariateProfile, Dicts, dict[str, NumericProfile]]:
    """A multivariate profile over 2-6 features (orthonormal components, any means and
    scales), feature dicts with any mix of numbers, ints, NaN, None, wrong types, absent and
    extra keys, and numeric columns for some of the features (and one no feature of the
    profile's). The error bins are cut at the rows' own errors and their neighbours, so
    errors land exactly on edges."""
    d = draw(st.integers(2, len(MV_POOL)))
    features = draw(st.permutations(MV_POOL))[:d]
    k = draw(st.integers(1, d - 1))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    components = q.T[:k]
    means = draw(st.lists(st.floats(-1e3, 1e3) | st.just(0.0), min_size=d, max_size=d))
    scales = draw(
        st.lists(st.floats(1e-3, 1e3) | st.sampled_from([1.0, 5e-324]), min_size=d, max_size=d)
    )
    keys = st.sampled_from([*features, "extra", "zz"])
    dicts: Dicts = draw(st.lists(st.dictionaries(keys, mv_values, max_size=d + 2), max_size=25))
    draft = MultivariateProfile(
        features=list(features),
        means=means,
        scales=scales,
        components=components.tolist(),
        explained_variance=0.5,
        error=NumericProfile(edges=[], probabilities=[1.0], count=0),
        error_mean=0.0,
        error_sd=0.0,
    )
    with numpy_only():
        errors = _matrix_errors(draft, dicts)
    chosen = [e for e in errors.tolist() if draw(st.booleans())]
    around = [math.nextafter(e, math.inf) for e in chosen] + [
        math.nextafter(e, -math.inf) for e in chosen
    ]
    edges = sorted({*chosen, *around, *draw(st.lists(st.sampled_from([0.0, 1.0, ERROR_CAP])))})
    ranged = draw(st.booleans()) and bool(edges)
    error = NumericProfile(
        edges=edges,
        probabilities=[1.0 / (len(edges) + 1)] * (len(edges) + 1),
        minimum=edges[0] if ranged else None,
        maximum=edges[-1] if ranged else None,
        count=10,
    )
    profile = draft.model_copy(update={"error": error, "error_mean": 1.0, "error_sd": 1.0})
    counted = [f for f in features if draw(st.booleans())] + draw(st.sampled_from([[], ["zz"]]))
    columns = {}
    for name in counted:
        column_edges = sorted(set(draw(st.lists(st.floats(-5, 5), max_size=4))))
        share = 1.0 / (len(column_edges) + 1)
        columns[name] = NumericProfile(
            edges=column_edges, probabilities=[share] * (len(column_edges) + 1), count=1
        )
    return profile, dicts, columns


def _matrix_errors(profile: MultivariateProfile, dicts: Dicts) -> np.ndarray:
    """The NumPy path's errors, from the matrix it builds out of the dicts."""
    matrix = np.array(
        [
            [float(v) if _is_number(v) else math.nan for v in map(d.get, profile.features)]
            for d in dicts
        ],
        dtype=np.float64,
    ).reshape(len(dicts), len(profile.features))
    return reconstruction_errors(profile, matrix)[0]


def _fold_both(
    profile: MultivariateProfile, dicts: Dicts, columns: dict[str, NumericProfile]
) -> tuple[MultivariateSummary, dict[str, NumericColumnSummary]]:
    summary = MultivariateSummary(profile)
    numeric = {name: NumericColumnSummary(col) for name, col in columns.items()}
    summary.fold_feature_dicts(dicts, numeric)
    return summary, numeric


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(multivariate_cases())
def test_compiled_multivariate_fold_equals_the_numpy_path_bit_for_bit(
    compiled_multivariate: MultiKernel,
    case: tuple[MultivariateProfile, Dicts, dict[str, NumericProfile]],
) -> None:
    """The fused kernel's errors are the NumPy path's bits, counted in the same error bins
    (edges included), with the same exact sum and imputed count; the numeric columns it
    counts in the same walk equal fold_numeric's."""
    profile, dicts, columns = case
    fast, fast_numeric = _fold_both(profile, dicts, columns)
    with numpy_only():
        slow, slow_numeric = _fold_both(profile, dicts, columns)
    assert fast == slow
    assert fast.state() == slow.state()
    assert fast.n == len(dicts)
    assert {n: c.state() for n, c in fast_numeric.items()} == {
        n: c.state() for n, c in slow_numeric.items()
    }
    # The kernel itself took the batch (it declines nothing here) and wrote the same errors.
    summary = MultivariateSummary(profile)
    names = tuple(profile.features)
    errors = np.full(len(dicts), -1.0)
    error_edges = summary._errors._edges
    error_counts = np.zeros(error_edges.shape[0] + 1, dtype=np.int64)
    projection = summary._projection
    folded = compiled_multivariate(
        dicts,
        names,
        tuple(np.empty(0) for _ in names),
        tuple(np.zeros(1, dtype=np.int64) for _ in names),
        np.arange(len(names), dtype=np.int64),
        projection.means,
        projection.scales,
        projection.projector.reshape(-1),
        error_edges,
        error_counts,
        errors,
        ERROR_CAP,
    )
    assert folded is not None
    expected = _matrix_errors(profile, dicts)
    assert errors.tobytes() == expected.tobytes()
    np.testing.assert_array_equal(
        error_counts,
        np.bincount(
            np.searchsorted(error_edges, expected, side="right"),
            minlength=error_edges.shape[0] + 1,
        ),
    )
    assert folded[1] == slow.imputed


def test_fused_fold_events_takes_the_compiled_kernel_when_built(
    compiled_multivariate: MultiKernel,
) -> None:
    """PaneSummary.fold_events reaches the fused kernel (no silent NumPy fallback) and equals
    the NumPy path and the column path."""
    assert multivariate_module._compiled_fold is compiled_multivariate
    rng = np.random.default_rng(5)
    rows = [
        {"age": int(rng.integers(18, 90)), "amount": float(rng.lognormal(3, 1)), "few": 2}
        for _ in range(50)
    ]
    events = [
        decode_prediction(
            json.dumps(
                {
                    "event_id": f"e{i}",
                    "prediction_id": f"p{i}",
                    "model": BINARY.model,
                    "model_version": BINARY.model_version,
                    "timestamp": 1_700_000_000_000 + i,
                    "features": row,
                    "prediction": 1,
                }
            ).encode()
        )
        for i, row in enumerate(rows)
    ]
    with mock.patch.object(
        multivariate_module, "_compiled_fold", wraps=compiled_multivariate
    ) as spy:
        fast = PaneSummary(BINARY).fold_events(events)
    assert spy.call_count == 1
    with numpy_only():
        slow = PaneSummary(BINARY).fold_events(events)
    assert fast == slow == PaneSummary(BINARY).fold(columns_from_events(events, BINARY))
    assert fast.multivariate is not None
    assert fast.multivariate.imputed == 100  # const and empty are in no row


@pytest.mark.parametrize("bad", UNSUPPORTED.values(), ids=UNSUPPORTED.keys())
def test_fused_kernel_declines_unknown_values_and_the_numpy_path_counts_them(
    compiled_multivariate: MultiKernel, bad: object
) -> None:
    """A value the kernel does not know, after good rows, leaves every count untouched
    (None); fold_feature_dicts then gives exactly the NumPy path's result or error."""
    profile = BINARY.multivariate
    assert profile is not None
    dicts: Dicts = [{"age": 30.0, "amount": 5.0}, {"age": "x", "few": None}, {"amount": bad}]
    summary = MultivariateSummary(profile)
    column = NumericColumnSummary(BINARY.features["amount"])  # type: ignore[arg-type]
    before = (summary.state(), column.state())
    errors = np.empty(len(dicts))
    projection = summary._projection
    names = tuple(profile.features)
    assert (
        compiled_multivariate(
            dicts,
            ("amount", *names),
            (column._edges, *(np.empty(0) for _ in names)),
            (column._counts, *(np.zeros(1, dtype=np.int64) for _ in names)),
            np.arange(1, len(names) + 1, dtype=np.int64),
            projection.means,
            projection.scales,
            projection.projector.reshape(-1),
            summary._errors._edges,
            summary._errors._counts,
            errors,
            ERROR_CAP,
        )
        is None
    )
    assert (summary.state(), column.state()) == before

    def fold() -> tuple[Any, Any]:
        s = MultivariateSummary(profile)
        c = NumericColumnSummary(BINARY.features["amount"])  # type: ignore[arg-type]
        s.fold_feature_dicts(dicts, {"amount": c})
        return s.state(), c.state()

    try:
        with numpy_only():
            expected: object = fold()
    except OverflowError as exc:
        with pytest.raises(OverflowError, match=re.escape(str(exc))):
            fold()
    else:
        assert fold() == expected


def _mv_args(**changes: Any) -> tuple[Any, ...]:
    args: dict[str, Any] = {
        "dicts": [{"x": 1.0, "y": 2.0}],
        "names": ("x", "y"),
        "edges": (np.array([0.0]), np.array([0.0, 1.0])),
        "counts": (np.zeros(2, dtype=np.int64), np.zeros(3, dtype=np.int64)),
        "index": np.array([1, 0], dtype=np.int64),
        "means": np.zeros(2),
        "scales": np.ones(2),
        "projector": np.eye(2).reshape(-1),
        "error_edges": np.array([1.0]),
        "error_counts": np.zeros(2, dtype=np.int64),
        "errors": np.zeros(1),
        "cap": ERROR_CAP,
    }
    args.update(changes)
    return tuple(args.values())


MV_BAD_ARGUMENTS: dict[str, tuple[tuple[Any, ...], type[Exception], str]] = {
    "index float64": (
        _mv_args(index=np.array([1.0, 0.0])),
        TypeError,
        r"index must be a 1-D int64",
    ),
    "index out of names": (
        _mv_args(index=np.array([2, 0], dtype=np.int64)),
        ValueError,
        r"index\[0\] must be a position in names, got 2",
    ),
    "negative index": (
        _mv_args(index=np.array([0, -1], dtype=np.int64)),
        ValueError,
        r"index\[1\] must be a position in names, got -1",
    ),
    "means too short": (
        _mv_args(means=np.zeros(1)),
        ValueError,
        r"index, means and scales must have the same length",
    ),
    "scales int64": (
        _mv_args(scales=np.ones(2, dtype=np.int64)),
        TypeError,
        r"scales must be a 1-D float64",
    ),
    "projector 2-D": (_mv_args(projector=np.eye(2)), TypeError, r"projector must be a 1-D"),
    "projector short": (
        _mv_args(projector=np.ones(3)),
        ValueError,
        r"projector must have len\(index\) \*\* 2 = 4 entries",
    ),
    "error counts short": (
        _mv_args(error_counts=np.zeros(1, dtype=np.int64)),
        ValueError,
        r"error_counts must have len\(error_edges\) \+ 1 entries",
    ),
    "errors short": (_mv_args(errors=np.zeros(0)), ValueError, r"errors must have len\(dicts\)"),
    "cap not a number": (_mv_args(cap="x"), TypeError, r"must be real number"),
}


@pytest.mark.parametrize(
    ("args", "error", "message"), MV_BAD_ARGUMENTS.values(), ids=MV_BAD_ARGUMENTS.keys()
)
def test_fused_kernel_rejects_bad_arguments_naming_them(
    compiled_multivariate: MultiKernel, args: tuple[Any, ...], error: type[Exception], message: str
) -> None:
    """Wrong dtypes or lengths of the multivariate buffers raise, naming them, and count
    nothing."""
    with pytest.raises(error, match=message):
        compiled_multivariate(*args)
    assert all(not c.any() for c in args[3])
    assert not args[9].any()


def test_fused_kernel_refuses_read_only_error_counts(compiled_multivariate: MultiKernel) -> None:
    """Error counts or errors it cannot write raise ValueError."""
    for name in ("error_counts", "errors"):
        args = dict(
            zip(["error_counts", "errors"], [np.zeros(2, dtype=np.int64), np.zeros(1)], strict=True)
        )
        args[name].flags.writeable = False
        with pytest.raises(ValueError, match="read-only"):
            compiled_multivariate(*_mv_args(**args))


def test_a_list_emptied_while_read_makes_the_fused_kernel_decline(
    compiled_multivariate: MultiKernel,
) -> None:
    """Rows the errors buffer has no room for, or rows gone, decline the batch (None), so no
    error of a row never read is summed."""
    rows: list[dict[Any, Any]] = []

    class Clearing:
        def __hash__(self) -> int:
            return hash("x")

        def __eq__(self, other: object) -> bool:
            rows.clear()
            return False

    rows += [{Clearing(): 1}, {"x": 1.0}, {"x": 2.0}]
    args = list(_mv_args(dicts=rows, errors=np.zeros(3)))
    assert compiled_multivariate(*args) is None
    assert not args[9].any()
