"""Seed 000 section 1 and 5: every backup endpoint's success shape and documented errors."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import Server

ENVELOPE_KEYS = {"code", "message", "timestamp", "path"}


def assert_error(response: Any, status: int, code: str, *, fields: set[str] | None = None
                 ) -> dict[str, Any]:
    """The response is the section 5 envelope with this status and code."""
    assert response.status_code == status, response.text
    body = response.json()
    error = body["error"]
    assert set(error) >= ENVELOPE_KEYS, error
    assert error["code"] == code
    assert error["path"] == response.request.url.path
    assert datetime.fromisoformat(error["timestamp"]).tzinfo is not None
    assert error["request_id"] == response.headers["x-request-id"]
    if fields is not None:
        items = body["validation_errors"]
        assert {item["field"] for item in items} >= fields, items
        for item in items:
            assert {"field", "message", "code"} <= set(item)
    return dict(body)


def post(server: Server, body: Any, role: str = "operator") -> Any:
    return server.client.post("/api/v1/backups", headers=server.headers(role), json=body)


# --- POST /api/v1/backups --------------------------------------------------------------------


def test_create_backup_answers_202_with_the_job(server: Server) -> None:
    response = post(server, {"name": "Nightly full_1", "description": "all of it",
                             "type": "full", "options": {"compression_level": 9}})
    assert response.status_code == 202
    body = response.json()
    assert set(body) >= {"job_id", "backup_id", "status", "created_at", "message"}
    assert body["status"] == "pending"
    uuid.UUID(body["job_id"])
    uuid.UUID(body["backup_id"])
    assert body["estimated_size_bytes"] > 0
    assert body["estimated_duration_seconds"] > 0
    status = server.wait_for_job(body["job_id"])
    assert status["status"] == "completed"
    detail = server.client.get(f"/api/v1/backups/{body['backup_id']}",
                               headers=server.headers("viewer")).json()
    assert detail["compression"]["level"] == 9
    assert detail["description"] == "all of it"


@pytest.mark.parametrize(("body", "field"), [
    ({"name": "ab", "type": "full"}, "name"),
    ({"name": "x" * 101, "type": "full"}, "name"),
    ({"name": "bad/name!", "type": "full"}, "name"),
    ({"name": "good name", "description": "d" * 501, "type": "full"}, "description"),
    ({"name": "good name"}, "type"),
    ({"name": "good name", "type": "full", "options": {"compression_level": 0}},
     "options.compression_level"),
    ({"name": "good name", "type": "full", "options": {"compression_level": 10}},
     "options.compression_level"),
    ({"name": "good name", "type": "full", "options": {"split_size_mb": 99}},
     "options.split_size_mb"),
    ({"name": "good name", "type": "full", "options": {"split_size_mb": 5001}},
     "options.split_size_mb"),
    ({"name": "good name", "type": "selective", "filters": {"min_message_count": 0}},
     "filters.min_message_count"),
    ({"name": "good name", "type": "selective", "filters": {"max_message_count": 10001}},
     "filters.max_message_count"),
    ({"name": "good name", "type": "selective"}, "filters"),
    ({"name": "good name", "type": "selective", "filters": {"projects": [], "sessions": []}},
     "filters"),
    ({"name": "good name", "type": "selective",
      "filters": {"min_message_count": 30, "max_message_count": 10}},
     "filters.min_message_count"),
])
def test_invalid_requests_fail_validation(server: Server, body: dict[str, Any],
                                          field: str) -> None:
    body = assert_error(post(server, body), 400, "VALIDATION_FAILED", fields={field})
    item = next(i for i in body["validation_errors"] if i["field"] == field)
    assert item["code"] and item["message"]


def test_validation_error_carries_the_invalid_value(server: Server) -> None:
    body = assert_error(post(server, {"name": "ab", "type": "full"}), 400, "VALIDATION_FAILED")
    assert body["validation_errors"] == [
        {"field": "name", "message": "String should have at least 3 characters",
         "code": "TOO_SHORT", "value": "ab"}]


def test_unknown_type_is_invalid_backup_type(server: Server) -> None:
    assert_error(post(server, {"name": "good name", "type": "transaction"}), 400,
                 "INVALID_BACKUP_TYPE", fields={"type"})


@pytest.mark.parametrize("date_range", [
    {"start": "2024-06-01T00:00:00Z", "end": "2024-05-01T00:00:00Z"},
    {"start": "2024-06-01T00:00:00Z", "end": "2024-06-01T00:00:00Z"},
    {"start": "2024-06-01T00:00:00Z",
     "end": (datetime.now(UTC) + timedelta(days=1)).isoformat()},
])
def test_bad_date_ranges_are_invalid_date_range(server: Server,
                                                date_range: dict[str, str]) -> None:
    response = post(server, {"name": "good name", "type": "selective",
                             "filters": {"date_range": date_range}})
    body = assert_error(response, 400, "INVALID_DATE_RANGE")
    assert body["validation_errors"][0]["field"].startswith("filters.date_range.")


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b"", b'"a string"'])
def test_malformed_bodies_are_invalid_request(server: Server, content: bytes) -> None:
    response = server.client.post("/api/v1/backups", content=content, headers={
        **server.headers("operator"), "content-type": "application/json"})
    assert_error(response, 400, "INVALID_REQUEST")


def test_malformed_body_without_a_key_is_still_401(server: Server) -> None:
    response = server.client.post("/api/v1/backups", content=b"{not json",
                                  headers={"content-type": "application/json"})
    assert_error(response, 401, "UNAUTHORIZED")


def test_unknown_source_is_404(server: Server) -> None:
    response = post(server, {"name": "good name", "type": "full",
                             "source_id": str(uuid.uuid4())})
    assert_error(response, 404, "SOURCE_NOT_FOUND")


def test_record_filters_do_not_apply_to_a_files_source(server: Server) -> None:
    response = post(server, {"name": "good name", "type": "selective",
                             "source_id": server.sources["files"],
                             "filters": {"projects": ["p1"]}})
    assert_error(response, 400, "VALIDATION_FAILED", fields={"filters.projects"})


def test_viewer_cannot_create_backups(server: Server) -> None:
    assert_error(post(server, {"name": "good name", "type": "full"}, role="viewer"), 403,
                 "FORBIDDEN")


def test_quota_exceeded_is_507(server: Server) -> None:
    client = server.client
    tiny = {"storage": {"filesystem": {"max_size_gb": 1e-9}}}
    assert client.put("/api/v1/settings/backup", headers=server.headers(),
                      json=tiny).status_code == 200
    try:
        assert_error(post(server, {"name": "good name", "type": "full"}), 507,
                     "INSUFFICIENT_STORAGE")
    finally:
        client.put("/api/v1/settings/backup", headers=server.headers(),
                   json={"storage": {"filesystem": {"max_size_gb": None}}})


# --- GET /api/v1/backups/{id}, /jobs/{id} ------------------------------------------------------


@pytest.mark.parametrize("backup_id", [str(uuid.uuid4()), "not-a-uuid", "1"])
def test_unknown_backup_is_404(server: Server, backup_id: str) -> None:
    for method in ("GET", "DELETE"):
        response = server.client.request(method, f"/api/v1/backups/{backup_id}",
                                         headers=server.headers())
        assert_error(response, 404, "BACKUP_NOT_FOUND")


@pytest.mark.parametrize("job_id", [str(uuid.uuid4()), "not-a-uuid"])
def test_unknown_job_is_404(server: Server, job_id: str) -> None:
    response = server.client.get(f"/api/v1/backups/jobs/{job_id}",
                                 headers=server.headers("viewer"))
    assert_error(response, 404, "JOB_NOT_FOUND")


def test_job_status_has_every_field(server: Server) -> None:
    created = server.create_backup()
    status = server.wait_for_job(created["job_id"])
    assert status["job_id"] == created["job_id"]
    assert status["backup_id"] == created["backup_id"]
    progress = status["progress"]
    assert set(progress) >= {"current_step", "total_steps", "completed_steps", "percentage",
                             "current_operation", "documents_processed", "bytes_written",
                             "elapsed_seconds"}
    assert progress["percentage"] == 100
    assert progress["completed_steps"] == progress["total_steps"] == 3
    assert progress["bytes_written"] > 0
    for key in ("started_at", "updated_at", "completed_at"):
        datetime.fromisoformat(status[key])
    assert "error" not in status


def test_detail_has_seed_fields(server: Server) -> None:
    created = server.backup_and_wait({"name": "detail check", "type": "full"})
    detail = server.client.get(f"/api/v1/backups/{created['backup_id']}",
                               headers=server.headers("viewer")).json()
    assert detail["_id"] == created["backup_id"]
    assert detail["status"] == "completed" and detail["can_restore"] is True
    assert detail["version"] == "1.0"
    assert len(detail["checksum"]) == 64
    assert detail["filename"] and detail["filepath"].endswith(detail["filename"].split("-")[1])
    assert detail["storage_location"]
    assert detail["encryption"] == {"enabled": True, "algorithm": "aes-256-gcm",
                                    "key_id": detail["encryption"]["key_id"]}
    compression = detail["compression"]
    assert compression["algorithm"] == "zstd"
    assert compression["original_size_bytes"] == detail["size_bytes"]
    assert compression["compressed_size_bytes"] == detail["compressed_size_bytes"]
    assert compression["compression_ratio"] > 1
    assert detail["restore_history"] == []
    assert detail["contents"]["messages_count"] > 0


def test_checksum_is_the_sha256_of_the_stored_snapshot(server: Server) -> None:
    created = server.backup_and_wait({"name": "checksum check", "type": "full"})
    backup = server.services.backups.get("default", created["backup_id"])
    stored = (Path(backup.storage_location) / "snapshots" / str(backup.snapshot_id))
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == backup.checksum


# --- GET /api/v1/backups --------------------------------------------------------------------


@pytest.mark.parametrize("query", ["page=0", "size=0", "size=101", "sort=bogus,desc",
                                   "sort=name,sideways", "status=lost", "min_size=-1",
                                   "created_after=yesterday"])
def test_bad_list_parameters_fail_validation(server: Server, query: str) -> None:
    response = server.client.get(f"/api/v1/backups?{query}", headers=server.headers("viewer"))
    assert_error(response, 400, "VALIDATION_FAILED")


def test_list_type_filter_rejects_unknown_types(server: Server) -> None:
    response = server.client.get("/api/v1/backups?type=weekly",
                                 headers=server.headers("viewer"))
    assert_error(response, 400, "INVALID_BACKUP_TYPE")


def test_list_created_after_later_than_before_is_invalid_date_range(server: Server) -> None:
    response = server.client.get(
        "/api/v1/backups?created_after=2025-02-01T00:00:00Z&created_before=2025-01-01T00:00:00Z",
        headers=server.headers("viewer"))
    assert_error(response, 400, "INVALID_DATE_RANGE")


# --- DELETE /api/v1/backups/{id} --------------------------------------------------------------


def test_delete_answers_with_what_was_freed(server: Server) -> None:
    created = server.backup_and_wait({"name": "to delete", "type": "full"})
    response = server.client.delete(f"/api/v1/backups/{created['backup_id']}",
                                    headers=server.headers())
    assert response.status_code == 200
    body = response.json()
    assert body["backup_id"] == created["backup_id"]
    assert body["files_deleted"] == 1
    assert body["freed_bytes"] >= 0
    datetime.fromisoformat(body["deleted_at"])
    assert body["message"]
    assert_error(server.client.get(f"/api/v1/backups/{created['backup_id']}",
                                   headers=server.headers()), 404, "BACKUP_NOT_FOUND")


def test_only_admins_delete(server: Server) -> None:
    created = server.backup_and_wait({"name": "kept", "type": "full"})
    response = server.client.delete(f"/api/v1/backups/{created['backup_id']}",
                                    headers=server.headers("operator"))
    assert_error(response, 403, "FORBIDDEN")


class HeldExecutor:
    """Queues jobs without running them, like a busy pool; cancel works as the real one
    does for a job that has not started."""

    def __init__(self, server: Server) -> None:
        self.runner = server.services.runner
        self.jobs: list[str] = []

    def submit(self, job: Any) -> None:
        self.jobs.append(job.id)

    def cancel(self, job_id: str) -> bool:
        self.runner.cancel_pending(job_id)
        return True


def test_deleting_a_running_backup_needs_force(server: Server) -> None:
    backups = server.services.backups
    real = backups.executor
    backups.executor = HeldExecutor(server)  # type: ignore[assignment]
    try:
        created = server.create_backup({"name": "still running", "type": "full"})
    finally:
        backups.executor = real
    url = f"/api/v1/backups/{created['backup_id']}"
    assert_error(server.client.delete(url, headers=server.headers()), 409,
                 "BACKUP_IN_PROGRESS")
    assert_error(server.client.delete(f"{url}?force=false", headers=server.headers()), 409,
                 "BACKUP_IN_PROGRESS")
    backups.executor = HeldExecutor(server)  # type: ignore[assignment]
    try:
        response = server.client.delete(f"{url}?force=true", headers=server.headers())
    finally:
        backups.executor = real
    assert response.status_code == 200, response.text
    assert response.json()["files_deleted"] == 0
    assert_error(server.client.get(url, headers=server.headers()), 404, "BACKUP_NOT_FOUND")
    job = server.client.get(f"/api/v1/backups/jobs/{created['job_id']}",
                            headers=server.headers()).json()
    assert job["status"] == "failed"
    assert job["error"]["code"] == "CANCELLED"



def test_unknown_routes_and_methods_use_the_envelope(server: Server) -> None:
    assert_error(server.client.get("/api/v1/nothing-here", headers=server.headers()), 404,
                 "NOT_FOUND")
    assert_error(server.client.put("/api/v1/backups", headers=server.headers()), 405,
                 "METHOD_NOT_ALLOWED")


def test_a_given_request_id_is_kept(server: Server) -> None:
    response = server.client.get("/api/v1/backups/not-a-uuid", headers={
        **server.headers(), "X-Request-ID": "trace-123"})
    assert response.headers["x-request-id"] == "trace-123"
    assert response.json()["error"]["request_id"] == "trace-123"


def test_a_queued_job_shows_its_place(server: Server) -> None:
    backups = server.services.backups
    real = backups.executor
    backups.executor = HeldExecutor(server)  # type: ignore[assignment]
    try:
        created = server.create_backup({"name": "queued", "type": "full"})
    finally:
        backups.executor = real
    status = server.client.get(f"/api/v1/backups/jobs/{created['job_id']}",
                               headers=server.headers()).json()
    assert status["status"] == "pending"
    assert status["progress"]["percentage"] == 0
    assert status["progress"]["completed_steps"] == 0
    assert "completed_at" not in status
    listed = server.client.get(f"/api/v1/backups/{created['backup_id']}",
                               headers=server.headers()).json()
    assert listed["status"] == "pending" and listed["can_restore"] is False
    assert listed["filename"] == "" and listed["checksum"] == ""
    server.services.runner.run(created["job_id"])  # let it finish: later tests list it
    assert server.wait_for_job(created["job_id"])["status"] == "completed"
