"""How a benchmark is run and read: its command line, best-of timing, printed tables and ratios.

A :class:`Table` holds its columns' titles, widths and number formats once, so a header and
its rows cannot drift apart.

>>> table = Table(Column("stage", 8, align="<"), Column("events/s", 10, ",.0f"),
...               Column("vs decode", 10, ".2f", suffix="x"))
>>> print(table.header())
stage      events/s  vs decode
>>> print(table.row("fold", 912345.6, 2.5))
fold        912,346      2.50x
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal


def parser(doc: str | None) -> argparse.ArgumentParser:
    """A parser whose description is the first line of the script's docstring."""
    return argparse.ArgumentParser(description=doc.splitlines()[0] if doc else None)


def best_seconds(fn: Callable[[], object], repeats: int) -> float:
    """The fewest seconds ``fn()`` took over ``repeats`` calls (the least disturbed run)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a :class:`Table`.

    A number is written with ``format(value, spec)`` and ``suffix`` (``"x"`` for a ratio); a
    string is written as it is (``"n/a"``, an empty cell); either is aligned in ``width``.
    ``gap`` is what separates the column from the one before it.
    """

    title: str
    width: int
    spec: str = ""
    align: Literal["<", ">"] = ">"
    suffix: str = ""
    gap: str = " "

    def cell(self, value: object) -> str:
        text = value if isinstance(value, str) else format(value, self.spec) + self.suffix
        return f"{text:{self.align}{self.width}}"


class Table:
    """Rows of fixed-width columns after an ``indent``; trailing blanks are dropped."""

    def __init__(self, *columns: Column, indent: str = "") -> None:
        self.columns = columns
        self.indent = indent

    def header(self) -> str:
        return self._line([f"{c.title:{c.align}{c.width}}" for c in self.columns])

    def row(self, *values: object) -> str:
        if len(values) != len(self.columns):
            raise ValueError(f"{len(values)} values for {len(self.columns)} columns")
        return self._line([c.cell(v) for c, v in zip(self.columns, values, strict=True)])

    def _line(self, cells: list[str]) -> str:
        parts = [cells[0]]
        for column, cell in zip(self.columns[1:], cells[1:], strict=True):
            parts += [column.gap, cell]
        return (self.indent + "".join(parts)).rstrip()
