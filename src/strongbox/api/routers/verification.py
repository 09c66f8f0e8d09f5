"""Backup verification: start a ``verify`` job, follow it, read a backup's last result.

Under the ``/api/v1/backups`` prefix beside the backups router; none of these paths can be
taken for ``GET /api/v1/backups/{backup_id}`` (they have more segments).
"""

from __future__ import annotations

from typing import Any

from fastapi import Body, Depends

from strongbox.api.deps import api_router, get_services, require
from strongbox.api.presenters import job_progress, job_status
from strongbox.api.schemas.backups import JobError
from strongbox.api.schemas.common import ErrorResponse
from strongbox.api.schemas.verification import (
    BackupVerificationResponse,
    ValidationDetails,
    VerificationResult,
    VerifyBackupRequest,
    VerifyBackupResponse,
    VerifyJobStatus,
)
from strongbox.jobs.store import JobView
from strongbox.services.container import Services
from strongbox.services.principal import Principal, Role
from strongbox.services.verification import STEPS, VerifyOptions

router = api_router(prefix="/api/v1/backups", tags=["verification"])
CONFLICT = {409: {"model": ErrorResponse, "description":
                  "BACKUP_NOT_COMPLETED (pending, running, failed or being deleted) or "
                  "VERIFICATION_IN_PROGRESS"}}


def verify_job_status(job: JobView) -> VerifyJobStatus:
    result = job.result if job.status == "completed" else None
    return VerifyJobStatus(
        job_id=job.id, backup_id=job.backup_id, status=job_status(job),  # type: ignore[arg-type]
        deep_verification=bool(job.params.get("deep")),
        test_restore=bool(job.params.get("test_restore")),
        progress=job_progress(job, len(STEPS)), created_at=job.created_at,
        started_at=job.started_at, updated_at=job.updated_at, completed_at=job.completed_at,
        result=VerificationResult.model_validate(result) if result else None,
        error=JobError.model_validate(job.error) if job.error else None)


@router.post("/{backup_id}/verify", status_code=202, response_model=VerifyBackupResponse,
             responses=CONFLICT,  # type: ignore[arg-type]
             summary="Verify a backup (starts a job of kind verify)")
def verify_backup(backup_id: str, body: VerifyBackupRequest | None = Body(None),
                  principal: Principal = Depends(require(Role.OPERATOR)),
                  services: Services = Depends(get_services)) -> VerifyBackupResponse:
    body = body or VerifyBackupRequest()
    options = VerifyOptions(deep=body.deep_verification, test_restore=body.test_restore)
    job = services.verification.start(principal, backup_id, options)
    return VerifyBackupResponse(
        job_id=job.id, backup_id=backup_id, status=job_status(job),  # type: ignore[arg-type]
        deep_verification=options.deep, test_restore=options.test_restore,
        created_at=job.created_at,
        message=f"{options.mode} verification started"
                + (" with a test restore" if options.test_restore else ""))


@router.get("/verify/jobs/{job_id}", response_model=VerifyJobStatus,
            response_model_exclude_none=True, summary="Verification job status and result")
def verify_job(job_id: str, principal: Principal = Depends(require(Role.VIEWER)),
               services: Services = Depends(get_services)) -> VerifyJobStatus:
    return verify_job_status(services.verification.job(principal.tenant, job_id))


@router.get("/{backup_id}/verification", response_model=BackupVerificationResponse,
            response_model_exclude_none=True,
            summary="A backup's last verification: every check, what is damaged")
def backup_verification(backup_id: str, principal: Principal = Depends(require(Role.VIEWER)),
                        services: Services = Depends(get_services)
                        ) -> BackupVerificationResponse:
    backup, job = services.verification.last_result(principal.tenant, backup_id)
    validation: dict[str, Any] | None = backup.validation
    return BackupVerificationResponse(
        backup_id=backup.id, backup_status=backup.status, verified_at=backup.verified_at,
        validation_status=ValidationDetails.model_validate(validation) if validation else None,
        last_job=verify_job_status(job) if job is not None else None)
