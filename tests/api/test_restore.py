"""``/api/v1/restore`` (seed 000 section 2) end to end over HTTP, against the demo database:
back up, preview, restore (merge with rename, dry run, full), follow the job, cancel one
mid-way; and every documented error of every route."""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from strongbox.services.restore_job import RestoreProgress
from tests.api.conftest import Server, running_server
from tests.api.test_backups_contract import HeldExecutor, assert_error

TABLES = ("projects", "sessions", "messages", "prompts", "ai_settings")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("restore"),
                        rate_limit_restore="10000/hour") as started:
        yield started


@pytest.fixture(scope="module")
def backup(server: Server) -> dict[str, Any]:
    return server.backup_and_wait({"name": "before restores", "type": "full"})


def demo_db(server: Server) -> Path:
    return Path(server.services.sources.get("default", server.sources["sqlite"])
                .config["path"])


def query(db: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        return list(conn.execute(sql, params).fetchall())
    finally:
        conn.close()


def state(db: Path) -> dict[str, Any]:
    """Everything a restore could change, comparable."""
    return {t: query(db, f"SELECT * FROM {t} ORDER BY 1") for t in TABLES}


def post_restore(server: Server, body: dict[str, Any], role: str = "operator") -> Any:
    return server.client.post("/api/v1/restore", headers=server.headers(role), json=body)


def start_restore(server: Server, body: dict[str, Any]) -> dict[str, Any]:
    response = post_restore(server, body)
    assert response.status_code == 202, response.text
    return dict(response.json())


def wait_for_restore(server: Server, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        response = server.client.get(f"/api/v1/restore/jobs/{job_id}",
                                     headers=server.headers("viewer"))
        assert response.status_code == 200, response.text
        status = dict(response.json())
        if status["status"] in ("completed", "failed"):
            return status
        assert time.monotonic() < deadline, f"restore {job_id} did not finish: {status}"
        time.sleep(0.05)


def test_preview_shows_the_backup_and_its_conflicts(server: Server,
                                                    backup: dict[str, Any]) -> None:
    db = demo_db(server)
    response = server.client.get(f"/api/v1/restore/preview/{backup['backup_id']}",
                                 headers=server.headers("viewer"))
    assert response.status_code == 200, response.text
    preview = response.json()
    assert preview["backup_id"] == backup["backup_id"]
    contents = preview["contents"]
    projects = {p["_id"]: p for p in contents["projects"]}
    assert set(projects) == {row[0] for row in query(db, "SELECT id FROM projects")}
    for project_id, sessions, messages in query(
            db, "SELECT p.id, (SELECT COUNT(*) FROM sessions s WHERE s.project_id = p.id), "
                "(SELECT COUNT(*) FROM messages m JOIN sessions s ON m.session_id = s.id "
                "WHERE s.project_id = p.id) FROM projects p"):
        assert projects[project_id]["sessions_count"] == sessions
        assert projects[project_id]["messages_count"] == messages
        assert projects[project_id]["exists_in_system"] is True
    sessions = contents["sessions_summary"]
    assert sessions["total"] == query(db, "SELECT COUNT(*) FROM sessions")[0][0]
    assert sum(sessions["by_project"].values()) == sessions["total"]
    assert sessions["date_range"]["earliest"] <= sessions["date_range"]["latest"]
    messages = contents["messages_summary"]
    assert messages["by_type"] == dict(query(db, "SELECT type, COUNT(*) FROM messages "
                                                 "GROUP BY type"))
    assert messages["average_per_session"] == round(messages["total"] / sessions["total"], 2)
    assert len(contents["prompts"]) == query(db, "SELECT COUNT(*) FROM prompts")[0][0]
    assert all(p["exists_in_system"] for p in contents["prompts"])
    assert {t["name"] for t in contents["tables"]} == set(TABLES)
    analysis = preview["restore_analysis"]
    assert analysis["can_restore"] is True
    assert analysis["has_conflicts"] is True
    total_rows = sum(query(db, f"SELECT COUNT(*) FROM {t}")[0][0] for t in TABLES)
    assert analysis["conflicts_count"] == total_rows  # every row is still there
    assert len(analysis["conflicts"]) == 100  # listed in full only when detailed
    assert {c["type"] for c in analysis["conflicts"]} <= {"project", "session", "message",
                                                          "prompt", "ai_settings"}
    assert analysis["required_space_bytes"] > 0 and analysis["recommendations"]

    detailed = server.client.get(f"/api/v1/restore/preview/{backup['backup_id']}",
                                 params={"detailed": "true"}, headers=server.headers()).json()
    assert len(detailed["restore_analysis"]["conflicts"]) == total_rows
    first = detailed["restore_analysis"]["conflicts"][0]
    assert first["type"] == "project" and first["existing_name"] == first["backup_name"]
    unchecked = server.client.get(f"/api/v1/restore/preview/{backup['backup_id']}",
                                  params={"check_conflicts": "false"},
                                  headers=server.headers()).json()
    assert unchecked["restore_analysis"]["conflicts_count"] == 0


def test_merge_with_rename_adds_a_renamed_copy_of_one_project(
        server: Server, backup: dict[str, Any]) -> None:
    db = demo_db(server)
    project, name = query(db, "SELECT id, name FROM projects ORDER BY id LIMIT 1")[0]
    sessions = {row[0] for row in query(db, "SELECT id FROM sessions WHERE project_id = ?",
                                        (project,))}
    messages = query(db, "SELECT COUNT(*) FROM messages m JOIN sessions s "
                         "ON m.session_id = s.id WHERE s.project_id = ?", (project,))[0][0]
    projects_before = query(db, "SELECT COUNT(*) FROM projects")[0][0]
    created = start_restore(server, {
        "backup_id": backup["backup_id"], "mode": "merge",
        "options": {"on_conflict": "rename"}, "selections": {"projects": [project]}})
    assert created["status"] == "pending" and created["mode"] == "merge"
    assert created["estimated_documents"] == 1 + len(sessions) + messages
    validation = created["validation_results"]
    assert validation["is_valid"] is True and validation["errors"] == []
    assert [c["type"] for c in validation["conflicts"]] == ["project"]
    conflict = validation["conflicts"][0]
    assert conflict == {"type": "project", "existing_id": project, "backup_id": project,
                        "existing_name": name, "backup_name": name, "resolution": "rename"}

    status = wait_for_restore(server, created["job_id"])
    assert status["status"] == "completed", status
    assert status["backup_id"] == backup["backup_id"] and status["mode"] == "merge"
    progress = status["progress"]
    assert progress["percentage"] == 100
    assert progress["collections_remaining"] == []
    assert set(progress["collections_processed"]) == set(TABLES)
    results = status["results"]
    assert results["projects_restored"] == 1
    assert results["sessions_restored"] == len(sessions)
    assert results["messages_restored"] == messages
    assert results["total_documents"] == 1 + len(sessions) + messages
    assert progress["documents_restored"] == results["total_documents"]
    assert results["failed_documents"] == 0

    # The database has one more copy of the project's subtree, under new ids.
    assert query(db, "SELECT COUNT(*) FROM projects")[0][0] == projects_before + 1
    mappings = results["id_mappings"]
    new_project = mappings[project]
    assert new_project != project
    assert query(db, "SELECT name FROM projects WHERE id = ?",
                 (new_project,)) == [(name + "_restored",)]
    new_sessions = {row[0] for row in query(
        db, "SELECT id FROM sessions WHERE project_id = ?", (new_project,))}
    assert new_sessions == {mappings[s] for s in sessions}
    assert not new_sessions & sessions
    assert query(db, "SELECT COUNT(*) FROM messages m JOIN sessions s ON m.session_id = s.id "
                     "WHERE s.project_id = ?", (new_project,))[0][0] == messages
    by_table = results["id_mappings_by_table"]
    assert by_table["projects"] == {project: new_project}
    assert len(by_table["messages"]) == messages
    assert query(db, "PRAGMA foreign_key_check") == []

    # The backup's history and the statistics see the restore.
    detail = server.client.get(f"/api/v1/backups/{backup['backup_id']}",
                               headers=server.headers()).json()
    attempt = next(a for a in detail["restore_history"] if a["_id"] == created["job_id"])
    assert attempt["status"] == "success"
    assert attempt["documents_restored"] == results["total_documents"]
    stats = server.client.get("/api/v1/backups/statistics", headers=server.headers()).json()
    assert stats["restore_statistics"]["successful_restores"] >= 1


def test_a_dry_run_reports_and_changes_nothing(server: Server, backup: dict[str, Any]) -> None:
    db = demo_db(server)
    before = state(db)
    created = start_restore(server, {
        "backup_id": backup["backup_id"], "mode": "merge",
        "options": {"on_conflict": "rename", "dry_run": True}})
    status = wait_for_restore(server, created["job_id"])
    assert status["status"] == "completed", status
    assert status["results"]["dry_run"] is True
    assert status["results"]["total_documents"] == created["estimated_documents"] > 0
    assert state(db) == before


def test_a_date_range_selects_sessions(server: Server) -> None:
    db = demo_db(server)
    backup = server.backup_and_wait({"name": "as the database is now", "type": "full"})
    sessions = query(db, "SELECT id, project_id, created_at FROM sessions ORDER BY created_at")
    start, end = sessions[10][2], sessions[19][2]
    chosen = [s for s in sessions if start <= s[2] <= end]
    messages = sum(query(db, "SELECT COUNT(*) FROM messages WHERE session_id = ?",
                         (s[0],))[0][0] for s in chosen)
    projects = {s[1] for s in chosen}
    created = start_restore(server, {
        "backup_id": backup["backup_id"], "mode": "selective",
        "options": {"dry_run": True, "maintain_ids": True},
        "selections": {"date_range": {"start": start, "end": end}}})
    assert created["estimated_documents"] == len(chosen) + messages + len(projects)
    wait_for_restore(server, created["job_id"])
    for date_range, code in (({"start": end, "end": start}, "INVALID_DATE_RANGE"),
                             ({"start": "2001-01-01T00:00:00Z", "end": "2001-02-01T00:00:00Z"},
                              "VALIDATION_FAILED")):
        assert_error(post_restore(server, {"backup_id": backup["backup_id"],
                                           "mode": "selective",
                                           "selections": {"date_range": date_range}}),
                     400, code)


def test_a_full_restore_brings_back_deleted_rows(server: Server) -> None:
    db = demo_db(server)
    taken = server.backup_and_wait({"name": "before a mistake", "type": "full"})
    before = state(db)
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("DELETE FROM projects WHERE id = (SELECT MIN(id) FROM projects)")
    conn.close()
    assert state(db) != before
    created = start_restore(server, {"backup_id": taken["backup_id"], "mode": "full"})
    status = wait_for_restore(server, created["job_id"])
    assert status["status"] == "completed", status
    assert status["results"]["safety_snapshot_id"]
    assert state(db) == before


def test_cancelling_a_running_restore_rolls_it_back(server: Server, backup: dict[str, Any],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    db = demo_db(server)
    before = state(db)
    reached = threading.Event()
    original = RestoreProgress.operation

    def slow(self: RestoreProgress, text: str) -> None:
        original(self, text)
        if text == "restoring messages":  # rows of earlier tables are already written
            reached.set()
            deadline = time.monotonic() + 30
            while not self.cancelled and time.monotonic() < deadline:
                time.sleep(0.01)

    monkeypatch.setattr(RestoreProgress, "operation", slow)
    created = start_restore(server, {
        "backup_id": backup["backup_id"], "mode": "merge",
        "options": {"on_conflict": "rename", "validate_before_restore": False}})
    assert reached.wait(30)
    running = server.client.get(f"/api/v1/restore/jobs/{created['job_id']}",
                                headers=server.headers()).json()
    assert running["status"] == "in_progress"
    assert running["progress"]["current_collection"] == "messages"
    assert "messages" in running["progress"]["collections_remaining"]
    assert {"projects", "sessions"} <= set(running["progress"]["collections_processed"])
    response = server.client.post(f"/api/v1/restore/jobs/{created['job_id']}/cancel",
                                  headers=server.headers("operator"))
    assert response.status_code == 200, response.text
    cancelled = response.json()
    assert cancelled["job_id"] == created["job_id"]
    assert cancelled["status"] == "cancelled"
    assert cancelled["rollback_available"] is True
    assert "rolled back" in cancelled["message"]
    assert state(db) == before
    status = wait_for_restore(server, created["job_id"])
    assert status["status"] == "failed"
    assert status["errors"][0]["error_code"] == "CANCELLED"
    assert "results" not in status
    again = server.client.post(f"/api/v1/restore/jobs/{created['job_id']}/cancel",
                               headers=server.headers())
    assert_error(again, 409, "JOB_ALREADY_FINISHED")
    detail = server.client.get(f"/api/v1/backups/{backup['backup_id']}",
                               headers=server.headers()).json()
    attempt = next(a for a in detail["restore_history"] if a["_id"] == created["job_id"])
    assert attempt["status"] == "failed"


def test_cancelling_a_queued_restore(server: Server, backup: dict[str, Any]) -> None:
    restores = server.services.restores
    real = restores.executor
    restores.executor = HeldExecutor(server)  # type: ignore[assignment]
    try:
        created = start_restore(server, {"backup_id": backup["backup_id"], "mode": "merge"})
        busy = post_restore(server, {"backup_id": backup["backup_id"], "mode": "merge"})
        assert_error(busy, 409, "RESTORE_IN_PROGRESS")
        response = server.client.post(f"/api/v1/restore/jobs/{created['job_id']}/cancel",
                                      headers=server.headers())
    finally:
        restores.executor = real
    assert response.status_code == 200, response.text
    assert response.json()["rollback_available"] is False
    assert wait_for_restore(server, created["job_id"])["errors"][0]["error_code"] == \
        "CANCELLED"


def test_create_validation_errors(server: Server, backup: dict[str, Any]) -> None:
    backup_id = backup["backup_id"]
    cases: list[tuple[dict[str, Any], str]] = [
        ({"backup_id": backup_id, "mode": "everything"}, "mode"),
        ({"backup_id": backup_id}, "mode"),
        ({"mode": "full"}, "backup_id"),
        ({"backup_id": backup_id, "mode": "selective"}, "selections"),
        ({"backup_id": backup_id, "mode": "selective", "selections": {"projects": []}},
         "selections"),
        ({"backup_id": backup_id, "mode": "full", "selections": {"projects": ["x"]}},
         "selections"),
        ({"backup_id": backup_id, "mode": "merge", "options": {"on_conflict": "explode"}},
         "options.on_conflict"),
        ({"backup_id": backup_id, "mode": "merge", "target": {"project_name_suffix": ""}},
         "target.project_name_suffix"),
        ({"backup_id": backup_id, "mode": "merge", "target": {"project_id": "p"}},
         "target.project_id"),
        ({"backup_id": "not-a-uuid", "mode": "full"}, "backup_id"),
    ]
    for body, field in cases:
        body = post_restore(server, body)
        error = assert_error(body, 400, "VALIDATION_FAILED")
        assert field in {e["field"] for e in error["validation_errors"]}, (field, error)
    assert_error(server.client.post("/api/v1/restore", headers=server.headers(),
                                    content=b"nope"), 400, "INVALID_REQUEST")
    # A restore the dry run shows would fail is refused before a job starts: "full" from
    # a selective backup would replace the rows of tables that have some.
    db = demo_db(server)
    project = query(db, "SELECT id FROM projects ORDER BY id LIMIT 1")[0][0]
    selective = server.backup_and_wait({"name": "one project", "type": "selective",
                                        "filters": {"projects": [project]}})
    before = state(db)
    refused = assert_error(post_restore(server, {"backup_id": selective["backup_id"],
                                                 "mode": "full"}), 400, "VALIDATION_FAILED")
    results = refused["error"]["details"]["validation_results"]
    assert results["is_valid"] is False and "overwrite" in results["errors"][0]
    assert state(db) == before
    missing = post_restore(server, {"backup_id": backup_id, "mode": "selective",
                                    "selections": {"projects": ["no-such-project"]},
                                    "options": {"on_conflict": "skip"}})
    assert missing.status_code == 202  # a missing key is a warning, not an error
    assert missing.json()["validation_results"]["warnings"]
    wait_for_restore(server, missing.json()["job_id"])


def test_create_errors_for_backups(server: Server, backup: dict[str, Any]) -> None:
    assert_error(post_restore(server, {"backup_id": str(uuid.uuid4()), "mode": "full"}),
                 404, "BACKUP_NOT_FOUND")
    others = server.client.post("/api/v1/backups", headers=server.other(),
                                json={"name": "other tenant", "type": "full"})
    assert others.status_code == 400  # tenant "other" has no source: not its backup anyway
    backups = server.services.backups
    real = backups.executor
    backups.executor = HeldExecutor(server)  # type: ignore[assignment]
    try:
        pending = server.create_backup({"name": "never runs", "type": "full"})
    finally:
        backups.executor = real
    assert_error(post_restore(server, {"backup_id": pending["backup_id"], "mode": "full"}),
                 409, "BACKUP_NOT_COMPLETED")
    preview = server.client.get(f"/api/v1/restore/preview/{pending['backup_id']}",
                                headers=server.headers()).json()
    assert preview["restore_analysis"]["can_restore"] is False
    files = server.backup_and_wait({"name": "the files", "type": "full",
                                    "source_id": server.sources["files"]})
    # File trees restore too (tests/api/test_restore_files.py); database fields do not
    # apply to them.
    error = assert_error(post_restore(server, {"backup_id": files["backup_id"],
                                               "mode": "merge",
                                               "selections": {"projects": ["p"]}}),
                         400, "VALIDATION_FAILED")
    assert error["validation_errors"][0]["code"] == "NOT_APPLICABLE"


def test_job_and_preview_not_found(server: Server) -> None:
    for path in (f"/api/v1/restore/jobs/{uuid.uuid4()}", "/api/v1/restore/jobs/nope"):
        assert_error(server.client.get(path, headers=server.headers()), 404, "JOB_NOT_FOUND")
        assert_error(server.client.post(f"{path}/cancel", headers=server.headers()), 404,
                     "JOB_NOT_FOUND")
    assert_error(server.client.get(f"/api/v1/restore/preview/{uuid.uuid4()}",
                                   headers=server.headers()), 404, "BACKUP_NOT_FOUND")
    # A backup job is not a restore job.
    created = server.backup_and_wait({"name": "a backup job", "type": "full"})
    assert_error(server.client.get(f"/api/v1/restore/jobs/{created['job_id']}",
                                   headers=server.headers()), 404, "JOB_NOT_FOUND")


def test_auth_on_every_route(server: Server, backup: dict[str, Any]) -> None:
    created = start_restore(server, {"backup_id": backup["backup_id"], "mode": "merge",
                                     "options": {"dry_run": True}})
    wait_for_restore(server, created["job_id"])
    job = created["job_id"]
    routes = [("post", "/api/v1/restore", {"backup_id": backup["backup_id"], "mode": "full"}),
              ("get", f"/api/v1/restore/jobs/{job}", None),
              ("post", f"/api/v1/restore/jobs/{job}/cancel", None),
              ("get", f"/api/v1/restore/preview/{backup['backup_id']}", None)]
    for method, path, body in routes:
        call = getattr(server.client, method)
        kwargs = {"json": body} if body is not None else {}
        assert_error(call(path, **kwargs), 401, "UNAUTHORIZED")
        assert_error(call(path, headers={"X-API-Key": "sbk_wrong"}, **kwargs), 401,
                     "UNAUTHORIZED")
        assert_error(call(path, headers=server.other(), **kwargs), 404,
                     "JOB_NOT_FOUND" if "/jobs/" in path else "BACKUP_NOT_FOUND")
    for method, path, body in routes:
        if method == "post":
            call = server.client.post
            kwargs = {"json": body} if body is not None else {}
            assert_error(call(path, headers=server.headers("viewer"), **kwargs), 403,
                         "FORBIDDEN")
    for path in (f"/api/v1/restore/jobs/{job}", f"/api/v1/restore/preview/"
                 f"{backup['backup_id']}"):
        assert server.client.get(path, headers=server.headers("viewer")).status_code == 200


def test_the_restore_bucket_limits_posts(tmp_path: Path) -> None:
    with running_server(tmp_path, rate_limit_restore="2/hour") as limited:
        body = {"backup_id": str(uuid.uuid4()), "mode": "full"}
        for _ in range(2):
            assert_error(post_restore(limited, body), 404, "BACKUP_NOT_FOUND")
        refused = post_restore(limited, body)
        assert_error(refused, 429, "RATE_LIMIT_EXCEEDED")
        assert int(refused.headers["Retry-After"]) > 0
