"""Cleanup (seed 004 section 7, seed 002 ``POST /backups/cleanup``) and retention rules."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from strongbox.api.schemas.backups import JobError, JobProgress
from strongbox.api.schemas.common import ApiModel, JobStatus

Count = Field(None, ge=0, le=100_000)


class KeepRules(ApiModel):
    """Grandfather-father-son rules: the newest backup of each of the N newest hours,
    days, weeks, months, years (0 = rule off), per source."""

    keep_last: int | None = Count
    keep_hourly: int | None = Count
    keep_daily: int | None = Count
    keep_weekly: int | None = Count
    keep_monthly: int | None = Count
    keep_yearly: int | None = Count
    keep_within_days: int | None = Field(
        None, ge=1, le=100_000, description="Keep every backup this many days back from the "
                                            "source's newest one")
    timezone: str | None = Field(None, max_length=64,
                                 description="IANA zone of the daily/weekly/... calendar; UTC")


class CleanupRequest(KeepRules):
    """A dry run (default) or, with ``dry_run: false`` and ``confirmation: true``, a
    cleanup planned and started in one call (seed 002)."""

    dry_run: bool = True
    confirmation: bool = Field(False, description="Required with dry_run: false")
    reason: str | None = Field(None, max_length=500)
    source_ids: list[str] | None = Field(None, max_length=1000,
                                         description="Only these sources' backups")
    storage_locations: list[str] | None = Field(
        None, description="Seed 004; the one location is `local`")
    retention_policy: str | None = Field(
        None, pattern=r"^keep_(last|hourly|daily|weekly|monthly|yearly)_\d{1,6}$",
        description="Seed 004 shorthand such as keep_last_5")
    max_backups: int | None = Field(None, ge=1, le=1_000_000)
    keep_count: int | None = Field(None, ge=1, le=1_000_000,
                                   description="Seed 002: the same as max_backups")
    max_age_days: int | None = Field(None, ge=1, le=100_000)
    older_than_days: int | None = Field(None, ge=1, le=100_000,
                                        description="Seed 002: the same as max_age_days")
    max_total_size_gb: float | None = Field(None, gt=0)
    delete_failed: bool = False
    delete_unverified: bool = False
    use_settings: bool = Field(
        False, description="Start from the tenant's retention settings; fields given here "
                           "override them. A request with no rule at all uses the settings.")
    min_free_space: str | None = Field(None, description="Seed 004; not supported")


class PlannedBackupModel(ApiModel):
    backup_id: str
    name: str
    source_id: str | None = None
    source_name: str
    type: str
    status: str
    created_at: datetime
    size_bytes: int
    protected: bool
    reasons: list[str]


class CleanupAnalysis(ApiModel):
    total_backups: int
    eligible_for_removal: int
    backups_to_keep: int
    protected_backups: int
    in_use_backups: int
    space_to_free: str = Field(description="Human-readable, e.g. 850 MB")
    space_to_free_bytes: int


class CleanupPlanResponse(ApiModel):
    status: Literal["analyzed", "executing", "executed", "failed", "expired"]
    dry_run: bool = True
    cleanup_plan_id: str
    created_at: datetime
    expires_at: datetime
    analysis: CleanupAnalysis
    action_required: bool
    confirm_action: str | None = None
    criteria: dict[str, Any]
    backups_to_delete: list[PlannedBackupModel]
    backups_kept: list[PlannedBackupModel]
    executed_at: datetime | None = None
    job_id: str | None = None
    result: dict[str, Any] | None = None
    message: str


class ExecuteCleanupRequest(ApiModel):
    cleanup_plan_id: str = Field(min_length=1, max_length=100)
    confirmation: bool = False
    notify_on_completion: bool = Field(
        False, description="Accepted; cleanup jobs are announced like every job")


class ExecuteCleanupResponse(ApiModel):
    status: Literal["cleanup_started"] = "cleanup_started"
    cleanup_id: str = Field(description="The cleanup job's id")
    job_id: str
    cleanup_plan_id: str
    backups_to_remove: int
    estimated_space: str
    estimated_space_bytes: int
    estimated_duration_seconds: float
    message: str


class SkippedBackup(ApiModel):
    backup_id: str
    reason: str


class CleanupResult(ApiModel):
    cleanup_plan_id: str
    deleted_count: int
    deleted_backup_ids: list[str]
    skipped_count: int
    skipped: list[SkippedBackup]
    freed_space: int = Field(description="Bytes the repository shrank by (seed 002)")
    repository_bytes_before: int
    repository_bytes_after: int
    prune: dict[str, Any]


class CleanupJobStatus(ApiModel):
    job_id: str
    cleanup_plan_id: str
    status: JobStatus
    progress: JobProgress
    started_at: datetime
    updated_at: datetime
    completed_at: datetime | None = None
    result: CleanupResult | None = None
    error: JobError | None = None


class RetentionRules(ApiModel):
    keep_last: int
    keep_hourly: int
    keep_daily: int
    keep_weekly: int
    keep_monthly: int
    keep_yearly: int
    keep_within_days: int | None = None
    timezone: str
    delete_failed: bool
    delete_unverified: bool


class RetentionPolicyResponse(ApiModel):
    """Seed 000's ``retention`` settings plus the keep rules scheduled cleanups use."""

    enabled: bool
    max_backups: int | None = None
    max_age_days: int | None = None
    max_total_size_gb: float | None = None
    auto_cleanup: bool
    cleanup_schedule: str | None = None
    rules: RetentionRules


class RetentionRulesPatch(KeepRules):
    keep_within_days: int | None = Field(None, ge=0, le=100_000, description="0 = off")
    delete_failed: bool | None = None
    delete_unverified: bool | None = None


class RetentionPolicyPatch(ApiModel):
    enabled: bool | None = None
    max_backups: int | None = Field(None, ge=1)
    max_age_days: int | None = Field(None, ge=1)
    max_total_size_gb: float | None = Field(None, gt=0)
    auto_cleanup: bool | None = None
    cleanup_schedule: str | None = None
    rules: RetentionRulesPatch | None = None


class UpdateRetentionPolicyResponse(ApiModel):
    message: str
    updated_fields: list[str]
    policy: RetentionPolicyResponse
