"""``GET /api/v1/status``: the health of the backup system (seed 004 status, seed 002
``/backups/status``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from strongbox.api.schemas.common import ApiModel


class StatusAlert(ApiModel):
    level: Literal["info", "warning", "critical"]
    code: str
    message: str
    source_id: str | None = None
    schedule_id: str | None = None
    backup_id: str | None = None


class SourceStatus(ApiModel):
    source_id: str
    name: str
    kind: str
    last_backup_at: datetime | None = None
    last_backup_status: str | None = None
    last_backup_id: str | None = None
    last_successful_backup_at: datetime | None = None
    last_successful_backup_id: str | None = None


class SchedulerComponent(ApiModel):
    status: Literal["running", "stopped", "unknown"]
    healthy: bool
    total_schedules: int
    enabled_schedules: int
    missed_schedules: int
    next_run: datetime | None = None
    last_run: datetime | None = None


class StorageComponent(ApiModel):
    status: Literal["healthy", "warning", "critical", "unreachable"]
    healthy: bool
    location: str
    reachable: bool
    used_bytes: int | None = None
    available_bytes: int | None = None
    total_bytes: int | None = None
    quota_bytes: int | None = None
    percentage_used: float | None = None
    warning_percent: float | None = None
    critical_percent: float | None = None


class EncryptionComponent(ApiModel):
    status: Literal["enabled", "disabled", "error"]
    healthy: bool
    encrypted: bool | None = None
    key_available: bool
    algorithm: str | None = None


class JobsComponent(ApiModel):
    status: Literal["running", "stopped"]
    healthy: bool
    workers: int
    running_jobs: int
    queued_jobs: int


class StatusComponents(ApiModel):
    scheduler: SchedulerComponent
    storage: StorageComponent
    encryption: EncryptionComponent
    jobs: JobsComponent


class StatusSummary(ApiModel):
    total_backups: int
    completed_backups: int
    failed_backups: int
    corrupted_backups: int
    verified_backups: int
    last_successful_backup: datetime | None = None
    next_scheduled_backup: datetime | None = None
    storage_used_bytes: int | None = None


class SystemStatusResponse(ApiModel):
    status: Literal["healthy", "degraded", "unhealthy"]
    checked_at: datetime
    last_successful_backup: datetime | None = None
    summary: StatusSummary
    components: StatusComponents
    sources: list[SourceStatus]
    alerts: list[StatusAlert]

    @classmethod
    def of(cls, status: Any) -> SystemStatusResponse:
        """From :class:`strongbox.services.status.SystemStatus`."""
        return cls(
            status=status.status, checked_at=status.checked_at,
            last_successful_backup=status.summary.get("last_successful_backup"),
            summary=StatusSummary.model_validate(status.summary),
            components=StatusComponents.model_validate(status.components),
            sources=[SourceStatus.model_validate(s, from_attributes=True)
                     for s in status.sources],
            alerts=[StatusAlert.model_validate(a, from_attributes=True)
                    for a in status.alerts])
