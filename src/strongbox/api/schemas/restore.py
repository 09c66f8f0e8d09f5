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
    project_id: str | None = Field(
        None, description="SQLite sources, selective/merge: an existing project of the target "
                          "database to restore the chosen projects' content into (their own "
                          "project rows are not restored; their sessions and everything below "
                          "them point at this project)")
    project_name: str | None = Field(
        None, description="SQLite sources, selective/merge, without project_id: restore the "
                          "one chosen project as a new project with this name")
    project_name_suffix: str | None = Field(
        None, min_length=1, max_length=50,
        description='Added to names that collide (on_conflict "rename"); default "_restored". '
                    'For files it goes before the extension: "a.txt" -> "a_restored.txt"')
    path: str | None = Field(
        None, min_length=1, max_length=4096,
        description="Extension, file-tree backups: the absolute path of the directory to "
                    "restore into (default: the source's own directory). It must lie inside "
                    "an allowed restore root, else 400 OUTSIDE_RESTORE_ROOTS")


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
    records: dict[str, list[str]] | None = Field(
        None, description="Extension: rows of any table by primary key, table name -> key "
                          "values (e.g. {\"authors\": [\"7\"]}); with their foreign-key "
                          "closure like projects and sessions")
    # Extensions for file-tree backups:
    paths: list[str] | None = Field(
        None, description="File trees: sub-paths of the backup (relative to its root "
                          "folder) to restore, folders with everything below them")
    include_patterns: list[str] | None = Field(
        None, description="File trees: globs a file must match (relative path or base "
                          "name; '*' also matches '/')")
    exclude_patterns: list[str] | None = Field(
        None, description="File trees: globs of files and folders to leave out")


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
    bytes_restored: int | None = Field(None, description="Extension: bytes written so far")
    bytes_total: int | None = Field(None, description="Extension: bytes to write, when known")


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
    conflicts_count: int | None = None
    target_path: str | None = Field(None, description="File trees: the directory restored "
                                                       "into")
    files: dict[str, int] | None = Field(
        None, description="File trees: created, overwritten, renamed, skipped, unchanged, "
                          "deleted, dirs_created, dirs_deleted, conflicts, bytes_to_write")
    file_conflicts: list[ConflictInfo] | None = Field(
        None, description="File trees: the first 100 conflicts and how they were resolved")


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


class FilesPreview(ApiModel):
    """Extension: what a file-tree backup holds, and how it compares with the source's
    directory (the fields after ``bytes`` only when ``check_conflicts``)."""

    root: str = Field(description="the name of the backup's root folder")
    files: int = Field(description="files, symlinks and hard links")
    dirs: int
    bytes: int
    target_path: str | None = None
    missing_in_target: int | None = Field(None, description="files a merge would create")
    unchanged: int | None = Field(None, description="files already there with the same "
                                                    "content")
    entries: list[dict[str, Any]] | None = Field(
        None, description="with detailed=true: every entry (path, type, size, and the "
                          "action a merge with on_conflict 'skip' would take)")


class PreviewContents(ApiModel):
    projects: list[ProjectPreview]
    sessions_summary: SessionsSummary
    messages_summary: MessagesSummary
    prompts: list[PromptPreview]
    tables: list[TableSummary] = Field(description="Extension: every table of the backup")
    files: FilesPreview | None = Field(None, description="Extension: file-tree backups")


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


class UploadStatusResponse(ApiModel):
    """Extension: ``GET /api/v1/restore/upload/{upload_id}``, an upload's seed 000
    ``UploadStatus`` while and after it happens."""

    upload_id: str
    status: str = Field(description="uploading | validating | ready | restoring | failed")
    bytes_received: int
    filename: str | None = None
    backup_id: str | None = None
    restore_job_id: str | None = None
    restore_status: str | None = Field(None, description="the restore job's status, once "
                                                         "auto_restore started one")
    error: dict[str, Any] | None = Field(None, description="code and message, if failed")
    created_at: datetime
    updated_at: datetime
