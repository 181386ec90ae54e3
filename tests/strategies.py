"""Hypothesis strategies for contract events that are valid but extreme (issue 15, build 6).

Every event drawn here passes the contract (DESIGN §2) under the :class:`Limits` it is drawn
for: floats near ±1.8e308, subnormals and -0.0, integers at the ends of 64 bits, epoch
milliseconds from 0 to year 9999 and RFC 3339 strings with odd offsets and fractions, names and
strings exactly at each bound of ``monitor.limits``, the characters line protocol, JSON and
CSV give a meaning to in every name, empty and full feature maps, booleans beside 0 and 1,
scores that do not sum to 1. :func:`over_limit` pushes one bound of a valid event over by
one, for the events that must be dead-lettered with kind ``limit_exceeded``.

What a test does with them (decode, apply, merge, write) is the test's; the strategies only
build the events, as JSON-ready dicts, and :func:`dumps` turns one into the message's bytes.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from driftline.schemas.events import INT_MAX, INT_MIN, MAX_EPOCH_MS
from driftline.schemas.limits import DEFAULT_LIMITS, Limits

FLOAT_MAX = 1.7976931348623157e308
EXTREME_FLOATS = [
    FLOAT_MAX,
    -FLOAT_MAX,
    5e-324,  # the smallest subnormal
    -5e-324,
    2.2250738585072014e-308,  # the smallest normal
    -0.0,
    0.0,
    1e300,
    -1e300,
    1e-300,
    2.0**53 + 2,
    0.1,
]
EXTREME_INTS = [INT_MIN, INT_MAX, INT_MIN + 1, INT_MAX - 1, 0, 1, -1, 2**53 + 1, -(2**53) - 1]
# Characters that mean something to JSON, line protocol, CSV, logs or terminals.
SPECIAL = ["\n", "\t", "\r", '"', "\\", ",", "=", " ", "#", "\x00", "\x7f", "\u2028", "é", "𝄞"]

floats = st.sampled_from(EXTREME_FLOATS) | st.floats(allow_nan=False, allow_infinity=False)
ints = st.sampled_from(EXTREME_INTS) | st.integers(INT_MIN, INT_MAX)
chars = st.sampled_from(SPECIAL) | st.characters(exclude_categories=("Cs",))


def text(min_size: int, max_size: int) -> st.SearchStrategy[str]:
    """Strings of ``min_size`` to ``max_size`` characters: mostly short, often exactly at
    ``max_size`` (built by repeating a short one: Hypothesis draws long strings slowly)."""
    short = st.text(chars, min_size=min_size, max_size=min(max_size, 6))
    if max_size <= 6:
        return short

    def at_limit(seed: str) -> str:
        return (seed * (max_size // len(seed) + 1))[:max_size]

    full = st.text(chars, min_size=1, max_size=4).map(at_limit)
    return st.one_of(short, full)


def numbers() -> st.SearchStrategy[int | float]:
    return st.one_of(ints, floats)


def outcomes(limits: Limits) -> st.SearchStrategy[Any]:
    """A prediction or a label: number, string or boolean (booleans beside 0 and 1)."""
    return st.one_of(
        numbers(),
        st.booleans(),
        st.sampled_from([0, 1, 0.0, 1.0, "0", "1", "true", ""]),
        text(0, limits.max_string_length),
    )


def feature_values(limits: Limits) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), st.booleans(), numbers(), text(0, limits.max_string_length))


def epoch_ms(low: int = 0, high: int = MAX_EPOCH_MS) -> st.SearchStrategy[int]:
    return st.sampled_from([low, high]) | st.integers(low, high)


_OFFSETS = [timedelta(0), timedelta(hours=14), -timedelta(hours=12), timedelta(minutes=-1)]


@st.composite
def rfc3339(draw: st.DrawFn, low: datetime, high: datetime) -> str:
    """An RFC 3339 string with an offset for an instant between ``low`` and ``high`` (aware),
    written in one of the forms producers use: ``Z``, ``z``, ``+hh:mm``, 0 to 6 fraction
    digits."""
    instant = draw(
        st.datetimes(min_value=low.replace(tzinfo=None), max_value=high.replace(tzinfo=None)).map(
            lambda naive: naive.replace(tzinfo=UTC)
        )
    )
    offset = draw(st.sampled_from(_OFFSETS))
    try:
        local = instant.astimezone(timezone(offset))
    except OverflowError:
        local = instant
    digits = draw(st.sampled_from([0, 3, 6]))
    spec = {0: "seconds", 3: "milliseconds", 6: "microseconds"}[digits]
    written = local.isoformat(timespec=spec)
    if written.endswith("+00:00"):
        written = written[:-6] + draw(st.sampled_from(["Z", "z", "+00:00"]))
    return written


def timestamps(now_ms: int | None = None, max_skew_ms: int = 0) -> st.SearchStrategy[Any]:
    """Event times in both forms: anywhere from 1970 (epoch ms) or year 1 (RFC 3339) up to
    year 9999 when ``now_ms`` is None; else mostly within the hour before ``now_ms``, sometimes
    far in the past, and sometimes just inside or just beyond ``now_ms + max_skew_ms``."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    if now_ms is None:
        low, high = datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, tzinfo=UTC)
        return st.one_of(epoch_ms(), rfc3339(low, high))
    limit = now_ms + max_skew_ms
    near = st.integers(now_ms - 3_600_000, now_ms)
    edge = st.sampled_from(
        # Either side of the bound; the epoch, and just before it (a negative event time).
        [limit, limit + 1, 0, MAX_EPOCH_MS, "1969-12-31T23:59:59.999Z", "1970-01-01T00:00:00+00:01"]
    )
    at = epoch + timedelta(milliseconds=now_ms)
    strings = rfc3339(at - timedelta(hours=1), at) | rfc3339(
        datetime(1, 1, 2, tzinfo=UTC), datetime(1969, 12, 31, tzinfo=UTC)
    )
    return st.one_of(near, near, near, edge, strings)


def names(limits: Limits) -> st.SearchStrategy[str]:
    return text(1, limits.max_name_length)


def ids(limits: Limits) -> st.SearchStrategy[str]:
    return text(1, limits.max_id_length)


def features(limits: Limits, names_from: st.SearchStrategy[str] | None = None) -> Any:
    """Feature maps: empty, a few, or exactly ``max_features`` (names at their bound too)."""
    key = names_from if names_from is not None else text(0, limits.max_feature_name_length)
    value = feature_values(limits)
    few = st.dictionaries(key, value, max_size=min(5, limits.max_features))
    full = st.builds(lambda v: {f"f{i}": v for i in range(limits.max_features)}, value)
    return st.one_of(st.just({}), few, few, full)


def scores(limits: Limits) -> Any:
    """Class probabilities in [0, 1] that need not sum to 1, up to ``max_classes``."""
    probability = st.sampled_from([0.0, 1.0, 5e-324, -0.0, 0.5]) | st.floats(0.0, 1.0)
    return st.dictionaries(
        text(0, limits.max_string_length), probability, max_size=min(4, limits.max_classes)
    )


@st.composite
def predictions(
    draw: st.DrawFn,
    limits: Limits = DEFAULT_LIMITS,
    *,
    models: st.SearchStrategy[str] | None = None,
    versions: st.SearchStrategy[str] | None = None,
    prediction_ids: st.SearchStrategy[str] | None = None,
    times: st.SearchStrategy[Any] | None = None,
    feature_maps: st.SearchStrategy[dict[str, Any]] | None = None,
    outcome: st.SearchStrategy[Any] | None = None,
) -> dict[str, Any]:
    """A valid prediction event under ``limits``, as a JSON-ready dict."""
    event: dict[str, Any] = {
        "event_id": draw(ids(limits)),
        "prediction_id": draw(ids(limits) if prediction_ids is None else prediction_ids),
        "model": draw(names(limits) if models is None else models),
        "model_version": draw(names(limits) if versions is None else versions),
        "timestamp": draw(timestamps() if times is None else times),
        "features": draw(features(limits) if feature_maps is None else feature_maps),
        "prediction": draw(outcomes(limits) if outcome is None else outcome),
    }
    if limits.max_classes and draw(st.booleans()):
        event["scores"] = draw(scores(limits))
    if draw(st.booleans()):
        event["segments"] = draw(
            st.dictionaries(
                text(0, limits.max_feature_name_length),
                text(0, limits.max_string_length),
                max_size=min(3, limits.max_segments),
            )
        )
    return event


@st.composite
def ground_truths(
    draw: st.DrawFn,
    limits: Limits = DEFAULT_LIMITS,
    *,
    models: st.SearchStrategy[str] | None = None,
    prediction_ids: st.SearchStrategy[str] | None = None,
    times: st.SearchStrategy[Any] | None = None,
    outcome: st.SearchStrategy[Any] | None = None,
) -> dict[str, Any]:
    """A valid ground-truth event under ``limits``, as a JSON-ready dict."""
    event: dict[str, Any] = {
        "event_id": draw(ids(limits)),
        "prediction_id": draw(ids(limits) if prediction_ids is None else prediction_ids),
        "timestamp": draw(timestamps() if times is None else times),
        "label": draw(outcomes(limits) if outcome is None else outcome),
    }
    if draw(st.booleans()):
        event["model"] = draw(names(limits) if models is None else models)
    return event


# Each bound of ``monitor.limits`` and how to break it by one in a valid event.
_STRING_FIELDS = {
    "max_id_length": ["event_id", "prediction_id"],
    "max_name_length": ["model", "model_version"],
}


@st.composite
def over_limit(
    draw: st.DrawFn, event: dict[str, Any], limits: Limits = DEFAULT_LIMITS
) -> tuple[dict[str, Any], str]:
    """``event`` (a valid one) with one bound of ``limits`` exceeded by exactly one, and the
    name of that bound. Ground-truth events have fewer bounds to break than predictions."""
    changed = dict(event)
    is_prediction = "features" in event
    bounds = ["max_id_length", "max_string_length"]
    if is_prediction:
        bounds += [
            "max_name_length",
            "max_features",
            "max_feature_name_length",
            "max_classes",
            "max_segments",
        ]
    elif "model" in event:
        bounds.append("max_name_length")
    bound = draw(st.sampled_from(bounds))
    over = getattr(limits, bound) + 1
    char = draw(chars)
    if bound in _STRING_FIELDS:
        fields = [f for f in _STRING_FIELDS[bound] if f in event]
        changed[draw(st.sampled_from(fields))] = char * over
    elif bound == "max_string_length":
        if is_prediction:
            changed["prediction"] = char * over
        else:
            changed["label"] = char * over
    elif bound == "max_features":
        changed["features"] = {f"f{i}": i for i in range(over)}
    elif bound == "max_feature_name_length":
        where = draw(st.sampled_from(["features", "segments"]))
        changed[where] = {char * over: "v"}
    elif bound == "max_classes":
        changed["scores"] = {f"c{i}": 0.0 for i in range(over)}
    else:
        changed["segments"] = {f"s{i}": "v" for i in range(over)}
    return changed, bound


def dumps(event: dict[str, Any], *, ascii_only: bool = False) -> bytes:
    """The event as a message value: compact JSON, non-ASCII raw or as ``\\u`` escapes."""
    return json.dumps(event, ensure_ascii=ascii_only, separators=(",", ":")).encode()
