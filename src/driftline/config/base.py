"""What every settings section shares: durations as people write them, and a frozen base."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    WithJsonSchema,
)

__all__ = ["Duration", "PositiveDuration", "Section", "format_duration", "parse_duration"]


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")


def parse_duration(value: object) -> timedelta:
    """A duration from ``"500ms"``, ``"30s"``, ``"5m"``, ``"1h"``, ``"7d"``, ``"2w"`` or seconds.

    >>> parse_duration("90s"), parse_duration("1.5h")
    (datetime.timedelta(seconds=90), datetime.timedelta(seconds=5400))
    >>> parse_duration(2)
    datetime.timedelta(seconds=2)
    """
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    else:
        raise ValueError(
            "expected a duration: a number of seconds or a string such as "
            "500ms, 30s, 5m, 1h, 7d, 2w"
        )
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """The shortest exact form of a duration, as :func:`parse_duration` reads it.

    >>> format_duration(timedelta(hours=1)), format_duration(timedelta(milliseconds=1500))
    ('1h', '1500ms')
    """
    ms = round(value.total_seconds() * 1000)
    for unit, factor in (
        ("w", 604_800_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
    ):
        if ms and ms % factor == 0:
            return f"{ms // factor}{unit}"
    return f"{ms}ms"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": _DURATION.pattern}),
]


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be a positive duration")
    return value


PositiveDuration = Annotated[Duration, AfterValidator(_positive)]
"""A :data:`Duration` above zero (limits and timeouts)."""


class Section(BaseModel):
    """Base of every settings section: frozen, unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())
