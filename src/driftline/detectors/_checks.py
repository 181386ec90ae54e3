"""Checks that more than one detector makes on its arguments or its decoded state, one message
each."""

from __future__ import annotations

import math
from typing import Any, get_args

import numpy as np
from numpy.typing import NDArray

from driftline.detectors.values import IntArray
from driftline.errors import StatisticsError
from driftline.schemas.events import Task

TASKS: tuple[str, ...] = get_args(Task)
"""Every task a model can have."""


def check_task(task: object) -> Task:
    """``task`` if it names a task, else an error listing the tasks.

    >>> check_task("binary")
    'binary'
    """
    if task not in TASKS:
        raise StatisticsError(f"task must be one of {list(TASKS)}, got {task!r}")
    return task  # type: ignore[return-value]


def check_int(name: str, value: object, low: int, high: int) -> int:
    """``value`` if it is an integer (not a boolean) in ``low..high``, else an error naming it.

    >>> check_int("bins", 10, 1, 100)
    10
    """
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise StatisticsError(f"{name} must be an integer in {low}..{high}, got {value!r}")
    return value


def check_per_label(what: str, column: NDArray[Any], n: int) -> None:
    """An error unless ``column`` has one entry per label (``n`` of them)."""
    if column.shape[0] != n:
        raise StatisticsError(f"{what} has {column.shape[0]} entries, labels have {n}")


def shaped(values: list[int], shape: tuple[int, ...]) -> IntArray:
    """Decoded counts as an int64 array of ``shape``, or an error when they do not fill it.

    >>> shaped([1, 2, 3, 4], (2, 2)).tolist()
    [[1, 2], [3, 4]]
    """
    array = np.array(values, dtype=np.int64)
    if array.size != math.prod(shape):
        raise StatisticsError(f"{array.size} counts encoded, expected shape {shape}")
    return array.reshape(shape)
