"""A newcomer's mistakes on the command line: each is one line naming what is wrong, no trace.

Files a command reads or writes (missing, a directory, not JSON), no broker listening, and
``./dev`` with no arguments. The broker cases run the real CLI in a subprocess, because
librdkafka writes its logs to the process's stderr, where :class:`CliRunner` cannot see them.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from driftline.cli import app
from driftline.testing.synthetic import write_sea_files

ROOT = Path(__file__).resolve().parents[2]
CONFIG = (
    "models: {sea: {task: binary, windows: [{size: 10m}], allowed_lateness: 0s, "
    "warmup_events: 500, drift: {min_samples: 100}}}\n"
)


def one_error_line(output: str) -> str:
    """The single line ``output`` holds, which must be an ``error:`` line."""
    assert "Traceback" not in output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith("error: "), output
    return lines[0]


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """Predictions, ground truth and a configuration a replay accepts (baselined, no profile)."""
    directory = tmp_path_factory.mktemp("events")
    predictions, truths = write_sea_files(directory, 3_000, seed=1)
    config = directory / "driftline.yaml"
    config.write_text(CONFIG)
    return predictions, truths, config


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_replay_creates_the_missing_directories_of_its_outputs(
    tmp_path: Path, events: tuple[Path, Path, Path]
) -> None:
    predictions, _, config = events
    lp, json_out = tmp_path / "out" / "lp" / "r.lp", tmp_path / "out" / "json" / "r.jsonl"
    code, output = run(
        "replay", str(predictions), "-c", str(config), "--lp", str(lp), "--json", str(json_out)
    )
    assert code == 0, output
    assert lp.read_text().startswith("feature_drift,")
    assert json_out.read_text().count("\n") == 1
    assert f"windows to {json_out}" in " ".join(output.split())


@pytest.mark.parametrize("option", ["--lp", "--json"])
def test_replay_refuses_an_output_that_is_a_directory_before_replaying(
    tmp_path: Path, events: tuple[Path, Path, Path], option: str
) -> None:
    predictions, _, config = events
    code, output = run("replay", str(predictions), "-c", str(config), option, str(tmp_path))
    assert code == 1
    assert one_error_line(output) == (
        f"error: {option} {tmp_path}: is a directory; give a file name inside it"
    )


def test_replay_refuses_an_output_under_a_file(
    tmp_path: Path, events: tuple[Path, Path, Path]
) -> None:
    predictions, _, config = events
    target = config / "windows.jsonl"
    code, output = run("replay", str(predictions), "-c", str(config), "--json", str(target))
    assert code == 1
    assert one_error_line(output) == f"error: --json {target}: {config} is a file, not a directory"


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ("{not json", "not valid JSON (key must be a string at line 1 column 2)"),
        ('{"model": "sea"}', "not a reference profile (model_version: Field required and"),
        (None, "no such file or directory"),
    ],
    ids=["not-json", "not-a-profile", "missing"],
)
def test_replay_names_a_reference_file_it_cannot_use(
    tmp_path: Path, events: tuple[Path, Path, Path], content: str | None, why: str
) -> None:
    predictions, _, config = events
    reference = tmp_path / "ref.json"
    if content is not None:
        reference.write_text(content)
    code, output = run("replay", str(predictions), "-c", str(config), "--reference", str(reference))
    assert code == 1
    assert one_error_line(output).startswith(f"error: --reference {reference}: {why}")


def test_reference_publish_names_a_profile_that_is_not_json(tmp_path: Path) -> None:
    profile = tmp_path / "ref.json"
    profile.write_text("model: sea\n")
    code, output = run("reference", "publish", str(profile))
    assert code == 1
    assert one_error_line(output).startswith(f"error: PROFILE_FILE {profile}: not valid JSON")


@pytest.mark.parametrize("which", ["predictions", "ground-truth", "directory"])
def test_replay_names_an_input_file_that_is_missing_or_a_directory(
    tmp_path: Path, events: tuple[Path, Path, Path], which: str
) -> None:
    predictions, _, config = events
    missing = tmp_path / "nothere.jsonl"
    args = {
        "predictions": ([str(missing)], f"PREDICTIONS {missing}: does not exist"),
        "ground-truth": (
            [str(predictions), "-g", str(missing)],
            f"--ground-truth {missing}: does not exist",
        ),
        "directory": ([str(tmp_path)], f"PREDICTIONS {tmp_path}: is a directory"),
    }[which]
    code, output = run("replay", *args[0], "-c", str(config))
    assert code == 1
    assert one_error_line(output) == f"error: {args[1]}"


def test_reference_build_names_a_missing_dataset_and_an_output_directory(
    tmp_path: Path,
) -> None:
    common = ["--model", "m", "--version", "1", "--task", "binary"]
    missing = tmp_path / "nothere.csv"
    code, output = run("reference", "build", str(missing), *common)
    assert code == 1
    assert one_error_line(output) == (
        f"error: {missing}: cannot read the file (no such file or directory)"
    )
    data = tmp_path / "data.csv"
    data.write_text("x,prediction\n1,0\n")
    code, output = run("reference", "build", str(data), *common, "--out", str(tmp_path))
    assert code == 1
    assert one_error_line(output) == (
        f"error: --out {tmp_path}: is a directory; give a file name inside it"
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize(
    "command",
    [
        ["topics", "create"],
        ["reference", "publish", "PROFILE"],
        ["monitor", "run"],
        ["simulate", "--config", "CONFIG"],
    ],
    ids=lambda c: "-".join(c[:2]),
)
def test_no_broker_listening_is_one_line_naming_the_bootstrap_servers(
    tmp_path: Path, command: list[str]
) -> None:
    """No broker at the bootstrap address: one line naming it and why, none of librdkafka's
    logs, exit 1 (and ``reference publish`` does not wait out its delivery timeout)."""
    if "PROFILE" in command:
        command = [*command[:-1], str(_a_profile(tmp_path))]
    if "CONFIG" in command:  # the simulated service needs a model to serve
        config = tmp_path / "driftline.yaml"
        config.write_text("models: {sea: {task: binary}}\n")
        command = [*command[:-1], str(config)]
    address = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "DRIFTLINE_KAFKA__BOOTSTRAP_SERVERS": address}
    env.pop("DRIFTLINE_CONFIG", None)
    done = subprocess.run(
        [sys.executable, "-m", "driftline", *command],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    assert one_error_line(done.stderr) == (
        f"error: no Kafka broker answered at {address} (kafka.bootstrap_servers) within 5s: "
        f"Connect to ipv4#{address} failed: Connection refused"
    )


def _a_profile(directory: Path) -> Path:
    predictions, _ = write_sea_files(directory / "ref", 1_000, seed=2)
    profile = directory / "ref.json"
    built = CliRunner().invoke(
        app,
        [
            *("reference", "build", str(predictions), "--model", "sea", "--version", "1"),
            *("--task", "binary", "--out", str(profile), "--no-calibrate"),
        ],
    )
    assert built.exit_code == 0, built.output
    return profile


def test_dev_without_arguments_prints_only_its_help() -> None:
    done = subprocess.run(
        ["bash", str(ROOT / "dev")], capture_output=True, text=True, timeout=30, check=True
    )
    header = (ROOT / "dev").read_text().splitlines()[1:6]
    assert done.stdout.splitlines() == [line.removeprefix("# ") for line in header]
    assert done.stderr == ""


def test_dev_with_an_unknown_command_says_so_and_exits_2() -> None:
    done = subprocess.run(["bash", str(ROOT / "dev"), "tset"], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.splitlines()[0] == "./dev: unknown command 'tset'"
    assert done.stdout == ""


def check(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    path = tmp_path / "driftline.yaml"
    path.write_text(text)
    result = CliRunner().invoke(app, ["config", "check", str(path)], env=env)
    return result.exit_code, " ".join(result.output.split())


def test_config_check_reports_field_errors_and_inconsistencies_together(tmp_path: Path) -> None:
    code, output = check(
        tmp_path,
        "models:\n  fraud: {task: binary, pane: 7m, warmup_events: -1, "
        "performance: {metric: rmse}}\n  churn: {task: binary, drift: {fdr: 2}, pane: 0s}\n",
    )
    assert code == 2
    for expected in (
        "models.fraud.warmup_events: Input should be greater than or equal to 0 (given: -1)",
        "models.fraud: windows.0.size (1h) must be a multiple of the pane (7m)",
        "models.fraud: performance.metric 'rmse' does not fit task 'binary'",
        "models.churn.drift.fdr: Input should be less than 1 (given: 2)",
        "models.churn: pane must be positive",
    ):
        assert f"- {expected}" in output, output


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (
            "{task: binary, performance: {metric: accuracy, threshold: 1.5}}",
            "accuracy (between 0 and 1)",
        ),
        ("{task: binary, performance: {threshold: -0.1}}", "accuracy (between 0 and 1)"),
        ("{task: regression, performance: {metric: rmse, threshold: -2}}", "rmse (at least 0)"),
        ("{task: regression, performance: {metric: r2, threshold: 1.2}}", "r2 (at most 1)"),
    ],
)
def test_a_performance_threshold_outside_its_metric_range_is_named(
    tmp_path: Path, model: str, message: str
) -> None:
    code, output = check(tmp_path, f"models: {{m: {model}}}\n")
    assert code == 2
    assert "models.m: performance.threshold" in output
    assert f"is outside the range of {message}" in output


@pytest.mark.parametrize(
    "model",
    [
        "{task: binary, performance: {metric: f1, threshold: 1.0}}",
        "{task: binary, performance: {metric: log_loss, threshold: 3.5}}",
        "{task: regression, performance: {metric: r2, threshold: -3}}",
    ],
)
def test_a_performance_threshold_within_its_metric_range_is_accepted(
    tmp_path: Path, model: str
) -> None:
    code, output = check(tmp_path, f"models: {{m: {model}}}\n")
    assert code == 0, output


def test_an_environment_variable_naming_no_setting_is_a_warning(tmp_path: Path) -> None:
    code, output = check(
        tmp_path,
        "models: {m: {task: binary}}\n",
        env={
            "DRIFTLINE_LOGLEVEL": "DEBUG",
            "DRIFTLINE_KAFKA_BOOTSTRAP_SERVERS": "broker:9092",
            "DRIFTLINE_TEST_WORKERS": "2",
        },
    )
    assert code == 0, output
    assert output.startswith(
        "warning: DRIFTLINE_KAFKA_BOOTSTRAP_SERVERS names no setting and is ignored; "
        "did you mean DRIFTLINE_KAFKA__BOOTSTRAP_SERVERS? "
        "warning: DRIFTLINE_LOGLEVEL names no setting and is ignored; "
        "did you mean DRIFTLINE_LOG_LEVEL?"
    )
    assert "TEST_WORKERS" not in output  # ./dev's own variable


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        (
            "DRIFTLINE_TOPICS__INPUT_PARTITIONS",
            "zero",
            "topics.input_partitions (set by DRIFTLINE_TOPICS__INPUT_PARTITIONS): Input should "
            "be a valid integer",
        ),
        (
            "DRIFTLINE_KAFKA__BOOTSTRAP",
            "broker:9092",
            "kafka.bootstrap (set by DRIFTLINE_KAFKA__BOOTSTRAP): unknown setting; did you mean "
            "'bootstrap_servers'?",
        ),
        ("DRIFTLINE_MODELS", "{bad", "models (set by DRIFTLINE_MODELS): not valid JSON"),
    ],
)
def test_an_invalid_environment_override_names_its_variable(
    tmp_path: Path, variable: str, value: str, expected: str
) -> None:
    code, output = check(tmp_path, "log_level: INFO\n", env={variable: value})
    assert code == 2
    assert f"- {expected}" in output, output


def test_a_yaml_syntax_error_names_the_file_and_the_line(tmp_path: Path) -> None:
    code, output = check(tmp_path, "models:\n  fraud: {task: binary\n  churn: 1\n")
    assert code == 2
    assert output == (
        f"error: invalid configuration in {tmp_path / 'driftline.yaml'}: - file: not valid YAML "
        "at line 3, column 8: expected ',' or '}', but got ':'"
    )


def test_a_missing_configuration_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    result = CliRunner().invoke(app, ["config", "check", str(missing)])
    assert result.exit_code == 2
    assert " ".join(result.output.split()) == (
        f"error: invalid configuration: - file: {missing} does not exist"
    )


def test_replay_names_a_workdir_that_is_not_a_directory(
    tmp_path: Path, events: tuple[Path, Path, Path]
) -> None:
    predictions, _, config = events
    code, output = run("replay", str(predictions), "-c", str(config), "--workdir", str(config))
    assert code == 1
    assert one_error_line(output) == f"error: --workdir {config}: is a file, not a directory"


def test_schemas_write_into_a_file_is_one_line(tmp_path: Path) -> None:
    target = tmp_path / "schemas"
    target.write_text("")
    code, output = run("schemas", "write", str(target))
    assert code == 1
    assert one_error_line(output) == f"error: DIRECTORY {target}: is a file, not a directory"
