"""End to end over HTTP: back up the demo database, follow the job, read the details
(counted against the database itself), list with pagination/sort/search, delete; then
restart the server on the same data directory."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from strongbox.catalog.models import Backup, Job
from strongbox.jobs.store import INTERRUPTED
from strongbox.repository.backend import LocalBackend
from strongbox.repository.repository import Repository
from tests.api.conftest import Server, running_server


def count(db: Path, sql: str, params: tuple[Any, ...] = ()) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute(sql, params).fetchone()[0])
    finally:
        conn.close()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(tmp_path_factory.mktemp("e2e"))


@pytest.fixture(scope="module")
def e2e(data_dir: Path) -> Iterator[Server]:
    with running_server(data_dir) as started:
        yield started


def demo_db(server: Server) -> Path:
    return Path(server.services.sources.get("default", server.sources["sqlite"])
                .config["path"])


def test_full_backup_of_the_demo_database(e2e: Server) -> None:
    created = e2e.create_backup({"name": "Demo full", "type": "full",
                                 "description": "everything"})
    status = e2e.wait_for_job(created["job_id"])
    assert status["status"] == "completed"
    detail = e2e.client.get(f"/api/v1/backups/{created['backup_id']}",
                            headers=e2e.headers("viewer")).json()
    db = demo_db(e2e)
    contents = detail["contents"]
    for table in ("projects", "sessions", "messages", "prompts", "ai_settings"):
        assert contents[f"{table}_count"] == count(db, f"SELECT COUNT(*) FROM {table}")
    assert contents["total_documents"] == sum(
        contents[f"{t}_count"] for t in ("projects", "sessions", "messages", "prompts",
                                         "ai_settings"))
    earliest = count(db, "SELECT COUNT(*) FROM sessions WHERE created_at < ?",
                     (contents["date_range"]["earliest"].replace("000Z", "Z"),))
    assert earliest == 0
    assert detail["can_restore"] is True
    # The snapshot is really in the repository, under the id the filename names.
    repo = Repository.open(LocalBackend(detail["storage_location"]), "api-test-secret")
    snapshot_id = detail["filename"].removeprefix("snapshot-")
    assert repo.load_snapshot(snapshot_id).summary["contents"]["messages_count"] == \
        contents["messages_count"]


def test_selective_backup_by_project_takes_its_sessions_and_messages(e2e: Server) -> None:
    db = demo_db(e2e)
    conn = sqlite3.connect(db)
    project = conn.execute("SELECT id FROM projects ORDER BY id LIMIT 1").fetchone()[0]
    conn.close()
    created = e2e.backup_and_wait({"name": "One project", "type": "selective",
                                   "filters": {"projects": [project]}})
    detail = e2e.client.get(f"/api/v1/backups/{created['backup_id']}",
                            headers=e2e.headers()).json()
    contents = detail["contents"]
    assert contents["projects_count"] == 1
    assert contents["sessions_count"] == count(
        db, "SELECT COUNT(*) FROM sessions WHERE project_id = ?", (project,))
    assert contents["messages_count"] == count(
        db, "SELECT COUNT(*) FROM messages m JOIN sessions s ON m.session_id = s.id "
            "WHERE s.project_id = ?", (project,))
    assert detail["type"] == "selective"
    assert detail["filters"] == {"projects": [project]}


def test_selective_backup_by_message_count_and_tables(e2e: Server) -> None:
    db = demo_db(e2e)
    created = e2e.backup_and_wait({"name": "Long sessions", "type": "selective", "filters": {
        "min_message_count": 25, "exclude_patterns": ["prompts", "ai_settings"]}})
    contents = e2e.client.get(f"/api/v1/backups/{created['backup_id']}",
                              headers=e2e.headers()).json()["contents"]
    assert contents["sessions_count"] == count(
        db, "SELECT COUNT(*) FROM (SELECT session_id FROM messages GROUP BY session_id "
            "HAVING COUNT(*) >= 25)")
    assert contents["prompts_count"] == contents["ai_settings_count"] == 0


def test_listing_pages_sorts_filters_and_searches(e2e: Server) -> None:
    for name in ("Alpha weekly", "Beta weekly", "Gamma monthly"):
        e2e.backup_and_wait({"name": name, "type": "full", "description": f"{name} run"})
    headers = e2e.headers("viewer")
    everything = e2e.client.get("/api/v1/backups?size=100", headers=headers).json()
    total = everything["pagination"]["total_items"]
    assert total >= 6
    summary = everything["summary"]
    assert summary["total_backups"] == total
    assert summary["total_size_bytes"] == sum(i["size_bytes"] for i in everything["items"])
    assert summary["backups_by_type"]["selective"] == 2
    assert summary["backups_by_type"]["full"] == total - 2
    assert summary["oldest_backup"] <= summary["newest_backup"]

    page = e2e.client.get("/api/v1/backups?page=2&size=2&sort=name,asc", headers=headers).json()
    names = sorted(i["name"] for i in everything["items"])
    assert [i["name"] for i in page["items"]] == names[2:4]
    pagination = page["pagination"]
    assert pagination == {"total_items": total, "total_pages": -(-total // 2),
                          "current_page": 2, "page_size": 2, "has_next": total > 4,
                          "has_previous": True}

    newest_first = e2e.client.get("/api/v1/backups?size=100", headers=headers).json()["items"]
    stamps = [i["created_at"] for i in newest_first]
    assert stamps == sorted(stamps, reverse=True)

    weekly = e2e.client.get("/api/v1/backups?search=WEEKLY", headers=headers).json()
    assert sorted(i["name"] for i in weekly["items"]) == ["Alpha weekly", "Beta weekly"]
    by_description = e2e.client.get("/api/v1/backups?search=monthly%20run",
                                    headers=headers).json()
    assert [i["name"] for i in by_description["items"]] == ["Gamma monthly"]
    selective = e2e.client.get("/api/v1/backups?type=selective", headers=headers).json()
    assert {i["type"] for i in selective["items"]} == {"selective"}
    completed = e2e.client.get("/api/v1/backups?status=completed", headers=headers).json()
    assert completed["pagination"]["total_items"] == total
    sizes = sorted(i["size_bytes"] for i in everything["items"])
    small = e2e.client.get(f"/api/v1/backups?max_size={sizes[0]}", headers=headers).json()
    assert all(i["size_bytes"] <= sizes[0] for i in small["items"]) and small["items"]
    after = e2e.client.get("/api/v1/backups", headers=headers,
                           params={"created_after": stamps[0]}).json()
    assert [i["created_at"] for i in after["items"]] == [stamps[0]]
    nothing = e2e.client.get("/api/v1/backups?search=%25", headers=headers).json()
    assert nothing["items"] == [] and "oldest_backup" not in nothing["summary"]


def test_delete_removes_the_backup_and_its_snapshot(e2e: Server) -> None:
    created = e2e.backup_and_wait({"name": "Short lived", "type": "full"})
    detail = e2e.client.get(f"/api/v1/backups/{created['backup_id']}",
                            headers=e2e.headers()).json()
    snapshot = Path(detail["filepath"])
    assert snapshot.is_file()
    before = e2e.client.get("/api/v1/backups", headers=e2e.headers()).json()
    deleted = e2e.client.delete(f"/api/v1/backups/{created['backup_id']}",
                                headers=e2e.headers())
    assert deleted.status_code == 200
    assert not snapshot.exists()
    after = e2e.client.get("/api/v1/backups", headers=e2e.headers()).json()
    assert after["pagination"]["total_items"] == before["pagination"]["total_items"] - 1
    stats = e2e.client.get("/api/v1/backups/statistics", headers=e2e.headers()).json()
    assert sum(d["backups_deleted"] for d in stats["timeline"]["data"]) == 1


def test_a_restart_keeps_jobs_and_fails_interrupted_ones(e2e: Server, data_dir: Path) -> None:
    # What a server killed mid-backup leaves behind: a running job and its backup.
    services = e2e.services
    backup_id, job_id = str(uuid.uuid4()), str(uuid.uuid4())
    with services.catalog.session() as session:
        session.add(Backup(id=backup_id, tenant="default", name="Killed midway", type="full",
                           status="in_progress", source_id=e2e.sources["sqlite"],
                           source_name="demo", source_kind="sqlite", job_id=job_id,
                           storage_location=services.storage.location, size_bytes=0))
        session.flush()
        services.jobs.create("default", "backup", {"source_id": e2e.sources["sqlite"]},
                             backup_id=backup_id, job_id=job_id, session=session)
    started = services.jobs.start(job_id)
    assert started is not None and started.status == "in_progress"
    completed_before = e2e.client.get("/api/v1/backups?status=completed",
                                      headers=e2e.headers()).json()["pagination"]
    e2e.client.__exit__(None, None, None)  # stop the first server

    with running_server(data_dir) as again:
        assert again.app.state.start_report.demo is None  # the catalog was not empty
        status = again.client.get(f"/api/v1/backups/jobs/{job_id}",
                                  headers=again.headers()).json()
        assert status["status"] == "failed"
        assert status["error"]["code"] == INTERRUPTED
        assert "restarted" in status["error"]["message"]
        backup = again.client.get(f"/api/v1/backups/{backup_id}", headers=again.headers())
        assert backup.json()["status"] == "failed"
        assert INTERRUPTED in backup.json()["error_message"]
        listing = again.client.get("/api/v1/backups?status=completed",
                                   headers=again.headers()).json()["pagination"]
        assert listing["total_items"] == completed_before["total_items"]
        # The restarted server backs up as before.
        again.sources = {s.kind: s.id for s in again.services.sources.list("default")}
        again.backup_and_wait({"name": "After restart", "type": "full"})
        with again.services.catalog.session() as session:
            kinds = {row.status for row in session.scalars(select(Job))}
        assert kinds == {"completed", "failed"}
