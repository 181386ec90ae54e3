"""The file-system model registry: round trips, numbering, status changes, and the load guard."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from driftline.detectors.profile import build_profile
from driftline.errors import (
    ArtifactMismatchError,
    InvalidNameError,
    RegistryError,
    RegistryRootError,
    StatusChangeError,
    UnknownVersionError,
    UnsafePathError,
)
from driftline.schemas import render_json_schemas
from driftline.schemas.model_version import (
    HoldoutMetrics,
    ModelVersionMetadata,
    RolloutMetadata,
    TrainingSummary,
)
from driftline.schemas.outputs import Reason
from driftline.schemas.reference import ReferenceProfile
from driftline.trainer import guard
from driftline.trainer import registry as registry_module
from driftline.trainer.environment import code_version
from driftline.trainer.registry import (
    CHAMPION_FILE,
    LOCK_FILE,
    METADATA_FILE,
    MODEL_FILE,
    REFERENCE_FILE,
    FileSystemRegistry,
    Registration,
    Registry,
)

START = datetime(2026, 12, 1, 9, tzinfo=UTC)
REASON = Reason(kind="performance", statistic="accuracy", value=0.71, threshold=0.8)


class Clock:
    """A clock that moves a second per reading, so audit entries have distinct times."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def registration(model: str = "fraud", parent: str | None = None, **extra: object) -> Registration:
    data = TrainingSummary(
        first_event_time=START,
        last_event_time=START + timedelta(hours=1),
        rows=500,
        content_hash="c0ffee",
    )
    fields: dict[str, object] = {
        "request_id": "req-1",
        "reasons": (REASON,),
        "parameters": {"grace_period": 200, "seed": 1},
        "metrics": HoldoutMetrics(metric="accuracy", candidate=0.91, champion=0.84, n=100),
        **extra,
    }
    return Registration(
        model, parent, data, {"x1": "numeric", "colour": "categorical"}, "pickle", **fields
    )  # type: ignore[arg-type]


def profile(model: str = "fraud", version: str = "draft") -> ReferenceProfile:
    xs = [float(i % 17) for i in range(200)]
    return build_profile(model, version, "binary", {"x1": xs}, [str(i % 2) for i in range(200)])


@pytest.fixture
def registry(tmp_path: Path) -> FileSystemRegistry:
    return FileSystemRegistry(tmp_path / "registry", clock=Clock())


def crowned(registry: FileSystemRegistry, *versions: str) -> None:
    for version in versions:
        registry.promote("fraud", version, by="trainer", reason=f"promote {version}")


# --- round trips -----------------------------------------------------------------------------


def test_a_registered_version_reads_back_whole(registry: FileSystemRegistry) -> None:
    """Metadata, artifact and reference come back as stored; the record says where they came
    from, what they cost and in which environment."""
    written = registry.register(registration(parent="0"), b"\x00model bytes", reference=profile())
    assert written.version == "1"
    assert registry.metadata("fraud", "1") == written
    assert registry.artifact("fraud", "1") == b"\x00model bytes"
    assert written.artifact.sha256 == hashlib.sha256(b"\x00model bytes").hexdigest()
    assert written.artifact.size == 12
    assert written.artifact.format == "pickle"
    assert (written.status, written.parent_version, written.request_id) == (
        "candidate",
        "0",
        "req-1",
    )
    assert written.reasons == (REASON,)
    assert written.training_data.rows == 500
    assert written.features == {"x1": "numeric", "colour": "categorical"}
    assert written.parameters == {"grace_period": 200, "seed": 1}
    assert written.metrics == HoldoutMetrics(
        metric="accuracy", candidate=0.91, champion=0.84, n=100
    )
    assert written.code_version == code_version()
    assert written.environment.python.count(".") == 2
    assert {"river", "numpy"} <= set(written.environment.packages)
    assert [(h.by, h.action, h.status, h.previous, h.reason) for h in written.history] == [
        ("trainer", "register", "candidate", None, "retrain request req-1")
    ]
    reference = registry.reference("fraud", "1")
    assert reference is not None
    assert (reference.model, reference.model_version) == ("fraud", "1")  # stamped
    assert reference.content_hash == profile().content_hash


def test_a_version_without_a_reference_has_none(registry: FileSystemRegistry) -> None:
    registry.register(registration(), b"m")
    assert registry.reference("fraud", "1") is None
    assert registry.metadata("fraud", "1").reference_sha256 is None


def test_the_metadata_file_is_the_published_schema(registry: FileSystemRegistry) -> None:
    """metadata.json parses as ModelVersionMetadata, and the committed schema forbids unknown
    fields and requires the lineage, data, artifact, status and audit fields."""
    registry.register(registration(), b"m")
    text = (registry.root / "fraud" / "1" / METADATA_FILE).read_text()
    assert ModelVersionMetadata.model_validate_json(text).version == "1"
    schema = json.loads(render_json_schemas()["model-version-metadata.schema.json"])
    assert schema["additionalProperties"] is False
    assert {
        "model",
        "version",
        "created_at",
        "training_data",
        "features",
        "status",
        "artifact",
        "code_version",
        "environment",
        "history",
    } <= set(schema["required"])
    assert set(schema["properties"]) == set(json.loads(text))


def test_the_registry_satisfies_the_protocol(registry: FileSystemRegistry) -> None:
    store: Registry = registry
    assert store.champion("fraud") is None
    store.register(registration(), b"m")
    assert store.models() == ["fraud"]


def test_a_reference_of_another_model_is_refused(registry: FileSystemRegistry) -> None:
    with pytest.raises(RegistryError, match="reference profile is of model 'churn'"):
        registry.register(registration(), b"m", reference=profile("churn"))
    assert not (registry.root / "fraud" / "1").exists()


def test_a_candidate_that_is_not_valid_metadata_is_refused_before_any_folder(
    registry: FileSystemRegistry,
) -> None:
    registry.register(registration(), b"m")  # a valid one first: the model folder exists
    kinds = {"x1": "ordinal"}
    bad = Registration("fraud", None, registration().training_data, kinds, "pickle")  # type: ignore[arg-type]
    with pytest.raises(RegistryError, match=r"cannot register a version of 'fraud': features\.x1"):
        registry.register(bad, b"m")
    assert sorted(p.name for p in (registry.root / "fraud").iterdir()) == ["1", "_lock"]


# --- numbering -------------------------------------------------------------------------------


def test_integer_versions_count_up_from_the_parent_and_the_others(
    registry: FileSystemRegistry,
) -> None:
    """Every name an integer: max + 1 over the versions and the parent."""
    assert registry.register(registration(parent="7"), b"a").version == "8"
    assert registry.register(registration(parent="8"), b"b").version == "9"
    assert registry.register(registration(parent="1"), b"c").version == "10"
    assert [m.version for m in registry.versions("fraud")] == ["8", "9", "10"]


def test_a_non_integer_lineage_branches_from_the_parent(registry: FileSystemRegistry) -> None:
    assert registry.register(registration(parent="v3"), b"a").version == "v3.1"
    assert registry.register(registration(parent="v3"), b"b").version == "v3.2"
    assert registry.register(registration(parent="v3.1"), b"c").version == "v3.1.1"


def test_an_unfinished_registration_keeps_its_number_and_is_not_listed(
    registry: FileSystemRegistry,
) -> None:
    """A folder without metadata.json (a crash mid-registration) is never handed out again."""
    registry.register(registration(), b"a")
    (registry.root / "fraud" / "2").mkdir()
    assert registry.register(registration(parent="1"), b"b").version == "3"
    assert [m.version for m in registry.versions("fraud")] == ["1", "3"]
    with pytest.raises(UnknownVersionError, match="incomplete"):
        registry.metadata("fraud", "2")


def _register_many(root: str, n: int, barrier: object) -> None:
    barrier.wait()  # type: ignore[attr-defined]
    store = FileSystemRegistry(Path(root))
    for i in range(n):
        store.register(registration(parent="1"), f"{os.getpid()}-{i}".encode())


def test_two_processes_registering_at_once_get_distinct_versions(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    workers = [
        context.Process(target=_register_many, args=(str(tmp_path), 15, barrier)) for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    versions = FileSystemRegistry(tmp_path).versions("fraud")
    assert sorted(int(m.version) for m in versions) == list(range(2, 32))
    assert len({m.artifact.sha256 for m in versions}) == 30


def test_threads_registering_at_once_get_distinct_versions(registry: FileSystemRegistry) -> None:
    barrier = threading.Barrier(4)

    def work() -> None:
        barrier.wait(timeout=30)
        for _ in range(5):
            registry.register(registration(), b"x")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert [m.version for m in registry.versions("fraud")] == [str(i) for i in range(1, 21)]


def test_a_registration_waits_for_the_models_lock(registry: FileSystemRegistry) -> None:
    """While another process holds the model's lock, a registration neither numbers nor
    writes anything; it goes on once the lock is released."""
    registry.register(registration(), b"a")
    done = threading.Event()

    def register() -> None:
        registry.register(registration(), b"b")
        done.set()

    thread = threading.Thread(target=register)
    with guard.locked(registry.root / "fraud" / LOCK_FILE):
        thread.start()
        assert not done.wait(timeout=0.5)
        assert sorted(p.name for p in (registry.root / "fraud").iterdir()) == ["1", "_lock"]
    assert done.wait(timeout=30)
    thread.join(timeout=30)
    assert [m.version for m in registry.versions("fraud")] == ["1", "2"]


def test_a_version_folder_made_by_someone_else_is_never_reused(
    registry: FileSystemRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The folder is created exclusively: a name taken since the listing is skipped, not
    written into."""
    registry.register(registration(), b"a")
    (registry.root / "fraud" / "2").mkdir()
    answers = iter(["2"])
    real = registry_module.next_version

    def stale_first(taken: set[str], parent: str | None) -> str:
        return next(answers, None) or real(taken, parent)

    monkeypatch.setattr(registry_module, "next_version", stale_first)
    assert registry.register(registration(), b"b").version == "3"
    assert list((registry.root / "fraud" / "2").iterdir()) == []


# --- status and audit ------------------------------------------------------------------------


def test_promotion_retires_the_old_champion_and_records_both(registry: FileSystemRegistry) -> None:
    registry.register(registration(), b"a")
    registry.register(registration(parent="1"), b"b")
    crowned(registry, "1")
    new = registry.promote("fraud", "2", by="person", reason="it wins")
    assert new.status == "champion"
    assert registry.champion("fraud") == new
    assert (registry.root / "fraud" / CHAMPION_FILE).read_text().strip() == "2"
    old = registry.metadata("fraud", "1")
    assert old.status == "retired"
    assert [(h.by, h.action, h.previous, h.status, h.reason) for h in old.history[1:]] == [
        ("trainer", "promote", "candidate", "champion", "promote 1"),
        ("person", "promote", "champion", "retired", "superseded by version 2: it wins"),
    ]
    assert new.history[-1].at > new.history[0].at


def test_promoting_the_champion_again_changes_nothing(registry: FileSystemRegistry) -> None:
    registry.register(registration(), b"a")
    first = registry.promote("fraud", "1", by="trainer", reason="first")
    assert registry.promote("fraud", "1", by="trainer", reason="retry") == first


def test_rollback_brings_a_retired_version_back_and_records_it(
    registry: FileSystemRegistry,
) -> None:
    for payload in (b"a", b"b"):
        registry.register(registration(parent="1"), payload)
    crowned(registry, "2", "3")
    back = registry.rollback("fraud", "2", by="person", reason="3 misbehaves in production")
    assert back.status == "champion"
    assert back.history[-1].action == "rollback"
    assert back.history[-1].previous == "retired"
    assert registry.metadata("fraud", "3").status == "retired"
    assert registry.champion("fraud") == back


def test_only_candidates_are_promoted_and_only_retired_or_rejected_rolled_back(
    registry: FileSystemRegistry,
) -> None:
    registry.register(registration(), b"a")
    registry.register(registration(), b"b")
    registry.set_status("fraud", "2", "rejected", by="trainer", reason="lost by 0.03")
    with pytest.raises(
        StatusChangeError, match="only a candidate or the challenger can be promoted"
    ):
        registry.promote("fraud", "2", by="person", reason="x")
    with pytest.raises(StatusChangeError, match="only a retired or rejected version"):
        registry.rollback("fraud", "1", by="person", reason="x")
    with pytest.raises(StatusChangeError, match="use promote or rollback"):
        registry.set_status("fraud", "1", "champion", by="person", reason="x")
    assert registry.rollback("fraud", "2", by="person", reason="the metric lied").status == (
        "champion"
    )


def test_retiring_the_champion_leaves_none(registry: FileSystemRegistry) -> None:
    registry.register(registration(), b"a")
    crowned(registry, "1")
    retired = registry.set_status("fraud", "1", "retired", by="person", reason="model withdrawn")
    assert retired.history[-1].previous == "champion"
    assert registry.champion("fraud") is None
    assert not (registry.root / "fraud" / CHAMPION_FILE).exists()


def test_concurrent_promotions_leave_exactly_one_champion(registry: FileSystemRegistry) -> None:
    versions = [registry.register(registration(), b"x").version for _ in range(6)]
    barrier = threading.Barrier(len(versions))

    def promote(version: str) -> None:
        barrier.wait(timeout=30)
        registry.promote("fraud", version, by="trainer", reason=f"thread {version}")

    threads = [threading.Thread(target=promote, args=(v,)) for v in versions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    statuses = [m.status for m in registry.versions("fraud")]
    assert sorted(statuses) == ["champion"] + ["retired"] * 5
    champion = registry.champion("fraud")
    assert champion is not None
    assert (registry.root / "fraud" / CHAMPION_FILE).read_text().strip() == champion.version


def test_an_interrupted_promotion_settles_on_the_newer_champion(
    registry: FileSystemRegistry,
) -> None:
    """A crash after the new champion's metadata but before the old one's retirement leaves
    two champions: the newer is served, and the next change retires the older."""
    registry.register(registration(), b"a")
    registry.register(registration(), b"b")
    registry.register(registration(), b"c")
    crowned(registry, "1")
    folder = registry.root / "fraud"
    saved = (folder / "1" / METADATA_FILE).read_bytes()
    crowned(registry, "2")
    (folder / "1" / METADATA_FILE).write_bytes(saved)  # as if 1 was never retired
    (folder / CHAMPION_FILE).write_text("1\n")  # nor the pointer moved
    assert registry.champion("fraud").version == "2"  # type: ignore[union-attr]
    assert registry.metadata("fraud", "1").status == "champion"
    registry.set_status("fraud", "3", "rejected", by="trainer", reason="lost")
    repaired = registry.metadata("fraud", "1")
    assert (repaired.status, repaired.history[-1].action) == ("retired", "repair")
    assert (folder / CHAMPION_FILE).read_text().strip() == "2"


# --- the guard -------------------------------------------------------------------------------

BAD_NAMES = ["..", "../x", "a/b", "/etc", ".hidden", "", "a\\b", "x" * 129, "a\x00b", "_lock"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_unsafe_names_are_refused_naming_the_rule(registry: FileSystemRegistry, name: str) -> None:
    registry.register(registration(), b"a")
    with pytest.raises(InvalidNameError, match="is not a safe name"):
        registry.register(registration(model=name), b"a")
    with pytest.raises(InvalidNameError, match="is not a safe name"):
        registry.register(registration(parent=name), b"a")
    with pytest.raises(InvalidNameError, match="is not a safe name"):
        registry.artifact("fraud", name)
    with pytest.raises(InvalidNameError, match="is not a safe name"):
        registry.metadata(name, "1")


def test_a_version_folder_linked_outside_the_root_is_refused(
    registry: FileSystemRegistry, tmp_path: Path
) -> None:
    """A symlink that leads out of the root is refused even when the files behind it match."""
    registry.register(registration(), b"a")
    outside = tmp_path / "elsewhere"
    shutil.copytree(registry.root / "fraud" / "1", outside)
    shutil.rmtree(registry.root / "fraud" / "1")
    (registry.root / "fraud" / "1").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafePathError, match="outside the registry root"):
        registry.artifact("fraud", "1")


def test_a_model_file_linked_outside_the_root_is_refused(
    registry: FileSystemRegistry, tmp_path: Path
) -> None:
    registry.register(registration(), b"a")
    outside = tmp_path / "evil.bin"
    outside.write_bytes(b"a")
    target = registry.root / "fraud" / "1" / MODEL_FILE
    target.unlink()
    target.symlink_to(outside)
    with pytest.raises(UnsafePathError, match="outside the registry root"):
        registry.artifact("fraud", "1")


def test_a_model_folder_linked_outside_the_root_is_refused(
    registry: FileSystemRegistry, tmp_path: Path
) -> None:
    registry.register(registration(), b"a")
    shutil.move(registry.root / "fraud", tmp_path / "fraud-out")
    (registry.root / "fraud").symlink_to(tmp_path / "fraud-out", target_is_directory=True)
    with pytest.raises(UnsafePathError, match="outside the registry root"):
        registry.metadata("fraud", "1")
    with pytest.raises(UnsafePathError):
        registry.register(registration(), b"b")


def test_a_tampered_artifact_is_refused_naming_the_file(registry: FileSystemRegistry) -> None:
    registry.register(registration(), b"the model")
    path = registry.root / "fraud" / "1" / MODEL_FILE
    path.write_bytes(b"the modeL")
    with pytest.raises(ArtifactMismatchError, match=f"{path} does not match its metadata"):
        registry.artifact("fraud", "1")
    with pytest.raises(ArtifactMismatchError):
        registry.promote("fraud", "1", by="person", reason="x")
    assert registry.metadata("fraud", "1").status == "candidate"


def test_a_tampered_reference_is_refused(registry: FileSystemRegistry) -> None:
    registry.register(registration(), b"m", reference=profile())
    path = registry.root / "fraud" / "1" / REFERENCE_FILE
    path.write_text(path.read_text().replace('"n_rows": 200', '"n_rows": 201'))
    with pytest.raises(ArtifactMismatchError, match=str(path)):
        registry.reference("fraud", "1")


def test_metadata_copied_from_another_version_is_refused(registry: FileSystemRegistry) -> None:
    registry.register(registration(), b"a")
    registry.register(registration(), b"b")
    folder = registry.root / "fraud"
    shutil.copy(folder / "1" / METADATA_FILE, folder / "2" / METADATA_FILE)
    with pytest.raises(
        RegistryError, match="describes 'fraud' version '1', not 'fraud' version '2'"
    ):
        registry.artifact("fraud", "2")


def test_broken_metadata_is_reported_with_its_field(registry: FileSystemRegistry) -> None:
    registry.register(registration(), b"a")
    path = registry.root / "fraud" / "1" / METADATA_FILE
    path.write_text(path.read_text().replace('"status": "candidate"', '"status": "king"'))
    with pytest.raises(RegistryError, match=f"{path} is not valid metadata: status"):
        registry.metadata("fraud", "1")


# --- what is missing -------------------------------------------------------------------------


def test_unknown_models_versions_and_roots_are_named(
    registry: FileSystemRegistry, tmp_path: Path
) -> None:
    with pytest.raises(RegistryRootError, match="does not exist"):
        registry.models()
    registry.register(registration(), b"a")
    with pytest.raises(UnknownVersionError, match="holds no model 'churn'"):
        registry.versions("churn")
    with pytest.raises(UnknownVersionError, match="model 'fraud' has no version '9'"):
        registry.artifact("fraud", "9")
    (tmp_path / "file").write_text("")
    with pytest.raises(RegistryRootError, match="is not a folder"):
        FileSystemRegistry(tmp_path / "file").models()


def test_listing_skips_the_registrys_own_files(registry: FileSystemRegistry) -> None:
    registry.register(registration(), b"a")
    registry.register(registration("churn"), b"a")
    crowned(registry, "1")
    assert registry.models() == ["churn", "fraud"]
    assert [m.version for m in registry.versions("fraud")] == ["1"]


@pytest.fixture(autouse=True)
def _no_stray_temporaries(tmp_path: Path) -> Iterator[None]:
    """No test leaves a half-written temporary file in the registry."""
    yield
    assert not list(tmp_path.rglob("*.tmp"))


def test_file_system_failures_are_registry_errors(registry: FileSystemRegistry) -> None:
    """A file where a folder should be is reported as a registry error naming the path, or
    its name is skipped when it is only in the way of a new version's number."""
    registry.root.mkdir()
    (registry.root / "fraud").write_text("not a folder")
    with pytest.raises(RegistryError, match=r"cannot create .*fraud"):
        registry.register(registration(), b"m")
    registry.register(registration("churn"), b"m")
    (registry.root / "churn" / "2").write_text("not a folder")  # the next version's name
    assert registry.register(registration("churn"), b"m").version == "3"


# --- rollout: the challenger (issue 16) ------------------------------------------------------


def test_a_candidate_becomes_the_challenger_with_its_rollout_mode(
    registry: FileSystemRegistry,
) -> None:
    """challenge() keeps the champion serving, records the mode and the change in the history,
    and a second challenge of the same version changes nothing."""
    registry.register(registration(), b"one")
    crowned(registry, "1")
    registry.register(registration(parent="1"), b"two", reference=profile())
    mode = RolloutMetadata(mode="canary", canary_share=0.2)
    changed = registry.challenge("fraud", "2", mode, by="trainer", reason="won the holdout")
    assert (changed.status, changed.rollout) == ("challenger", mode)
    assert registry.metadata("fraud", "2") == changed
    assert registry.challenger("fraud") == changed
    champion = registry.champion("fraud")
    assert champion is not None
    assert champion.version == "1"
    last = changed.history[-1]
    assert (last.action, last.status, last.previous) == ("challenge", "challenger", "candidate")
    assert registry.challenge("fraud", "2", mode, by="trainer", reason="again") == changed


def test_promoting_the_challenger_retires_the_champion(registry: FileSystemRegistry) -> None:
    registry.register(registration(), b"one")
    crowned(registry, "1")
    registry.register(registration(parent="1"), b"two")
    registry.challenge("fraud", "2", RolloutMetadata(mode="shadow"), by="trainer", reason="r")
    promoted = registry.promote("fraud", "2", by="trainer", reason="rollout decision d-1")
    assert promoted.status == "champion"
    assert [(h.action, h.status) for h in promoted.history][-2:] == [
        ("challenge", "challenger"),
        ("promote", "champion"),
    ]
    assert registry.metadata("fraud", "1").status == "retired"
    assert registry.challenger("fraud") is None


def test_rolling_back_the_challenger_rejects_it_and_keeps_the_champion(
    registry: FileSystemRegistry,
) -> None:
    registry.register(registration(), b"one")
    crowned(registry, "1")
    registry.register(registration(parent="1"), b"two")
    registry.challenge("fraud", "2", RolloutMetadata(mode="shadow"), by="trainer", reason="r")
    rejected = registry.rollback("fraud", "2", by="person", reason="looks wrong")
    assert rejected.status == "rejected"
    last = rejected.history[-1]
    assert (last.by, last.action, last.previous, last.reason) == (
        "person",
        "rollback",
        "challenger",
        "looks wrong",
    )
    champion = registry.champion("fraud")
    assert champion is not None
    assert champion.version == "1"
    assert registry.challenger("fraud") is None


def test_a_new_challenger_supersedes_the_old_one(registry: FileSystemRegistry) -> None:
    registry.register(registration(), b"one")
    registry.register(registration(), b"two")
    shadow = RolloutMetadata(mode="shadow")
    registry.challenge("fraud", "1", shadow, by="trainer", reason="first")
    registry.challenge("fraud", "2", shadow, by="trainer", reason="second")
    old = registry.metadata("fraud", "1")
    assert old.status == "rejected"
    assert "superseded by challenger 2" in old.history[-1].reason
    challenger = registry.challenger("fraud")
    assert challenger is not None
    assert challenger.version == "2"


def test_only_a_candidate_can_become_the_challenger(registry: FileSystemRegistry) -> None:
    registry.register(registration(), b"one")
    crowned(registry, "1")
    with pytest.raises(StatusChangeError, match="only a candidate"):
        registry.challenge("fraud", "1", RolloutMetadata(mode="shadow"), by="trainer", reason="r")
    with pytest.raises(StatusChangeError):
        registry.set_status("fraud", "1", "challenger", by="person", reason="r")


def test_the_canary_share_is_a_proper_fraction() -> None:
    with pytest.raises(ValueError, match="canary_share"):
        RolloutMetadata(mode="canary", canary_share=1.0)
