"""Disaster recovery (seeds 003 and 004 section 4): recovery points, plan, DR tests,
recovery preview and initiate, under ``/api/v1/recovery``."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from strongbox.api.schemas.backups import JobError, JobProgress
from strongbox.api.schemas.common import ApiModel, JobStatus, Pagination

# --- recovery points -------------------------------------------------------------------------


class RecoveryPointItem(ApiModel):
    backup_id: str
    name: str
    type: str
    source_id: str | None = None
    source_name: str
    source_kind: str
    created_at: datetime
    completed_at: datetime | None = None
    size_bytes: int
    compressed_size_bytes: int | None = None
    verified: bool
    verification_status: str = Field(description="verified | unverified")
    verified_at: datetime | None = None
    protected: bool
    tags: list[str]


class RecoveryPointsResponse(ApiModel):
    items: list[RecoveryPointItem]
    pagination: Pagination


# --- the plan ----------------------------------------------------------------------------------


class PlanBackup(ApiModel):
    backup_id: str
    name: str
    type: str
    created_at: datetime
    completed_at: datetime | None = None
    size_bytes: int
    verified: bool
    verification_status: str
    verified_at: datetime | None = None


class PlanSchedule(ApiModel):
    schedule_id: str
    name: str
    cron: str
    timezone: str
    enabled: bool
    backup_type: str
    last_run_at: datetime | None = None
    last_status: str | None = None
    interval_seconds: float | None = Field(
        None, description="Largest interval between two firings over the window")


class PlanRpo(ApiModel):
    window_days: int
    backups_in_window: int = Field(description="Successful backups created in the window")
    max_gap_seconds: float | None = Field(
        None, description="Largest gap between consecutive successful backups in the window")
    current_age_seconds: float | None = Field(
        None, description="Now minus the creation of the newest restorable backup")
    effective_seconds: float | None = Field(
        None, description="max(max_gap_seconds, current_age_seconds): the data a disaster "
                          "would cost at worst")
    target_seconds: float | None = Field(
        None, description="Largest interval between firings of the enabled schedules "
                          "covering the source")
    scheduled: bool
    schedules: list[PlanSchedule]
    runs_total: int = Field(description="Finished schedule runs in the window")
    runs_succeeded: int
    runs_failed: int
    runs_skipped: int = Field(description="Not started: the previous run was still going")


class PlanRto(ApiModel):
    measured_seconds: float | None = Field(
        None, description="Restore and verification time measured by the last DR test")
    test_id: str | None = None
    tested_at: datetime | None = None
    test_passed: bool | None = None
    tested_backup_id: str | None = None
    estimated_seconds: float | None = Field(
        None, description="From the latest backup's size at the assumed throughput")
    basis: str = Field(description="dr_test | size_estimate | none")


class PlanSource(ApiModel):
    order: int
    source_id: str
    source_name: str
    source_kind: str
    latest_backup: PlanBackup | None = None
    latest_is_verified: bool
    recovery_points: int
    rpo: PlanRpo
    rto: PlanRto
    warnings: list[str]


class PlanStep(ApiModel):
    order: int
    action: str = Field(description="prepare | restore | verify")
    title: str
    description: str
    source_id: str | None = None
    backup_id: str | None = None
    estimated_duration_seconds: float | None = None
    command: str | None = None


class PlanSummary(ApiModel):
    sources_total: int
    sources_with_backup: int
    sources_verified: int
    sources_tested: int
    worst_rpo_seconds: float | None = None
    total_rto_seconds: float | None = None
    ready: bool = Field(description="Every source has a backup and passed its last DR test")


class DrTestBrief(ApiModel):
    test_id: str
    status: str
    passed: bool | None = None
    started_at: datetime
    completed_at: datetime | None = None
    duration_seconds: float | None = None


class DrPlanResponse(ApiModel):
    generated_at: datetime
    window_days: int
    stale_hours: float
    summary: PlanSummary
    last_test: DrTestBrief | None = None
    sources: list[PlanSource]
    steps: list[PlanStep]
    warnings: list[str]


# --- DR tests ----------------------------------------------------------------------------------


class ScratchCheckResult(ApiModel):
    name: str
    ok: bool
    detail: str


class DrTestSourceResult(ApiModel):
    source_id: str
    source_name: str
    source_kind: str
    status: str = Field(description="passed | failed | skipped")
    ok: bool
    backup_id: str | None = None
    backup_name: str | None = None
    backup_created_at: datetime | None = None
    backup_size_bytes: int | None = None
    duration_seconds: float | None = Field(
        None, description="Measured RTO of the source: restore into scratch and checks")
    checks: list[ScratchCheckResult]
    damaged: list[str]
    rows_restored: int | None = None
    files_restored: int | None = None
    bytes_restored: int | None = None
    reason: str | None = None


class DrTestSummary(ApiModel):
    sources_total: int = 0
    passed: int = 0
    failed: int = 0
    skipped: int = 0


class DrTestJob(ApiModel):
    job_id: str
    status: JobStatus
    progress: JobProgress | None = None
    error: JobError | None = None


class DrTestResponse(ApiModel):
    test_id: str
    status: str = Field(description="pending | in_progress | completed | failed | cancelled")
    passed: bool | None = None
    created_by: str | None = None
    started_at: datetime
    completed_at: datetime | None = None
    duration_seconds: float | None = Field(
        None, description="Measured overall RTO: every source, one after another")
    summary: DrTestSummary | None = None
    sources: list[DrTestSourceResult] = Field(default_factory=list)
    error: JobError | None = None
    job: DrTestJob | None = None


class DrTestPageResponse(ApiModel):
    items: list[DrTestResponse]
    pagination: Pagination


class StartDrTestResponse(ApiModel):
    test_id: str
    job_id: str
    status: str
    message: str


# --- preview -----------------------------------------------------------------------------------


class TableImpactItem(ApiModel):
    name: str
    backup_rows: int | None = Field(None, description="None: not in the backup (dropped)")
    current_rows: int | None = Field(None, description="None: not in the source now")
    added_since: int | None = Field(None, description="Rows now the backup lacks: lost")
    changed_since: int | None = Field(None, description="Rows that differ: current lost")
    deleted_since: int | None = Field(None, description="Rows gone now: they come back")
    compared: bool = Field(description="Compared row by row (else by count)")


class FileImpactItem(ApiModel):
    files_in_backup: int
    files_current: int
    added: int = Field(description="In the backup, missing now: written back")
    changed: int = Field(description="Differ now: replaced by the backup's version")
    removed: int = Field(description="Created since the backup: not in it")
    unchanged: int
    examples: dict[str, list[str]]


class ImpactAnalysis(ApiModel):
    components_affected: list[str]
    estimated_downtime: str
    estimated_duration_seconds: float
    restore_seconds: float
    pre_recovery_snapshot_seconds: float
    estimate_basis: str = Field(description="dr_test | size_estimate")
    restart_required: bool
    data_loss_risk: str = Field(description="none | low | high")
    newer_items: int = Field(description="Rows or files newer than the backup")
    current_items: int | None = None
    pre_recovery_actions: list[str]
    post_recovery_actions: list[str]
    tables: list[TableImpactItem] | None = None
    files: FileImpactItem | None = None


class RecoveryPreviewResponse(ApiModel):
    backup_id: str
    backup_name: str
    backup_created_at: datetime
    source_id: str | None = None
    source_name: str
    source_kind: str
    recovery_type: str
    can_recover: bool
    confirmation_text: str = Field(
        description="Send exactly this as confirmation_text to POST /recovery/initiate")
    impact_analysis: ImpactAnalysis
    warnings: list[str]
    recommendations: list[str]


# --- initiate ----------------------------------------------------------------------------------


class InitiateRecoveryRequest(ApiModel):
    backup_id: str
    recovery_type: str = "full"
    create_pre_recovery_snapshot: bool = True
    module_filter: list[str] | None = None
    reason: str | None = Field(None, max_length=500)
    confirmation: bool | None = Field(None, description="Must be true")
    confirmation_text: str | None = Field(
        None, description="Exactly the preview's confirmation_text: 'RECOVER <backup_id>'")


class InitiateRecoveryResponse(ApiModel):
    status: str
    recovery_id: str = Field(description="The restore job's id")
    restore_job_id: str
    backup_id: str
    source_id: str
    source_name: str
    pre_recovery_snapshot_id: str | None = Field(
        None, description="The completed pre-recovery backup of the source")
    pre_recovery_job_id: str | None = None
    estimated_duration: str
    estimated_duration_seconds: float
    progress_url: str
    warning: str
    warnings: list[str]
    message: str
