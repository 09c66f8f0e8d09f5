"""``/api/v1/schedules``: seed 001 schedule configure/get, seed 004 section 2, in seed 000's
style (``_id``, bare objects, ``pagination``)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import AliasChoices, Field, StrictInt, StrictStr

from strongbox.api.schemas.backups import BackupFilters, BackupOptions
from strongbox.api.schemas.common import ApiModel, Pagination
from strongbox.services.schedules import ScheduleRunView, ScheduleView


class ScheduleAction(StrEnum):
    BACKUP = "backup"
    VERIFY = "verify"
    CLEANUP = "cleanup"


class ScheduleBackupType(StrEnum):
    FULL = "full"
    INCREMENTAL = "incremental"
    DIFFERENTIAL = "differential"
    SELECTIVE = "selective"


class Frequency(StrEnum):
    HOURLY = "hourly"
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"


class ScheduleOptions(BackupOptions):
    deep: bool | None = Field(None, description="verify: read every blob")
    test_restore: bool | None = Field(None, description="verify: restore into scratch too")


class ScheduleRetention(ApiModel):
    """Kept with the schedule for retention of the backups it makes (seed 001
    ``retention_days``, seed 004 ``retention_count``, and keep-N rules)."""

    retention_days: int | None = Field(None, ge=1)
    retention_count: int | None = Field(None, ge=1)
    keep_last: int | None = Field(None, ge=1)
    keep_hourly: int | None = Field(None, ge=1)
    keep_daily: int | None = Field(None, ge=1)
    keep_weekly: int | None = Field(None, ge=1)
    keep_monthly: int | None = Field(None, ge=1)
    keep_yearly: int | None = Field(None, ge=1)


_CRON = "Cron expression (five fields, or @hourly/@daily/@weekly/@monthly), read in " \
        "`timezone`; seed 000 calls it `schedule`. Give it or `frequency`."


class ScheduleCreate(ApiModel):
    name: str = Field(min_length=1, max_length=100)
    description: str | None = Field(None, max_length=500)
    enabled: bool = True
    action: ScheduleAction = ScheduleAction.BACKUP
    cron: str | None = Field(None, max_length=100, description=_CRON,
                             validation_alias=AliasChoices("cron", "schedule"))
    frequency: Frequency | None = Field(None, description="Seed 004's form instead of cron")
    time: str | None = Field(None, description="HH:MM (hourly: only the minutes count); "
                                               "default 02:00")
    day: StrictInt | StrictStr | None = Field(
        None, description="weekly: monday … sunday or 0-6 (default monday); monthly: 1-31 "
                          "or \"last\" (default 1)")
    timezone: str = Field("UTC", max_length=64, description="IANA zone, e.g. Europe/Berlin")
    type: ScheduleBackupType = ScheduleBackupType.FULL
    source_ids: list[str] | None = Field(None, description="Default: every source of the "
                                                           "tenant at run time")
    filters: BackupFilters | None = None
    options: ScheduleOptions | None = None
    retention: ScheduleRetention | None = None


class ScheduleUpdate(ApiModel):
    """PATCH: only the fields given change (PUT takes a whole :class:`ScheduleCreate`)."""

    name: str | None = Field(None, min_length=1, max_length=100)
    description: str | None = Field(None, max_length=500)
    enabled: bool | None = None
    action: ScheduleAction | None = None
    cron: str | None = Field(None, max_length=100, description=_CRON,
                             validation_alias=AliasChoices("cron", "schedule"))
    frequency: Frequency | None = None
    time: str | None = None
    day: StrictInt | StrictStr | None = None
    timezone: str | None = Field(None, max_length=64)
    type: ScheduleBackupType | None = None
    source_ids: list[str] | None = None
    filters: BackupFilters | None = None
    options: ScheduleOptions | None = None
    retention: ScheduleRetention | None = None


def request_body(body: ScheduleCreate | ScheduleUpdate, *, partial: bool) -> dict[str, Any]:
    """The service's view of a request: plain JSON values, only those given if partial."""
    return body.model_dump(mode="json", exclude_unset=partial, exclude_none=partial,
                           by_alias=False)


class ToggleScheduleRequest(ApiModel):
    enabled: bool | None = Field(None, description="Omitted: flip")


class ScheduleResponse(ApiModel):
    id: str = Field(alias="_id")
    name: str
    description: str | None = None
    enabled: bool
    action: ScheduleAction
    type: ScheduleBackupType
    cron: str
    schedule: str = Field(description="The same as cron (seed 000's name)")
    frequency: Frequency | None = None
    time: str | None = None
    day: StrictInt | StrictStr | None = None
    timezone: str
    source_ids: list[str] | None = None
    filters: dict[str, Any] | None = None
    options: dict[str, Any] | None = None
    retention: dict[str, Any] | None = None
    origin: str = Field(description="api; settings (mirrored from PUT /settings/backup) or "
                                    "policy (made by PUT /policies/{source_id}): read-only "
                                    "here, changes answer 409 SCHEDULE_CONFLICT")
    next_run: datetime | None = None
    last_run: datetime | None = None
    last_status: str | None = Field(None, description="running, completed, failed")
    last_error: str | None = None
    running: bool
    total_runs: int
    successful_runs: int
    failed_runs: int
    created_at: datetime
    updated_at: datetime
    created_by: str | None = None

    @classmethod
    def of(cls, view: ScheduleView) -> ScheduleResponse:
        return cls(
            _id=view.id, name=view.name, description=view.description, enabled=view.enabled,
            action=ScheduleAction(view.action), type=ScheduleBackupType(view.backup_type),
            cron=view.cron, schedule=view.cron, frequency=view.spec.get("frequency"),
            time=view.spec.get("time"), day=view.spec.get("day"), timezone=view.timezone,
            source_ids=view.source_ids, filters=view.filters, options=view.options,
            retention=view.retention, origin=view.origin, next_run=view.next_run_at,
            last_run=view.last_run_at, last_status=view.last_status,
            last_error=view.last_error, running=view.running_since is not None,
            total_runs=view.total_runs, successful_runs=view.successful_runs,
            failed_runs=view.failed_runs, created_at=view.created_at,
            updated_at=view.updated_at, created_by=view.created_by)


class PagedSchedulesResponse(ApiModel):
    items: list[ScheduleResponse]
    pagination: Pagination


class ScheduleRunResponse(ApiModel):
    id: int = Field(alias="_id")
    schedule_id: str
    scheduled_for: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    status: str = Field(description="running, completed, failed, skipped")
    trigger: str = Field(description="schedule or manual")
    catch_up: bool = Field(description="Stood in for slots missed while the server was down")
    job_ids: list[str]
    backup_ids: list[str]
    error: str | None = None

    @classmethod
    def of(cls, run: ScheduleRunView) -> ScheduleRunResponse:
        return cls(_id=run.id, schedule_id=run.schedule_id, scheduled_for=run.scheduled_for,
                   started_at=run.started_at, finished_at=run.finished_at, status=run.status,
                   trigger=run.trigger, catch_up=run.catch_up, job_ids=run.job_ids,
                   backup_ids=run.backup_ids, error=run.error)


class PagedScheduleRunsResponse(ApiModel):
    items: list[ScheduleRunResponse]
    pagination: Pagination


class ToggleScheduleResponse(ApiModel):
    status: str = "updated"
    schedule_id: str
    enabled: bool
    next_run: datetime | None = None
    message: str
    schedule: ScheduleResponse


class RunScheduleResponse(ApiModel):
    schedule_id: str
    run: ScheduleRunResponse
    message: str


class DeleteScheduleResponse(ApiModel):
    message: str
    schedule_id: str
    deleted_at: datetime
