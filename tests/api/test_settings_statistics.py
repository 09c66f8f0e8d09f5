"""Seed 000 section 3 (backup settings) and section 4.1 (statistics)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from tests.api.conftest import Server
from tests.api.test_backups_contract import assert_error

SETTINGS = "/api/v1/settings/backup"
STATISTICS = "/api/v1/backups/statistics"


def put(server: Server, body: dict[str, Any], role: str = "admin") -> Any:
    return server.client.put(SETTINGS, headers=server.headers(role), json=body)


def test_settings_show_the_real_repository(server: Server) -> None:
    settings = server.client.get(SETTINGS, headers=server.headers("viewer")).json()
    assert set(settings) == {"storage", "retention", "compression", "encryption",
                             "scheduling", "notifications"}
    filesystem = settings["storage"]["filesystem"]
    assert settings["storage"]["backend"] == "filesystem"
    assert filesystem["base_directory"] == server.services.storage.location
    assert filesystem["current_usage_gb"] > 0
    assert settings["encryption"] == {"enabled": True, "algorithm": "aes-256-gcm",
                                      "key_management": "local"}
    assert settings["compression"] == {"enabled": True, "algorithm": "zstd", "level": 6}
    assert settings["scheduling"] == {"enabled": False, "schedules": []}


def test_update_reports_changed_fields_and_persists(server: Server) -> None:
    body = {"compression": {"level": 4},
            "retention": {"enabled": True, "max_backups": 30, "cleanup_schedule": "0 3 * * *"},
            "scheduling": {"enabled": True, "schedules": [
                {"name": "nightly", "schedule": "0 2 * * *", "type": "full"}]},
            "notifications": {"notify_on": ["failure", "success"]}}
    response = put(server, body)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["updated_fields"] == [
        "compression.level", "notifications.notify_on", "retention.cleanup_schedule",
        "retention.enabled", "retention.max_backups", "scheduling.enabled",
        "scheduling.schedules"]
    assert result["message"]
    # The scheduler runs these (services/scheduler.py): nothing to warn about.
    assert not any("schedules" in w for w in result.get("validation_warnings") or [])
    schedule = result["settings"]["scheduling"]["schedules"][0]
    assert schedule["_id"] and schedule["enabled"] is True
    assert datetime.fromisoformat(schedule["next_run"]).hour == 2
    stored = server.client.get(SETTINGS, headers=server.headers("viewer")).json()
    assert stored["compression"]["level"] == 4
    assert stored["retention"]["max_backups"] == 30
    # The same update again changes nothing.
    again = put(server, {"compression": {"level": 4}}).json()
    assert again["updated_fields"] == []
    # Settings belong to the tenant.
    other = server.client.get(SETTINGS, headers=server.other()).json()
    assert other["compression"]["level"] == 6


def test_new_backups_take_the_tenants_compression_level(server: Server) -> None:
    assert put(server, {"compression": {"level": 2}}).status_code == 200
    created = server.backup_and_wait({"name": "uses settings", "type": "full"})
    detail = server.client.get(f"/api/v1/backups/{created['backup_id']}",
                               headers=server.headers()).json()
    assert detail["compression"]["level"] == 2
    put(server, {"compression": {"level": 6}})


@pytest.mark.parametrize(("body", "field", "code"), [
    ({"compression": {"level": 0}}, "compression.level", "OUT_OF_RANGE"),
    ({"compression": {"level": 10}}, "compression.level", "OUT_OF_RANGE"),
    ({"compression": {"algorithm": "lz4"}}, "compression.algorithm", "INVALID_VALUE"),
    ({"compression": {"algorithm": "gzip"}}, "compression.algorithm", "NOT_SUPPORTED"),
    ({"retention": {"cleanup_schedule": "every night"}}, "retention.cleanup_schedule",
     "INVALID_CRON"),
    ({"scheduling": {"schedules": [{"name": "n", "schedule": "61 * * * *", "type": "full"}]}},
     "scheduling.schedules[0].schedule", "INVALID_CRON"),
    ({"storage": {"backend": "s3"}}, "storage.backend", "NOT_SUPPORTED"),
    ({"encryption": {"enabled": False}}, "encryption.enabled", "READ_ONLY"),
    ({"storage": {"filesystem": {"base_directory": "/elsewhere"}}},
     "storage.filesystem.base_directory", "READ_ONLY"),
])
def test_invalid_settings_are_rejected(server: Server, body: dict[str, Any], field: str,
                                       code: str) -> None:
    result = assert_error(put(server, body), 400, "VALIDATION_FAILED", fields={field})
    assert any(item["field"] == field and item["code"] == code
               for item in result["validation_errors"]), result


def test_invalid_schedule_type_is_invalid_backup_type(server: Server) -> None:
    body = {"scheduling": {"schedules": [{"name": "n", "schedule": "0 2 * * *",
                                          "type": "hourly"}]}}
    assert_error(put(server, body), 400, "INVALID_BACKUP_TYPE")


def test_only_admins_change_settings(server: Server) -> None:
    assert_error(put(server, {"compression": {"level": 5}}, role="operator"), 403, "FORBIDDEN")


# --- statistics -----------------------------------------------------------------------------


def test_statistics_have_every_block(server: Server) -> None:
    server.backup_and_wait({"name": "for statistics", "type": "full"})
    stats = server.client.get(STATISTICS, headers=server.headers("viewer")).json()
    summary = stats["summary"]
    assert summary["total_backups"] >= 1
    assert summary["total_size_bytes"] >= summary["largest_backup_bytes"] > 0
    assert 0 <= summary["success_rate"] <= 100
    assert set(stats["by_type"]) == {"full", "selective", "incremental", "differential"}
    assert set(stats["by_status"]) == {"pending", "in_progress", "completed", "failed",
                                       "corrupted", "deleting"}
    assert stats["by_status"]["completed"] >= 1
    assert stats["timeline"]["period"] == "month"
    assert len(stats["timeline"]["data"]) == 12
    assert sum(d["backups_created"] for d in stats["timeline"]["data"]) >= 1
    usage = stats["storage_usage"]
    assert usage["used_bytes"] > 0 and usage["available_bytes"] > 0
    assert stats["restore_statistics"] == {"total_restores": 0, "successful_restores": 0,
                                           "failed_restores": 0,
                                           "average_restore_time_seconds": 0.0}


def test_statistics_periods_and_windows(server: Server) -> None:
    days = server.client.get(f"{STATISTICS}?period=day", headers=server.headers()).json()
    assert len(days["timeline"]["data"]) == 30
    window = server.client.get(
        f"{STATISTICS}?period=week&from=2025-01-01T00:00:00Z&to=2025-02-01T00:00:00Z",
        headers=server.headers()).json()
    assert window["summary"]["total_backups"] == 0
    assert window["timeline"]["data"][0]["date"] == "2024-12-30"  # the week's Monday
    assert_error(server.client.get(f"{STATISTICS}?period=decade", headers=server.headers()),
                 400, "VALIDATION_FAILED")
    assert_error(server.client.get(
        f"{STATISTICS}?from=2025-02-01T00:00:00Z&to=2025-01-01T00:00:00Z",
        headers=server.headers()), 400, "INVALID_DATE_RANGE")
    # A window ending in year 1 starts at the earliest date there is (found by schemathesis).
    early = server.client.get(f"{STATISTICS}?period=month&to=0001-01-05T00:00:00Z",
                              headers=server.headers())
    assert early.status_code == 200, early.text


def test_statistics_are_per_tenant(server: Server) -> None:
    stats = server.client.get(STATISTICS, headers=server.other()).json()
    assert stats["summary"]["total_backups"] == 0
