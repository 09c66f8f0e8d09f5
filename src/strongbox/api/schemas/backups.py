"""Seed 000 section 1: backups and backup jobs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import Field

from strongbox.api.schemas.common import (
    ApiModel,
    BackupStatus,
    BackupType,
    JobStatus,
    Pagination,
)
from strongbox.catalog.types import utcnow
from strongbox.services.errors import FieldError, InvalidDateRangeFields, ValidationFailed
from strongbox.services.filters import has_any

NAME_PATTERN = r"^[a-zA-Z0-9\s\-_]+$"
MessageCount = Annotated[int, Field(ge=1, le=10000)]


class DateRange(ApiModel):
    start: datetime
    end: datetime


class BackupFilters(ApiModel):
    projects: list[str] | None = None
    sessions: list[str] | None = None
    date_range: DateRange | None = None
    include_patterns: list[str] | None = None
    exclude_patterns: list[str] | None = None
    min_message_count: MessageCount | None = None
    max_message_count: MessageCount | None = None


class BackupNotification(ApiModel):
    """Seed 001 ``notification``: extra targets for this backup's events only."""

    email: list[str] | None = Field(
        None, max_length=20, description="Addresses mailed this backup's events (needs SMTP)")
    webhook: str | None = Field(
        None, max_length=2000, description="An http(s) URL POSTed this backup's events "
                                           "(unsigned, like the settings' webhook_url)")


class BackupOptions(ApiModel):
    compress: bool | None = Field(None, description="Default: true")
    compression_level: int | None = Field(
        None, ge=1, le=9, description="1-9; default: the tenant's settings (6)")
    encrypt: bool | None = Field(
        None, description="Informational: encryption is a property of the repository")
    include_metadata: bool | None = None
    include_analytics: bool | None = None
    split_size_mb: int | None = Field(None, ge=100, le=5000)
    # Extensions from seed 001's "Create Backup" (docs/api.md "Extensions and deviations").
    verify: bool | None = Field(
        None, description="Extension (seed 001): verify the backup when it completes "
                          "(a quick `verify` job); default: false")
    retention_days: int | None = Field(
        None, ge=1, le=36500, description="Extension (seed 001): the backup expires this "
        "many days after it was created and the next cleanup deletes it; default: no expiry")
    notification: BackupNotification | None = Field(
        None, description="Extension (seed 001): also tell these targets about this "
                          "backup's started/completed/failed/verified events")


# Seed 001 sends these three at the top level of the request; seed 000's place for per-backup
# behaviour is ``options``, where they are stored and shown.
SEED_001_OPTIONS = ("verify", "retention_days", "notification")


class CreateBackupRequest(ApiModel):
    name: str = Field(min_length=3, max_length=100, pattern=NAME_PATTERN)
    description: str | None = Field(None, max_length=500)
    type: BackupType
    filters: BackupFilters | None = None
    options: BackupOptions | None = None
    source_id: str | None = Field(
        None, description="Extension: the source to back up; default: the tenant's first "
                          "sqlite source")
    verify: bool | None = Field(None, description="Seed 001 spelling of options.verify")
    retention_days: int | None = Field(
        None, ge=1, le=36500, description="Seed 001 spelling of options.retention_days")
    notification: BackupNotification | None = Field(
        None, description="Seed 001 spelling of options.notification")

    def merged_options(self) -> dict[str, Any] | None:
        """``options`` with seed 001's top-level fields moved in (the one stored shape)."""
        options = self.options.model_dump(mode="json", exclude_none=True) if self.options \
            else {}
        for name in SEED_001_OPTIONS:
            value = getattr(self, name)
            if value is not None:
                options[name] = value.model_dump(mode="json", exclude_none=True) \
                    if isinstance(value, ApiModel) else value
        return options or None


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def check_create_backup(request: CreateBackupRequest) -> None:
    """The rules of section 1.1 that span fields (single fields are checked by the schema)."""
    errors: list[FieldError] = []
    if not request.name.strip():
        errors.append(FieldError("name", "the name must not be blank", "INVALID_FORMAT",
                                 request.name))
    filters = request.filters
    if filters is not None and filters.date_range is not None:
        start, end = _aware(filters.date_range.start), _aware(filters.date_range.end)
        date_errors = []
        if start >= end:
            date_errors.append(FieldError("filters.date_range.start", "start must be before "
                                          "end", "INVALID_DATE_RANGE", start.isoformat()))
        if end > utcnow():
            date_errors.append(FieldError("filters.date_range.end", "end must not be in the "
                                          "future", "DATE_IN_FUTURE", end.isoformat()))
        if date_errors:
            raise InvalidDateRangeFields("the date range is invalid", errors + date_errors)
    if (filters is not None and filters.min_message_count is not None
            and filters.max_message_count is not None
            and filters.min_message_count > filters.max_message_count):
        errors.append(FieldError("filters.min_message_count", "min_message_count must not "
                                 "exceed max_message_count", "OUT_OF_RANGE",
                                 filters.min_message_count))
    if request.options is not None:
        for name in SEED_001_OPTIONS:
            top, inner = getattr(request, name), getattr(request.options, name)
            if top is not None and inner is not None and top != inner:
                errors.append(FieldError(name, f"{name} and options.{name} differ: give one",
                                         "CONFLICT"))
    if request.type == BackupType.SELECTIVE and not has_any(
            filters.model_dump(mode="json", exclude_none=True) if filters else None):
        errors.append(FieldError("filters", "a selective backup needs at least one filter",
                                 "FILTER_REQUIRED"))
    if errors:
        raise ValidationFailed("request validation failed", errors)


class CreateBackupResponse(ApiModel):
    job_id: str
    backup_id: str
    status: JobStatus
    created_at: datetime
    estimated_size_bytes: int | None = None
    estimated_duration_seconds: float | None = None
    message: str
    # Extensions (docs/retention-cleanup.md): the type recorded (an incremental or
    # differential without a parent is taken as full) and the parent it builds on.
    type: BackupType | None = None
    parent_id: str | None = None


class ContentsDateRange(ApiModel):
    earliest: datetime
    latest: datetime


class BackupContents(ApiModel):
    projects_count: int = 0
    sessions_count: int = 0
    messages_count: int = 0
    prompts_count: int = 0
    ai_settings_count: int = 0
    total_documents: int = 0
    date_range: ContentsDateRange | None = None


class BackupMetadata(ApiModel):
    id: str = Field(alias="_id")
    name: str
    description: str | None = None
    filename: str
    filepath: str
    created_at: datetime
    created_by: str | None = None
    size_bytes: int
    compressed_size_bytes: int | None = None
    type: BackupType
    status: BackupStatus
    filters: BackupFilters | None = None
    contents: BackupContents
    checksum: str
    version: str
    download_url: str | None = None
    can_restore: bool
    error_message: str | None = None
    # Extensions to seed 000 (docs/api.md):
    source_id: str | None = None
    job_id: str | None = None
    completed_at: datetime | None = None
    parent_id: str | None = Field(
        None, description="Extension: the backup an incremental/differential one builds on")
    protected: bool | None = Field(
        None, description="Extension: pinned; nothing deletes it (docs/retention-cleanup.md)")
    protected_reason: str | None = None
    schedule_id: str | None = Field(
        None, description="Extension: the schedule that made it (docs/schedules.md)")
    tags: list[str] | None = Field(
        None, description="Extension: labels (configuration snapshots, pre-restore, ...)")
    expires_at: datetime | None = Field(
        None, description="Extension: created_at + options.retention_days; the next cleanup "
                          "after it deletes the backup (docs/retention-cleanup.md)")


class ProtectBackupRequest(ApiModel):
    reason: str = Field(min_length=1, max_length=500, description="Why it must be kept")


class UnprotectBackupRequest(ApiModel):
    reason: str | None = Field(None, max_length=480)


class Encryption(ApiModel):
    enabled: bool
    algorithm: str | None = None
    key_id: str | None = None


class Compression(ApiModel):
    enabled: bool
    algorithm: str
    level: int
    original_size_bytes: int
    compressed_size_bytes: int
    compression_ratio: float


class RestoreAttempt(ApiModel):
    id: str = Field(alias="_id")
    restored_at: datetime
    restored_by: str
    status: str
    documents_restored: int
    error_message: str | None = None


class ValidationStatus(ApiModel):
    validated_at: datetime
    is_valid: bool
    errors: list[str] | None = None
    warnings: list[str] | None = None


class BackupDetailResponse(BackupMetadata):
    storage_location: str
    encryption: Encryption | None = None
    compression: Compression | None = None
    restore_history: list[RestoreAttempt]
    validation_status: ValidationStatus | None = None


class BackupsSummary(ApiModel):
    total_size_bytes: int
    total_backups: int
    backups_by_type: dict[BackupType, int]
    oldest_backup: datetime | None = None
    newest_backup: datetime | None = None


class PagedBackupsResponse(ApiModel):
    items: list[BackupMetadata]
    pagination: Pagination
    summary: BackupsSummary


class DeleteBackupResponse(ApiModel):
    message: str
    backup_id: str
    deleted_at: datetime
    freed_bytes: int
    files_deleted: int


class JobProgress(ApiModel):
    current_step: str
    total_steps: int
    completed_steps: int
    percentage: float
    current_operation: str
    documents_processed: int
    documents_total: int | None = None
    bytes_written: int
    elapsed_seconds: float
    estimated_remaining_seconds: float | None = None


class JobError(ApiModel):
    message: str
    code: str
    details: Any = None


class BackupJobStatus(ApiModel):
    job_id: str
    backup_id: str | None = None
    status: JobStatus
    progress: JobProgress
    started_at: datetime
    updated_at: datetime
    completed_at: datetime | None = None
    error: JobError | None = None


def filters_model(filters: dict[str, Any] | None) -> BackupFilters | None:
    return BackupFilters.model_validate(filters) if filters else None
