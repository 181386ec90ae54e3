"""``driftline models``: list, show, promote and roll back registry versions as a person."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from driftline.cli import app
from driftline.config import Settings
from driftline.schemas.model_version import HoldoutMetrics, RolloutMetadata
from driftline.trainer.registry import MODEL_FILE, FileSystemRegistry
from tests.unit.trainer.test_registry import registration

runner = CliRunner(env={"COLUMNS": "200"})


@pytest.fixture
def registry(tmp_path: Path) -> FileSystemRegistry:
    """Versions 1 (champion) and 2 (candidate) of ``fraud``."""
    store = FileSystemRegistry(tmp_path / "registry")
    store.register(registration(), b"one")
    store.register(registration(parent="1"), b"two")
    store.promote("fraud", "1", by="trainer", reason="first")
    return store


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "driftline.yaml"
    path.write_text(f"registry: {{root: {tmp_path / 'registry'}}}\n")
    return path


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def assert_one_line_error(output: str, text: str) -> None:
    assert "Traceback" not in output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith("error:"), output
    assert text in " ".join(output.split()), output


def test_list_shows_every_version_with_status_lineage_rows_and_metrics(
    registry: FileSystemRegistry, config: Path
) -> None:
    code, output = invoke("models", "list", "--config", str(config))
    assert code == 0, output
    rows = [line.split("│") for line in output.splitlines() if "fraud" in line]
    assert [[cell.strip() for cell in row[1:4]] for row in rows] == [
        ["fraud", "1", "champion"],
        ["fraud", "2", "candidate"],
    ]
    assert "accuracy 0.91 vs 0.84 (n=100)" in output
    assert "500" in rows[0][6]


def test_list_of_an_empty_registry_says_so(tmp_path: Path, config: Path) -> None:
    (tmp_path / "registry").mkdir()
    code, output = invoke("models", "list", "--config", str(config))
    assert code == 0, output
    assert "holds no versions" in output


def test_show_prints_the_metadata_as_json(registry: FileSystemRegistry, config: Path) -> None:
    code, output = invoke("models", "show", "fraud", "2", "--config", str(config))
    assert code == 0, output
    shown = json.loads(output)
    assert shown == json.loads(registry.metadata("fraud", "2").model_dump_json())
    assert shown["parent_version"] == "1"


def test_promote_by_a_person_retires_the_champion_and_records_why(
    registry: FileSystemRegistry, config: Path
) -> None:
    code, output = invoke(
        "models", "promote", "fraud", "2", "--reason", "ticket 42", "--config", str(config)
    )
    assert code == 0, output
    assert "fraud 2 is the champion (version 1 retired)" in output
    assert "nothing published" in output  # no reference stored with version 2
    last = registry.metadata("fraud", "2").history[-1]
    assert (last.by, last.action, last.reason) == ("person", "promote", "ticket 42")
    assert registry.metadata("fraud", "1").status == "retired"


def test_rollback_by_a_person_brings_a_version_back(
    registry: FileSystemRegistry, config: Path
) -> None:
    registry.promote("fraud", "2", by="trainer", reason="won")
    code, output = invoke(
        "models", "rollback", "fraud", "1", "--reason", "2 misbehaves", "--config", str(config)
    )
    assert code == 0, output
    assert registry.champion("fraud").version == "1"  # type: ignore[union-attr]
    assert registry.metadata("fraud", "1").history[-1].action == "rollback"


def test_a_reason_is_required(registry: FileSystemRegistry, config: Path) -> None:
    code, output = invoke("models", "promote", "fraud", "2", "--config", str(config))
    assert code == 2
    assert "--reason" in output
    assert registry.metadata("fraud", "2").status == "candidate"


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (("show", "churn", "1"), "holds no model 'churn'"),
        (("show", "fraud", "9"), "model 'fraud' has no version '9'"),
        (("promote", "fraud", "9", "--reason", "r"), "model 'fraud' has no version '9'"),
        (("show", "fraud", "../1"), "version '../1' is not a safe name"),
        (("rollback", "fraud", "2", "--reason", "r"), "only a retired or rejected version"),
    ],
)
def test_unknown_or_unsafe_names_fail_in_one_line(
    registry: FileSystemRegistry, config: Path, args: tuple[str, ...], text: str
) -> None:
    code, output = invoke("models", *args, "--config", str(config))
    assert code == 1
    assert_one_line_error(output, text)


def test_a_missing_root_fails_in_one_line(tmp_path: Path, config: Path) -> None:
    code, output = invoke("models", "list", "--config", str(config))
    assert code == 1
    assert_one_line_error(output, "does not exist")


def test_a_tampered_artifact_is_not_promoted(registry: FileSystemRegistry, config: Path) -> None:
    path = registry.root / "fraud" / "2" / MODEL_FILE
    path.write_bytes(b"owned")
    code, output = invoke(
        "models", "promote", "fraud", "2", "--reason", "r", "--config", str(config)
    )
    assert code == 1
    assert_one_line_error(output, f"{path} does not match its metadata")
    assert registry.metadata("fraud", "2").status == "candidate"


def test_config_check_names_a_bad_registry_root(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    path = tmp_path / "driftline.yaml"
    path.write_text(f"registry: {{root: {tmp_path / 'a-file'}}}\n")
    code, output = invoke("config", "check", str(path))
    assert code == 2
    assert "registry.root:" in output
    assert "is not a folder" in output


def test_config_show_includes_the_registry_root(config: Path, tmp_path: Path) -> None:
    code, output = invoke("config", "show", str(config))
    assert code == 0, output
    assert json.loads(output)["registry"] == {"root": str(tmp_path / "registry")}


def test_the_registry_root_defaults_and_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert Settings().registry.root == Path("var/registry")
    monkeypatch.setenv("DRIFTLINE_REGISTRY__ROOT", str(tmp_path / "elsewhere"))
    assert Settings().registry.root == tmp_path / "elsewhere"


def test_list_shows_an_undefined_metric_as_a_dash(
    registry: FileSystemRegistry, config: Path
) -> None:
    metrics = HoldoutMetrics(metric="log_loss", candidate=None, champion=None, n=0)
    registry.register(registration(metrics=metrics), b"three")
    code, output = invoke("models", "list", "fraud", "--config", str(config))
    assert code == 0, output
    assert "log_loss - vs - (n=0)" in output


def test_list_shows_the_challenger_with_its_rollout_mode(
    registry: FileSystemRegistry, config: Path
) -> None:
    registry.challenge(
        "fraud", "2", RolloutMetadata(mode="canary", canary_share=0.25), by="trainer", reason="r"
    )
    code, output = invoke("models", "list", "--config", str(config))
    assert code == 0, output
    rows = [line.split("│") for line in output.splitlines() if "fraud" in line]
    assert [cell.strip() for cell in rows[1][1:4]] == ["fraud", "2", "challenger (canary 25%)"]


def test_rollback_of_the_challenger_by_a_person_rejects_it(
    registry: FileSystemRegistry, config: Path
) -> None:
    registry.challenge("fraud", "2", RolloutMetadata(mode="shadow"), by="trainer", reason="r")
    code, output = invoke(
        "models", "rollback", "fraud", "2", "--reason", "bad canary", "--config", str(config)
    )
    assert code == 0, output
    assert "rejected, its rollout ends" in output
    assert registry.metadata("fraud", "2").status == "rejected"
    champion = registry.champion("fraud")
    assert champion is not None
    assert champion.version == "1"


def test_promote_of_the_challenger_by_a_person_ends_its_rollout(
    registry: FileSystemRegistry, config: Path
) -> None:
    registry.challenge("fraud", "2", RolloutMetadata(mode="shadow"), by="trainer", reason="r")
    code, output = invoke(
        "models", "promote", "fraud", "2", "--reason", "ship it", "--config", str(config)
    )
    assert code == 0, output
    assert "fraud 2 is the champion (version 1 retired)" in " ".join(output.split())
    assert registry.challenger("fraud") is None
    last = registry.metadata("fraud", "2").history[-1]
    assert (last.by, last.action, last.previous) == ("person", "promote", "challenger")
