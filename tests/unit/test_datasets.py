"""Reading reference samples from CSV, JSON Lines and Parquet files into profile columns."""

from __future__ import annotations

import sys
from pathlib import Path

import orjson
import pytest

from driftline.datasets import load_dataset
from driftline.errors import DatasetError


def test_load_csv_types_cells_and_splits_roles(tmp_path: Path) -> None:
    path = tmp_path / "ref.csv"
    path.write_text(
        "id,amount,country,flag,prediction,score_0,score_1,label\n"
        "a,12.5,FR,true,1,0.2,0.8,1\n"
        "b,,DE,false,0,0.9,0.1,0\n"
        "c,7,NA,true,1,0.4,0.6,0\n"
    )
    ds = load_dataset(path, ignore=["id"])
    assert ds.features == {
        "amount": [12.5, None, 7],
        "country": ["FR", "DE", None],
        "flag": ["true", "false", "true"],
    }
    assert (ds.prediction, ds.labels, ds.n_rows) == ([1, 0, 1], [1, 0, 0], 3)
    assert ds.scores == {"0": [0.2, 0.9, 0.4], "1": [0.8, 0.1, 0.6]}
    p = ds.profile("m", "1", "binary")
    assert p.features["amount"].kind == "numeric"
    assert p.performance["accuracy"] == 2 / 3


def test_load_jsonl_reads_flat_rows_and_prediction_events(tmp_path: Path) -> None:
    path = tmp_path / "ref.jsonl"
    rows = [
        {"x": 1.0, "c": "a", "prediction": 1, "label": 1},
        {"event_id": "e", "prediction_id": "p", "model": "m", "model_version": "1",
         "timestamp": 5, "features": {"x": 2.0, "c": None}, "prediction": 0,
         "scores": {"0": 0.7, "1": 0.3}, "label": 0},
        {"x": 3.0, "prediction": 1},
    ]  # fmt: skip
    path.write_bytes(b"\n".join(orjson.dumps(r) for r in rows) + b"\n\n")
    ds = load_dataset(path)
    assert ds.features == {"x": [1.0, 2.0, 3.0], "c": ["a", None, None]}
    assert ds.prediction == [1, 0, 1]
    assert ds.labels == [1, 0, None]
    assert ds.scores == {"0": [None, 0.7, None], "1": [None, 0.3, None]}


def test_parquet_without_pyarrow_says_to_install_pyarrow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    path = tmp_path / "ref.parquet"
    path.write_bytes(b"PAR1")
    with pytest.raises(DatasetError, match=r"needs pyarrow.*pip install pyarrow"):
        load_dataset(path)


def test_dataset_errors_name_the_file_and_the_problem(tmp_path: Path) -> None:
    csv_path = tmp_path / "ref.csv"
    csv_path.write_text("x,y\n1,2\n")
    with pytest.raises(DatasetError, match="no prediction column 'prediction'") as info:
        load_dataset(csv_path)
    assert info.value.path == str(csv_path)
    with pytest.raises(DatasetError, match=r"suffix '\.txt'"):
        load_dataset(tmp_path / "ref.txt")
    with pytest.raises(DatasetError, match="cannot read the file"):
        load_dataset(tmp_path / "missing.csv")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prediction": 1}\n[1, 2]\n')
    with pytest.raises(DatasetError, match="line 2 is not a JSON object"):
        load_dataset(bad)
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("prediction,x\n1,2\n1\n")
    with pytest.raises(DatasetError, match="line 3 has 1 cells"):
        load_dataset(ragged)
