"""Restoring file-tree backups through ``/api/v1/restore`` (seed 000 section 2 for files):
full (replace the directory), selective (paths and globs), merge with skip / overwrite /
rename, dry runs that predict the real run, cancel, target validation, preview; and the
end to end round trip backup -> modify -> restore -> identical tree."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from strongbox.services import file_restore
from strongbox.services.file_restore import STAGING_PREFIX
from tests.api.conftest import Server, running_server
from tests.api.test_backups_contract import assert_error
from tests.api.test_restore import post_restore, start_restore, wait_for_restore


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    extra = tmp_path_factory.mktemp("extra-root")
    with running_server(tmp_path_factory.mktemp("restore-files"),
                        rate_limit_restore="10000/hour", restore_roots=[extra]) as started:
        started.sources["extra_root"] = str(extra)
        yield started


def make_tree(root: Path) -> None:
    (root / "docs" / "deep").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "docs" / "a.txt").write_text("alpha\n")
    (root / "docs" / "b.md").write_text("# bravo\n")
    (root / "docs" / "deep" / "c.txt").write_text("charlie " * 1000)
    (root / "top.bin").write_bytes(os.urandom(200_000))
    (root / "link").symlink_to("docs/a.txt")
    os.chmod(root / "docs" / "a.txt", 0o640)


def tree_state(root: Path) -> dict[str, Any]:
    """Every entry with its type, content (or link target) and mode."""
    found: dict[str, Any] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                found[rel] = ("link", os.readlink(path))
            elif path.is_dir():
                found[rel] = ("dir", path.stat().st_mode & 0o777)
            else:
                found[rel] = ("file", path.read_bytes(), path.stat().st_mode & 0o777)
    return found


@pytest.fixture
def source(server: Server, tmp_path: Path) -> dict[str, Any]:
    """A files source of its own (a fresh tree) and a completed backup of it."""
    root = tmp_path / "tree"
    root.mkdir()
    make_tree(root)
    response = server.client.post("/api/v1/sources", headers=server.headers(),
                                  json={"name": f"tree {uuid.uuid4().hex[:8]}",
                                        "kind": "files", "path": str(root)})
    assert response.status_code == 201, response.text
    source_id = response.json()["_id"]
    backup = server.backup_and_wait({"name": "the tree", "type": "full",
                                     "source_id": source_id})
    return {"root": root, "source_id": source_id, "backup_id": backup["backup_id"],
            "state": tree_state(root)}


def restore(server: Server, body: dict[str, Any]) -> dict[str, Any]:
    created = start_restore(server, body)
    status = wait_for_restore(server, created["job_id"])
    assert status["status"] == "completed", status
    return {"created": created, "status": status, "results": status["results"]}


def no_staging_left(root: Path) -> bool:
    return not any(p.name.startswith(STAGING_PREFIX) for p in root.iterdir())


def test_end_to_end_backup_modify_full_restore_gives_the_identical_tree(
        server: Server, source: dict[str, Any]) -> None:
    root: Path = source["root"]
    (root / "docs" / "a.txt").write_text("changed\n")
    (root / "docs" / "deep" / "c.txt").unlink()
    (root / "new.txt").write_text("not in the backup")
    (root / "newdir" / "x").mkdir(parents=True)
    (root / "link").unlink()
    (root / "link").symlink_to("elsewhere")
    assert tree_state(root) != source["state"]
    done = restore(server, {"backup_id": source["backup_id"], "mode": "full"})
    assert tree_state(root) == source["state"]
    assert no_staging_left(root)
    results = done["results"]
    files = results["files"]
    assert files["deleted"] == 1 and files["dirs_deleted"] == 1  # new.txt; newdir (whole)
    assert files["overwritten"] == 2  # a.txt, link
    assert files["created"] == 1  # c.txt
    assert results["target_path"] == os.path.realpath(root)
    assert results["safety_snapshot_id"]  # something was replaced: a safety snapshot first
    assert results["total_documents"] == files["created"] + files["overwritten"]
    progress = done["status"]["progress"]
    assert progress["percentage"] == 100 and progress["collections_processed"] == ["files"]
    assert progress["documents_restored"] == results["total_documents"]
    assert progress["bytes_total"] == progress["bytes_restored"] > 200_000


def test_full_restore_into_another_directory(server: Server, source: dict[str, Any]) -> None:
    target = Path(server.sources["extra_root"]) / f"copy-{uuid.uuid4().hex[:6]}" / "here"
    done = restore(server, {"backup_id": source["backup_id"], "mode": "full",
                            "target": {"path": str(target)}})
    assert tree_state(target) == source["state"]
    assert "safety_snapshot_id" not in done["results"]  # nothing there to replace
    assert done["results"]["files"]["created"] == len(
        [v for v in source["state"].values() if v[0] != "dir"])


def test_selective_restore_of_paths_and_globs(server: Server, source: dict[str, Any]) -> None:
    root: Path = source["root"]
    for path in ("docs/a.txt", "docs/b.md", "docs/deep/c.txt", "top.bin"):
        (root / path).unlink()
    done = restore(server, {"backup_id": source["backup_id"], "mode": "selective",
                            "selections": {"paths": ["docs"], "include_patterns": ["*.txt"]}})
    assert (root / "docs" / "a.txt").read_text() == "alpha\n"
    assert (root / "docs" / "deep" / "c.txt").exists()
    assert not (root / "docs" / "b.md").exists() and not (root / "top.bin").exists()
    assert (root / "docs" / "a.txt").stat().st_mode & 0o777 == 0o640
    assert done["results"]["files"]["created"] == 2
    excluded = restore(server, {"backup_id": source["backup_id"], "mode": "selective",
                                "selections": {"exclude_patterns": ["deep", "*.md"]}})
    assert (root / "top.bin").exists() and not (root / "docs" / "b.md").exists()
    assert excluded["results"]["files"]["created"] == 1  # top.bin; a.txt is unchanged
    assert excluded["results"]["files"]["unchanged"] >= 1


def conflicts_setup(root: Path) -> None:
    (root / "docs" / "a.txt").write_text("edited locally\n")
    (root / "docs" / "deep" / "c.txt").unlink()


def test_merge_skip_keeps_existing_files(server: Server, source: dict[str, Any]) -> None:
    root: Path = source["root"]
    conflicts_setup(root)
    done = restore(server, {"backup_id": source["backup_id"], "mode": "merge"})
    assert (root / "docs" / "a.txt").read_text() == "edited locally\n"
    assert (root / "docs" / "deep" / "c.txt").exists()
    files = done["results"]["files"]
    assert files["skipped"] == 1 and files["created"] == 1 and files["conflicts"] == 1
    conflict = done["created"]["validation_results"]["conflicts"][0]
    assert conflict == {"type": "file", "existing_id": "docs/a.txt", "backup_id": "docs/a.txt",
                        "existing_name": "docs/a.txt", "backup_name": "docs/a.txt",
                        "resolution": "skip"}
    assert "safety_snapshot_id" not in done["results"]  # nothing replaced


def test_merge_overwrite_replaces_and_takes_a_safety_snapshot(
        server: Server, source: dict[str, Any]) -> None:
    root: Path = source["root"]
    conflicts_setup(root)
    (root / "mine.txt").write_text("kept: merge never deletes")
    done = restore(server, {"backup_id": source["backup_id"], "mode": "merge",
                            "options": {"on_conflict": "overwrite"}})
    assert (root / "docs" / "a.txt").read_text() == "alpha\n"
    assert (root / "mine.txt").exists()
    assert done["results"]["files"]["overwritten"] == 1
    safety = done["results"]["safety_snapshot_id"]
    repo = server.services.storage.open()
    assert "safety" in repo.load_snapshot(safety).tags


def test_merge_rename_writes_the_restored_file_beside_the_existing_one(
        server: Server, source: dict[str, Any]) -> None:
    root: Path = source["root"]
    conflicts_setup(root)
    (root / "docs" / "a_restored.txt").write_text("an earlier restored copy")
    done = restore(server, {"backup_id": source["backup_id"], "mode": "merge",
                            "options": {"on_conflict": "rename"}})
    assert (root / "docs" / "a.txt").read_text() == "edited locally\n"
    assert (root / "docs" / "a_restored.txt").read_text() == "an earlier restored copy"
    assert (root / "docs" / "a_restored_2.txt").read_text() == "alpha\n"
    conflicts = done["results"]["file_conflicts"]
    assert [(c["backup_id"], c["backup_name"], c["resolution"]) for c in conflicts] == [
        ("docs/a.txt", "docs/a_restored_2.txt", "rename")]
    suffixed = restore(server, {"backup_id": source["backup_id"], "mode": "merge",
                                "options": {"on_conflict": "rename"},
                                "target": {"project_name_suffix": ".orig"}})
    assert (root / "docs" / "a.orig.txt").read_text() == "alpha\n"
    assert suffixed["results"]["files"]["renamed"] == 1


@pytest.mark.parametrize("body", [
    {"mode": "full"},
    {"mode": "merge", "options": {"on_conflict": "rename"}},
    {"mode": "merge", "options": {"on_conflict": "overwrite"}},
    {"mode": "selective", "selections": {"paths": ["docs"]},
     "options": {"on_conflict": "overwrite"}},
])
def test_a_dry_run_predicts_the_real_run_and_changes_nothing(
        server: Server, source: dict[str, Any], body: dict[str, Any]) -> None:
    root: Path = source["root"]
    conflicts_setup(root)
    (root / "extra.txt").write_text("x")
    before = tree_state(root)
    dry = restore(server, {**body, "backup_id": source["backup_id"],
                           "options": {**body.get("options", {}), "dry_run": True}})
    assert tree_state(root) == before and no_staging_left(root)
    assert dry["results"]["dry_run"] is True
    real = restore(server, {**body, "backup_id": source["backup_id"]})
    assert real["results"]["dry_run"] is False
    for key in ("files", "file_conflicts", "total_documents", "skipped_duplicates",
                "conflicts_count"):
        assert dry["results"][key] == real["results"][key], key
    assert dry["created"]["estimated_documents"] == real["results"]["total_documents"]


def test_cancelling_mid_restore_leaves_the_target_unchanged(
        server: Server, source: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    root: Path = source["root"]
    (root / "docs" / "a.txt").write_text("edited\n")
    (root / "top.bin").unlink()
    before = tree_state(root)
    reached = threading.Event()
    real_swap = file_restore._swap

    def slow_swap(*args: Any, **kwargs: Any) -> None:
        progress = args[-1]
        reached.set()
        deadline = time.monotonic() + 30
        while not progress.cancelled and time.monotonic() < deadline:
            time.sleep(0.01)
        real_swap(*args, **kwargs)  # checks the cancel at once: nothing is placed

    monkeypatch.setattr(file_restore, "_swap", slow_swap)
    created = start_restore(server, {"backup_id": source["backup_id"], "mode": "full"})
    assert reached.wait(30)
    response = server.client.post(f"/api/v1/restore/jobs/{created['job_id']}/cancel",
                                  headers=server.headers("operator"))
    assert response.status_code == 200, response.text
    assert response.json()["rollback_available"] is True
    status = wait_for_restore(server, created["job_id"])
    assert status["status"] == "failed" and status["errors"][0]["error_code"] == "CANCELLED"
    assert tree_state(root) == before and no_staging_left(root)


@pytest.mark.parametrize("failing_call", [4, 7])  # moving the old tree aside; moving in
def test_a_failure_half_way_through_the_swap_is_undone(
        server: Server, source: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
        failing_call: int) -> None:
    root: Path = source["root"]
    (root / "docs" / "a.txt").write_text("edited\n")
    (root / "mine.txt").write_text("mine")
    before = tree_state(root)
    real_rename = os.rename
    calls = {"n": 0}

    def failing_rename(src: Any, dst: Any) -> None:
        calls["n"] += 1
        if calls["n"] == failing_call:  # some entries are already moved
            raise OSError(28, "No space left on device")
        real_rename(src, dst)

    monkeypatch.setattr(file_restore.os, "rename", failing_rename)
    created = start_restore(server, {"backup_id": source["backup_id"], "mode": "full"})
    status = wait_for_restore(server, created["job_id"])
    monkeypatch.undo()
    assert status["status"] == "failed"
    assert tree_state(root) == before and no_staging_left(root)


def test_an_interrupted_swap_is_undone_from_its_journal(tmp_path: Path) -> None:
    target = tmp_path / "t"
    target.mkdir()
    (target / "keep.txt").write_text("original")
    work = file_restore.staging_dir(target, "job-1234567890ab")
    (work / "replaced").mkdir(parents=True)
    (work / "staged").mkdir()
    (work / "staged" / "new.txt").write_text("restored")
    # The swap had moved keep.txt aside and new.txt in when the server died.
    os.rename(target / "keep.txt", work / "replaced" / "keep.txt")
    os.rename(work / "staged" / "new.txt", target / "new.txt")
    (work / "journal.jsonl").write_text(
        f'{{"op": "move", "src": "{target / "keep.txt"}", '
        f'"dst": "{work / "replaced" / "keep.txt"}"}}\n'
        f'{{"op": "move", "src": "{work / "staged" / "new.txt"}", '
        f'"dst": "{target / "new.txt"}"}}\n')
    assert file_restore.recover(target, "job-1234567890ab")
    assert sorted(p.name for p in target.iterdir()) == ["keep.txt"]
    assert (target / "keep.txt").read_text() == "original"


def test_bad_targets_are_refused_and_nothing_is_written(
        server: Server, source: dict[str, Any], tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    escape = source["root"] / "escape"
    escape.symlink_to(tmp_path)  # inside the root by name, outside once resolved
    a_file = source["root"] / "top.bin"
    cases = [(str(outside), "OUTSIDE_RESTORE_ROOTS"), ("relative/dir", "INVALID_PATH"),
             (str(escape / "x"), "OUTSIDE_RESTORE_ROOTS"), (str(a_file), "NOT_A_DIRECTORY"),
             (str(server.data_dir.parent), "OUTSIDE_RESTORE_ROOTS")]
    for path, code in cases:
        error = assert_error(post_restore(server, {"backup_id": source["backup_id"],
                                                   "mode": "full", "target": {"path": path}}),
                             400, "VALIDATION_FAILED")
        assert [(e["field"], e["code"]) for e in error["validation_errors"]] == [
            ("target.path", code)], error
    assert not outside.exists()
    assert not (tmp_path / "x").exists()


def test_file_request_validation(server: Server, source: dict[str, Any]) -> None:
    backup_id = source["backup_id"]
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"mode": "selective"}, "selections", "REQUIRED"),
        ({"mode": "full", "selections": {"paths": ["docs"]}}, "selections", "NOT_APPLICABLE"),
        ({"mode": "merge", "selections": {"projects": ["p"]}}, "selections.projects",
         "NOT_APPLICABLE"),
        ({"mode": "merge", "options": {"on_conflict": "merge"}}, "options.on_conflict",
         "NOT_APPLICABLE"),
        ({"mode": "full", "options": {"on_conflict": "skip"}}, "options.on_conflict",
         "NOT_APPLICABLE"),
        ({"mode": "merge", "target": {"project_id": "p"}}, "target.project_id",
         "NOT_APPLICABLE"),
        ({"mode": "selective", "selections": {"paths": ["../etc"]}}, "selections.paths.0",
         "INVALID_PATH"),
        ({"mode": "selective", "selections": {"paths": ["no/such/file"]}},
         "selections.paths", "NOT_FOUND"),
    ]
    for body, field, code in cases:
        error = assert_error(post_restore(server, {**body, "backup_id": backup_id}), 400,
                             "VALIDATION_FAILED")
        assert (field, code) in {(e["field"], e["code"]) for e in error["validation_errors"]}, \
            (body, error)
    # target.path is for file trees only.
    db_backup = server.backup_and_wait({"name": "the database", "type": "full"})
    error = assert_error(post_restore(server, {"backup_id": db_backup["backup_id"],
                                               "mode": "merge",
                                               "target": {"path": "/tmp"}}),
                         400, "VALIDATION_FAILED")
    assert error["validation_errors"][0]["field"] == "target.path"


def test_preview_of_a_file_backup_shows_the_conflicts(
        server: Server, source: dict[str, Any]) -> None:
    root: Path = source["root"]
    conflicts_setup(root)
    url = f"/api/v1/restore/preview/{source['backup_id']}"
    preview = server.client.get(url, headers=server.headers("viewer")).json()
    analysis = preview["restore_analysis"]
    assert analysis["can_restore"] is True
    assert analysis["has_conflicts"] is True and analysis["conflicts_count"] == 1
    assert analysis["conflicts"][0]["existing_id"] == "docs/a.txt"
    assert analysis["required_space_bytes"] > 200_000
    files = preview["contents"]["files"]
    assert files["root"] == "tree" and files["files"] == 5 and files["dirs"] == 3
    assert files["missing_in_target"] == 1 and files["unchanged"] == 3
    assert "entries" not in files
    detailed = server.client.get(url, params={"detailed": "true"},
                                 headers=server.headers()).json()
    assert {e["path"] for e in detailed["contents"]["files"]["entries"]} >= {
        "docs/a.txt", "link", "empty"}
    unchecked = server.client.get(url, params={"check_conflicts": "false"},
                                  headers=server.headers()).json()
    assert unchecked["restore_analysis"]["conflicts_count"] == 0


def test_one_restore_per_target(server: Server, source: dict[str, Any]) -> None:
    from tests.api.test_backups_contract import HeldExecutor

    restores = server.services.restores
    real = restores.executor
    restores.executor = HeldExecutor(server)  # type: ignore[assignment]
    try:
        created = start_restore(server, {"backup_id": source["backup_id"], "mode": "merge"})
        assert_error(post_restore(server, {"backup_id": source["backup_id"], "mode": "merge"}),
                     409, "RESTORE_IN_PROGRESS")
        server.client.post(f"/api/v1/restore/jobs/{created['job_id']}/cancel",
                           headers=server.headers())
    finally:
        restores.executor = real


def test_a_restart_undoes_the_swap_of_an_interrupted_restore(tmp_path: Path) -> None:
    """The server died mid-swap: at the next start the job is marked interrupted and its
    handler undoes the swap from the journal."""
    target = tmp_path / "target"
    target.mkdir()
    (target / "keep.txt").write_text("original")
    with running_server(tmp_path / "data") as started:
        store = started.services.jobs
        job = store.create("default", "restore", {
            "kind": "files", "mode": "full", "target": str(target), "source_id": "x",
            "snapshot_id": "x", "on_conflict": "overwrite", "name_suffix": "_restored",
            "dry_run": False})
        store.start(job.id)
        work = file_restore.staging_dir(target, job.id)
        (work / "replaced").mkdir(parents=True)
        os.rename(target / "keep.txt", work / "replaced" / "keep.txt")
        (work / "journal.jsonl").write_text(
            f'{{"op": "move", "src": "{target / "keep.txt"}", '
            f'"dst": "{work / "replaced" / "keep.txt"}"}}\n')
        interrupted = started.services.runner.recover_interrupted()
        assert job.id in {j.id for j in interrupted}
    assert sorted(p.name for p in target.iterdir()) == ["keep.txt"]
    assert (target / "keep.txt").read_text() == "original"


def test_upload_with_auto_restore_merges_a_file_backup(server: Server,
                                                       source: dict[str, Any]) -> None:
    root: Path = source["root"]
    archive = server.client.get(f"/api/v1/backups/{source['backup_id']}/download",
                                headers=server.headers("viewer")).content
    (root / "docs" / "a.txt").write_text("edited after the backup\n")
    (root / "top.bin").unlink()
    response = server.client.post(
        "/api/v1/restore/upload", headers=server.headers("operator"),
        data={"auto_restore": "true", "restore_options": '{"on_conflict": "rename"}'},
        files={"file": ("tree.tar.gz", archive)})
    assert response.status_code == 202, response.text
    status = wait_for_restore(server, response.json()["restore_job_id"])
    assert status["status"] == "completed", status
    assert status["mode"] == "merge"  # keeping files (skip, rename) is a merge
    assert (root / "docs" / "a.txt").read_text() == "edited after the backup\n"
    assert (root / "docs" / "a_restored.txt").read_text() == "alpha\n"
    assert (root / "top.bin").exists()


def test_backups_leave_out_a_running_restores_staging_folder(
        server: Server, source: dict[str, Any]) -> None:
    root: Path = source["root"]
    staging = root / f"{STAGING_PREFIX}0123456789ab"
    staging.mkdir()
    (staging / "half-restored.txt").write_text("not the application's data")
    backup = server.backup_and_wait({"name": "during a restore", "type": "full",
                                     "source_id": source["source_id"]})
    staging.rename(root.parent / "staging-aside")
    restored = restore(server, {"backup_id": backup["backup_id"], "mode": "full"})
    assert restored["results"]["files"]["deleted"] == 0
    assert tree_state(root) == source["state"]


def test_a_full_restore_leaves_what_the_source_never_backs_up(server: Server,
                                                              tmp_path: Path) -> None:
    root = tmp_path / "app"
    root.mkdir()
    make_tree(root)
    (root / "cache").mkdir()
    response = server.client.post("/api/v1/sources", headers=server.headers(), json={
        "name": f"patterns {uuid.uuid4().hex[:8]}", "kind": "files", "path": str(root),
        "exclude_patterns": ["cache", "*.tmp"]})
    assert response.status_code == 201, response.text
    backup = server.backup_and_wait({"name": "with patterns", "type": "full",
                                     "source_id": response.json()["_id"]})
    (root / "cache" / "thumbnail.png").write_bytes(b"regenerated")
    (root / "docs" / "edit.tmp").write_text("an editor's swap file")
    (root / "docs" / "new.txt").write_text("not in the backup")
    done = restore(server, {"backup_id": backup["backup_id"], "mode": "full"})
    assert done["results"]["files"]["deleted"] == 1  # new.txt only
    assert not (root / "docs" / "new.txt").exists()
    assert (root / "cache" / "thumbnail.png").read_bytes() == b"regenerated"
    assert (root / "docs" / "edit.tmp").exists()
