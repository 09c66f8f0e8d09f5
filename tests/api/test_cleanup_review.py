"""Review findings on cleanup execution: the safety rules hold at execute time too, a
schedule's retention follows its own calendar, odd settings do not turn into 500s."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import update

from strongbox.catalog.models import Backup
from strongbox.jobs.store import ACTIVE
from strongbox.services.backups import NewBackup
from strongbox.services.principal import Principal, Role
from strongbox.services.schedule_actions import retention_after_run
from tests.api.conftest import Server
from tests.api.test_backups_contract import assert_error
from tests.api.test_cleanup import (
    CLEANUP,
    backups_of,
    dry_run,
    execute,
    exists,
    files_source,
    refill,
    wait_for_cleanup,
)


def set_backup(server: Server, backup_id: str, **values: object) -> None:
    with server.services.catalog.session() as session:
        session.execute(update(Backup).where(Backup.id == backup_id).values(**values))


def test_execute_never_deletes_what_became_the_newest_completed_backup(
        server: Server, tmp_path: Path) -> None:
    """The plan deleted b1 because b2 was newer; after the dry run b2 turned out corrupted
    (a verification) and b4 was deleted by hand: executing must not leave the sources with
    no restorable backup."""
    root = tmp_path / "tree"
    source = files_source(server, root)
    b1, b2 = backups_of(server, source, 2, root)
    other_root = tmp_path / "other"
    other = files_source(server, other_root)
    b3, b4 = backups_of(server, other, 2, other_root)
    plan = dry_run(server, {"keep_count": 1, "source_ids": [source, other]})
    assert {b["backup_id"] for b in plan["backups_to_delete"]} == {b1, b3}

    set_backup(server, b2, status="corrupted")
    deleted = server.client.delete(f"/api/v1/backups/{b4}", headers=server.headers())
    assert deleted.status_code == 200, deleted.text
    result = execute(server, plan["cleanup_plan_id"])["result"]
    assert result["deleted_backup_ids"] == []
    assert {s["backup_id"] for s in result["skipped"]} == {b1, b3}
    assert all("newest completed backup" in s["reason"] for s in result["skipped"])
    assert exists(server, b1) and exists(server, b3)
    assert server.services.backups.get("default", b1).status == "completed"  # unclaimed


def test_execute_still_deletes_when_a_newer_backup_remains(server: Server,
                                                           tmp_path: Path) -> None:
    root = tmp_path / "tree"
    source = files_source(server, root)
    b1, b2, b3 = backups_of(server, source, 3, root)
    plan = dry_run(server, {"keep_count": 1, "source_ids": [source]})
    set_backup(server, b3, status="corrupted")  # b2 is now the newest completed one
    result = execute(server, plan["cleanup_plan_id"])["result"]
    assert result["deleted_backup_ids"] == [b1]
    assert [s["backup_id"] for s in result["skipped"]] == [b2]
    assert not exists(server, b1) and exists(server, b2)


def test_plans_of_another_tenant_answer_404(server: Server, tmp_path: Path) -> None:
    root = tmp_path / "tree"
    source = files_source(server, root)
    backups_of(server, source, 2, root)
    plan = dry_run(server, {"keep_count": 1, "source_ids": [source]})
    plan_id = plan["cleanup_plan_id"]
    assert_error(server.client.get(f"{CLEANUP}/plans/{plan_id}", headers=server.other()),
                 404, "CLEANUP_PLAN_NOT_FOUND")
    assert_error(server.client.post(f"{CLEANUP}/execute", headers=server.other(), json={
        "cleanup_plan_id": plan_id, "confirmation": True}), 404, "CLEANUP_PLAN_NOT_FOUND")
    # The other tenant's own cleanup, even with this tenant's source id, sees nothing.
    response = server.client.post(CLEANUP, headers=server.other(), json={
        "keep_count": 1, "source_ids": [source]})
    assert response.status_code == 200, response.text
    assert response.json()["backups_to_delete"] == []


def test_a_huge_max_age_days_in_the_settings_is_not_a_500(server: Server) -> None:
    url = f"{CLEANUP}/policy"
    before = server.client.get(url, headers=server.headers()).json()
    try:
        set_ = server.client.put(url, headers=server.headers(), json={
            "enabled": True, "max_age_days": 10_000_000})
        assert set_.status_code == 200, set_.text
        response = server.client.post(CLEANUP, headers=server.headers(), json={})
        assert response.status_code == 200, response.text
        assert response.json()["backups_to_delete"] == []
    finally:
        server.client.put(url, headers=server.headers(), json={
            "enabled": before["enabled"], "max_age_days": before["max_age_days"]})


def test_schedule_retention_buckets_follow_the_schedule_time_zone(
        server: Server, tmp_path: Path) -> None:
    root = tmp_path / "tree"
    source = files_source(server, root)
    created = server.client.post("/api/v1/schedules", headers=server.headers(), json={
        "name": "nightly new york", "cron": "0 22 * * *", "timezone": "America/New_York",
        "source_ids": [source], "enabled": False, "retention": {"keep_daily": 2}})
    assert created.status_code == 201, created.text
    schedule_id = created.json()["_id"]
    services = server.services
    principal = Principal("test", "test", "default", Role.OPERATOR)
    ids = []
    # 22:00 and 23:00 on 9 January in New York, 01:00 on 10 January.
    for hour in (3, 4, 6):
        refill(root)
        made = services.backups.create(principal, NewBackup(
            name=f"tz {hour}", type="full", source_id=source, schedule_id=schedule_id))
        assert server.wait_for_job(made.job.id)["status"] == "completed"
        set_backup(server, made.backup.id,
                   created_at=datetime(2026, 1, 10, hour, 0, tzinfo=UTC))
        ids.append(made.backup.id)
    schedule = services.schedules.get("default", schedule_id)
    retention_after_run(services.cleanup)(schedule, "completed")
    plans = [row for row in services.jobs.active() if row.kind == "cleanup"]
    for job in plans:
        wait_for_cleanup(server, job.id)
    assert [exists(server, b) for b in ids] == [False, True, True]


def test_a_failing_cleanup_leaves_the_claims_of_others_alone(server: Server,
                                                             tmp_path: Path) -> None:
    """Two plans list b1; another deletion (cleanup B) has claimed it when cleanup A fails
    (here: the repository is locked). A used to reset b1 to ``completed`` although B was
    still deleting it: b1 could then be protected, or restored, and B deleted it anyway."""
    from strongbox.repository.lock import Lock

    root = tmp_path / "tree"
    source = files_source(server, root)
    b1, _b2 = backups_of(server, source, 2, root)
    plan = dry_run(server, {"keep_count": 1, "source_ids": [source]})
    services = server.services
    claimed = services.backups.claim_for_cleanup("default", b1, lambda _b: False)
    assert not isinstance(claimed, str)
    lock = Lock(services.storage.open().backend, exclusive=True).acquire()
    try:
        response = server.client.post(f"{CLEANUP}/execute", headers=server.headers(), json={
            "cleanup_plan_id": plan["cleanup_plan_id"], "confirmation": True})
        assert response.status_code == 202, response.text
        job_id = response.json()["job_id"]
        deadline = time.monotonic() + 30
        while services.jobs.get(job_id).status in ACTIVE:  # type: ignore[union-attr]
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        lock.release()
    assert services.jobs.get(job_id).error["code"] == "REPOSITORY_LOCKED"  # type: ignore
    assert services.backups.get("default", b1).status == "deleting"  # still B's
    protect = server.client.post(f"/api/v1/backups/{b1}/protect",
                                 headers=server.headers("operator"), json={"reason": "x"})
    assert_error(protect, 409, "BACKUP_IN_PROGRESS")
    services.backups.release_claim(b1, "completed")  # B gives up


def test_a_running_dr_test_keeps_the_backups_it_is_testing(server: Server,
                                                          tmp_path: Path) -> None:
    """A DR test picks the newest backup of every source when it starts and restores them
    one after the other; its job parameters name none of them. A backup that completes
    meanwhile made the picked one deletable, and a cleanup then deleted it under the
    test (which then failed on a backup that was fine)."""
    from strongbox.services import cleanup, dr_test_job

    assert cleanup.DR_TEST_KIND == dr_test_job.KIND
    root = tmp_path / "tree"
    source = files_source(server, root)
    b1, b2 = backups_of(server, source, 2, root)
    services = server.services
    dr_job = services.jobs.create("default", dr_test_job.KIND, {"test_id": "review"})
    services.jobs.start(dr_job.id)  # planned: b2 is the newest backup of the source
    try:
        time.sleep(0.01)
        (b3,) = backups_of(server, source, 1, root)
        plan = dry_run(server, {"keep_count": 1, "source_ids": [source]})
        assert {b["backup_id"] for b in plan["backups_to_delete"]} == {b1}
        kept = {b["backup_id"]: b["reasons"] for b in plan["backups_kept"]}
        assert kept[b2] == ["in use by a running job"]
        assert b3 in kept
    finally:
        services.jobs.finish(dr_job.id, "cancelled")
