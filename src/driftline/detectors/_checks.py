"""Argument checks that more than one detector's constructor makes, with one message each."""

from __future__ import annotations

from typing import get_args

from driftline.schemas.events import Task

TASKS: tuple[str, ...] = get_args(Task)
"""Every task a model can have."""


def check_task(task: object) -> Task:
    """``task`` if it names a task, else an error listing the tasks.

    >>> check_task("binary")
    'binary'
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {list(TASKS)}, got {task!r}")
    return task  # type: ignore[return-value]


def check_int(name: str, value: object, low: int, high: int) -> int:
    """``value`` if it is an integer (not a boolean) in ``low..high``, else an error naming it.

    >>> check_int("bins", 10, 1, 100)
    10
    """
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in {low}..{high}, got {value!r}")
    return value
