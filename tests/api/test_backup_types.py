"""Backup types (seed 001): full, incremental, differential; their parents; change detection
against the parent snapshot; every backup restorable on its own; protected backups."""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from strongbox.repository.prune import prune
from strongbox.sources.files.restorer import restore_files
from tests.api.conftest import Server
from tests.api.test_backups_contract import assert_error


def tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("types") / "site"
    root.mkdir()
    for n in range(20):
        (root / f"file{n:02d}.bin").write_bytes(os.urandom(20_000))
    return root


@pytest.fixture(scope="module")
def source_id(server: Server, tree: Path) -> str:
    response = server.client.post("/api/v1/sources", headers=server.headers(), json={
        "name": f"types {uuid.uuid4().hex[:6]}", "kind": "files", "path": str(tree)})
    assert response.status_code == 201, response.text
    return str(response.json()["_id"])


def backup(server: Server, source_id: str, kind: str, name: str = "typed") -> dict[str, Any]:
    created = server.backup_and_wait({"name": name, "type": kind, "source_id": source_id})
    detail = server.client.get(f"/api/v1/backups/{created['backup_id']}",
                               headers=server.headers("viewer"))
    assert detail.status_code == 200
    return {**created, "detail": detail.json()}


def snapshot_of(server: Server, backup_id: str) -> Any:
    view = server.services.backups.get("default", backup_id)
    return server.services.storage.open().load_snapshot(view.snapshot_id)


def test_an_incremental_without_a_parent_is_taken_as_full(server: Server,
                                                          tmp_path: Path) -> None:
    for kind in ("incremental", "differential"):
        (tmp_path / kind).mkdir()
        (tmp_path / kind / "a.txt").write_text("a")
        source = server.client.post("/api/v1/sources", headers=server.headers(), json={
            "name": f"lonely {kind}", "kind": "files", "path": str(tmp_path / kind)}
        ).json()["_id"]
        created = server.create_backup({"name": "first", "type": kind, "source_id": source})
        assert created["type"] == "full" and "parent_id" not in created
        assert f"instead of {kind}" in created["message"]
        server.wait_for_job(created["job_id"])


def test_parents_and_change_detection(server: Server, source_id: str, tree: Path) -> None:
    full = backup(server, source_id, "full")
    assert full["detail"]["type"] == "full" and "parent_id" not in full["detail"]
    (tree / "file00.bin").write_bytes(os.urandom(20_000))
    inc1 = backup(server, source_id, "incremental")
    assert inc1["type"] == "incremental" and inc1["parent_id"] == full["backup_id"]
    assert inc1["detail"]["parent_id"] == full["backup_id"]
    (tree / "new.bin").write_bytes(os.urandom(20_000))
    inc2 = backup(server, source_id, "incremental")
    assert inc2["detail"]["parent_id"] == inc1["backup_id"]  # the last backup, any type
    diff = backup(server, source_id, "differential")
    assert diff["detail"]["parent_id"] == full["backup_id"]  # the last full one

    # The full backup read every file; the others reused their parent's unchanged ones.
    assert snapshot_of(server, full["backup_id"]).summary["files_unmodified"] == 0
    first = snapshot_of(server, inc1["backup_id"])
    assert first.parent == snapshot_of(server, full["backup_id"]).id
    assert (first.summary["files_unmodified"], first.summary["files_changed"]) == (19, 1)
    second = snapshot_of(server, inc2["backup_id"])
    assert (second.summary["files_unmodified"], second.summary["files_new"]) == (20, 1)
    assert snapshot_of(server, diff["backup_id"]).summary["files_unmodified"] == 19

    listed = server.client.get("/api/v1/backups?type=incremental&size=100",
                               headers=server.headers("viewer")).json()
    ids = {item["_id"]: item for item in listed["items"]}
    assert {inc1["backup_id"], inc2["backup_id"]} <= ids.keys()
    assert ids[inc2["backup_id"]]["parent_id"] == inc1["backup_id"]
    assert listed["summary"]["backups_by_type"]["incremental"] >= 2


def test_an_incremental_restores_alone_after_its_parents_are_deleted_and_pruned(
        server: Server, source_id: str, tree: Path, tmp_path: Path) -> None:
    full = backup(server, source_id, "full", "chain base")
    (tree / "file05.bin").write_bytes(os.urandom(20_000))
    inc1 = backup(server, source_id, "incremental", "chain one")
    (tree / "file06.bin").write_bytes(os.urandom(20_000))
    inc2 = backup(server, source_id, "incremental", "chain two")
    expected = tree_digest(tree)
    for parent in (full, inc1):
        response = server.client.delete(f"/api/v1/backups/{parent['backup_id']}",
                                        headers=server.headers())
        assert response.status_code == 200, response.text
    repo = server.services.storage.open()
    prune(repo)
    repo = server.services.storage.open()
    restore_files(repo, snapshot_of(server, inc2["backup_id"]), tmp_path / "out")
    assert tree_digest(tmp_path / "out" / tree.name) == expected
    # The record keeps its lineage even though the parent is gone.
    detail = server.client.get(f"/api/v1/backups/{inc2['backup_id']}",
                               headers=server.headers("viewer")).json()
    assert detail["parent_id"] == inc1["backup_id"] and detail["can_restore"] is True


def test_sqlite_incremental_restores_through_the_api_after_its_parent_is_deleted(
        server: Server) -> None:
    sqlite = server.sources["sqlite"]
    parent = server.backup_and_wait({"name": "db base", "type": "full", "source_id": sqlite})
    inc = server.backup_and_wait({"name": "db inc", "type": "incremental",
                                  "source_id": sqlite})
    assert inc["parent_id"] == parent["backup_id"]
    assert server.client.delete(f"/api/v1/backups/{parent['backup_id']}",
                                headers=server.headers()).status_code == 200
    prune(server.services.storage.open())
    response = server.client.post("/api/v1/restore", headers=server.headers("operator"), json={
        "backup_id": inc["backup_id"], "mode": "full",
        "options": {"overwrite_existing": True, "validate_before_restore": False}})
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]
    for _ in range(600):
        status = server.client.get(f"/api/v1/restore/jobs/{job_id}",
                                   headers=server.headers("viewer")).json()
        if status["status"] in ("completed", "failed"):
            break
        time.sleep(0.05)
    assert status["status"] == "completed", status


def test_unsupported_types_are_invalid_backup_type(server: Server) -> None:
    response = server.client.post("/api/v1/backups", headers=server.headers("operator"),
                                  json={"name": "log", "type": "transaction"})
    assert_error(response, 400, "INVALID_BACKUP_TYPE", fields={"type"})


# --- protected backups -------------------------------------------------------------------


def test_protected_backups_need_force_and_a_reason(server: Server, source_id: str) -> None:
    created = server.backup_and_wait({"name": "pinned", "type": "full",
                                      "source_id": source_id})
    url = f"/api/v1/backups/{created['backup_id']}"
    assert_error(server.client.post(f"{url}/protect", headers=server.headers("operator"),
                                    json={"reason": ""}), 400, "VALIDATION_FAILED")
    pinned = server.client.post(f"{url}/protect", headers=server.headers("operator"),
                                json={"reason": "legal hold"})
    assert pinned.status_code == 200, pinned.text
    assert (pinned.json()["protected"], pinned.json()["protected_reason"]) == (True,
                                                                               "legal hold")
    detail = server.client.get(url, headers=server.headers("viewer")).json()
    assert detail["protected"] is True

    refused = assert_error(server.client.delete(url, headers=server.headers()), 409,
                           "RETENTION_POLICY_VIOLATION")
    assert refused["error"]["details"]["protected_reason"] == "legal hold"
    assert_error(server.client.delete(f"{url}?force=true", headers=server.headers()), 400,
                 "VALIDATION_FAILED", fields={"reason"})
    assert server.client.get(url, headers=server.headers("viewer")).status_code == 200

    deleted = server.client.delete(f"{url}?force=true&reason=hold%20lifted%20by%20legal",
                                   headers=server.headers())
    assert deleted.status_code == 200, deleted.text
    assert_error(server.client.get(url, headers=server.headers("viewer")), 404,
                 "BACKUP_NOT_FOUND")


def test_unprotect_is_for_admins(server: Server, source_id: str) -> None:
    created = server.backup_and_wait({"name": "unpin", "type": "full",
                                      "source_id": source_id})
    url = f"/api/v1/backups/{created['backup_id']}"
    server.client.post(f"{url}/protect", headers=server.headers("operator"),
                       json={"reason": "keep"})
    assert_error(server.client.post(f"{url}/unprotect", headers=server.headers("operator"),
                                    json={}), 403, "FORBIDDEN")
    lifted = server.client.post(f"{url}/unprotect", headers=server.headers(),
                                json={"reason": "no longer needed"})
    assert lifted.status_code == 200 and lifted.json()["protected"] is False
    assert server.client.delete(url, headers=server.headers()).status_code == 200
    assert_error(server.client.post(f"{url}/protect", headers=server.headers("operator"),
                                    json={"reason": "too late"}), 404, "BACKUP_NOT_FOUND")
