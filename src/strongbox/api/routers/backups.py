"""``/api/v1/backups``: seed 000 sections 1 and 4."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import Depends, Query

from strongbox.api.deps import api_router, get_services, require
from strongbox.api.presenters import backup_detail, backup_job_status, backup_metadata
from strongbox.api.schemas.backups import (
    BackupDetailResponse,
    BackupJobStatus,
    BackupMetadata,
    BackupsSummary,
    CreateBackupRequest,
    CreateBackupResponse,
    DeleteBackupResponse,
    PagedBackupsResponse,
    ProtectBackupRequest,
    UnprotectBackupRequest,
    check_create_backup,
)
from strongbox.api.schemas.common import BackupStatus, BackupType, Pagination
from strongbox.api.schemas.statistics import BackupStatistics
from strongbox.services.backup_job import STEPS
from strongbox.services.backups import BackupQuery, NewBackup
from strongbox.services.container import Services
from strongbox.services.errors import FieldError, InvalidDateRangeFields
from strongbox.services.principal import Principal, Role

router = api_router(prefix="/api/v1/backups", tags=["backups"])


@router.post("", status_code=202, response_model=CreateBackupResponse,
             response_model_exclude_none=True, summary="Create a backup (starts a job)")
def create_backup(body: CreateBackupRequest,
                  principal: Principal = Depends(require(Role.OPERATOR)),
                  services: Services = Depends(get_services)) -> CreateBackupResponse:
    check_create_backup(body)
    options = body.merged_options()
    services.notifications.check_backup_targets(options)
    created = services.backups.create(principal, NewBackup(
        name=body.name, type=body.type.value, description=body.description,
        filters=body.filters.model_dump(mode="json", exclude_none=True) if body.filters
        else None,
        options=options,
        source_id=body.source_id))
    message = f"backup job queued for source {created.backup.source_name!r}"
    if created.note:
        message += f"; {created.note}"
    return CreateBackupResponse(
        job_id=created.job.id, backup_id=created.backup.id, status="pending",  # type: ignore[arg-type]
        created_at=created.backup.created_at,
        estimated_size_bytes=created.estimated_size_bytes,
        estimated_duration_seconds=created.estimated_duration_seconds,
        message=message, type=created.backup.type,  # type: ignore[arg-type]
        parent_id=created.backup.parent_id)


@router.get("", response_model=PagedBackupsResponse, response_model_exclude_none=True,
            summary="List backups")
def list_backups(page: int = Query(1, ge=1), size: int = Query(20, ge=1, le=100),
                 sort: str = Query("created_at,desc", description='"field,direction"'),
                 type: BackupType | None = Query(None),  # the contract's name
                 status: BackupStatus | None = Query(None),
                 created_after: datetime | None = Query(None),
                 created_before: datetime | None = Query(None),
                 min_size: int | None = Query(None, ge=0),
                 max_size: int | None = Query(None, ge=0),
                 search: str | None = Query(None, max_length=200),
                 principal: Principal = Depends(require(Role.VIEWER)),
                 services: Services = Depends(get_services)) -> PagedBackupsResponse:
    if created_after and created_before and created_after > created_before:
        raise InvalidDateRangeFields("invalid date range", [FieldError(
            "created_after", "created_after must not be after created_before",
            "INVALID_DATE_RANGE", created_after.isoformat())])
    result = services.backups.list(principal.tenant, BackupQuery(
        page=page, size=size, sort=sort, type=type.value if type else None,
        status=status.value if status else None, created_after=created_after,
        created_before=created_before, min_size=min_size, max_size=max_size, search=search))
    return PagedBackupsResponse(
        items=[backup_metadata(b) for b in result.items],
        pagination=Pagination.of(result.total_items, result.total_pages, page, size),
        summary=BackupsSummary.model_validate(result.summary))


@router.get("/statistics", response_model=BackupStatistics, response_model_exclude_none=True,
            summary="Backup statistics")
def backup_statistics(period: Literal["day", "week", "month", "year"] = Query("month"),
                      from_: datetime | None = Query(None, alias="from"),
                      to: datetime | None = Query(None),
                      principal: Principal = Depends(require(Role.VIEWER)),
                      services: Services = Depends(get_services)) -> BackupStatistics:
    return BackupStatistics.model_validate(
        services.statistics.compute(principal.tenant, period, from_, to))


@router.get("/jobs/{job_id}", response_model=BackupJobStatus, response_model_exclude_none=True,
            summary="Backup job status")
def backup_job(job_id: str, principal: Principal = Depends(require(Role.VIEWER)),
               services: Services = Depends(get_services)) -> BackupJobStatus:
    return backup_job_status(services.backups.job(principal.tenant, job_id), len(STEPS))


@router.get("/{backup_id}", response_model=BackupDetailResponse,
            response_model_exclude_none=True, summary="Backup details")
def get_backup(backup_id: str, principal: Principal = Depends(require(Role.VIEWER)),
               services: Services = Depends(get_services)) -> BackupDetailResponse:
    backup = services.backups.get(principal.tenant, backup_id)
    return backup_detail(backup, services.backups.restore_history(principal.tenant, backup.id))


@router.delete("/{backup_id}", response_model=DeleteBackupResponse,
               summary="Delete a backup (forgets its snapshot)")
def delete_backup(backup_id: str, force: bool = Query(False),
                  reason: str | None = Query(
                      None, max_length=480, description="Seed 001: required with force=true "
                      "to delete a protected backup"),
                  principal: Principal = Depends(require(Role.ADMIN)),
                  services: Services = Depends(get_services)) -> DeleteBackupResponse:
    deleted = services.backups.delete(principal, backup_id, force=force, reason=reason)
    return DeleteBackupResponse(message=deleted.message, backup_id=deleted.backup_id,
                                deleted_at=deleted.deleted_at, freed_bytes=deleted.freed_bytes,
                                files_deleted=deleted.files_deleted)


@router.post("/{backup_id}/protect", response_model=BackupMetadata,
             response_model_exclude_none=True, summary="Protect (pin) a backup")
def protect_backup(backup_id: str, body: ProtectBackupRequest,
                   principal: Principal = Depends(require(Role.OPERATOR)),
                   services: Services = Depends(get_services)) -> BackupMetadata:
    """No retention rule, cleanup or DELETE removes a protected backup (DELETE only with
    force=true and a reason)."""
    return backup_metadata(services.backups.protect(principal, backup_id, body.reason))


@router.post("/{backup_id}/unprotect", response_model=BackupMetadata,
             response_model_exclude_none=True, summary="Lift a backup's protection")
def unprotect_backup(backup_id: str, body: UnprotectBackupRequest | None = None,
                     principal: Principal = Depends(require(Role.ADMIN)),
                     services: Services = Depends(get_services)) -> BackupMetadata:
    reason = body.reason if body else None
    return backup_metadata(services.backups.unprotect(principal, backup_id, reason))
