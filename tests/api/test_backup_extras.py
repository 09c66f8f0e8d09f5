"""Seed 001's per-backup options on ``POST /api/v1/backups`` against a real server:
``verify`` (a verify job after the backup, ``validation_status``, ``corrupted`` for damage),
``retention_days`` (``expires_at``, cleanup on a controlled clock deletes expired backups,
never protected ones nor a source's newest), ``notification`` (a real local webhook
receiver and a real SMTP server get that backup's events), and their validation."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from strongbox.catalog.types import utcnow
from strongbox.jobs.store import JobView
from strongbox.services.backups import NewBackup
from strongbox.services.errors import ValidationFailed
from strongbox.services.notifications import unique_targets
from strongbox.services.principal import Principal, Role
from strongbox.services.retention_rules import BackupRecord, CleanupPolicy, plan_retention
from tests.api.conftest import Server, running_server
from tests.api.test_backups_contract import assert_error
from tests.test_notifications import Mailbox, Receiver, smtp_server, wait_until

BACKUPS = "/api/v1/backups"
CLEANUP = "/api/v1/backups/cleanup"
OWNER = "owner@example.test"


@pytest.fixture(scope="module")
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    with smtp_server() as started:
        yield started


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory,
           mailbox: tuple[Mailbox, int]) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("extras"), smtp_host="127.0.0.1",
                        smtp_port=mailbox[1], smtp_security="none",
                        smtp_from="strongbox@example.test",
                        notification_retry_base_seconds=0.05,
                        notification_retry_max_seconds=0.2) as started:
        yield started


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Server]:
    """A server of its own: its repository is damaged, or its cleanup sees every backup."""
    with running_server(tmp_path / "server") as started:
        yield started


def files_source(server: Server, root: Path, files: int = 4) -> str:
    root.mkdir(parents=True, exist_ok=True)
    for n in range(files):
        (root / f"data{n}.bin").write_bytes(os.urandom(32 * 1024))
    response = server.client.post("/api/v1/sources", headers=server.headers(), json={
        "name": f"extras {uuid.uuid4().hex[:8]}", "kind": "files", "path": str(root)})
    assert response.status_code == 201, response.text
    return str(response.json()["_id"])


def detail(server: Server, backup_id: str) -> dict[str, Any]:
    response = server.client.get(f"{BACKUPS}/{backup_id}", headers=server.headers("viewer"))
    assert response.status_code == 200, response.text
    return dict(response.json())


def verify_jobs(server: Server, backup_id: str) -> list[JobView]:
    return server.services.jobs.for_backup(backup_id, kind="verify")


def finished_verification(server: Server, backup_id: str) -> dict[str, Any]:
    """The verify job started for ``backup_id``, followed through the API to its end."""
    job = wait_until(lambda: (verify_jobs(server, backup_id) or [None])[0])
    deadline = time.monotonic() + 60
    while True:
        response = server.client.get(f"{BACKUPS}/verify/jobs/{job.id}",
                                     headers=server.headers("viewer"))
        assert response.status_code == 200, response.text
        status = dict(response.json())
        if status["status"] in ("completed", "failed"):
            return status
        assert time.monotonic() < deadline, status
        time.sleep(0.05)


def total_backups(server: Server) -> int:
    response = server.client.get(BACKUPS, headers=server.headers("viewer"))
    return int(response.json()["pagination"]["total_items"])


# --- verify -------------------------------------------------------------------------------


def test_verify_runs_a_verification_after_the_backup(server: Server) -> None:
    plain = server.backup_and_wait({"name": "no verify", "type": "full"})
    asked = server.backup_and_wait({"name": "verified", "type": "full",
                                    "options": {"verify": True}})

    status = finished_verification(server, asked["backup_id"])
    assert status["status"] == "completed", status
    assert status["backup_id"] == asked["backup_id"]
    shown = detail(server, asked["backup_id"])
    assert shown["status"] == "completed"
    assert shown["validation_status"]["is_valid"] is True
    assert datetime.fromisoformat(shown["validation_status"]["validated_at"]) >= \
        datetime.fromisoformat(shown["completed_at"])
    # The backup job finished first: verification is a job of its own.
    backup_job = server.services.jobs.get(asked["job_id"])
    assert backup_job is not None and backup_job.params["verify"] is True
    # A seed 000 request (no verify) gets no verification; it completed before the other
    # backup's, and completions are handled in order.
    assert verify_jobs(server, plain["backup_id"]) == []
    assert "validation_status" not in detail(server, plain["backup_id"])


def test_seed_001_top_level_spelling_is_accepted(server: Server) -> None:
    created = server.backup_and_wait({"name": "seed 001 style", "type": "full",
                                      "verify": True, "retention_days": 90})
    assert finished_verification(server, created["backup_id"])["status"] == "completed"
    shown = detail(server, created["backup_id"])
    expires = datetime.fromisoformat(shown["expires_at"])
    assert expires - datetime.fromisoformat(shown["created_at"]) == timedelta(days=90)
    stored = server.services.backups.get("default", created["backup_id"]).options
    assert stored == {"verify": True, "retention_days": 90}


def test_a_damaged_backup_verified_after_creation_becomes_corrupted(
        fresh: Server, tmp_path: Path) -> None:
    root = tmp_path / "tree"
    source = files_source(fresh, root)
    first = fresh.backup_and_wait({"name": "first", "type": "full", "source_id": source})
    # Lose a pack the first backup wrote; the second backup of the unchanged tree stores
    # nothing new (deduplication) and so refers to the lost pack too.
    repo = fresh.services.storage.open()
    snapshot = repo.load_snapshot(fresh.services.backups.get(
        "default", first["backup_id"]).snapshot_id or "")
    node = next(n for _p, n in sorted(repo.iter_tree(snapshot.tree)) if n.content)
    found = repo.index.lookup(bytes.fromhex(node.content[0]))
    assert found is not None
    (Path(repo.backend.location) / "data" / found[0][:2] / found[0]).unlink()

    second = fresh.backup_and_wait({"name": "second", "type": "full", "source_id": source,
                                    "options": {"verify": True}})

    status = finished_verification(fresh, second["backup_id"])
    assert status["status"] == "completed", status
    assert status["result"]["verified"] is False
    shown = detail(fresh, second["backup_id"])
    assert shown["status"] == "corrupted"
    assert shown["validation_status"]["is_valid"] is False
    assert shown["error_message"].startswith("verification found damaged data")
    assert verify_jobs(fresh, first["backup_id"]) == []  # only what asked for it


def test_a_verification_missed_while_stopped_runs_at_the_next_start(tmp_path: Path) -> None:
    data_dir = tmp_path / "server"
    with running_server(data_dir) as first:
        first.services.verify_after_backup.stop()  # as if the server stopped at that moment
        created = first.backup_and_wait({"name": "verify later", "type": "full",
                                         "options": {"verify": True}})
        assert verify_jobs(first, created["backup_id"]) == []
    with running_server(data_dir) as second:
        status = finished_verification(second, created["backup_id"])
        assert status["status"] == "completed", status
        assert detail(second, created["backup_id"])["validation_status"]["is_valid"] is True
        assert second.services.verify_after_backup.catch_up() == []  # done once only


# --- retention_days ----------------------------------------------------------------------------


def test_expired_backups_are_cleaned_up_but_never_protected_or_newest_ones(
        fresh: Server, tmp_path: Path) -> None:
    server = fresh
    source = files_source(server, tmp_path / "tree")
    other = files_source(server, tmp_path / "other")

    def backup(name: str, source_id: str, **options: Any) -> str:
        body = {"name": name, "type": "full", "source_id": source_id}
        if options:
            body["options"] = options
        return str(server.backup_and_wait(body)["backup_id"])

    expiring = backup("expiring", source, retention_days=1)
    pinned = backup("pinned", source, retention_days=1)
    longer = backup("longer", source, retention_days=30)
    forever = backup("forever", source)
    newest_other = backup("only one", other, retention_days=1)
    assert server.client.post(f"{BACKUPS}/{pinned}/protect", headers=server.headers(),
                              json={"reason": "legal hold"}).status_code == 200

    shown = detail(server, expiring)
    assert datetime.fromisoformat(shown["expires_at"]) == \
        datetime.fromisoformat(shown["created_at"]) + timedelta(days=1)
    assert "expires_at" not in detail(server, forever)

    # Today nothing has expired, and retention is disabled: nothing to plan.
    assert_error(server.client.post(CLEANUP, headers=server.headers("operator"), json={}),
                 400, "VALIDATION_FAILED", fields={"criteria"})

    cleanup = server.services.cleanup
    cleanup.clock = lambda: utcnow() + timedelta(days=2)
    try:
        response = server.client.post(CLEANUP, headers=server.headers("operator"), json={})
        assert response.status_code == 200, response.text
        plan = response.json()
        listed = {b["backup_id"]: b["reasons"] for b in plan["backups_to_delete"]}
        assert set(listed) == {expiring}
        assert listed[expiring][0].startswith("expired")
        kept = {b["backup_id"]: b["reasons"] for b in plan["backups_kept"]}
        assert kept[pinned] == ["protected: legal hold"]
        assert kept[newest_other][0].startswith("newest completed backup")
        assert longer in kept and forever in kept

        executed = server.client.post(f"{CLEANUP}/execute", headers=server.headers(), json={
            "cleanup_plan_id": plan["cleanup_plan_id"], "confirmation": True})
        assert executed.status_code == 202, executed.text
        job_id = executed.json()["job_id"]
        result = wait_until(lambda: _finished_cleanup(server, job_id))
        assert result["deleted_backup_ids"] == [expiring]
    finally:
        cleanup.clock = utcnow
    assert server.client.get(f"{BACKUPS}/{expiring}",
                             headers=server.headers("viewer")).status_code == 404
    for kept_id in (pinned, longer, forever, newest_other):
        assert detail(server, kept_id)["status"] == "completed"


def test_the_scheduled_cleanup_deletes_expired_backups_with_retention_disabled(
        fresh: Server, tmp_path: Path) -> None:
    server = fresh
    source = files_source(server, tmp_path / "tree")
    old = server.backup_and_wait({"name": "old", "type": "full", "source_id": source,
                                  "options": {"retention_days": 1}})["backup_id"]
    server.backup_and_wait({"name": "new", "type": "full", "source_id": source})
    cleanup = server.services.cleanup
    assert cleanup.run_scheduled_cleanup("default") is None  # nothing expired yet
    cleanup.clock = lambda: utcnow() + timedelta(days=1, minutes=1)
    try:
        started = cleanup.run_scheduled_cleanup("default")
    finally:
        cleanup.clock = utcnow
    assert started is not None
    assert [b.backup_id for b in started.plan.to_delete] == [old]
    assert started.plan.to_delete[0].reasons[0].startswith("expired")
    result = wait_until(lambda: _finished_cleanup(server, started.job.id))
    assert result["deleted_backup_ids"] == [old]


def _finished_cleanup(server: Server, job_id: str) -> dict[str, Any] | None:
    status = server.client.get(f"{CLEANUP}/jobs/{job_id}",
                               headers=server.headers("viewer")).json()
    if status["status"] not in ("completed", "failed"):
        return None
    assert status["status"] == "completed", status
    return dict(status["result"])


# --- notification ------------------------------------------------------------------------------


def test_a_backups_own_targets_get_its_events(server: Server,
                                              mailbox: tuple[Mailbox, int]) -> None:
    box, _port = mailbox
    with Receiver() as receiver:
        created = server.backup_and_wait({
            "name": "told", "type": "full", "options": {
                "verify": True, "notification": {"email": [OWNER], "webhook": receiver.url}}})
        backup_id = created["backup_id"]
        for event in ("backup.started", "backup.completed", "backup.verified"):
            received = receiver.events(event)[0]
            payload = json.loads(received.body)
            assert payload["event"] == event
            assert payload["data"]["backup_id"] == backup_id
            assert "X-Strongbox-Signature" not in received.headers  # no secret to sign with
        verified = json.loads(receiver.events("backup.verified")[0].body)
        assert verified["data"]["status"] == "passed"

        def mails() -> list[Any]:
            return [m for rcpt, m in box.messages if OWNER in rcpt
                    and backup_id in m.get_payload(decode=True).decode()]
        messages = wait_until(lambda: len(mails()) >= 3 and mails())
        subjects = sorted(str(m["Subject"]) for m in messages)
        assert any("told" in subject for subject in subjects), subjects

        # Deliveries are logged like every other, with the backup's targets.
        def logged() -> list[dict[str, Any]] | None:
            items = server.client.get("/api/v1/notifications/deliveries",
                                      headers=server.headers("viewer"),
                                      params={"size": 100}).json()["items"]
            ours = [i for i in items if i["target"] in (receiver.url, OWNER)
                    and i["status"] == "delivered"]
            return ours if len(ours) >= 6 else None
        items = wait_until(logged)
        assert {i["channel"] for i in items} == {"webhook", "email"}
        assert all("webhook_id" not in i for i in items)  # not a registered webhook


def test_a_failed_backup_tells_its_own_webhook(server: Server, tmp_path: Path) -> None:
    root = tmp_path / "gone"
    source = files_source(server, root, files=1)
    for path in root.iterdir():
        path.unlink()
    root.rmdir()
    with Receiver() as receiver:
        created = server.create_backup({"name": "will fail", "type": "full",
                                        "source_id": source,
                                        "notification": {"webhook": receiver.url}})
        assert server.wait_for_job(created["job_id"])["status"] == "failed"
        payload = json.loads(receiver.events("backup.failed")[0].body)
    assert payload["data"]["backup_id"] == created["backup_id"]
    assert payload["data"]["status"] == "failed"


# --- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("extra", "field", "code"), [
    ({"options": {"notification": {"webhook": "ftp://example.test/x"}}},
     "options.notification.webhook", "INVALID_URL"),
    ({"options": {"notification": {"webhook": "not a url"}}},
     "options.notification.webhook", "INVALID_URL"),
    ({"options": {"notification": {"email": ["ok@example.test", "not-an-address"]}}},
     "options.notification.email[1]", "INVALID_EMAIL"),
    ({"notification": {"email": ["a@@example.test"]}},
     "options.notification.email[0]", "INVALID_EMAIL"),
    ({"options": {"retention_days": 0}}, "options.retention_days", "OUT_OF_RANGE"),
    ({"retention_days": -3}, "retention_days", "OUT_OF_RANGE"),
    ({"options": {"retention_days": 1000000}}, "options.retention_days", "OUT_OF_RANGE"),
    ({"options": {"verify": "maybe"}}, "options.verify", "INVALID_TYPE"),
    ({"verify": True, "options": {"verify": False}}, "verify", "CONFLICT"),
])
def test_bad_extras_are_refused_and_nothing_is_created(
        server: Server, extra: dict[str, Any], field: str, code: str) -> None:
    before = total_backups(server)
    jobs_before = len(server.services.jobs.active())
    response = server.client.post(BACKUPS, headers=server.headers("operator"),
                                  json={"name": "refused", "type": "full", **extra})
    body = assert_error(response, 400, "VALIDATION_FAILED", fields={field})
    assert any(e["field"] == field and e["code"] == code
               for e in body["validation_errors"]), body
    assert total_backups(server) == before
    assert len(server.services.jobs.active()) <= jobs_before


def test_schedule_style_options_are_checked_by_the_service(server: Server) -> None:
    """Backups made without the API (a schedule's options) get the same checks."""
    principal = Principal("k", "test", "default", Role.OPERATOR)
    with pytest.raises(ValidationFailed) as caught:
        server.services.backups.create(principal, NewBackup(
            name="scheduled", type="full", options={
                "retention_days": "soon", "notification": {"webhook": "javascript:alert(1)"}}))
    assert {e.field for e in caught.value.errors} == {
        "options.retention_days", "options.notification.webhook"}


def test_email_targets_need_smtp(fresh: Server) -> None:
    before = total_backups(fresh)
    response = fresh.client.post(BACKUPS, headers=fresh.headers("operator"), json={
        "name": "no smtp", "type": "full", "options": {"notification": {"email": [OWNER]}}})
    body = assert_error(response, 400, "VALIDATION_FAILED",
                        fields={"options.notification.email"})
    assert body["validation_errors"][0]["code"] == "NOT_SUPPORTED"
    assert total_backups(fresh) == before


# --- the pure parts ------------------------------------------------------------------------------


def test_expiry_in_the_retention_rules() -> None:
    now = utcnow()
    day = timedelta(days=1)
    records = [
        BackupRecord("newest", "s", now - day, "completed", expires_at=now - day),
        BackupRecord("expired", "s", now - 3 * day, "completed", expires_at=now - 2 * day),
        BackupRecord("failed", "s", now - 4 * day, "failed", expires_at=now - 3 * day),
        BackupRecord("running", "s", now - 4 * day, "in_progress", expires_at=now - 3 * day),
        BackupRecord("pinned", "s", now - 5 * day, "completed", protected=True,
                     expires_at=now - 4 * day),
        BackupRecord("later", "s", now - 6 * day, "completed", expires_at=now + day),
        BackupRecord("at_now", "s", now - 7 * day, "completed", expires_at=now),
    ]
    decisions = {d.backup.id: d for d in plan_retention(records, CleanupPolicy(), now)}
    assert {k for k, d in decisions.items() if d.delete} == {"expired", "failed", "at_now"}
    assert decisions["expired"].reasons[0].startswith("expired")
    assert decisions["newest"].reasons[0].startswith("newest completed")


def test_a_target_named_by_the_settings_and_the_backup_is_told_once() -> None:
    targets = [("webhook", "hook-1", "https://a.example.test/"),
               ("webhook", "hook-2", "https://a.example.test/"),
               ("webhook", None, "https://a.example.test/"),
               ("email", None, OWNER), ("webhook", None, "https://a.example.test/"),
               ("email", None, OWNER)]
    assert unique_targets(targets) == targets[:4]
