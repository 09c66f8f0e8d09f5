"""``/api/v1/snapshots``: configuration snapshots (seed 004 section 3; docs/config-snapshots.md)."""

from __future__ import annotations

from fastapi import Depends, Query

from strongbox.api.deps import api_router, get_services, require
from strongbox.api.schemas.common import Pagination
from strongbox.api.schemas.snapshots import (
    ConfigSnapshotModel,
    CreateSnapshotRequest,
    CreateSnapshotResponse,
    DeleteSnapshotResponse,
    RestoreSnapshotRequest,
    RestoreSnapshotResponse,
    SnapshotComponentModel,
    SnapshotJobStatus,
    SnapshotList,
)
from strongbox.jobs.store import JobView
from strongbox.services.config_snapshots import NewSnapshot, SnapshotRestoreSpec, SnapshotView
from strongbox.services.container import Services
from strongbox.services.errors import Forbidden
from strongbox.services.principal import Principal, Role

router = api_router(prefix="/api/v1/snapshots", tags=["snapshots"])


def snapshot_model(view: SnapshotView) -> ConfigSnapshotModel:
    return ConfigSnapshotModel.model_validate({
        "_id": view.id, "name": view.name, "description": view.description,
        "tags": view.tags, "status": view.status, "can_restore": view.can_restore,
        "created_at": view.created_at, "completed_at": view.completed_at,
        "created_by": view.created_by, "size_bytes": view.size_bytes,
        "pre_restore_of": view.pre_restore_of,
        "components": [SnapshotComponentModel.model_validate(c, from_attributes=True)
                       for c in view.components]})


def job_status(job: JobView) -> SnapshotJobStatus:
    return SnapshotJobStatus(
        job_id=job.id, snapshot_id=job.params["snapshot_id"], status=job.status,  # type: ignore[arg-type]
        pre_restore_snapshot_id=job.params.get("pre_restore_snapshot_id"),
        progress=job.progress, result=job.result, error=job.error, created_at=job.created_at,
        started_at=job.started_at, completed_at=job.completed_at)


@router.post("", status_code=202, response_model=CreateSnapshotResponse,
             response_model_exclude_none=True,
             summary="Take a configuration snapshot (starts a backup job per component)")
def create_snapshot(body: CreateSnapshotRequest,
                    principal: Principal = Depends(require(Role.OPERATOR)),
                    services: Services = Depends(get_services)) -> CreateSnapshotResponse:
    if body.paths and not principal.allows(Role.ADMIN):
        # A path registers a source and reads any file the server can: as POST /sources.
        raise Forbidden("capturing server paths needs the admin role; operators capture "
                        "registered sources")
    created = services.config_snapshots.create(principal, NewSnapshot(
        name=body.name, description=body.description, tags=list(body.tags),
        sources=list(body.sources), paths=list(body.paths)))
    view = created.snapshot
    return CreateSnapshotResponse(
        snapshot_id=view.id, status=view.status, name=view.name,  # type: ignore[arg-type]
        job_ids=created.job_ids, snapshot=snapshot_model(view),
        message=f"snapshot {view.name!r} started: {len(view.components)} component(s)")


@router.get("", response_model=SnapshotList, response_model_exclude_none=True,
            summary="List configuration snapshots (newest first)")
def list_snapshots(tag: str | None = Query(None, max_length=50,
                                           description="Only snapshots with this tag"),
                   page: int = Query(1, ge=1, le=1_000_000), size: int = Query(20, ge=1, le=100),
                   principal: Principal = Depends(require(Role.VIEWER)),
                   services: Services = Depends(get_services)) -> SnapshotList:
    found = services.config_snapshots.list(principal.tenant, tag=tag, page=page, size=size)
    return SnapshotList(items=[snapshot_model(v) for v in found.items],
                        pagination=Pagination.of(found.total_items, found.total_pages, page,
                                                 size))


@router.get("/jobs/{job_id}", response_model=SnapshotJobStatus,
            response_model_exclude_none=True, summary="Snapshot restore job status")
def snapshot_job(job_id: str, principal: Principal = Depends(require(Role.VIEWER)),
                 services: Services = Depends(get_services)) -> SnapshotJobStatus:
    return job_status(services.config_snapshots.job(principal.tenant, job_id))


@router.get("/{snapshot_id}", response_model=ConfigSnapshotModel,
            response_model_exclude_none=True, summary="Show a configuration snapshot")
def get_snapshot(snapshot_id: str, principal: Principal = Depends(require(Role.VIEWER)),
                 services: Services = Depends(get_services)) -> ConfigSnapshotModel:
    return snapshot_model(services.config_snapshots.get(principal.tenant, snapshot_id))


@router.post("/{snapshot_id}/restore", status_code=202, response_model=RestoreSnapshotResponse,
             response_model_exclude_none=True,
             summary="Restore a snapshot (after a pre-restore snapshot of the current state)")
def restore_snapshot(snapshot_id: str, body: RestoreSnapshotRequest | None = None,
                     principal: Principal = Depends(require(Role.OPERATOR)),
                     services: Services = Depends(get_services)) -> RestoreSnapshotResponse:
    body = body or RestoreSnapshotRequest()
    started = services.config_snapshots.restore(principal, snapshot_id, SnapshotRestoreSpec(
        components=body.components, create_backup=body.create_backup, reason=body.reason,
        remove_new_files=body.remove_new_files))
    pre = started.pre_restore.snapshot.id if started.pre_restore else None
    return RestoreSnapshotResponse(
        status="restore_started", restore_job_id=started.job.id,
        snapshot_id=started.snapshot.id, pre_restore_snapshot_id=pre,
        components=[c.source_id or "" for c in started.components],
        progress_url=f"/api/v1/snapshots/jobs/{started.job.id}",
        message=f"restore of snapshot {started.snapshot.name!r} started"
                + (" after a pre-restore snapshot" if pre else ""))


@router.delete("/{snapshot_id}", response_model=DeleteSnapshotResponse,
               summary="Delete a snapshot (every backup it consists of)")
def delete_snapshot(snapshot_id: str, principal: Principal = Depends(require(Role.ADMIN)),
                    services: Services = Depends(get_services)) -> DeleteSnapshotResponse:
    snapshot, freed = services.config_snapshots.delete(principal, snapshot_id)
    return DeleteSnapshotResponse(
        message=f"snapshot {snapshot.name!r} deleted; the next prune frees its space",
        snapshot_id=snapshot.id, backups_deleted=len(snapshot.components), freed_bytes=freed)
