"""Deleting a backup whose job is running (``force=true``): the job is cancelled, and a
snapshot it manages to commit anyway is forgotten, never left behind or listed."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from strongbox.services import backup_job
from strongbox.sources.sqlite.backup import backup_sqlite
from tests.api.conftest import Server
from tests.api.test_backups_contract import assert_error


@pytest.fixture()
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """Backups of SQLite sources wait at the gate; ``obey`` says whether they stop when
    cancelled or run on regardless (as work past its last cancellation point does)."""
    state: dict[str, Any] = {"entered": threading.Event(), "open": threading.Event(),
                             "obey": True}

    def gated(repo: Any, path: Any, **kwargs: Any) -> Any:
        progress = kwargs["progress"]
        state["entered"].set()
        while not state["open"].wait(0.01):
            if state["obey"]:
                progress.check_cancelled()
        return backup_sqlite(repo, path, **kwargs)

    monkeypatch.setattr(backup_job, "backup_sqlite", gated)
    yield state
    state["open"].set()


def snapshots(server: Server) -> set[str]:
    return {p.name for p in (Path(server.services.storage.location) / "snapshots").iterdir()}


def test_force_delete_cancels_the_running_job(server: Server, gate: dict[str, Any]) -> None:
    created = server.create_backup({"name": "cancel me", "type": "full"})
    assert gate["entered"].wait(30)
    url = f"/api/v1/backups/{created['backup_id']}"
    assert_error(server.client.delete(url, headers=server.headers()), 409,
                 "BACKUP_IN_PROGRESS")
    before = snapshots(server)
    response = server.client.delete(f"{url}?force=true", headers=server.headers())
    assert response.status_code == 200, response.text
    assert response.json()["files_deleted"] == 0
    assert_error(server.client.get(url, headers=server.headers()), 404, "BACKUP_NOT_FOUND")
    job = server.wait_for_job(created["job_id"])
    assert job["status"] == "failed" and job["error"]["code"] == "CANCELLED"
    assert snapshots(server) == before


def test_a_snapshot_committed_after_the_delete_is_forgotten(server: Server,
                                                            gate: dict[str, Any]) -> None:
    gate["obey"] = False
    server.services.backups.delete_wait_seconds = 0.2
    try:
        created = server.create_backup({"name": "too late to stop", "type": "full"})
        assert gate["entered"].wait(30)
        before = snapshots(server)
        url = f"/api/v1/backups/{created['backup_id']}"
        response = server.client.delete(f"{url}?force=true", headers=server.headers())
        assert response.status_code == 200, response.text
        assert "stop" in response.json()["message"]
        gate["open"].set()  # the job now finishes its snapshot
        job = server.wait_for_job(created["job_id"])
    finally:
        server.services.backups.delete_wait_seconds = 15.0
    assert job["status"] == "failed" and job["error"]["code"] == "CANCELLED"
    assert snapshots(server) == before
    assert_error(server.client.get(url, headers=server.headers()), 404, "BACKUP_NOT_FOUND")
    listing = server.client.get("/api/v1/backups?search=too%20late",
                                headers=server.headers()).json()
    assert listing["items"] == []
