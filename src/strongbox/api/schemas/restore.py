"""Seed 000 section 2: restore jobs and backup previews."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import Field

from strongbox.api.schemas.common import ApiModel, JobStatus


class RestoreMode(StrEnum):
    FULL = "full"
    SELECTIVE = "selective"
    MERGE = "merge"


class ConflictResolution(StrEnum):
    SKIP = "skip"
    OVERWRITE = "overwrite"
    RENAME = "rename"
    MERGE = "merge"


class RestoreTarget(ApiModel):
    project_id: str | None = Field(None, description="Not supported yet (400 NOT_SUPPORTED)")
    project_name: str | None = Field(None, description="Not supported yet (400 NOT_SUPPORTED)")
    project_name_suffix: str | None = Field(
        None, min_length=1, max_length=50,
        description='Added to names that collide (on_conflict "rename"); default "_restored"')


class RestoreOptions(ApiModel):
    overwrite_existing: bool | None = Field(
        None, description="Default false; true means on_conflict 'overwrite' unless given")
    skip_duplicates: bool | None = Field(
        None, description="Default true; rows identical to existing ones are always skipped")
    maintain_ids: bool | None = Field(None, description="Default false: restored rows get "
                                                        "new ids (see results.id_mappings)")
    validate_before_restore: bool | None = Field(None, description="Default true")
    dry_run: bool | None = Field(None, description="Default false")
    on_conflict: ConflictResolution | None = Field(None, description="Default 'skip'")


class SelectionDateRange(ApiModel):
    start: datetime
    end: datetime


class RestoreSelections(ApiModel):
    projects: list[str] | None = None
    sessions: list[str] | None = None
    messages: list[str] | None = None
    prompts: list[str] | None = None
    date_range: SelectionDateRange | None = Field(
        None, description="Adds the sessions created in the range (SQLite sources)")
    exclude_projects: list[str] | None = None
    exclude_sessions: list[str] | None = None


class CreateRestoreRequest(ApiModel):
    backup_id: str
    mode: RestoreMode
    target: RestoreTarget | None = None
    options: RestoreOptions | None = None
    selections: RestoreSelections | None = None


class ConflictInfo(ApiModel):
    type: str = Field(description="project | session | message | prompt, or the table name "
                                  "for other tables")
    existing_id: str
    backup_id: str
    existing_name: str | None = None
    backup_name: str | None = None
    resolution: str


class ValidationResults(ApiModel):
    is_valid: bool
    warnings: list[str]
    errors: list[str]
    conflicts: list[ConflictInfo]


class CreateRestoreResponse(ApiModel):
    job_id: str
    status: JobStatus
    mode: RestoreMode
    estimated_documents: int
    estimated_duration_seconds: float
    validation_results: ValidationResults | None = None
    # Extensions:
    backup_id: str
    source_id: str


class RestoreProgress(ApiModel):
    current_operation: str
    collections_processed: list[str]
    collections_remaining: list[str]
    documents_restored: int
    documents_skipped: int
    documents_failed: int
    documents_total: int | None = None
    percentage: float
    elapsed_seconds: float
    estimated_remaining_seconds: float | None = None
    current_collection: str | None = Field(None, description="Extension: the table being "
                                                             "restored")


class RestoreResults(ApiModel):
    projects_restored: int
    sessions_restored: int
    messages_restored: int
    prompts_restored: int
    total_documents: int
    skipped_duplicates: int
    failed_documents: int
    id_mappings: dict[str, str] | None = None
    # Extensions:
    id_mappings_by_table: dict[str, dict[str, str]] | None = None
    tables: dict[str, dict[str, int]] | None = None
    dry_run: bool | None = None
    safety_snapshot_id: str | None = None
    warnings: list[str] | None = None


class RestoreError(ApiModel):
    timestamp: datetime
    collection: str
    document_id: str | None = None
    error_code: str
    message: str
    details: Any = None


class RestoreJobStatus(ApiModel):
    job_id: str
    status: JobStatus
    mode: RestoreMode
    backup_id: str
    progress: RestoreProgress
    started_at: datetime
    updated_at: datetime
    completed_at: datetime | None = None
    results: RestoreResults | None = None
    errors: list[RestoreError] | None = None


class CancelRestoreResponse(ApiModel):
    job_id: str
    status: Literal["cancelled"]
    cancelled_at: datetime
    documents_restored: int
    rollback_available: bool
    message: str


class ProjectPreview(ApiModel):
    id: str = Field(alias="_id")
    name: str
    description: str | None = None
    sessions_count: int
    messages_count: int
    created_at: str
    updated_at: str
    exists_in_system: bool


class PromptPreview(ApiModel):
    id: str = Field(alias="_id")
    name: str
    category: str | None = None
    tags: list[str] | None = None
    usage_count: int
    exists_in_system: bool


class PreviewDateRange(ApiModel):
    earliest: str
    latest: str


class SessionsSummary(ApiModel):
    total: int
    by_project: dict[str, int]
    date_range: PreviewDateRange | None = None


class MessagesSummary(ApiModel):
    total: int
    by_type: dict[str, int]
    average_per_session: float


class TableSummary(ApiModel):
    """Extension: one table of the backup, whatever the database holds."""

    name: str
    rows: int
    columns: list[str]
    primary_key: list[str]
    existing_rows: int = Field(description="rows whose key the source database has now")


class PreviewContents(ApiModel):
    projects: list[ProjectPreview]
    sessions_summary: SessionsSummary
    messages_summary: MessagesSummary
    prompts: list[PromptPreview]
    tables: list[TableSummary] = Field(description="Extension: every table of the backup")


class RestoreAnalysis(ApiModel):
    can_restore: bool
    has_conflicts: bool
    conflicts_count: int
    conflicts: list[ConflictInfo] | None = None
    estimated_time_seconds: float
    required_space_bytes: int
    recommendations: list[str]


class BackupPreviewResponse(ApiModel):
    backup_id: str
    created_at: datetime
    contents: PreviewContents
    restore_analysis: RestoreAnalysis
