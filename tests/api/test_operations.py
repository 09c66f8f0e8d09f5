"""``/api/v1/jobs`` and ``strongbox jobs``: every kind of job listed, followed and
cancelled in one place, against a real server (one job worker, so a second job really
queues) and a real repository.

A running backup is held mid-write deterministically: a test-only wrapper around the real
backup handler gives the job a progress whose byte-count updates wait until the job is
cancelled. The real backup code then meets its next cancellation check, exactly as a
slow backup would.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from strongbox.jobs.progress import JobProgress
from strongbox.jobs.runner import JobHandler
from strongbox.jobs.store import JobView
from strongbox.repository.checker import check_repository
from strongbox.services import backup_job
from strongbox.services.container import Services
from strongbox.services.restore_job import RestoreProgress
from tests.api.conftest import (
    TENANT,
    Live,
    Server,
    live_server,
    running_server,
)
from tests.api.test_backups_contract import assert_error
from tests.api.test_restore import demo_db, start_restore, state, wait_for_restore

JOBS = "/api/v1/jobs"
HOLD_SECONDS = 30.0  # a safety net only: the test always cancels before this


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("operations"), job_workers=1) as started:
        yield started


@pytest.fixture(scope="module")
def tree_source(server: Server, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A files source of 30 random files (several chunks each): plenty of cancel points."""
    root = tmp_path_factory.mktemp("tree")
    for i in range(30):
        (root / f"file-{i:02}.bin").write_bytes(os.urandom(300_000))
    response = server.client.post("/api/v1/sources", headers=server.headers(), json={
        "name": "operations tree", "kind": "files", "path": str(root)})
    assert response.status_code == 201, response.text
    return str(response.json()["_id"])


class HeldBackup:
    """The real backup handler, whose jobs stop once they have written data, until they
    are cancelled (``reached`` is set when a job gets there)."""

    def __init__(self, real: JobHandler) -> None:
        self.real = real
        self.steps = real.steps
        self.reached = threading.Event()
        self.released = threading.Event()  # cleared: stay held even once cancelled
        self.released.set()
        reached, released = self.reached, self.released

        class HeldProgress(JobProgress):
            def advance(self, *, items: int = 0, nbytes: int = 0) -> None:
                super().advance(items=items, nbytes=nbytes)
                # Every thread that has written data waits here, so none runs past the
                # files it has yet to read, where the cancellation is checked.
                if nbytes and self.steps[self.step_index] == "backing up":
                    reached.set()
                    deadline = time.monotonic() + HOLD_SECONDS
                    while not (self.cancelled and released.is_set()) \
                            and time.monotonic() < deadline:
                        time.sleep(0.01)

        self.progress_class = HeldProgress

    def run(self, job: JobView, progress: JobProgress) -> dict[str, Any]:
        return self.real.run(job, progress)

    def failed(self, job: JobView, error: dict[str, Any]) -> None:
        self.real.failed(job, error)


@pytest.fixture()
def held(server: Server) -> Iterator[HeldBackup]:
    runner = server.services.runner
    real = runner.handlers[backup_job.KIND]
    wrapper = HeldBackup(real)
    runner.register(backup_job.KIND, wrapper)
    try:
        yield wrapper
    finally:
        runner.register(backup_job.KIND, real)


def job_of(server: Server, job_id: str, role: str = "viewer") -> dict[str, Any]:
    response = server.client.get(f"{JOBS}/{job_id}", headers=server.headers(role))
    assert response.status_code == 200, response.text
    return dict(response.json())


def cancel(server: Server, job_id: str, role: str = "operator", **body: Any) -> Any:
    return server.client.post(f"{JOBS}/{job_id}/cancel", headers=server.headers(role),
                              json=body or None)


def backup_of(server: Server, backup_id: str) -> dict[str, Any]:
    response = server.client.get(f"/api/v1/backups/{backup_id}", headers=server.headers())
    assert response.status_code == 200, response.text
    return dict(response.json())


def snapshots_tagged(services: Services, backup_id: str) -> list[str]:
    repo = services.storage.open()
    return [s.id for s in repo.list_snapshots() if f"backup={backup_id}" in s.tags]


# --- list and show -----------------------------------------------------------------------


def test_lists_every_kind_newest_first_with_filters_and_pages(server: Server) -> None:
    first = server.backup_and_wait({"name": "listed 1", "type": "full"})
    second = server.backup_and_wait({"name": "listed 2", "type": "full"})
    verify = server.client.post(f"/api/v1/backups/{first['backup_id']}/verify",
                                headers=server.headers("operator"))
    assert verify.status_code == 202, verify.text
    verify_job = verify.json()["job_id"]
    deadline = time.monotonic() + 60
    while job_of(server, verify_job)["status"] not in ("completed", "failed"):
        assert time.monotonic() < deadline
        time.sleep(0.05)

    listed = server.client.get(JOBS, headers=server.headers("viewer")).json()
    ids = [item["job_id"] for item in listed["items"]]
    assert ids.index(verify_job) < ids.index(second["job_id"]) < ids.index(first["job_id"])
    assert {"backup", "verify"} <= {item["kind"] for item in listed["items"]}
    stamps = [item["created_at"] for item in listed["items"]]
    assert stamps == sorted(stamps, reverse=True)

    backups = server.client.get(JOBS, params={"kind": "backup"},
                                headers=server.headers("viewer")).json()
    assert {item["kind"] for item in backups["items"]} == {"backup"}
    assert verify_job not in [item["job_id"] for item in backups["items"]]
    done = server.client.get(JOBS, params={"status": "completed"},
                             headers=server.headers("viewer")).json()
    assert {item["status"] for item in done["items"]} == {"completed"}
    assert all(item["progress"]["percentage"] == 100.0 for item in done["items"])
    active = server.client.get(JOBS, params={"active": "true"},
                               headers=server.headers("viewer")).json()
    assert active["items"] == []

    total = listed["pagination"]["total_items"]
    page2 = server.client.get(JOBS, params={"page": 2, "size": 1},
                              headers=server.headers("viewer")).json()
    assert page2["pagination"] == {"total_items": total, "total_pages": total,
                                   "current_page": 2, "page_size": 1, "has_next": total > 2,
                                   "has_previous": True}
    assert [item["job_id"] for item in page2["items"]] == ids[1:2]
    assert_error(server.client.get(JOBS, params={"status": "sleeping"},
                                   headers=server.headers("viewer")), 400, "VALIDATION_FAILED")

    shown = job_of(server, first["job_id"])
    assert shown["kind"] == "backup" and shown["backup_id"] == first["backup_id"]
    assert shown["status"] == "completed" and not shown["cancellable"]
    assert shown["result"]["backup_id"] == first["backup_id"]
    assert shown["progress"]["current_step"] == "done"
    assert shown["progress"]["bytes_done"] > 0
    assert shown["progress"]["details"]["total_steps"] == 3


def test_other_tenants_see_nothing_and_cannot_cancel(server: Server) -> None:
    created = server.backup_and_wait({"name": "mine", "type": "full"})
    assert server.client.get(JOBS, headers=server.other()).json()["items"] == []
    for url in (f"{JOBS}/{created['job_id']}", f"{JOBS}/00000000-0000-4000-8000-000000000000",
                f"{JOBS}/not-a-uuid"):
        assert_error(server.client.get(url, headers=server.other()), 404, "JOB_NOT_FOUND")
    assert_error(server.client.post(f"{JOBS}/{created['job_id']}/cancel",
                                    headers=server.other()), 404, "JOB_NOT_FOUND")


# --- cancel --------------------------------------------------------------------------------


def test_cancelling_a_running_backup_keeps_nothing_of_it(server: Server, tree_source: str,
                                                         held: HeldBackup) -> None:
    # An earlier backup of the same source, made before the hold.
    earlier = earlier_backup(server, tree_source, held)
    earlier_snapshots = snapshots_tagged(server.services, earlier)
    assert len(earlier_snapshots) == 1

    running = server.create_backup({"name": "to cancel", "type": "full",
                                    "source_id": tree_source})
    assert held.reached.wait(30), "the backup never started writing"
    queued = server.create_backup({"name": "queued", "type": "full",
                                   "source_id": tree_source})

    status = job_of(server, running["job_id"])
    assert status["status"] == "in_progress" and status["cancellable"]
    assert status["progress"]["current_step"] == "backing up"
    active = server.client.get(JOBS, params={"active": "true"},
                               headers=server.headers("viewer")).json()
    assert [item["job_id"] for item in active["items"]] == [queued["job_id"],
                                                            running["job_id"]]
    assert job_of(server, queued["job_id"])["status"] == "pending"  # one worker, busy

    # The queued one is cancelled at once and never starts.
    response = cancel(server, queued["job_id"])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "cancelled" and body["kind"] == "backup"
    assert "before it started" in body["message"]
    assert body["job"]["status"] == "failed" and body["job"]["cancelled"]
    assert body["job"]["error"]["code"] == "CANCELLED"
    assert body["job"].get("started_at") is None
    assert backup_of(server, queued["backup_id"])["status"] == "failed"

    # The running one stops at its next check; what it wrote is dropped.
    response = cancel(server, running["job_id"], reason="test cancels it")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "cancelled" and body["partial_data_cleaned"]
    assert body["can_restart"] and "earlier backups are intact" in body["message"]
    final = server.wait_for_job(running["job_id"])
    assert final["status"] == "failed" and final["error"]["code"] == "CANCELLED"
    assert not job_of(server, running["job_id"])["cancellable"]
    cancelled_backup = backup_of(server, running["backup_id"])
    assert cancelled_backup["status"] == "failed"
    row = server.services.backups.get(TENANT, running["backup_id"])
    assert row.error_message is not None and "CANCELLED" in row.error_message
    assert snapshots_tagged(server.services, running["backup_id"]) == []

    # Nothing half-written, and the earlier backup is whole.
    report = check_repository(server.services.storage.open(), read_data=True)
    assert report.ok, report.to_dict()
    assert backup_of(server, earlier)["status"] == "completed"
    assert snapshots_tagged(server.services, earlier) == earlier_snapshots

    # Cancelling again: it has ended.
    assert_error(cancel(server, running["job_id"]), 409, "JOB_ALREADY_FINISHED")


def earlier_backup(server: Server, source_id: str, held: HeldBackup) -> str:
    """A completed backup of ``source_id`` made with the real handler (not held)."""
    runner = server.services.runner
    runner.register(backup_job.KIND, held.real)
    try:
        return str(server.backup_and_wait({"name": "earlier", "type": "full",
                                           "source_id": source_id})["backup_id"])
    finally:
        runner.register(backup_job.KIND, held)


def test_a_job_slower_to_stop_than_the_wait_answers_cancelling(
        server: Server, tree_source: str, held: HeldBackup) -> None:
    operations = server.services.operations
    wait = operations.cancel_wait_seconds
    operations.cancel_wait_seconds = 0.0  # answer at once
    held.released.clear()  # and the job may not stop before the answer
    try:
        running = server.create_backup({"name": "slow to stop", "type": "full",
                                        "source_id": tree_source})
        assert held.reached.wait(30), "the backup never started writing"
        response = cancel(server, running["job_id"])
    finally:
        operations.cancel_wait_seconds = wait
        held.released.set()
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "cancelling" and not body["partial_data_cleaned"]
    assert body["job"]["cancel_requested"] and "next safe point" in body["message"]
    final = server.wait_for_job(running["job_id"])
    assert final["error"]["code"] == "CANCELLED"
    assert backup_of(server, running["backup_id"])["status"] == "failed"


def test_cancelling_a_running_restore_rolls_it_back(server: Server,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    taken = server.backup_and_wait({"name": "before a restore", "type": "full"})
    db = demo_db(server)
    before = state(db)
    reached = threading.Event()
    original = RestoreProgress.operation

    def hold(self: RestoreProgress, text: str) -> None:
        original(self, text)
        if text == "restoring messages":  # rows of earlier tables are already written
            reached.set()
            deadline = time.monotonic() + HOLD_SECONDS
            while not self.cancelled and time.monotonic() < deadline:
                time.sleep(0.01)

    monkeypatch.setattr(RestoreProgress, "operation", hold)
    created = start_restore(server, {
        "backup_id": taken["backup_id"], "mode": "merge",
        "options": {"on_conflict": "rename", "validate_before_restore": False}})
    assert reached.wait(30)
    status = job_of(server, created["job_id"])
    assert status["kind"] == "restore" and status["cancellable"]
    assert status["progress"]["details"]["current_collection"] == "messages"
    assert status["progress"]["items_done"] is not None

    response = cancel(server, created["job_id"])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "cancelled" and "rolled back" in body["message"]
    assert state(db) == before
    restore = wait_for_restore(server, created["job_id"])  # the per-kind view agrees
    assert restore["status"] == "failed"
    assert restore["errors"][0]["error_code"] == "CANCELLED"


def test_cancelling_a_finished_job_is_a_conflict(server: Server) -> None:
    created = server.backup_and_wait({"name": "finished", "type": "full"})
    response = cancel(server, created["job_id"])
    assert_error(response, 409, "JOB_ALREADY_FINISHED")
    assert response.json()["error"]["details"] == {"status": "completed"}


def test_a_pending_job_no_worker_has_taken_is_cancelled_and_never_runs(server: Server
                                                                        ) -> None:
    services = server.services
    job = services.jobs.create(TENANT, "verify", {"backup_id": None})
    assert job_of(server, job.id)["cancellable"]
    response = cancel(server, job.id)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    assert services.runner.run(job.id) is None  # too late: it is no longer pending
    stored = services.jobs.get(job.id)
    assert stored is not None and stored.status == "cancelled"
    assert stored.started_at is None
    listed = server.client.get(JOBS, params={"status": "cancelled"},
                               headers=server.headers("viewer")).json()
    assert job.id in [item["job_id"] for item in listed["items"]]
    failed = server.client.get(JOBS, params={"status": "failed", "size": 100},
                               headers=server.headers("viewer")).json()
    assert job.id in [item["job_id"] for item in failed["items"]]


@pytest.mark.parametrize("kind, code", [("upload", "JOB_NOT_CANCELLABLE"),
                                        ("snapshot_restore", "JOB_NOT_CANCELLABLE")])
def test_jobs_that_cannot_stop_safely_refuse(server: Server, kind: str, code: str) -> None:
    services = server.services
    job = services.jobs.create(TENANT, kind, {})
    services.jobs.start(job.id)
    try:
        assert not job_of(server, job.id)["cancellable"]
        response = cancel(server, job.id)
        assert_error(response, 409, code)
        assert kind in response.json()["error"]["message"]
        stored = services.jobs.get(job.id)
        assert stored is not None and stored.status == "in_progress"
    finally:
        services.jobs.finish(job.id, "failed", error={"code": "TEST", "message": "test"})


def test_viewers_cannot_cancel(server: Server) -> None:
    job = server.services.jobs.create(TENANT, "verify", {"backup_id": None})
    try:
        assert_error(cancel(server, job.id, role="viewer"), 403, "FORBIDDEN")
    finally:
        server.services.runner.cancel_pending(job.id)


# --- CLI -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with live_server(tmp_path_factory.mktemp("jobs-cli")) as started:
        yield started


def test_cli_lists_shows_watches_and_cancels(live: Live, tmp_path: Path) -> None:
    import httpx

    created = httpx.post(f"{live.url}/api/v1/backups", headers={"X-API-Key": live.key},
                         json={"name": "cli watched", "type": "full"}, timeout=30)
    assert created.status_code == 202, created.text
    job_id = created.json()["job_id"]

    watched = live.run("jobs", "watch", job_id, "--interval", "0.05", "--timeout", "60")
    assert watched.exit_code == 0, watched.output
    assert job_id in watched.output and "completed" in watched.output

    listed = live.run("jobs", "list", "--kind", "backup")
    assert listed.exit_code == 0, listed.output
    assert job_id in listed.output and "1 jobs" in listed.output
    assert live.run("jobs", "list", "--active").output.strip().endswith("(0 jobs)")

    shown = live.run("jobs", "show", job_id)
    assert shown.exit_code == 0, shown.output
    assert "backup" in shown.output and "100.0%" in shown.output

    finished = live.run("jobs", "cancel", job_id)
    assert finished.exit_code == 1
    assert "JOB_ALREADY_FINISHED" in finished.output

    pending = live.services.jobs.create(TENANT, "verify", {"backup_id": None})
    cancelled = live.run("jobs", "cancel", pending.id, "--reason", "from the CLI")
    assert cancelled.exit_code == 0, cancelled.output
    assert cancelled.output.startswith("cancelled:")
    gone = live.run("jobs", "watch", pending.id, "--interval", "0.05")
    assert gone.exit_code == 4  # it ended without completing
    assert "cancelled" in gone.output and "CANCELLED" in gone.output

    unknown = live.run("jobs", "show", "00000000-0000-4000-8000-000000000000")
    assert unknown.exit_code == 1 and "JOB_NOT_FOUND" in unknown.output
