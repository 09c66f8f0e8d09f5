"""``/api/v1/restore``: seed 000 section 2 (create, follow, cancel, preview)."""

from __future__ import annotations

from fastapi import Depends, Query

from strongbox.api.deps import api_router, get_services, require
from strongbox.api.presenters import (
    backup_preview,
    cancel_restore_response,
    create_restore_response,
    restore_job_status,
)
from strongbox.api.schemas.common import ErrorResponse
from strongbox.api.schemas.restore import (
    BackupPreviewResponse,
    CancelRestoreResponse,
    CreateRestoreRequest,
    CreateRestoreResponse,
    FilesPreview,
    RestoreJobStatus,
)
from strongbox.services.container import Services
from strongbox.services.principal import Principal, Role
from strongbox.services.restore import NewRestore

router = api_router(prefix="/api/v1/restore", tags=["restore"])
CONFLICT = {409: {"model": ErrorResponse, "description":
                  "RESTORE_IN_PROGRESS, BACKUP_NOT_COMPLETED or JOB_ALREADY_FINISHED"}}


def new_restore(body: CreateRestoreRequest) -> NewRestore:
    selections = body.selections
    options = body.options
    target = body.target
    chosen = {name: list(getattr(selections, name) or [])
              for name in ("projects", "sessions", "messages", "prompts")} if selections else {}
    if selections is not None and selections.records:
        for table, keys in selections.records.items():
            chosen[table] = [*chosen.get(table, []), *keys]
    excluded = {name: list(getattr(selections, name) or [])
                for name in ("exclude_projects", "exclude_sessions")} if selections else {}
    spec = NewRestore(backup_id=body.backup_id, mode=body.mode.value, selections=chosen,
                      exclude=excluded)
    if selections is not None:
        spec.paths = list(selections.paths or [])
        spec.include_patterns = list(selections.include_patterns or [])
        spec.exclude_patterns = list(selections.exclude_patterns or [])
    if selections is not None and selections.date_range is not None:
        spec.date_range = selections.date_range.model_dump(mode="json")
    if options is not None:
        spec.on_conflict = options.on_conflict.value if options.on_conflict else None
        for name in ("overwrite_existing", "maintain_ids", "validate_before_restore",
                     "dry_run"):
            value = getattr(options, name)
            if value is not None:
                setattr(spec, name, value)
    if target is not None:
        spec.target_project_id = target.project_id
        spec.target_project_name = target.project_name
        if target.project_name_suffix is not None:
            spec.name_suffix = target.project_name_suffix
        spec.target_path = target.path
    return spec


@router.post("", status_code=202, response_model=CreateRestoreResponse,
             response_model_exclude_none=True, responses=CONFLICT,  # type: ignore[arg-type]
             summary="Restore a backup (starts a job)")
def create_restore(body: CreateRestoreRequest,
                   principal: Principal = Depends(require(Role.OPERATOR)),
                   services: Services = Depends(get_services)) -> CreateRestoreResponse:
    return create_restore_response(services.restores.create(principal, new_restore(body)))


@router.get("/jobs/{job_id}", response_model=RestoreJobStatus,
            response_model_exclude_none=True, summary="Restore job status")
def restore_job(job_id: str, principal: Principal = Depends(require(Role.VIEWER)),
                services: Services = Depends(get_services)) -> RestoreJobStatus:
    return restore_job_status(services.restores.job(principal.tenant, job_id))


@router.post("/jobs/{job_id}/cancel", response_model=CancelRestoreResponse,
             responses=CONFLICT,  # type: ignore[arg-type]
             summary="Cancel a restore job (rolls back what it wrote)")
def cancel_restore(job_id: str, principal: Principal = Depends(require(Role.OPERATOR)),
                   services: Services = Depends(get_services)) -> CancelRestoreResponse:
    return cancel_restore_response(services.restores.cancel(principal, job_id))


@router.get("/preview/{backup_id}", response_model=BackupPreviewResponse,
            response_model_exclude_none=True, summary="Preview a backup before restoring")
def preview_backup(backup_id: str, detailed: bool = Query(False),
                   check_conflicts: bool = Query(True),
                   principal: Principal = Depends(require(Role.VIEWER)),
                   services: Services = Depends(get_services)) -> BackupPreviewResponse:
    preview = services.restore_preview.preview(
        principal.tenant, backup_id, detailed=detailed, check_conflicts=check_conflicts)
    response = backup_preview(preview)
    if preview.files is not None:  # the file-tree extension (the presenter shows tables)
        response.contents.files = FilesPreview.model_validate(preview.files)
    return response
