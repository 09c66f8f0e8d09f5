"""``GET /api/v1/status``: component health, last backups per source and alerts, with the
status service's clock and thresholds under the test's control."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from strongbox.catalog.models import Backup, Schedule
from strongbox.catalog.types import utcnow
from strongbox.services.status import Thresholds, overall, probe_alive
from tests.api.conftest import Server, running_server
from tests.api.test_backups_contract import assert_error

STATUS = "/api/v1/status"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # Thresholds at 100%: the test machine's real disk never raises a storage alert here.
    with running_server(tmp_path_factory.mktemp("status"),
                        status_storage_warning_percent=100.0,
                        status_storage_critical_percent=100.0) as started:
        yield started


@pytest.fixture()
def tenant(server: Server) -> dict[str, str]:
    """A fresh tenant with nothing in it, and its admin key's headers."""
    name = f"status-{uuid.uuid4().hex[:8]}"
    _info, token = server.services.keys.create(name, "admin", "status test")
    return {"X-API-Key": token, "tenant": name}


def status(server: Server, headers: dict[str, str]) -> dict[str, Any]:
    response = server.client.get(STATUS, headers={"X-API-Key": headers["X-API-Key"]})
    assert response.status_code == 200, response.text
    return dict(response.json())


def codes(body: dict[str, Any]) -> set[str]:
    return {a["code"] for a in body["alerts"]}


def test_components_and_last_successful_backup(server: Server) -> None:
    created = server.backup_and_wait({"name": "status backup", "type": "full",
                                      "source_id": server.sources["sqlite"]})
    body = status(server, server.headers("viewer"))
    components = body["components"]
    assert components["storage"]["reachable"] is True
    assert components["storage"]["status"] == "healthy"
    assert components["storage"]["used_bytes"] > 0
    assert 0 <= components["storage"]["percentage_used"] <= 100
    assert components["encryption"] == {"status": "enabled", "healthy": True,
                                        "encrypted": True, "key_available": True,
                                        "algorithm": "AES-256-GCM"}
    assert components["jobs"]["status"] == "running" and components["jobs"]["workers"] >= 1
    assert components["scheduler"]["status"] in ("running", "stopped", "unknown")
    sqlite = next(s for s in body["sources"] if s["source_id"] == server.sources["sqlite"])
    assert sqlite["last_successful_backup_id"] == created["backup_id"]
    assert sqlite["last_backup_status"] == "completed"
    assert body["last_successful_backup"] == sqlite["last_successful_backup_at"]
    assert body["summary"]["total_backups"] >= 1
    # The demo file tree has no backup yet: worth knowing, not a problem.
    files = next(s for s in body["sources"] if s["source_id"] == server.sources["files"])
    if files.get("last_backup_id") is None:
        assert "NO_BACKUP" in codes(body)
    assert body["status"] == "healthy", body["alerts"]


def test_a_failed_last_backup_degrades(server: Server, tenant: dict[str, str],
                                       tmp_path: Path) -> None:
    headers = {"X-API-Key": tenant["X-API-Key"]}
    tree = tmp_path / "vanishing"
    tree.mkdir()
    source = server.client.post("/api/v1/sources", headers=headers, json={
        "name": "vanishing", "kind": "files", "path": str(tree)}).json()
    assert status(server, tenant)["status"] == "healthy"
    tree.rmdir()
    created = server.client.post("/api/v1/backups", headers=headers, json={
        "name": "will fail", "type": "full", "source_id": source["_id"]}).json()
    body = _wait_for(server, tenant, lambda b: "BACKUP_FAILED" in codes(b))
    assert body["status"] == "degraded"
    alert = next(a for a in body["alerts"] if a["code"] == "BACKUP_FAILED")
    assert alert["level"] == "warning" and alert["source_id"] == source["_id"]
    assert alert["backup_id"] == created["backup_id"]
    assert body["summary"]["failed_backups"] == 1


def _wait_for(server: Server, tenant: dict[str, str], ready: Any) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        body = status(server, tenant)
        if ready(body):
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.05)


def test_a_missed_schedule_is_an_alert_after_the_grace_period(
        server: Server, tenant: dict[str, str]) -> None:
    # Due a day from now, so a live scheduler leaves it alone; the status service's clock
    # is moved past it instead.
    due = utcnow().replace(microsecond=0) + timedelta(days=1)
    with server.services.catalog.session() as session:
        session.add(Schedule(id=str(uuid.uuid4()), tenant=tenant["tenant"], name="nightly",
                             action="backup", cron="0 2 * * *", timezone="UTC", enabled=True,
                             backup_type="full", next_run_at=due))
    service = server.services.status
    grace = service.thresholds.schedule_grace_seconds
    try:
        service.clock = lambda: due + timedelta(seconds=grace / 2)
        body = status(server, tenant)
        assert "SCHEDULE_MISSED" not in codes(body)
        assert body["components"]["scheduler"]["enabled_schedules"] == 1
        service.clock = lambda: due + timedelta(seconds=grace + 60)
        body = status(server, tenant)
        missed = next(a for a in body["alerts"] if a["code"] == "SCHEDULE_MISSED")
        assert missed["level"] == "warning" and missed["schedule_id"]
        assert body["components"]["scheduler"]["missed_schedules"] == 1
        assert body["status"] in ("degraded", "unhealthy")
        assert body["summary"]["next_scheduled_backup"].startswith(due.strftime("%Y-%m-%dT"))
    finally:
        service.clock = utcnow


def test_storage_thresholds(server: Server) -> None:
    service = server.services.status
    saved = service.thresholds
    try:
        service.thresholds = replace(saved, storage_warning_percent=0.0)
        body = status(server, server.headers("viewer"))
        assert body["components"]["storage"]["status"] == "warning"
        assert "STORAGE_HIGH" in codes(body) and body["status"] == "degraded"
        service.thresholds = Thresholds(0.0, 0.0, saved.schedule_grace_seconds)
        body = status(server, server.headers("viewer"))
        assert body["components"]["storage"]["status"] == "critical"
        assert "STORAGE_CRITICAL" in codes(body) and body["status"] == "unhealthy"
    finally:
        service.thresholds = saved


def test_corrupted_backups_are_alerts(server: Server) -> None:
    created = server.backup_and_wait({"name": "to corrupt", "type": "full",
                                      "source_id": server.sources["sqlite"]})
    with server.services.catalog.session() as session:
        session.execute(update(Backup).where(Backup.id == created["backup_id"])
                        .values(status="corrupted"))
    try:
        body = status(server, server.headers("viewer"))
        alert = next(a for a in body["alerts"] if a["code"] == "BACKUP_CORRUPTED")
        assert alert["backup_id"] == created["backup_id"] and alert["level"] == "warning"
        assert body["summary"]["corrupted_backups"] >= 1
        assert body["status"] != "healthy"
    finally:
        with server.services.catalog.session() as session:
            session.execute(update(Backup).where(Backup.id == created["backup_id"])
                            .values(status="completed"))


def test_status_needs_a_key(server: Server) -> None:
    assert_error(server.client.get(STATUS), 401, "UNAUTHORIZED")


def test_overall_and_liveness_rules() -> None:
    from strongbox.services.status import Alert

    assert overall([]) == "healthy"
    assert overall([Alert("info", "X", "x")]) == "healthy"
    assert overall([Alert("info", "X", "x"), Alert("warning", "Y", "y")]) == "degraded"
    assert overall([Alert("critical", "Z", "z"), Alert("warning", "Y", "y")]) == "unhealthy"

    class Running:
        def is_running(self) -> bool:
            return True

    class Flag:
        running = False

    assert probe_alive(Running()) is True
    assert probe_alive(Flag()) is False
    assert probe_alive(object()) is None


def test_enabled_schedules_without_a_running_scheduler_are_critical(
        server: Server, tenant: dict[str, str]) -> None:
    due = utcnow() + timedelta(days=1)
    with server.services.catalog.session() as session:
        session.add(Schedule(id=str(uuid.uuid4()), tenant=tenant["tenant"], name="hourly",
                             action="backup", cron="0 * * * *", timezone="UTC", enabled=True,
                             backup_type="full", next_run_at=due))

    class Stopped:
        def is_running(self) -> bool:
            return False

    class Running:
        def is_running(self) -> bool:
            return True

    stopped = server.services.status.status(tenant["tenant"], Stopped())
    assert stopped.components["scheduler"]["status"] == "stopped"
    assert [a.level for a in stopped.alerts if a.code == "SCHEDULER_NOT_RUNNING"] == [
        "critical"]
    assert stopped.status == "unhealthy"
    running = server.services.status.status(tenant["tenant"], Running())
    assert running.components["scheduler"]["status"] == "running"
    assert running.status == "healthy"
    # Through the API: the server's own scheduler (running unless turned off).
    body = status(server, tenant)
    assert body["components"]["scheduler"]["status"] == (
        "running" if server.services.settings.scheduler_enabled else "stopped")
