"""``/api/v1/jobs``: watch and cancel every kind of long-running operation (seed 004
"Progress monitoring" and "Cancel operations"). The per-kind job endpoints stay as they are."""

from __future__ import annotations

from fastapi import Body, Depends, Query

from strongbox.api.deps import api_router, get_services, require
from strongbox.api.presenters import job_status
from strongbox.api.schemas.backups import JobError
from strongbox.api.schemas.common import ErrorResponse, Pagination
from strongbox.api.schemas.jobs import (
    CancelOperationRequest,
    CancelOperationResponse,
    JobStatusFilter,
    OperationDetail,
    OperationProgress,
    OperationStatus,
    PagedOperationsResponse,
)
from strongbox.jobs.store import CANCELLED
from strongbox.services.container import Services
from strongbox.services.operations import JobQuery, Operation, progress_summary
from strongbox.services.principal import Principal, Role

router = api_router(prefix="/api/v1/jobs", tags=["jobs"])
CONFLICT = {409: {"model": ErrorResponse, "description":
                  "JOB_ALREADY_FINISHED or JOB_NOT_CANCELLABLE"}}


def operation_status(operation: Operation) -> OperationStatus:
    return OperationStatus.model_validate(_fields(operation))


def _fields(operation: Operation) -> dict[str, object]:
    job = operation.job
    return {
        "job_id": job.id, "kind": job.kind, "status": job_status(job),
        "cancelled": job.status == CANCELLED, "cancel_requested": operation.cancel_requested,
        "cancellable": operation.cancellable, "backup_id": job.backup_id,
        "created_by": job.created_by, "created_at": job.created_at,
        "started_at": job.started_at, "updated_at": job.updated_at,
        "completed_at": job.completed_at,
        "progress": OperationProgress(**progress_summary(job), details=dict(job.progress)),
        "error": JobError.model_validate(job.error) if job.error else None,
    }


@router.get("", response_model=PagedOperationsResponse, response_model_exclude_none=True,
            summary="List jobs of every kind (newest first)")
def list_jobs(page: int = Query(1, ge=1), size: int = Query(20, ge=1, le=100),
              kind: str | None = Query(None, max_length=30,
                                       description="backup, restore, verify, cleanup, ..."),
              status: JobStatusFilter | None = Query(None),
              active: bool = Query(False, description="Only pending and running jobs"),
              principal: Principal = Depends(require(Role.VIEWER)),
              services: Services = Depends(get_services)) -> PagedOperationsResponse:
    result = services.operations.list(principal.tenant, JobQuery(
        page=page, size=size, kind=kind, status=status.value if status else None,
        active=active))
    return PagedOperationsResponse(
        items=[operation_status(item) for item in result.items],
        pagination=Pagination.of(result.total_items, result.total_pages, page, size))


@router.get("/{job_id}", response_model=OperationDetail, response_model_exclude_none=True,
            summary="One job of any kind, with its progress")
def get_job(job_id: str, principal: Principal = Depends(require(Role.VIEWER)),
            services: Services = Depends(get_services)) -> OperationDetail:
    operation = services.operations.get(principal.tenant, job_id)
    return OperationDetail.model_validate({**_fields(operation),
                                           "result": operation.job.result})


@router.post("/{job_id}/cancel", response_model=CancelOperationResponse,
             response_model_exclude_none=True, responses=CONFLICT,  # type: ignore[arg-type]
             summary="Cancel a job of any kind (pending: at once; running: at its next "
                     "safe point)")
def cancel_job(job_id: str, body: CancelOperationRequest | None = Body(None),
               principal: Principal = Depends(require(Role.OPERATOR)),
               services: Services = Depends(get_services)) -> CancelOperationResponse:
    done = services.operations.cancel(principal, job_id, body.reason if body else None)
    operations = services.operations
    job = done.job
    return CancelOperationResponse(
        job_id=job.id, kind=job.kind, status="cancelled" if done.cancelled else "cancelling",
        partial_data_cleaned=done.cancelled, can_restart=done.cancelled,
        cancelled_at=job.completed_at, message=done.message,
        job=operation_status(operations.get(principal.tenant, job.id)))
