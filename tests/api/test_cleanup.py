"""Cleanup (seed 004 section 7, seed 002): the dry run lists, execute deletes exactly that
list and really frees repository space; protected and in-use backups are never deleted;
plan errors in the envelope; the retention policy and the scheduled cleanup."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from strongbox.catalog.types import utcnow
from tests.api.conftest import Server, running_server
from tests.api.test_backups_contract import assert_error

CLEANUP = "/api/v1/backups/cleanup"


def files_source(server: Server, root: Path, files: int = 8) -> str:
    root.mkdir(parents=True, exist_ok=True)
    refill(root, files)
    response = server.client.post("/api/v1/sources", headers=server.headers(), json={
        "name": f"cleanup {uuid.uuid4().hex[:8]}", "kind": "files", "path": str(root)})
    assert response.status_code == 201, response.text
    return str(response.json()["_id"])


def refill(root: Path, files: int = 8) -> None:
    """New random content: each backup then holds data no other backup shares."""
    for n in range(files):
        (root / f"data{n}.bin").write_bytes(os.urandom(64 * 1024))


def backups_of(server: Server, source_id: str, count: int, root: Path) -> list[str]:
    ids = []
    for n in range(count):
        refill(root)
        created = server.backup_and_wait({"name": f"cleanup {n}", "type": "full",
                                          "source_id": source_id})
        ids.append(created["backup_id"])
    return ids  # oldest first


def dry_run(server: Server, body: dict[str, Any], role: str = "operator") -> dict[str, Any]:
    response = server.client.post(CLEANUP, headers=server.headers(role), json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def execute(server: Server, plan_id: str) -> dict[str, Any]:
    response = server.client.post(f"{CLEANUP}/execute", headers=server.headers(), json={
        "cleanup_plan_id": plan_id, "confirmation": True})
    assert response.status_code == 202, response.text
    return wait_for_cleanup(server, response.json()["job_id"])


def wait_for_cleanup(server: Server, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        response = server.client.get(f"{CLEANUP}/jobs/{job_id}",
                                     headers=server.headers("viewer"))
        assert response.status_code == 200, response.text
        status = response.json()
        if status["status"] in ("completed", "failed"):
            assert status["status"] == "completed", status
            return dict(status)
        assert time.monotonic() < deadline, status
        time.sleep(0.05)


def exists(server: Server, backup_id: str) -> bool:
    return server.client.get(f"/api/v1/backups/{backup_id}",
                             headers=server.headers("viewer")).status_code == 200


def test_execute_deletes_exactly_what_the_dry_run_listed_and_frees_space(
        server: Server, tmp_path: Path) -> None:
    root = tmp_path / "tree"
    source = files_source(server, root)
    b1, b2, b3, b4, b5 = backups_of(server, source, 5, root)
    pinned = server.client.post(f"/api/v1/backups/{b2}/protect",
                                headers=server.headers("operator"), json={"reason": "audit"})
    assert pinned.status_code == 200

    plan = dry_run(server, {"keep_count": 2, "source_ids": [source], "reason": "test"})
    assert plan["status"] == "analyzed" and plan["dry_run"] is True
    assert plan["action_required"] is True and plan["confirm_action"] == "cleanup_execute"
    listed = {b["backup_id"]: b for b in plan["backups_to_delete"]}
    assert set(listed) == {b1, b3}
    assert listed[b1]["reasons"] == [
        "beyond the newest 2 backups of its source (max_backups)"]
    kept = {b["backup_id"]: b["reasons"] for b in plan["backups_kept"]}
    assert kept[b2] == ["protected: audit"]
    analysis = plan["analysis"]
    assert (analysis["total_backups"], analysis["eligible_for_removal"],
            analysis["backups_to_keep"], analysis["protected_backups"]) == (5, 2, 3, 1)
    # Each listed backup holds ~512 KiB of its own (incompressible) data.
    assert analysis["space_to_free_bytes"] > 2 * 500 * 1024
    assert analysis["space_to_free"].endswith("MB")
    assert plan["criteria"]["policy"]["max_backups"] == 2

    # A backup taken after the dry run is not in the plan, so it survives the execute even
    # though keep_count=2 would now also remove b4.
    refill(root)
    b6 = server.backup_and_wait({"name": "after plan", "type": "full",
                                 "source_id": source})["backup_id"]
    before = server.services.storage.used_bytes()
    status = execute(server, plan["cleanup_plan_id"])
    result = status["result"]
    after = server.services.storage.used_bytes()
    assert set(result["deleted_backup_ids"]) == {b1, b3} and result["skipped"] == []
    assert result["prune"]["done"] is True
    assert after < before - 2 * 500 * 1024  # the space is really gone from the disk
    assert result["freed_space"] == result["repository_bytes_before"] - \
        result["repository_bytes_after"] > 0
    assert [exists(server, b) for b in (b1, b2, b3, b4, b5, b6)] == [
        False, True, False, True, True, True]

    shown = server.client.get(f"{CLEANUP}/plans/{plan['cleanup_plan_id']}",
                              headers=server.headers("viewer")).json()
    assert shown["status"] == "executed" and shown["job_id"] == status["job_id"]
    assert shown["result"]["deleted_count"] == 2
    again = server.client.post(f"{CLEANUP}/execute", headers=server.headers(), json={
        "cleanup_plan_id": plan["cleanup_plan_id"], "confirmation": True})
    assert_error(again, 409, "CLEANUP_PLAN_ALREADY_EXECUTED")


def test_backups_protected_or_in_use_since_the_dry_run_are_skipped(
        server: Server, tmp_path: Path) -> None:
    root = tmp_path / "tree"
    source = files_source(server, root)
    b1, b2, b3, _b4 = backups_of(server, source, 4, root)
    plan = dry_run(server, {"max_backups": 1, "source_ids": [source]})
    assert {b["backup_id"] for b in plan["backups_to_delete"]} == {b1, b2, b3}
    server.client.post(f"/api/v1/backups/{b1}/protect", headers=server.headers("operator"),
                       json={"reason": "pinned after the plan"})
    # A job reading b2 (as a restore would) starts after the plan.
    reader = server.services.jobs.create("default", "restore", {"mode": "full"},
                                         backup_id=b2)
    try:
        result = execute(server, plan["cleanup_plan_id"])["result"]
    finally:
        server.services.jobs.finish(reader.id, "cancelled")
    assert result["deleted_backup_ids"] == [b3]
    assert sorted((s["backup_id"], s["reason"]) for s in result["skipped"]) == sorted([
        (b1, "protected since the plan was made"), (b2, "in use by a running job")])
    assert exists(server, b1) and exists(server, b2) and not exists(server, b3)
    detail = server.client.get(f"/api/v1/backups/{b2}", headers=server.headers("viewer"))
    assert detail.json()["status"] == "completed"  # the claim was undone


def test_plan_errors_use_the_envelope(server: Server, tmp_path: Path) -> None:
    root = tmp_path / "tree"
    source = files_source(server, root)
    backups_of(server, source, 2, root)
    plan_id = dry_run(server, {"keep_last": 1, "source_ids": [source]})["cleanup_plan_id"]
    url = f"{CLEANUP}/execute"
    missing = server.client.post(url, headers=server.headers(),
                                 json={"cleanup_plan_id": plan_id})
    assert_error(missing, 400, "CONFIRMATION_REQUIRED", fields={"confirmation"})
    refused = server.client.post(url, headers=server.headers(),
                                 json={"cleanup_plan_id": plan_id, "confirmation": False})
    assert_error(refused, 400, "CONFIRMATION_REQUIRED")
    for unknown in (str(uuid.uuid4()), "not-a-plan"):
        assert_error(server.client.post(url, headers=server.headers(), json={
            "cleanup_plan_id": unknown, "confirmation": True}), 404, "CLEANUP_PLAN_NOT_FOUND")
    assert_error(server.client.get(f"{CLEANUP}/plans/{uuid.uuid4()}",
                                   headers=server.headers()), 404, "CLEANUP_PLAN_NOT_FOUND")
    assert_error(server.client.post(url, headers=server.other(), json={
        "cleanup_plan_id": plan_id, "confirmation": True}), 404, "CLEANUP_PLAN_NOT_FOUND")
    assert_error(server.client.post(url, headers=server.headers("operator"), json={
        "cleanup_plan_id": plan_id, "confirmation": True}), 403, "FORBIDDEN")

    cleanup = server.services.cleanup
    cleanup.clock = lambda: utcnow() + timedelta(hours=2)
    try:
        shown = server.client.get(f"{CLEANUP}/plans/{plan_id}", headers=server.headers())
        assert shown.json()["status"] == "expired"
        expired = server.client.post(url, headers=server.headers(), json={
            "cleanup_plan_id": plan_id, "confirmation": True})
        assert_error(expired, 410, "CLEANUP_PLAN_EXPIRED")
    finally:
        cleanup.clock = utcnow
    assert server.client.get(f"{CLEANUP}/plans/{plan_id}",
                             headers=server.headers()).json()["status"] == "analyzed"
    # A day after it expired, the next dry run drops the never executed plan.
    cleanup.clock = lambda: utcnow() + timedelta(days=2)
    try:
        dry_run(server, {"keep_last": 1, "source_ids": [source]})
    finally:
        cleanup.clock = utcnow
    assert_error(server.client.get(f"{CLEANUP}/plans/{plan_id}", headers=server.headers()),
                 404, "CLEANUP_PLAN_NOT_FOUND")


@pytest.mark.parametrize(("body", "field", "code"), [
    ({"keep_count": 3, "max_backups": 4}, "keep_count", "INVALID_VALUE"),
    ({"older_than_days": 3, "max_age_days": 4}, "older_than_days", "INVALID_VALUE"),
    ({"keep_last": 1, "storage_locations": ["s3"]}, "storage_locations", "NOT_SUPPORTED"),
    ({"keep_last": 1, "min_free_space": "5 GB"}, "min_free_space", "NOT_SUPPORTED"),
    ({"keep_daily": 1, "timezone": "Mars/Olympus"}, "timezone", "INVALID_VALUE"),
    ({"retention_policy": "keep_forever"}, "retention_policy", "INVALID_FORMAT"),
    ({}, "criteria", "REQUIRED"),  # no rule given and retention disabled in the settings
])
def test_bad_cleanup_requests(server: Server, body: dict[str, Any], field: str,
                              code: str) -> None:
    response = server.client.post(CLEANUP, headers=server.headers("operator"), json=body)
    result = assert_error(response, 400, "VALIDATION_FAILED", fields={field})
    assert any(e["field"] == field and e["code"] == code for e in result["validation_errors"])


def test_seed_004_shorthand_and_seed_002_immediate_cleanup(server: Server,
                                                           tmp_path: Path) -> None:
    root = tmp_path / "tree"
    source = files_source(server, root)
    ids = backups_of(server, source, 3, root)
    plan = dry_run(server, {"retention_policy": "keep_last_2", "source_ids": [source]})
    assert [b["backup_id"] for b in plan["backups_to_delete"]] == [ids[0]]
    assert plan["backups_kept"][0]["reasons"][0].startswith("newest completed")

    body = {"keep_count": 1, "delete_failed": True, "source_ids": [source], "dry_run": False}
    assert_error(server.client.post(CLEANUP, headers=server.headers(), json=body), 400,
                 "CONFIRMATION_REQUIRED")
    assert_error(server.client.post(CLEANUP, headers=server.headers("operator"),
                                    json={**body, "confirmation": True}), 403, "FORBIDDEN")
    started = server.client.post(CLEANUP, headers=server.headers(),
                                 json={**body, "confirmation": True})
    assert started.status_code == 202, started.text
    answer = started.json()
    assert answer["status"] == "cleanup_started" and answer["backups_to_remove"] == 2
    result = wait_for_cleanup(server, answer["job_id"])["result"]
    assert set(result["deleted_backup_ids"]) == set(ids[:2])
    assert exists(server, ids[2])


# --- the retention policy and the scheduled cleanup -----------------------------------------


@pytest.fixture()
def fresh(tmp_path: Path) -> Iterator[Server]:
    with running_server(tmp_path / "server") as started:
        yield started


def test_policy_and_scheduled_cleanup(fresh: Server, tmp_path: Path) -> None:
    server = fresh
    policy_url = f"{CLEANUP}/policy"
    shown = server.client.get(policy_url, headers=server.headers("viewer")).json()
    assert shown["enabled"] is False and shown["rules"]["keep_daily"] == 0
    assert server.services.cleanup.run_scheduled_cleanup("default") is None  # disabled

    root = tmp_path / "tree"
    source = files_source(server, root)
    ids = backups_of(server, source, 4, root)
    failing_root = tmp_path / "gone"
    failing = files_source(server, failing_root, files=1)
    for path in failing_root.iterdir():
        path.unlink()
    failing_root.rmdir()
    failed = server.create_backup({"name": "will fail", "type": "full", "source_id": failing})
    assert server.wait_for_job(failed["job_id"])["status"] == "failed"

    assert_error(server.client.put(policy_url, headers=server.headers("operator"),
                                   json={"enabled": True}), 403, "FORBIDDEN")
    assert_error(server.client.put(policy_url, headers=server.headers(), json={
        "rules": {"timezone": "Nowhere/Land"}}), 400, "VALIDATION_FAILED")
    assert_error(server.client.put(policy_url, headers=server.headers(), json={
        "cleanup_schedule": "not cron"}), 400, "VALIDATION_FAILED")
    updated = server.client.put(policy_url, headers=server.headers(), json={
        "enabled": True, "auto_cleanup": True, "cleanup_schedule": "0 3 * * *",
        "max_age_days": 365, "rules": {"keep_last": 2, "delete_failed": True}})
    assert updated.status_code == 200, updated.text
    assert "retention.rules.keep_last" in updated.json()["updated_fields"]
    policy = updated.json()["policy"]
    assert (policy["rules"]["keep_last"], policy["max_age_days"]) == (2, 365)
    settings = server.client.get("/api/v1/settings/backup", headers=server.headers()).json()
    assert settings["retention"]["enabled"] is True  # the seed 000 block is the same store

    # An empty request now means "the settings", like the scheduled run.
    plan = dry_run(server, {})
    assert plan["criteria"]["origin"] == "settings"
    started = server.services.cleanup.run_scheduled_cleanup("default")
    assert started is not None
    planned = {b.backup_id for b in started.plan.to_delete}
    assert planned == {ids[0], ids[1], failed["backup_id"]}
    assert started.plan.criteria["origin"] == "schedule"
    result = wait_for_cleanup(server, started.job.id)["result"]
    assert set(result["deleted_backup_ids"]) == {ids[0], ids[1], failed["backup_id"]}
    assert exists(server, ids[2]) and exists(server, ids[3])
    # Nothing more to delete: no plan is executed.
    assert server.services.cleanup.run_scheduled_cleanup("default") is None


def test_an_interrupted_cleanup_settles_the_backups_it_had_claimed(server: Server,
                                                                   tmp_path: Path) -> None:
    root = tmp_path / "tree"
    source = files_source(server, root)
    b1, b2, _b3 = backups_of(server, source, 3, root)
    plan = dry_run(server, {"keep_last": 1, "source_ids": [source]})
    services = server.services
    # The job had claimed both and forgotten b2's snapshot when the server stopped.
    for backup_id in (b1, b2):
        assert not isinstance(services.backups.claim_for_cleanup(
            "default", backup_id, lambda _b: False), str)
    view = services.backups.get("default", b2)
    repo = services.storage.open()
    repo.delete_snapshot(view.snapshot_id)
    job = services.jobs.create("default", "cleanup", {"plan_id": plan["cleanup_plan_id"]})
    services.runner.handler("cleanup").failed(job, {"code": "INTERRUPTED", "message": "x"})
    services.jobs.finish(job.id, "failed")
    assert services.backups.get("default", b1).status == "completed"
    assert not exists(server, b2)
    shown = server.client.get(f"{CLEANUP}/plans/{plan['cleanup_plan_id']}",
                              headers=server.headers("viewer")).json()
    assert shown["result"]["error"]["code"] == "INTERRUPTED"


def test_policy_values_are_cleared_with_null_and_zero(server: Server) -> None:
    url = f"{CLEANUP}/policy"
    set_ = server.client.put(url, headers=server.headers(), json={
        "max_age_days": 30, "rules": {"keep_within_days": 5, "keep_weekly": 2}})
    assert set_.status_code == 200, set_.text
    cleared = server.client.put(url, headers=server.headers(), json={
        "max_age_days": None, "rules": {"keep_within_days": 0}}).json()
    assert cleared["policy"]["max_age_days"] is None
    assert cleared["policy"]["rules"]["keep_within_days"] is None
    assert cleared["policy"]["rules"]["keep_weekly"] == 2  # untouched
    server.client.put(url, headers=server.headers(), json={"rules": {"keep_weekly": 0}})
