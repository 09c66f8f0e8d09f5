"""``/api/v1/schedules``: the contract, validation, roles, tenants, and real scheduled
backups made by the server's own scheduler thread on a controlled clock."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from strongbox.cli.main import app as cli_app
from strongbox.services.clock import ManualClock
from tests.api.conftest import Server, live_server, running_server
from tests.api.test_backups_contract import assert_error

BASE = "/api/v1/schedules"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """This module's server runs its scheduler (the shared one does not)."""
    with running_server(tmp_path_factory.mktemp("schedules"), scheduler_enabled=True) as started:
        yield started


def create(server: Server, body: dict[str, Any], role: str = "operator") -> dict[str, Any]:
    response = server.client.post(BASE, json=body, headers=server.headers(role))
    assert response.status_code == 201, response.text
    return dict(response.json())


def eventually(check: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def test_create_show_list_update_delete(server: Server) -> None:
    created = create(server, {"name": "nightly db", "cron": "30 2 * * *",
                              "timezone": "Europe/Berlin", "type": "incremental",
                              "source_ids": [server.sources["sqlite"]],
                              "retention": {"retention_days": 30},
                              "options": {"compression_level": 3}})
    assert created["cron"] == created["schedule"] == "30 2 * * *"
    assert (created["action"], created["type"], created["origin"]) == (
        "backup", "incremental", "api")
    assert created["enabled"] is True and created["running"] is False
    assert (created["total_runs"], created["successful_runs"], created["failed_runs"]) == (
        0, 0, 0)
    assert created["retention"] == {"retention_days": 30}
    next_run = datetime.fromisoformat(created["next_run"])
    assert next_run > datetime.now(UTC) and next_run.minute == 30
    assert "last_run" not in created

    weekly = create(server, {"name": "weekly files", "frequency": "weekly", "time": "04:00",
                             "day": "sunday", "source_ids": [server.sources["files"]]})
    assert (weekly["cron"], weekly["frequency"], weekly["time"], weekly["day"]) == (
        "0 4 * * 0", "weekly", "04:00", "sunday")
    assert datetime.fromisoformat(weekly["next_run"]).weekday() == 6

    shown = server.client.get(f"{BASE}/{created['_id']}", headers=server.headers("viewer"))
    assert shown.status_code == 200 and shown.json() == created

    listing = server.client.get(BASE, params={"size": 1}, headers=server.headers("viewer"))
    assert listing.status_code == 200
    page = listing.json()
    assert len(page["items"]) == 1
    assert page["pagination"]["total_items"] >= 2 and page["pagination"]["has_next"]
    assert server.client.get(BASE, params={"enabled": "false"},
                             headers=server.headers("viewer")).json()["items"] == []

    patched = server.client.patch(f"{BASE}/{created['_id']}", json={"time": "03:00"},
                                  headers=server.headers("operator"))
    assert_error(patched, 400, "VALIDATION_FAILED")  # a cron schedule has no time
    patched = server.client.patch(f"{BASE}/{created['_id']}",
                                  json={"schedule": "@daily", "description": "at midnight"},
                                  headers=server.headers("operator"))
    assert patched.status_code == 200, patched.text
    assert patched.json()["cron"] == "0 0 * * *"
    assert patched.json()["type"] == "incremental"  # untouched

    replaced = server.client.put(f"{BASE}/{created['_id']}",
                                 json={"name": "nightly db", "frequency": "daily"},
                                 headers=server.headers("operator"))
    assert replaced.status_code == 200, replaced.text
    body = replaced.json()
    assert (body["cron"], body["type"], body.get("retention")) == ("0 2 * * *", "full", None)

    toggled = server.client.post(f"{BASE}/{created['_id']}/toggle",
                                 headers=server.headers("operator"))
    assert toggled.status_code == 200, toggled.text
    assert toggled.json()["status"] == "updated"
    assert toggled.json()["enabled"] is False and "next_run" not in toggled.json()
    assert toggled.json()["message"] == "Schedule disabled"
    again = server.client.post(f"{BASE}/{created['_id']}/toggle", json={"enabled": True},
                               headers=server.headers("operator"))
    assert again.json()["enabled"] is True and again.json()["next_run"]

    assert_error(server.client.delete(f"{BASE}/{created['_id']}",
                                      headers=server.headers("operator")), 403, "FORBIDDEN")
    deleted = server.client.delete(f"{BASE}/{created['_id']}", headers=server.headers("admin"))
    assert deleted.status_code == 200 and deleted.json()["schedule_id"] == created["_id"]
    assert_error(server.client.get(f"{BASE}/{created['_id']}",
                                   headers=server.headers("viewer")), 404, "SCHEDULE_NOT_FOUND")


@pytest.mark.parametrize(("body", "status", "code", "field", "field_code"), [
    ({"name": "bad cron", "cron": "61 * * * *"}, 400, "VALIDATION_FAILED", "cron",
     "INVALID_CRON"),
    ({"name": "bad zone", "cron": "0 2 * * *", "timezone": "+02:00"}, 400,
     "VALIDATION_FAILED", "timezone", "INVALID_VALUE"),
    ({"name": "never due", "cron": "0 0 31 2 *"}, 400, "VALIDATION_FAILED", "cron",
     "INVALID_CRON"),
    ({"name": "empty zone", "cron": "0 2 * * *", "timezone": ""}, 400, "VALIDATION_FAILED",
     "timezone", "INVALID_VALUE"),
    ({"name": "no timing"}, 400, "VALIDATION_FAILED", "cron", "REQUIRED"),
    ({"cron": "0 2 * * *"}, 400, "VALIDATION_FAILED", "name", "REQUIRED"),
    ({"name": "bad type", "cron": "0 2 * * *", "type": "weekly"}, 400, "INVALID_BACKUP_TYPE",
     "type", "INVALID_VALUE"),
    ({"name": "bad freq", "frequency": "yearly"}, 400, "VALIDATION_FAILED", "frequency",
     "INVALID_VALUE"),
    ({"name": "bad time", "frequency": "daily", "time": "7pm"}, 400, "VALIDATION_FAILED",
     "time", "INVALID_FORMAT"),
    ({"name": "selective", "cron": "0 2 * * *", "type": "selective"}, 400,
     "VALIDATION_FAILED", "filters", "FILTER_REQUIRED"),
    ({"name": "ghost", "cron": "0 2 * * *",
      "source_ids": ["00000000-0000-4000-8000-000000000000"]}, 400, "VALIDATION_FAILED",
     "source_ids[0]", "NOT_FOUND"),
    ({"name": "keep none", "cron": "0 2 * * *", "retention": {"keep_last": 0}}, 400,
     "VALIDATION_FAILED", "retention.keep_last", "OUT_OF_RANGE"),
    ({"name": "bad action", "cron": "0 2 * * *", "action": "reboot"}, 400,
     "VALIDATION_FAILED", "action", "INVALID_VALUE"),
])
def test_validation_errors(server: Server, body: dict[str, Any], status: int, code: str,
                           field: str, field_code: str) -> None:
    response = server.client.post(BASE, json=body, headers=server.headers("operator"))
    error = assert_error(response, status, code)
    assert (field, field_code) in {(e["field"], e["code"]) for e in error["validation_errors"]}


def test_duplicate_names_and_roles(server: Server) -> None:
    create(server, {"name": "unique", "cron": "0 5 * * *"})
    duplicate = server.client.post(BASE, json={"name": "unique", "cron": "0 6 * * *"},
                                   headers=server.headers("operator"))
    error = assert_error(duplicate, 400, "VALIDATION_FAILED")
    assert error["validation_errors"][0]["code"] == "DUPLICATE"
    assert_error(server.client.post(BASE, json={"name": "viewer", "cron": "0 5 * * *"},
                                    headers=server.headers("viewer")), 403, "FORBIDDEN")


def test_other_tenants_see_nothing(server: Server) -> None:
    mine = create(server, {"name": "private", "cron": "0 7 * * *"})
    other = server.other()
    assert all(item["name"] != "private" for item in
               server.client.get(BASE, headers=other).json()["items"])
    for method, suffix in (("GET", ""), ("PATCH", ""), ("PUT", ""), ("DELETE", ""),
                           ("POST", "/toggle"), ("POST", "/run"), ("GET", "/runs")):
        body = {"name": "x", "cron": "0 1 * * *"} if method in ("PATCH", "PUT") else None
        response = server.client.request(method, f"{BASE}/{mine['_id']}{suffix}", json=body,
                                         headers=other)
        assert_error(response, 404, "SCHEDULE_NOT_FOUND")
    assert_error(server.client.get(f"{BASE}/not-a-uuid", headers=server.headers("viewer")),
                 404, "SCHEDULE_NOT_FOUND")
    # A source of another tenant is no better than one that does not exist.
    foreign = server.client.post(BASE, headers=other, json={
        "name": "steal", "cron": "0 1 * * *", "source_ids": [server.sources["sqlite"]]})
    assert_error(foreign, 400, "VALIDATION_FAILED")


def test_run_now_makes_a_backup_with_its_schedule_id(server: Server) -> None:
    schedule = create(server, {"name": "on demand", "cron": "0 0 1 1 *",
                               "source_ids": [server.sources["sqlite"]]})
    started = server.client.post(f"{BASE}/{schedule['_id']}/run",
                                 headers=server.headers("operator"))
    assert started.status_code == 202, started.text
    run = started.json()["run"]
    assert (run["status"], run["trigger"], run["catch_up"]) == ("running", "manual", False)
    assert len(run["job_ids"]) == 1 and len(run["backup_ids"]) == 1
    backup_id = run["backup_ids"][0]

    def finished() -> dict[str, Any] | None:
        runs = server.client.get(f"{BASE}/{schedule['_id']}/runs",
                                 headers=server.headers("viewer")).json()
        latest = runs["items"][0]
        return latest if latest["status"] != "running" else None

    ended = eventually(finished)
    assert ended["status"] == "completed", ended
    shown = server.client.get(f"{BASE}/{schedule['_id']}", headers=server.headers()).json()
    assert (shown["last_status"], shown["total_runs"], shown["successful_runs"]) == (
        "completed", 1, 1)
    assert shown["last_run"] and shown["running"] is False
    backup = server.client.get(f"/api/v1/backups/{backup_id}", headers=server.headers())
    assert backup.status_code == 200 and backup.json()["status"] == "completed"
    assert server.services.backups.get("default", backup_id).schedule_id == schedule["_id"]
    assert backup.json()["schedule_id"] == schedule["_id"]


def test_settings_schedules_are_listed_and_read_only(server: Server) -> None:
    other = server.other()
    response = server.client.put("/api/v1/settings/backup", headers=other, json={
        "scheduling": {"enabled": True, "schedules": [
            {"name": "from settings", "schedule": "15 3 * * *", "type": "full"}]}})
    assert response.status_code == 200, response.text
    items = server.client.get(BASE, headers=other).json()["items"]
    mirrored = next(item for item in items if item["origin"] == "settings")
    assert (mirrored["name"], mirrored["cron"], mirrored["enabled"]) == (
        "settings: from settings", "15 3 * * *", True)
    assert datetime.fromisoformat(mirrored["next_run"]).strftime("%H:%M") == "03:15"
    for method, suffix in (("PATCH", ""), ("POST", "/toggle"), ("DELETE", "")):
        response = server.client.request(method, f"{BASE}/{mirrored['_id']}{suffix}",
                                         json={"enabled": False} if method == "PATCH"
                                         else None, headers=other)
        assert_error(response, 409, "SCHEDULE_CONFLICT")


def test_the_scheduler_thread_backs_up_on_a_controlled_clock(tmp_path: Path) -> None:
    with running_server(tmp_path / "server", scheduler_enabled=False) as server:
        services = server.services
        clock = ManualClock(datetime(2030, 1, 1, 11, 58, tzinfo=UTC))
        services.schedules.clock = clock
        schedule = create(server, {"name": "noon", "cron": "0 12 * * *",
                                   "source_ids": [server.sources["sqlite"],
                                                  server.sources["files"]]})
        assert schedule["next_run"].startswith("2030-01-01T12:00:00")
        assert_error(server.client.post(f"{BASE}/{schedule['_id']}/run",
                                         headers=server.headers("operator")),
                     503, "SERVICE_UNAVAILABLE")  # nobody would follow the run
        assert server.client.put("/api/v1/settings/backup", headers=server.headers(), json={
            "scheduling": {"enabled": True, "schedules": [
                {"name": "settings noon", "schedule": "30 12 * * *", "type": "full"}]},
        }).status_code == 200

        services.scheduler.start()
        clock.advance(timedelta(minutes=2))  # 12:00: the API schedule is due
        made = eventually(lambda: _scheduled_backups(server, schedule["_id"], 2))
        assert {b["source_id"] for b in made} == {server.sources["sqlite"],
                                                 server.sources["files"]}
        assert all(b["status"] == "completed" for b in made)
        shown = eventually(lambda: _settled(server, schedule["_id"]))
        assert (shown["last_status"], shown["total_runs"], shown["successful_runs"],
                shown["failed_runs"]) == ("completed", 1, 1, 0)
        assert shown["last_run"].startswith("2030-01-01T12:00")
        assert shown["next_run"].startswith("2030-01-02T12:00")
        runs = server.client.get(f"{BASE}/{schedule['_id']}/runs",
                                 headers=server.headers()).json()["items"]
        assert [(r["status"], r["trigger"], sorted(r["backup_ids"])) for r in runs] == [
            ("completed", "schedule", sorted(b["_id"] for b in made))]

        settings_schedule = next(
            item for item in server.client.get(BASE, headers=server.headers()).json()["items"]
            if item["origin"] == "settings")
        clock.advance(timedelta(minutes=30))  # 12:30: the settings' schedule is due
        made = eventually(lambda: _scheduled_backups(server, settings_schedule["_id"], 1))
        assert made[0]["source_id"] == server.sources["sqlite"]  # the default source
        assert eventually(lambda: _settled(server, settings_schedule["_id"]))[
            "last_status"] == "completed"


def test_a_schedules_retention_applies_to_its_own_backups_after_each_run(
        server: Server) -> None:
    other = server.backup_and_wait({"name": "not from the schedule", "type": "full",
                                    "source_id": server.sources["sqlite"]})
    schedule = create(server, {"name": "keep two", "cron": "0 0 1 1 *",
                               "source_ids": [server.sources["sqlite"]],
                               "retention": {"retention_count": 2}})
    made = []
    for _ in range(3):
        started = server.client.post(f"{BASE}/{schedule['_id']}/run",
                                     headers=server.headers("operator"))
        assert started.status_code == 202, started.text
        made += started.json()["run"]["backup_ids"]
        eventually(lambda: _settled(server, schedule["_id"]))

    def alive() -> list[str] | None:
        ids = [b for b in made if server.client.get(
            f"/api/v1/backups/{b}", headers=server.headers()).status_code == 200]
        return ids if len(ids) == 2 else None

    assert eventually(alive) == made[1:]  # the oldest of the schedule's three went
    assert server.client.get(f"/api/v1/backups/{other['backup_id']}",
                             headers=server.headers()).status_code == 200


def _scheduled_backups(server: Server, schedule_id: str, count: int
                       ) -> list[dict[str, Any]] | None:
    items = server.client.get("/api/v1/backups", params={"size": 100},
                              headers=server.headers()).json()["items"]
    made = [b for b in items
            if server.services.backups.get("default", b["_id"]).schedule_id == schedule_id]
    if len(made) < count or any(b["status"] != "completed" for b in made):
        return None
    return made


def _settled(server: Server, schedule_id: str) -> dict[str, Any] | None:
    shown = dict(server.client.get(f"{BASE}/{schedule_id}", headers=server.headers()).json())
    return shown if shown.get("last_status") not in (None, "running") else None


# --- CLI ------------------------------------------------------------------------------


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A real HTTP server on a loopback port: (URL, admin key)."""
    with live_server(tmp_path / "live", scheduler_enabled=True) as started:
        yield started.url, started.key


def test_cli_create_list_toggle_run_delete(live: tuple[str, str]) -> None:
    url, key = live
    runner = CliRunner()
    env = {"STRONGBOX_URL": url, "STRONGBOX_API_KEY": key}

    def cli(*args: str) -> Any:
        return runner.invoke(cli_app, ["schedules", *args], env=env)

    created = cli("create", "cli nightly", "--frequency", "daily", "--time", "01:30",
                  "--timezone", "Europe/Berlin", "--keep-last", "7", "--json")
    assert created.exit_code == 0, created.output
    schedule = json.loads(created.output)
    assert (schedule["cron"], schedule["retention"]) == ("30 1 * * *", {"keep_last": 7})

    listed = cli("list")
    assert listed.exit_code == 0, listed.output
    assert "cli nightly" in listed.output and "30 1 * * *" in listed.output

    toggled = cli("toggle", schedule["_id"], "--disable")
    assert toggled.exit_code == 0 and "Schedule disabled" in toggled.output
    assert json.loads(cli("list", "--disabled", "--json").output)["items"][0]["_id"] == \
        schedule["_id"]

    ran = cli("run", schedule["_id"])
    assert ran.exit_code == 0, ran.output
    assert "backup run started" in ran.output
    runs = cli("runs", schedule["_id"], "--json")
    assert json.loads(runs.output)["items"][0]["trigger"] == "manual"

    bad = cli("create", "broken", "--cron", "not cron")
    assert bad.exit_code == 1 and "INVALID_CRON" not in bad.output  # errors go to stderr
    assert "cron" in bad.stderr and "VALIDATION_FAILED" in bad.stderr

    deleted = cli("delete", schedule["_id"])
    assert deleted.exit_code == 0 and "deleted" in deleted.output
    missing = cli("delete", schedule["_id"])
    assert missing.exit_code == 1 and "SCHEDULE_NOT_FOUND" in missing.stderr


def test_verify_and_cleanup_schedules_run(server: Server) -> None:
    server.backup_and_wait({"name": "to verify", "type": "full",
                            "source_id": server.sources["files"]})
    verify = create(server, {"name": "verify files", "action": "verify", "cron": "0 4 * * *",
                             "source_ids": [server.sources["files"]],
                             "options": {"deep": True}})
    run = server.client.post(f"{BASE}/{verify['_id']}/run", headers=server.headers("operator"))
    assert run.status_code == 202, run.text
    assert len(run.json()["run"]["job_ids"]) == 1
    verified = eventually(lambda: _settled(server, verify["_id"]))
    assert (verified["last_status"], verified["successful_runs"]) == ("completed", 1)

    cleanup = create(server, {"name": "cleanup", "action": "cleanup", "frequency": "daily"})
    run = server.client.post(f"{BASE}/{cleanup['_id']}/run", headers=server.headers("operator"))
    assert run.status_code == 202, run.text
    # Retention is off in the settings: nothing to delete, the run ends at once.
    assert run.json()["run"]["status"] == "completed" and run.json()["run"]["job_ids"] == []


def test_schedules_on_a_postgres_catalog(tmp_path: Path) -> None:
    from sqlalchemy.engine import URL

    from tests.pg_server import running_postgres

    with running_postgres() as postgres:
        postgres.create_database("schedules_catalog")
        url = URL.create("postgresql+psycopg", username=postgres.user,
                         password=postgres.password, host=postgres.host, port=postgres.port,
                         database="schedules_catalog").render_as_string(hide_password=False)
        with running_server(tmp_path / "pg", database_url=url, scheduler_enabled=False
                            ) as server:
            clock = ManualClock(datetime(2031, 3, 29, 12, 0, tzinfo=UTC))
            server.services.schedules.clock = clock
            schedule = create(server, {"name": "pg nightly", "cron": "30 2 * * *",
                                       "timezone": "Europe/Berlin",
                                       "source_ids": [server.sources["sqlite"]]})
            # 2031-03-30 is the spring-forward day in Berlin: 02:30 runs at 03:00 CEST.
            assert schedule["next_run"].startswith("2031-03-30T01:00:00")
            services = server.services
            clock.set(datetime(2031, 3, 30, 9, tzinfo=UTC))  # the server was down
            started = services.scheduler.tick(startup=True)
            assert [s.run.catch_up for s in started] == [True]
            assert services.scheduler.tick() == []
            eventually(lambda: _scheduled_backups(server, schedule["_id"], 1))
            services.scheduler.finish_runs()
            shown = server.client.get(f"{BASE}/{schedule['_id']}",
                                      headers=server.headers()).json()
            assert (shown["last_status"], shown["successful_runs"]) == ("completed", 1)
            assert shown["next_run"].startswith("2031-03-31T00:30:00")
