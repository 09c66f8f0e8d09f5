"""Seed 000 section 2.2: uploading a backup archive."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field

from strongbox.api.schemas.backups import BackupContents
from strongbox.api.schemas.common import ApiModel


class UploadStatus(StrEnum):
    UPLOADING = "uploading"
    VALIDATING = "validating"
    READY = "ready"
    RESTORING = "restoring"
    FAILED = "failed"


class UploadRestoreOptions(ApiModel):
    """``restore_options``: a JSON string of seed 000 ``RestoreOptions``."""

    overwrite_existing: bool | None = None
    skip_duplicates: bool | None = None
    maintain_ids: bool | None = None
    validate_before_restore: bool | None = None
    dry_run: bool | None = None
    on_conflict: Literal["skip", "overwrite", "rename", "merge"] | None = None


class FileInfo(ApiModel):
    filename: str
    size_bytes: int
    mime_type: str
    checksum: str = Field(description="sha256 of the uploaded bytes")


class UploadValidation(ApiModel):
    format_valid: bool
    version: str
    compatibility: Literal["compatible", "needs_migration", "incompatible"]
    contents_summary: BackupContents | None = None
    errors: list[str] | None = None
    warnings: list[str] | None = None


class UploadRestoreResponse(ApiModel):
    upload_id: str
    backup_id: str | None = None
    status: UploadStatus
    file_info: FileInfo
    validation: UploadValidation
    restore_job_id: str | None = None
