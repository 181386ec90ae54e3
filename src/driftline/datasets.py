"""Reading a reference sample from a file: CSV, JSON Lines or Parquet, into columns.

The columns go straight into :func:`~driftline.detectors.profile.build_profile`. Values keep
their JSON types where the format has them (JSONL, Parquet); CSV cells are typed one by one:
integers and decimal numbers become numbers, the usual missing-value spellings (empty,
``NA``, ``N/A``, ``NaN``, ``nan``, ``null``, ``NULL``, ``None``) become None, anything else
stays a string (so ``true`` in a CSV and ``true`` in JSON are the same category).

This module reads files, so it lives outside the pure :mod:`driftline.detectors` package; the
CLI's reference building calls it.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson

from driftline.detectors.profile import build_profile
from driftline.errors import DatasetError
from driftline.schemas.events import Task
from driftline.schemas.reference import ReferenceProfile

__all__ = ["Dataset", "DatasetFormat", "load_dataset", "parse_cell"]

DatasetFormat = Literal["csv", "jsonl", "parquet"]

_SUFFIXES: dict[str, DatasetFormat] = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_MISSING = frozenset({"", "NA", "N/A", "NaN", "nan", "null", "NULL", "None"})
_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


@dataclass(frozen=True, slots=True)
class Dataset:
    """Columns of a reference sample, split into the roles a profile needs.

    Examples
    --------
    >>> ds = Dataset(features={"x": [1.0, 2.0]}, prediction=[0, 1], scores={}, labels=None)
    >>> ds.n_rows, ds.profile("m", "1", "binary").n_rows
    (2, 2)
    """

    features: dict[str, list[Any]]
    prediction: list[Any]
    scores: dict[str, list[Any]]
    labels: list[Any] | None

    @property
    def n_rows(self) -> int:
        """Rows in the sample."""
        return len(self.prediction)

    def profile(self, model: str, version: str, task: Task, **options: Any) -> ReferenceProfile:
        """The reference profile of this sample; ``options`` go to ``build_profile``."""
        return build_profile(
            model,
            version,
            task,
            self.features,
            self.prediction,
            scores=self.scores or None,
            labels=self.labels,
            **options,
        )


def parse_cell(text: str) -> int | float | str | None:
    """A CSV cell as the value it spells.

    >>> [parse_cell(s) for s in ("12", "-1.5e3", "", "NA", "FR", "true", "1_000")]
    [12, -1500.0, None, None, 'FR', 'true', '1_000']
    """
    if text in _MISSING:
        return None
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    return text


def _read_csv(path: Path) -> dict[str, list[Any]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise DatasetError("the CSV file is empty (no header row)", path=path)
        if len(set(header)) != len(header):
            raise DatasetError(f"the CSV header repeats column names: {header}", path=path)
        columns: dict[str, list[Any]] = {name: [] for name in header}
        lists = list(columns.values())
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(header):
                raise DatasetError(
                    f"line {line} has {len(row)} cells, the header {len(header)}", path=path
                )
            for values, cell in zip(lists, row, strict=True):
                values.append(parse_cell(cell))
    return columns


def _columns_from_rows(rows: Iterable[Mapping[str, Any]]) -> dict[str, list[Any]]:
    columns: dict[str, list[Any]] = {}
    for n, row in enumerate(rows, start=1):
        for name, value in row.items():
            if name not in columns:
                columns[name] = [None] * (n - 1)
            columns[name].append(value)
        for values in columns.values():
            if len(values) < n:
                values.append(None)
    return columns


_EVENT_FIELDS = frozenset(
    {
        "event_id",
        "prediction_id",
        "model",
        "model_version",
        "timestamp",
        "features",
        "prediction",
        "scores",
        "segments",
    }
)


def _flatten(row: Mapping[str, Any], score_prefix: str) -> dict[str, Any]:
    # A prediction event (as on the topic) becomes a flat row: its features, its prediction,
    # one score column per class; other top-level fields (event ids, timestamps) are dropped
    # unless they are the label.
    flat: dict[str, Any] = dict(row["features"])
    flat.update({k: v for k, v in row.items() if k not in _EVENT_FIELDS})
    flat["prediction"] = row.get("prediction")
    for cls, score in (row.get("scores") or {}).items():
        flat[f"{score_prefix}{cls}"] = score
    return flat


def _read_jsonl(path: Path, score_prefix: str) -> dict[str, list[Any]]:
    def rows() -> Iterable[dict[str, Any]]:
        with path.open("rb") as handle:
            for line_no, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    raise DatasetError(f"line {line_no} is not JSON: {exc}", path=path) from None
                if not isinstance(row, dict):
                    raise DatasetError(f"line {line_no} is not a JSON object", path=path)
                if isinstance(row.get("features"), dict):
                    row = _flatten(row, score_prefix)
                yield row

    return _columns_from_rows(rows())


def _read_parquet(path: Path) -> dict[str, list[Any]]:
    try:
        import pyarrow.parquet as pq  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        raise DatasetError(
            "reading Parquet files needs pyarrow, which is not installed: "
            "pip install pyarrow (or save the sample as CSV or JSON Lines)",
            path=path,
        ) from None
    table: Any = pq.read_table(path)
    columns: dict[str, list[Any]] = table.to_pydict()
    return columns


def load_dataset(
    path: str | Path,
    *,
    prediction: str = "prediction",
    score_prefix: str = "score_",
    label: str | None = "label",
    ignore: Sequence[str] = (),
    format: DatasetFormat | None = None,
) -> Dataset:
    """Read a reference sample and split its columns into features, prediction, scores, labels.

    Parameters
    ----------
    path
        A ``.csv``, ``.jsonl`` / ``.ndjson`` or ``.parquet`` / ``.pq`` file. JSON Lines rows are
        flat objects, or prediction events (with a ``features`` object, ``prediction`` and
        ``scores``) plus the label field.
    prediction
        The column of predictions (required).
    score_prefix
        Columns named ``<score_prefix><class>`` hold the probability of ``<class>``.
    label
        The column of true outcomes; ignored when the file has no such column. None: no labels.
    ignore
        Columns that are neither features nor roles (ids, timestamps).
    format
        The file format, when the suffix does not say it.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = pathlib.Path(tmp) / "ref.csv"
    ...     _ = path.write_text("id,x,colour,prediction,score_1,label\\n"
    ...                         "a,1.5,red,1,0.9,1\\nb,,blue,0,0.2,1\\n")
    ...     ds = load_dataset(path, ignore=["id"])
    >>> ds.features, ds.prediction, ds.scores, ds.labels
    ({'x': [1.5, None], 'colour': ['red', 'blue']}, [1, 0], {'1': [0.9, 0.2]}, [1, 1])
    """
    path = Path(path)
    kind = format or _SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise DatasetError(
            f"cannot tell the format from the suffix {path.suffix!r}; "
            f"use one of {sorted(_SUFFIXES)} or pass format='csv', 'jsonl' or 'parquet'",
            path=path,
        )
    if kind not in ("csv", "jsonl", "parquet"):
        raise ValueError(f"format must be 'csv', 'jsonl' or 'parquet', got {kind!r}")
    try:
        if kind == "csv":
            columns = _read_csv(path)
        elif kind == "jsonl":
            columns = _read_jsonl(path, score_prefix)
        else:
            columns = _read_parquet(path)
    except OSError as exc:
        why = (exc.strerror or str(exc)).lower()
        raise DatasetError(f"cannot read the file ({why})", path=path) from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"cannot read the file: {exc}", path=path) from None

    if prediction not in columns:
        raise DatasetError(
            f"no prediction column {prediction!r}; columns: {sorted(columns)}", path=path
        )
    skip = set(ignore) | {prediction}
    scores: dict[str, list[Any]] = {}
    for name in columns:
        if score_prefix and name.startswith(score_prefix):
            cls = name[len(score_prefix) :]
            if not cls:
                raise DatasetError(f"score column {name!r} names no class", path=path)
            scores[cls] = columns[name]
            skip.add(name)
    labels = None
    if label is not None and label in columns:
        labels = columns[label]
        skip.add(label)
    features = {name: values for name, values in columns.items() if name not in skip}
    return Dataset(features, columns[prediction], scores, labels)
