"""Disaster recovery: recovery points, the DR plan (RPO from history, RTO from DR tests),
DR tests over the demo sources, recovery preview and initiate, and ``strongbox dr``."""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from strongbox.catalog.models import Backup, DrTest, Schedule, ScheduleRun, Source
from strongbox.cli.main import app as cli_app
from strongbox.services.disaster_recovery import (
    measure_rpo,
    recovery_order,
    schedule_interval,
)
from strongbox.services.sources import SourceView
from tests.api.conftest import Server, live_server, running_server
from tests.api.test_backups_contract import assert_error

BASE = "/api/v1/recovery"


@pytest.fixture(scope="module")
def dr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("dr")) as started:
        yield started


def backup_of(server: Server, kind: str, name: str = "dr backup") -> str:
    created = server.backup_and_wait({"name": name, "type": "full",
                                      "source_id": server.sources[kind]})
    return str(created["backup_id"])


def db_path(server: Server) -> Path:
    return Path(server.services.sources.get("default", server.sources["sqlite"]).config["path"])


def tree_path(server: Server) -> Path:
    return Path(server.services.sources.get("default", server.sources["files"]).config["path"])


def wait_restore(server: Server, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status = server.client.get(f"/api/v1/restore/jobs/{job_id}",
                                   headers=server.headers("viewer")).json()
        if status["status"] in ("completed", "failed"):
            return dict(status)
        assert time.monotonic() < deadline, status
        time.sleep(0.05)


def wait_test(server: Server, test_id: str, timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        found = server.client.get(f"{BASE}/tests/{test_id}", headers=server.headers("viewer"))
        assert found.status_code == 200, found.text
        body = found.json()
        if body["status"] not in ("pending", "in_progress"):
            return dict(body)
        assert time.monotonic() < deadline, body
        time.sleep(0.05)


# --- pure functions ----------------------------------------------------------------------------


T0 = datetime(2026, 3, 1, tzinfo=UTC)


def test_rpo_is_the_largest_gap_and_the_age_of_the_newest() -> None:
    times = [T0, T0 + timedelta(hours=6), T0 + timedelta(hours=30), T0 + timedelta(hours=36)]
    now = T0 + timedelta(hours=40)
    measure = measure_rpo(times, times[-1], now, window_days=30)
    assert measure.backups_in_window == 4
    assert measure.max_gap_seconds == 24 * 3600
    assert measure.current_age_seconds == 4 * 3600
    assert measure.effective_seconds == 24 * 3600
    # Backups before the window do not count; with fewer than two there is no gap.
    later = measure_rpo(times, times[-1], now + timedelta(days=40), window_days=30)
    assert (later.backups_in_window, later.max_gap_seconds) == (0, None)
    assert later.effective_seconds == later.current_age_seconds == (40 * 24 + 4) * 3600
    assert measure_rpo([], None, now, 30).effective_seconds is None


def test_schedule_interval_from_cron() -> None:
    assert schedule_interval([("0 2 * * *", "UTC")], T0, timedelta(days=7)) == 86400
    # Two schedules together: every 6 hours and daily at 03:00 -> the longest gap is 6 h.
    both = [("0 */6 * * *", "UTC"), ("0 3 * * *", "UTC")]
    assert schedule_interval(both, T0, timedelta(days=3)) == 6 * 3600
    # Across the spring DST change in Berlin, a daily 02:30 run is 23 or 25 hours apart
    # at most; the interval is measured, not assumed.
    dst = schedule_interval([("30 1 * * *", "Europe/Berlin")], datetime(2026, 3, 27, tzinfo=UTC),
                            timedelta(days=5))
    assert dst is not None and dst <= 25 * 3600
    assert schedule_interval([("not a cron", "UTC")], T0, timedelta(days=1)) is None


def _source(name: str, kind: str, path: str) -> SourceView:
    return SourceView(str(uuid.uuid4()), "t", name, kind, {"path": path}, T0, T0)


def test_recovery_order_puts_databases_first_and_holders_before_their_database(
        tmp_path: Path) -> None:
    db = tmp_path / "app" / "app.sqlite"
    uploads = _source("uploads", "files", str(tmp_path / "uploads"))
    database = _source("app db", "sqlite", str(db))
    holder = _source("app dir", "files", str(tmp_path / "app"))
    pg = SourceView(str(uuid.uuid4()), "t", "pg", "postgres", {"dsn": "x"}, T0, T0)
    ordered, notes = recovery_order([uploads, database, holder, pg])
    assert [s.name for s in ordered] == ["pg", "app dir", "app db", "uploads"]
    assert notes[database.id] and notes[holder.id]
    assert uploads.id not in notes


# --- recovery points ---------------------------------------------------------------------------


def test_recovery_points_are_restorable_backups_newest_first(dr: Server) -> None:
    first = backup_of(dr, "sqlite", "points one")
    second = backup_of(dr, "sqlite", "points two")
    files = backup_of(dr, "files", "points files")
    response = dr.client.get(f"{BASE}/recovery-points", headers=dr.headers("viewer"),
                             params={"source_id": dr.sources["sqlite"], "size": 100})
    assert response.status_code == 200, response.text
    body = response.json()
    ids = [item["backup_id"] for item in body["items"]]
    assert ids.index(second) < ids.index(first)
    assert files not in ids
    item = body["items"][ids.index(second)]
    assert item["type"] == "full" and item["size_bytes"] > 0
    assert item["verification_status"] == "unverified" and item["verified"] is False
    assert body["pagination"]["total_items"] == len(ids)
    # A corrupted backup is no recovery point.
    with dr.services.catalog.session() as session:
        session.get_one(Backup, first).status = "corrupted"
    try:
        again = dr.client.get(f"{BASE}/recovery-points", headers=dr.headers("viewer"),
                              params={"source_id": dr.sources["sqlite"], "size": 100}).json()
        assert first not in [i["backup_id"] for i in again["items"]]
    finally:
        with dr.services.catalog.session() as session:
            session.get_one(Backup, first).status = "completed"
    # Paging and the other tenant.
    paged = dr.client.get(f"{BASE}/recovery-points", headers=dr.headers("viewer"),
                          params={"source_id": dr.sources["sqlite"], "size": 1}).json()
    assert len(paged["items"]) == 1 and paged["pagination"]["has_next"] is True
    assert_error(dr.client.get(f"{BASE}/recovery-points", headers=dr.other(),
                               params={"source_id": dr.sources["sqlite"]}),
                 404, "SOURCE_NOT_FOUND")
    assert dr.client.get(f"{BASE}/recovery-points", headers=dr.other()).json()["items"] == []


# --- the plan ----------------------------------------------------------------------------------


def test_plan_lists_each_source_with_its_latest_backup_and_rpo(dr: Server) -> None:
    backup_of(dr, "sqlite", "plan older")
    newest = backup_of(dr, "sqlite", "plan newest")
    response = dr.client.get(f"{BASE}/plan", headers=dr.headers("viewer"))
    assert response.status_code == 200, response.text
    plan = response.json()
    by_kind = {s["source_kind"]: s for s in plan["sources"]}
    assert set(by_kind) == {"sqlite", "files"}
    database = by_kind["sqlite"]
    # The database comes before the file tree.
    assert database["order"] < by_kind["files"]["order"]
    assert database["latest_backup"]["backup_id"] == newest
    assert database["latest_is_verified"] is False
    assert database["latest_backup"]["verification_status"] == "unverified"
    rpo = database["rpo"]
    assert rpo["backups_in_window"] >= 2 and rpo["max_gap_seconds"] >= 0
    assert rpo["current_age_seconds"] >= 0 and rpo["scheduled"] is False
    assert rpo["effective_seconds"] >= rpo["current_age_seconds"]
    assert any("no verified backup" in w for w in database["warnings"])
    assert any("not scheduled" in w for w in database["warnings"])
    restore_steps = [s for s in plan["steps"] if s["action"] == "restore"]
    assert restore_steps[0]["backup_id"] == newest
    assert plan["steps"][0]["action"] == "prepare" and plan["steps"][-1]["action"] == "verify"
    assert plan["summary"]["sources_total"] == 2
    # A verified backup is preferred to a newer unverified one.
    with dr.services.catalog.session() as session:
        older = session.get_one(Backup, restore_steps[0]["backup_id"])
        older.validation = {"validated_at": older.created_at.isoformat(), "is_valid": True,
                            "errors": [], "warnings": []}
    latest = backup_of(dr, "sqlite", "plan unverified newer")
    plan = dr.client.get(f"{BASE}/plan", headers=dr.headers("viewer")).json()
    database = next(s for s in plan["sources"] if s["source_kind"] == "sqlite")
    assert database["latest_backup"]["backup_id"] == newest != latest
    assert database["latest_is_verified"] is True
    assert any("1 newer unverified backup(s)" in w for w in database["warnings"])


def test_rpo_is_measured_from_schedule_history(dr: Server, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Tenant "other": a source backed up by a daily schedule whose run on day 3 failed."""
    folder = tmp_path / "tree"
    folder.mkdir()
    created = dr.client.post("/api/v1/sources", headers=dr.other(),
                             json={"name": "rpo tree", "kind": "files", "path": str(folder)})
    assert created.status_code == 201, created.text
    source_id = created.json()["_id"]
    now = datetime(2026, 6, 10, 12, tzinfo=UTC)
    schedule_id = str(uuid.uuid4())
    days = [1, 2, 4, 5, 6, 7, 8, 9, 10]  # day 3 failed
    with dr.services.catalog.session() as session:
        session.add(Schedule(id=schedule_id, tenant="other", name="nightly", action="backup",
                             cron="0 2 * * *", timezone="UTC", enabled=True,
                             backup_type="full", source_ids=[source_id]))
        for day in range(1, 11):
            moment = datetime(2026, 6, day, 2, tzinfo=UTC)
            backup_ids = []
            if day in days:
                backup_id = str(uuid.uuid4())
                backup_ids.append(backup_id)
                session.add(Backup(
                    id=backup_id, tenant="other", name=f"nightly {day}", type="full",
                    status="completed", source_id=source_id, source_name="rpo tree",
                    source_kind="files", job_id=str(uuid.uuid4()), created_at=moment,
                    completed_at=moment + timedelta(minutes=5), snapshot_id=f"{day:064x}",
                    storage_location="x", size_bytes=1000, schedule_id=schedule_id))
            session.add(ScheduleRun(schedule_id=schedule_id, tenant="other",
                                    scheduled_for=moment, started_at=moment,
                                    finished_at=moment, catch_up=False,
                                    status="completed" if day in days else "failed",
                                    backup_ids=backup_ids))
        skipped = datetime(2026, 6, 6, 14, tzinfo=UTC)  # a manual run while one was going
        session.add(ScheduleRun(schedule_id=schedule_id, tenant="other", scheduled_for=skipped,
                                catch_up=False, status="skipped"))
    monkeypatch.setattr(dr.services.disaster_recovery.plans, "clock", lambda: now)
    plan = dr.client.get(f"{BASE}/plan", headers=dr.other(), params={"window_days": 30}).json()
    (source,) = plan["sources"]
    rpo = source["rpo"]
    assert rpo["backups_in_window"] == 9
    assert rpo["max_gap_seconds"] == 2 * 86400  # day 2 -> day 4
    assert rpo["current_age_seconds"] == 10 * 3600  # day 10 02:00 -> 12:00
    assert rpo["effective_seconds"] == 2 * 86400
    assert rpo["target_seconds"] == 86400 and rpo["scheduled"] is True
    assert (rpo["runs_total"], rpo["runs_succeeded"], rpo["runs_failed"],
            rpo["runs_skipped"]) == (11, 9, 1, 1)
    assert rpo["schedules"][0]["schedule_id"] == schedule_id
    assert any("1 of 11 scheduled run(s)" in w for w in source["warnings"])
    assert any("1 scheduled run(s)" in w and "skipped" in w for w in source["warnings"])
    assert not any("stale" in w for w in source["warnings"])
    # Three days later without a backup: older than two schedule intervals.
    monkeypatch.setattr(dr.services.disaster_recovery.plans, "clock",
                        lambda: now + timedelta(days=3))
    later = dr.client.get(f"{BASE}/plan", headers=dr.other()).json()["sources"][0]
    assert any(w.startswith("stale") for w in later["warnings"])
    assert later["rpo"]["effective_seconds"] == later["rpo"]["current_age_seconds"]
    with dr.services.catalog.session() as session:
        session.query(Backup).filter(Backup.tenant == "other").delete()
        session.query(ScheduleRun).filter(ScheduleRun.tenant == "other").delete()
        session.query(Schedule).filter(Schedule.tenant == "other").delete()
        session.query(Source).filter(Source.tenant == "other").delete()


# --- DR tests ----------------------------------------------------------------------------------


def test_dr_test_measures_rto_per_source_and_the_plan_shows_it(dr: Server) -> None:
    backup_of(dr, "sqlite", "before dr test")
    backup_of(dr, "files", "before dr test")
    assert_error(dr.client.post(f"{BASE}/test", headers=dr.headers("viewer")), 403,
                 "FORBIDDEN")
    started = dr.client.post(f"{BASE}/test", headers=dr.headers("operator"))
    assert started.status_code == 202, started.text
    test_id = started.json()["test_id"]
    result = wait_test(dr, test_id)
    assert result["status"] == "completed", result
    assert result["passed"] is True, result
    assert result["duration_seconds"] > 0
    assert result["summary"] == {"sources_total": 2, "passed": 2, "failed": 0, "skipped": 0}
    assert result["job"]["status"] == "completed"
    for item in result["sources"]:
        assert item["status"] == "passed" and item["duration_seconds"] > 0, item
        assert item["checks"] and all(c["ok"] for c in item["checks"])
    # One after another: the overall RTO covers every source's (each rounded to 1 ms).
    assert sum(i["duration_seconds"] for i in result["sources"]) <= (
        result["duration_seconds"] + 0.01)
    kinds = {i["source_kind"]: i for i in result["sources"]}
    assert kinds["sqlite"]["rows_restored"] > 0 and kinds["files"]["files_restored"] > 0
    # The scratch targets are gone.
    scratch = dr.data_dir / "dr-scratch"
    assert not scratch.exists() or not any(p.is_file() for p in scratch.rglob("*"))

    plan = dr.client.get(f"{BASE}/plan", headers=dr.headers("viewer")).json()
    assert plan["last_test"]["test_id"] == test_id and plan["last_test"]["passed"] is True
    for source in plan["sources"]:
        rto = source["rto"]
        assert rto["basis"] == "dr_test" and rto["test_id"] == test_id
        assert rto["measured_seconds"] == kinds[source["source_kind"]]["duration_seconds"]
        assert rto["test_passed"] is True
        assert not any("never tested" in w for w in source["warnings"])
    assert plan["summary"]["sources_tested"] == 2
    assert plan["summary"]["total_rto_seconds"] > 0

    history = dr.client.get(f"{BASE}/tests", headers=dr.headers("viewer")).json()
    assert history["items"][0]["test_id"] == test_id
    assert history["pagination"]["total_items"] >= 1
    assert_error(dr.client.get(f"{BASE}/tests/{test_id}", headers=dr.other()), 404,
                 "DR_TEST_NOT_FOUND")
    assert_error(dr.client.get(f"{BASE}/tests/not-a-uuid", headers=dr.headers("viewer")),
                 404, "DR_TEST_NOT_FOUND")


def test_one_dr_test_at_a_time(dr: Server) -> None:
    with dr.services.catalog.session() as session:
        session.add(DrTest(id=str(uuid.uuid4()), tenant="other", status="in_progress",
                           results={}))
    try:
        assert_error(dr.client.post(f"{BASE}/test", headers=dr.other()), 409,
                     "OPERATION_IN_PROGRESS")
    finally:
        with dr.services.catalog.session() as session:
            session.query(DrTest).filter(DrTest.tenant == "other").delete()


def test_a_source_without_backup_fails_the_dr_test(dr: Server, tmp_path: Path) -> None:
    folder = tmp_path / "empty-tree"
    folder.mkdir()
    created = dr.client.post("/api/v1/sources", headers=dr.other(),
                             json={"name": "never backed up", "kind": "files",
                                   "path": str(folder)})
    assert created.status_code == 201, created.text
    try:
        started = dr.client.post(f"{BASE}/test", headers=dr.other()).json()
        deadline = time.monotonic() + 60
        while True:
            result = dr.client.get(f"{BASE}/tests/{started['test_id']}",
                                   headers=dr.other()).json()
            if result["status"] not in ("pending", "in_progress"):
                break
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert result["status"] == "completed" and result["passed"] is False
        (item,) = result["sources"]
        assert item["status"] == "skipped" and "no restorable backup" in item["reason"]
        plan = dr.client.get(f"{BASE}/plan", headers=dr.other()).json()
        assert any("no backup" in w for w in plan["sources"][0]["warnings"])
        assert plan["summary"]["ready"] is False
    finally:
        dr.client.delete(f"/api/v1/sources/{created.json()['_id']}", headers=dr.other())


# --- preview -----------------------------------------------------------------------------------


def test_preview_counts_rows_changed_since_the_backup(dr: Server) -> None:
    backup_id = backup_of(dr, "sqlite", "preview db")
    with sqlite3.connect(db_path(dr)) as conn:
        conn.execute("INSERT INTO prompts (id, name, category, tags, usage_count, created_at) "
                     "VALUES ('dr-new-prompt', 'new', 'x', '[]', 0, '2026-01-01')")
        changed = conn.execute("SELECT id FROM prompts WHERE id != 'dr-new-prompt' "
                               "ORDER BY id LIMIT 1").fetchone()[0]
        conn.execute("UPDATE prompts SET usage_count = usage_count + 1000 WHERE id = ?",
                     (changed,))
        conn.execute("DELETE FROM ai_settings WHERE id = (SELECT max(id) FROM ai_settings)")
        prompts_now = conn.execute("SELECT count(*) FROM prompts").fetchone()[0]
    response = dr.client.get(f"{BASE}/preview/{backup_id}", headers=dr.headers("viewer"))
    assert response.status_code == 200, response.text
    preview = response.json()
    assert preview["can_recover"] is True
    assert preview["confirmation_text"] == f"RECOVER {backup_id}"
    impact = preview["impact_analysis"]
    tables = {t["name"]: t for t in impact["tables"]}
    prompts = tables["prompts"]
    assert (prompts["current_rows"], prompts["backup_rows"]) == (prompts_now, prompts_now - 1)
    assert (prompts["added_since"], prompts["changed_since"], prompts["deleted_since"]) == (
        1, 1, 0)
    assert prompts["compared"] is True
    settings = tables["ai_settings"]
    assert (settings["added_since"], settings["changed_since"], settings["deleted_since"]) == (
        0, 0, 1)
    assert tables["messages"]["added_since"] == tables["messages"]["changed_since"] == 0
    assert impact["newer_items"] == 2
    assert impact["data_loss_risk"] == "low"
    assert impact["estimated_duration_seconds"] > 0 and impact["components_affected"]
    assert any("newer than the backup" in w for w in preview["warnings"])
    assert_error(dr.client.get(f"{BASE}/preview/{backup_id}", headers=dr.other()), 404,
                 "BACKUP_NOT_FOUND")


def test_preview_of_a_file_tree_counts_files(dr: Server) -> None:
    backup_id = backup_of(dr, "files", "preview files")
    root = tree_path(dr)
    (root / "dr-created.txt").write_text("new since the backup\n")
    changed = root / "dir1" / "sub1" / "note1.txt"
    changed.write_text(changed.read_text() + "one more line\n")
    removed = root / "dir2" / "sub2" / "note2.txt"
    removed.unlink()
    try:
        preview = dr.client.get(f"{BASE}/preview/{backup_id}",
                                headers=dr.headers("viewer")).json()
        files = preview["impact_analysis"]["files"]
        assert (files["added"], files["changed"], files["removed"]) == (1, 1, 1), files
        assert files["examples"]["removed"] == [f"{root.name}/dr-created.txt"]
        assert files["examples"]["added"] == [f"{root.name}/dir2/sub2/note2.txt"]
        assert files["unchanged"] == files["files_in_backup"] - 2
        assert preview["impact_analysis"]["newer_items"] == 2
        assert "tables" not in preview["impact_analysis"]
    finally:
        (root / "dr-created.txt").unlink()


# --- initiate ----------------------------------------------------------------------------------


def _counts(server: Server) -> dict[str, int]:
    with sqlite3.connect(db_path(server)) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                for t in ("projects", "sessions", "messages", "prompts", "ai_settings")}


def _backup_count(server: Server) -> int:
    return int(server.client.get("/api/v1/backups", headers=server.headers("viewer")).json()[
        "pagination"]["total_items"])


def test_initiate_without_confirmation_is_refused_and_changes_nothing(dr: Server) -> None:
    backup_id = backup_of(dr, "sqlite", "refused recovery")
    with sqlite3.connect(db_path(dr)) as conn:
        conn.execute("INSERT INTO ai_settings (key, value, updated_at) "
                     "VALUES ('dr-refused', 'x', '2026-01-01')")
    before, backups = _counts(dr), _backup_count(dr)
    for body in ({"backup_id": backup_id},
                 {"backup_id": backup_id, "confirmation": True},
                 {"backup_id": backup_id, "confirmation": False,
                  "confirmation_text": f"RECOVER {backup_id}"},
                 {"backup_id": backup_id, "confirmation": True,
                  "confirmation_text": "RECOVER something-else"}):
        response = dr.client.post(f"{BASE}/initiate", headers=dr.headers("admin"), json=body)
        assert_error(response, 400, "VALIDATION_FAILED")
    fields = {e["field"] for e in response.json()["validation_errors"]}
    assert fields == {"confirmation_text"}
    assert_error(dr.client.post(f"{BASE}/initiate", headers=dr.headers("operator"), json={
        "backup_id": backup_id, "confirmation": True,
        "confirmation_text": f"RECOVER {backup_id}"}), 403, "FORBIDDEN")
    assert _counts(dr) == before and _backup_count(dr) == backups


def test_initiate_takes_a_pre_recovery_backup_and_restores(dr: Server) -> None:
    backup_id = backup_of(dr, "sqlite", "recover me")
    at_backup = _counts(dr)
    with sqlite3.connect(db_path(dr)) as conn:
        conn.execute("INSERT INTO ai_settings (key, value, updated_at) "
                     "VALUES ('dr-after-backup', 'lost', '2026-01-01')")
        conn.execute("DELETE FROM messages WHERE id IN (SELECT id FROM messages LIMIT 5)")
    assert _counts(dr) != at_backup
    response = dr.client.post(f"{BASE}/initiate", headers=dr.headers("admin"), json={
        "backup_id": backup_id, "recovery_type": "full", "confirmation": True,
        "confirmation_text": f"RECOVER {backup_id}", "reason": "test recovery"})
    assert response.status_code == 200, response.text
    started = response.json()
    assert started["status"] == "recovery_started"
    assert started["recovery_id"] == started["restore_job_id"]
    pre = dr.client.get(f"/api/v1/backups/{started['pre_recovery_snapshot_id']}",
                        headers=dr.headers("viewer")).json()
    assert pre["status"] == "completed" and pre["source_id"] == dr.sources["sqlite"]
    with dr.services.catalog.session() as session:
        assert session.get_one(Backup, pre["_id"]).tags == ["pre-recovery"]
    status = wait_restore(dr, started["restore_job_id"])
    assert status["status"] == "completed", status
    assert _counts(dr) == at_backup
    with sqlite3.connect(db_path(dr)) as conn:
        assert conn.execute("SELECT count(*) FROM ai_settings WHERE key = 'dr-after-backup'"
                            ).fetchone()[0] == 0
    # The pre-recovery backup kept the data the recovery replaced.
    lost = dr.client.get(f"{BASE}/preview/{pre['_id']}", headers=dr.headers("viewer")).json()
    settings = next(t for t in lost["impact_analysis"]["tables"] if t["name"] == "ai_settings")
    assert settings["deleted_since"] == 1


def test_initiate_recovers_a_file_tree(dr: Server) -> None:
    backup_id = backup_of(dr, "files", "recover tree")
    root = tree_path(dr)
    (root / "dr-extra.txt").write_text("created after the backup\n")
    response = dr.client.post(f"{BASE}/initiate", headers=dr.headers("admin"), json={
        "backup_id": backup_id, "confirmation": True,
        "confirmation_text": f"RECOVER {backup_id}"})
    assert response.status_code == 200, response.text
    status = wait_restore(dr, response.json()["restore_job_id"])
    assert status["status"] == "completed", status
    assert not (root / "dr-extra.txt").exists()
    preview = dr.client.get(f"{BASE}/preview/{backup_id}", headers=dr.headers("viewer")).json()
    assert preview["impact_analysis"]["newer_items"] == 0


# --- CLI ---------------------------------------------------------------------------------------


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[str, str, Any]]:
    """A uvicorn server on a loopback port: (URL, admin key, app)."""
    with live_server(tmp_path / "live") as started:
        yield started.url, started.key, started.app


def test_cli_plan_test_points_preview_recover(live: tuple[str, str, Any]) -> None:
    import json

    url, key, app = live
    runner = CliRunner()
    env = {"STRONGBOX_URL": url, "STRONGBOX_API_KEY": key}
    sources = {s.kind: s for s in app.state.start_report.demo.sources}

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(cli_app, ["dr", *args], env=env)
        assert result.exit_code == code, result.output
        return result.output

    plan = json.loads(run("plan", "--json"))
    assert {s["source_kind"] for s in plan["sources"]} == {"sqlite", "files"}
    assert "no backup" in run("plan")

    done = run("test", "--wait", code=3)  # nothing is backed up yet: exit code 3
    assert "FAILED" in done and "no restorable backup" in done

    import httpx

    backups = {}
    for kind, source in sources.items():
        created = httpx.post(f"{url}/api/v1/backups", headers={"X-API-Key": key}, json={
            "name": f"cli {kind}", "type": "full", "source_id": source.id}).json()
        deadline = time.monotonic() + 60
        while httpx.get(f"{url}/api/v1/backups/jobs/{created['job_id']}",
                        headers={"X-API-Key": key}).json()["status"] != "completed":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        backups[kind] = created["backup_id"]

    passed = run("test", "--wait")
    assert "passed" in passed and "RTO" in passed
    tested = json.loads(run("plan", "--json"))
    assert all(s["rto"]["basis"] == "dr_test" for s in tested["sources"])

    listed = json.loads(run("points", sources["sqlite"].name, "--json"))
    assert [i["backup_id"] for i in listed["items"]] == [backups["sqlite"]]
    assert backups["sqlite"][:8] in run("points", sources["sqlite"].id)

    preview = json.loads(run("preview", backups["sqlite"], "--json"))
    assert preview["confirmation_text"] == f"RECOVER {backups['sqlite']}"
    assert "confirmation text" in run("preview", backups["sqlite"])

    refused = runner.invoke(cli_app, ["dr", "recover", backups["sqlite"]], env=env, input="n\n")
    assert refused.exit_code == 1 and "nothing was changed" in refused.output

    recovered = run("recover", backups["sqlite"], "--yes", "--wait", "--reason", "cli test")
    assert "recovered from backup" in recovered


# --- PostgreSQL --------------------------------------------------------------------------------


def test_postgres_preview_dr_test_and_recovery(tmp_path: Path) -> None:
    import psycopg

    from tests.pg_server import running_postgres

    def count(dsn: str) -> int:
        with psycopg.connect(dsn) as conn:
            row = conn.execute("SELECT count(*) FROM shop.orders").fetchone()
            return int(row[0]) if row else 0

    with running_postgres() as postgres:
        dsn = postgres.create_database("shop")
        with psycopg.connect(dsn) as conn:
            conn.execute("CREATE SCHEMA shop")
            conn.execute("CREATE TABLE shop.orders (id serial PRIMARY KEY, item text)")
            conn.execute("INSERT INTO shop.orders (item) SELECT 'item ' || n "
                         "FROM generate_series(1, 50) n")
        with running_server(tmp_path / "pg", demo=False) as server:
            source = server.client.post("/api/v1/sources", headers=server.headers(), json={
                "name": "shop", "kind": "postgres", "dsn": dsn, "schema_name": "shop"})
            assert source.status_code == 201, source.text
            source_id = source.json()["_id"]
            backup_id = server.backup_and_wait({"name": "shop", "type": "full",
                                                "source_id": source_id})["backup_id"]
            with psycopg.connect(dsn) as conn:
                conn.execute("INSERT INTO shop.orders (item) VALUES ('late'), ('later')")

            preview = server.client.get(f"{BASE}/preview/{backup_id}",
                                        headers=server.headers()).json()
            (orders,) = preview["impact_analysis"]["tables"]
            assert (orders["name"], orders["backup_rows"], orders["current_rows"]) == (
                "orders", 50, 52)
            assert orders["added_since"] == 2 and orders["compared"] is False
            assert preview["impact_analysis"]["newer_items"] == 2

            started = server.client.post(f"{BASE}/test", headers=server.headers()).json()
            result = wait_test(server, started["test_id"])
            assert result["passed"] is True, result
            (item,) = result["sources"]
            assert item["source_kind"] == "postgres" and item["duration_seconds"] > 0
            assert item["rows_restored"] == 50

            response = server.client.post(f"{BASE}/initiate", headers=server.headers(), json={
                "backup_id": backup_id, "confirmation": True,
                "confirmation_text": f"RECOVER {backup_id}"})
            assert response.status_code == 200, response.text
            status = wait_restore(server, response.json()["restore_job_id"])
            assert status["status"] == "completed", status
            assert count(dsn) == 50
