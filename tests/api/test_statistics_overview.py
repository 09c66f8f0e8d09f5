"""``GET /api/v1/statistics/overview``: success rate, durations, a daily timeline and
storage growth (seeds 001/004), beside seed 000's statistics, which stay as they are."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from strongbox.catalog.types import utcnow
from tests.api.conftest import Server
from tests.api.test_backups_contract import assert_error

OVERVIEW = "/api/v1/statistics/overview"


def test_overview_counts_successes_failures_durations_and_growth(server: Server,
                                                                  tmp_path: Path) -> None:
    viewer = server.headers("viewer")
    before = server.client.get(OVERVIEW, params={"days": 7}, headers=viewer).json()
    server.backup_and_wait({"name": "overview ok", "type": "full",
                            "source_id": server.sources["sqlite"]})
    tree = tmp_path / "gone"
    tree.mkdir()
    source = server.client.post("/api/v1/sources", headers=server.headers(), json={
        "name": "overview vanishing", "kind": "files", "path": str(tree)}).json()
    tree.rmdir()
    failed = server.create_backup({"name": "overview fails", "type": "full",
                                   "source_id": source["_id"]})
    assert server.wait_for_job(failed["job_id"])["status"] == "failed"

    body = server.client.get(OVERVIEW, params={"days": 7}, headers=viewer).json()
    assert body["window"]["days"] == 7
    summary, was = body["summary"], before["summary"]
    assert summary["total_backups"] == was["total_backups"] + 2
    assert summary["successful_backups"] == was["successful_backups"] + 1
    assert summary["failed_backups"] == was["failed_backups"] + 1
    ok, bad = summary["successful_backups"], summary["failed_backups"]
    assert summary["success_rate"] == round(ok / (ok + bad) * 100, 2)
    assert summary["average_duration_seconds"] > 0
    assert summary["storage_used_bytes"] > 0
    full = body["by_type"]["full"]
    assert full["count"] >= 2 and full["failed"] >= 1 and full["average_size_bytes"] > 0
    assert body["by_status"]["completed"] >= 1 and body["by_status"]["failed"] >= 1

    timeline = body["timeline"]
    assert len(timeline) == 7
    today = utcnow().strftime("%Y-%m-%d")
    assert timeline[-1]["date"] == today
    assert sum(day["backups_created"] for day in timeline) == summary["total_backups"]
    growth = body["storage_growth"]
    assert growth["added_bytes"] == sum(day["added_bytes"] for day in timeline) > 0
    assert growth["series"][-1]["cumulative_added_bytes"] == growth["added_bytes"]
    assert growth["bytes_per_day"] == round(growth["added_bytes"] / 7, 1)


def test_the_window_follows_the_clock(server: Server) -> None:
    server.backup_and_wait({"name": "overview window", "type": "full",
                            "source_id": server.sources["sqlite"]})
    overview = server.services.statistics_overview
    later = utcnow() + timedelta(days=10)
    assert overview.compute("default", 30, now=later)["summary"]["total_backups"] >= 1
    assert overview.compute("default", 5, now=later)["summary"]["total_backups"] == 0
    earlier = utcnow() - timedelta(days=3)
    assert overview.compute("default", 30, now=earlier)["summary"]["total_backups"] == 0


def test_validation_and_seed_000_statistics_unchanged(server: Server) -> None:
    viewer = server.headers("viewer")
    for days in (0, 367, "x"):
        assert_error(server.client.get(OVERVIEW, params={"days": days}, headers=viewer),
                     400, "VALIDATION_FAILED")
    assert_error(server.client.get(OVERVIEW, params={"period": "1y"}, headers=viewer),
                 400, "VALIDATION_FAILED")
    for period, days in (("24h", 1), ("90d", 90), ("week", 7), ("year", 365)):
        window = server.client.get(OVERVIEW, params={"period": period},
                                   headers=viewer).json()["window"]
        assert window["days"] == days
    seed = server.client.get("/api/v1/backups/statistics", headers=viewer).json()
    assert set(seed) == {"summary", "by_type", "by_status", "timeline", "storage_usage",
                         "restore_statistics"}
    # Another tenant's overview is its own (empty).
    other = server.client.get(OVERVIEW, headers=server.other()).json()
    assert other["summary"]["total_backups"] == 0
