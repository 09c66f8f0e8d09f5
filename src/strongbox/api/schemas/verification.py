"""Backup verification (seeds 001 "Verify Backup" and 002 ``POST /backups/{id}/verify``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from strongbox.api.schemas.backups import JobError, JobProgress
from strongbox.api.schemas.common import ApiModel, JobStatus

CheckState = Literal["passed", "failed", "skipped", "warning"]


class VerifyBackupRequest(ApiModel):
    deep_verification: bool = Field(False, description="read, decrypt, decompress and hash "
                                    "every blob of the backup (else the trees and the first "
                                    "chunk of every table and file)")
    test_restore: bool = Field(False, description="also restore into a scratch target and "
                               "run the source's own integrity checks there")
    components: list[Literal["database", "files", "configurations"]] | None = Field(
        None, description="seed 001; accepted for compatibility: a Strongbox backup holds "
        "one source, and all of it is verified")


class VerifyBackupResponse(ApiModel):
    job_id: str
    backup_id: str
    status: JobStatus
    deep_verification: bool
    test_restore: bool
    created_at: datetime
    message: str


class VerificationCheck(ApiModel):
    name: str = Field(description="checksum, metadata, completeness, decryption, "
                      "decompression, file_integrity or test_restore")
    status: CheckState
    detail: str


class VerificationResult(ApiModel):
    """Seed 001's verify response (``verification_status``, ``checks_performed``,
    ``components_verified``, ``issues``, ``recommendations``) and seed 002's
    (``verified``, ``errors``), with Strongbox's details."""

    backup_id: str
    verification_status: Literal["passed", "failed"]
    verified: bool
    verified_at: datetime
    verification_duration_seconds: float
    mode: Literal["quick", "deep"]
    deep_verification: bool
    test_restore: bool
    checks_performed: dict[str, CheckState]
    checks: list[VerificationCheck]
    components_verified: dict[str, dict[str, Any]]
    issues: list[str]
    errors: list[str]
    warnings: list[str]
    damaged: list[str] = Field(description="tables (database backups) or file paths whose "
                               "data is damaged or missing")
    corrupted: bool
    blobs_total: int
    blobs_checked: int
    bytes_checked: int
    recommendations: list[str]
    test_restore_result: dict[str, Any] | None = None


class VerifyJobStatus(ApiModel):
    job_id: str
    backup_id: str | None = None
    status: JobStatus
    deep_verification: bool
    test_restore: bool
    progress: JobProgress
    created_at: datetime
    started_at: datetime | None = None
    updated_at: datetime
    completed_at: datetime | None = None
    result: VerificationResult | None = None
    error: JobError | None = None


class ValidationDetails(ApiModel):
    """``backups.validation``: seed 000 ``validation_status`` and the checks behind it."""

    validated_at: datetime
    is_valid: bool
    errors: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    mode: str | None = None
    deep_verification: bool | None = None
    test_restore: bool | None = None
    checks: list[VerificationCheck] = Field(default_factory=list)
    checks_performed: dict[str, CheckState] = Field(default_factory=dict)
    damaged: list[str] = Field(default_factory=list)
    duration_seconds: float | None = None
    job_id: str | None = None


class BackupVerificationResponse(ApiModel):
    backup_id: str
    backup_status: str
    verified_at: datetime | None = None
    validation_status: ValidationDetails | None = None
    last_job: VerifyJobStatus | None = None
