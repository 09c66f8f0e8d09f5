"""``/api/v1/recovery``: disaster recovery (seeds 003 and 004 section 4).

Recovery points, the DR plan, DR tests (a job), recovery preview and recovery initiate.
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, Query

from strongbox.api.deps import api_router, get_services, require
from strongbox.api.presenters import job_progress, job_status
from strongbox.api.schemas.backups import JobError
from strongbox.api.schemas.common import ErrorResponse, Pagination
from strongbox.api.schemas.recovery import (
    DrPlanResponse,
    DrTestBrief,
    DrTestJob,
    DrTestPageResponse,
    DrTestResponse,
    ImpactAnalysis,
    InitiateRecoveryRequest,
    InitiateRecoveryResponse,
    PlanSummary,
    RecoveryPointItem,
    RecoveryPointsResponse,
    RecoveryPreviewResponse,
    StartDrTestResponse,
)
from strongbox.services import dr_test_job
from strongbox.services.container import Services
from strongbox.services.disaster_recovery import (
    DEFAULT_STALE_HOURS,
    DEFAULT_WINDOW_DAYS,
    DrPlan,
    DrTestView,
    RecoveryPoint,
    SourcePlan,
    human_duration,
)
from strongbox.services.principal import Principal, Role
from strongbox.services.recovery_initiate import RecoveryRequest, StartedRecovery
from strongbox.services.recovery_preview import RecoveryPreview

router = api_router(prefix="/api/v1/recovery", tags=["disaster recovery"])
CONFLICT = {409: {"model": ErrorResponse, "description":
                  "OPERATION_IN_PROGRESS, RESTORE_IN_PROGRESS or BACKUP_NOT_COMPLETED"}}


@router.get("/recovery-points", response_model=RecoveryPointsResponse,
            response_model_exclude_none=True,
            summary="Restorable backups of a source (or of every source), newest first")
def recovery_points(source_id: str | None = Query(None), page: int = Query(1, ge=1),
                    size: int = Query(20, ge=1, le=100),
                    principal: Principal = Depends(require(Role.VIEWER)),
                    services: Services = Depends(get_services)) -> RecoveryPointsResponse:
    found = services.disaster_recovery.plans.recovery_points(principal.tenant, source_id,
                                                        page=page, size=size)
    return RecoveryPointsResponse(
        items=[_point(p) for p in found.items],
        pagination=Pagination.of(found.total_items, found.total_pages, page, size))


@router.get("/plan", response_model=DrPlanResponse, response_model_exclude_none=True,
            summary="The disaster-recovery plan: latest backups, measured RPO and RTO, steps")
def plan(window_days: int = Query(DEFAULT_WINDOW_DAYS, ge=1, le=366),
         stale_hours: float = Query(DEFAULT_STALE_HOURS, gt=0, le=24 * 366),
         principal: Principal = Depends(require(Role.VIEWER)),
         services: Services = Depends(get_services)) -> DrPlanResponse:
    return _plan(services.disaster_recovery.plans.plan(principal.tenant, window_days=window_days,
                                                 stale_hours=stale_hours))


@router.post("/test", status_code=202, response_model=StartDrTestResponse,
             responses=CONFLICT,  # type: ignore[arg-type]
             summary="Run a DR test: restore every source's latest backup into scratch "
                     "(starts a job)")
def start_test(principal: Principal = Depends(require(Role.OPERATOR)),
               services: Services = Depends(get_services)) -> StartDrTestResponse:
    test, job = services.disaster_recovery.tests.start(principal)
    return StartDrTestResponse(test_id=test.id, job_id=job.id, status=test.status,
                               message="DR test started: follow it at "
                                       f"/api/v1/recovery/tests/{test.id}")


@router.get("/tests", response_model=DrTestPageResponse, response_model_exclude_none=True,
            summary="DR test history, newest first")
def list_tests(page: int = Query(1, ge=1), size: int = Query(20, ge=1, le=100),
               principal: Principal = Depends(require(Role.VIEWER)),
               services: Services = Depends(get_services)) -> DrTestPageResponse:
    found = services.disaster_recovery.plans.tests(principal.tenant, page=page, size=size)
    return DrTestPageResponse(
        items=[_test(services, t, with_job=False) for t in found.items],
        pagination=Pagination.of(found.total_items, found.total_pages, page, size))


@router.get("/tests/{test_id}", response_model=DrTestResponse,
            response_model_exclude_none=True, summary="One DR test, with its job's progress")
def get_test(test_id: str, principal: Principal = Depends(require(Role.VIEWER)),
             services: Services = Depends(get_services)) -> DrTestResponse:
    return _test(services, services.disaster_recovery.plans.test(principal.tenant, test_id),
                 with_job=True)


@router.get("/preview/{backup_id}", response_model=RecoveryPreviewResponse,
            response_model_exclude_none=True,
            summary="What recovering this backup over its source now would change")
def preview(backup_id: str, principal: Principal = Depends(require(Role.VIEWER)),
            services: Services = Depends(get_services)) -> RecoveryPreviewResponse:
    return _preview(services.disaster_recovery.preview.preview(principal.tenant, backup_id))


@router.post("/initiate", response_model=InitiateRecoveryResponse,
             response_model_exclude_none=True, responses=CONFLICT,  # type: ignore[arg-type]
             summary="Recover a source from a backup: pre-recovery backup, then full restore")
def initiate(body: InitiateRecoveryRequest,
             principal: Principal = Depends(require(Role.ADMIN)),
             services: Services = Depends(get_services)) -> InitiateRecoveryResponse:
    started = services.disaster_recovery.recovery.initiate(principal, RecoveryRequest(
        backup_id=body.backup_id, confirmation=body.confirmation,
        confirmation_text=body.confirmation_text, recovery_type=body.recovery_type,
        create_pre_recovery_snapshot=body.create_pre_recovery_snapshot,
        module_filter=body.module_filter, reason=body.reason))
    return _started(started)


# --- presentation ------------------------------------------------------------------------------


def _point(point: RecoveryPoint) -> RecoveryPointItem:
    return RecoveryPointItem(
        backup_id=point.backup_id, name=point.name, type=point.type,
        source_id=point.source_id, source_name=point.source_name,
        source_kind=point.source_kind, created_at=point.created_at,
        completed_at=point.completed_at, size_bytes=point.size_bytes,
        compressed_size_bytes=point.compressed_size_bytes, verified=point.verified,
        verification_status=point.verification_status, verified_at=point.verified_at,
        protected=point.protected, tags=point.tags)


def _brief(test: DrTestView) -> DrTestBrief:
    return DrTestBrief(test_id=test.id, status=test.status, passed=test.passed,
                       started_at=test.started_at, completed_at=test.completed_at,
                       duration_seconds=test.duration_seconds)


def _source_plan(item: SourcePlan) -> dict[str, Any]:
    latest = item.latest_backup
    rpo = item.rpo
    return {
        "order": item.order, "source_id": item.source.id, "source_name": item.source.name,
        "source_kind": item.source.kind,
        "latest_backup": None if latest is None else {
            "backup_id": latest.backup_id, "name": latest.name, "type": latest.type,
            "created_at": latest.created_at, "completed_at": latest.completed_at,
            "size_bytes": latest.size_bytes, "verified": latest.verified,
            "verification_status": latest.verification_status,
            "verified_at": latest.verified_at},
        "latest_is_verified": item.latest_is_verified,
        "recovery_points": item.recovery_points,
        "rpo": {**{k: v for k, v in vars(rpo).items() if k != "schedules"},
                "schedules": [{**{k: v for k, v in vars(s).items() if k != "id"},
                               "schedule_id": s.id} for s in rpo.schedules]},
        "rto": vars(item.rto),
        "warnings": item.warnings,
    }


def _plan(plan: DrPlan) -> DrPlanResponse:
    sources = plan.sources
    summary = PlanSummary(
        sources_total=len(sources),
        sources_with_backup=sum(1 for s in sources if s.latest_backup is not None),
        sources_verified=sum(1 for s in sources if s.latest_is_verified),
        sources_tested=sum(1 for s in sources if s.rto.basis == "dr_test"),
        worst_rpo_seconds=plan.worst_rpo_seconds, total_rto_seconds=plan.total_rto_seconds,
        ready=plan.ready)
    return DrPlanResponse.model_validate({
        "generated_at": plan.generated_at, "window_days": plan.window_days,
        "stale_hours": plan.stale_hours, "summary": summary,
        "last_test": _brief(plan.last_test) if plan.last_test else None,
        "sources": [_source_plan(s) for s in sources],
        "steps": [vars(step) for step in plan.steps], "warnings": plan.warnings})


def _test(services: Services, test: DrTestView, *, with_job: bool) -> DrTestResponse:
    results = test.results
    error = results.get("error")
    job = None
    if with_job and test.job_id:
        found = services.jobs.get(test.job_id)
        if found is not None:
            job = DrTestJob(job_id=found.id, status=job_status(found),  # type: ignore[arg-type]
                            progress=job_progress(found, len(dr_test_job.STEPS)),
                            error=JobError.model_validate(found.error) if found.error
                            else None)
    return DrTestResponse.model_validate({
        "test_id": test.id, "status": test.status, "passed": test.passed,
        "created_by": test.created_by, "started_at": test.started_at,
        "completed_at": test.completed_at, "duration_seconds": test.duration_seconds,
        "summary": results.get("summary") or None, "sources": results.get("sources", []),
        "error": error, "job": job})


def _preview(preview: RecoveryPreview) -> RecoveryPreviewResponse:
    backup, source = preview.backup, preview.source
    components = [source.name] if source is not None else []
    impact = ImpactAnalysis.model_validate({
        "components_affected": components,
        "estimated_downtime": human_duration(preview.estimated_duration_seconds),
        "estimated_duration_seconds": preview.estimated_duration_seconds,
        "restore_seconds": preview.restore_seconds,
        "pre_recovery_snapshot_seconds": preview.snapshot_seconds,
        "estimate_basis": preview.estimate_basis, "restart_required": False,
        "data_loss_risk": preview.data_loss_risk, "newer_items": preview.newer_items,
        "current_items": preview.current_items,
        "pre_recovery_actions": ["stop_writers", "create_snapshot"],
        "post_recovery_actions": ["verify_integrity", "restart_services"],
        "tables": [vars(t) for t in preview.tables] if preview.files is None else None,
        "files": vars(preview.files) if preview.files is not None else None})
    return RecoveryPreviewResponse(
        backup_id=backup.id, backup_name=backup.name, backup_created_at=backup.created_at,
        source_id=backup.source_id, source_name=backup.source_name,
        source_kind=backup.source_kind, recovery_type=preview.recovery_type,
        can_recover=preview.can_recover, confirmation_text=preview.confirmation_text,
        impact_analysis=impact, warnings=preview.warnings,
        recommendations=preview.recommendations)


def _started(started: StartedRecovery) -> InitiateRecoveryResponse:
    job_id = started.restore_job_id
    return InitiateRecoveryResponse(
        status="recovery_started", recovery_id=job_id, restore_job_id=job_id,
        backup_id=started.backup.id, source_id=started.source.id,
        source_name=started.source.name,
        pre_recovery_snapshot_id=started.pre_recovery_backup_id,
        pre_recovery_job_id=started.pre_recovery_job_id,
        estimated_duration=human_duration(started.estimated_duration_seconds),
        estimated_duration_seconds=started.estimated_duration_seconds,
        progress_url=f"/api/v1/restore/jobs/{job_id}",
        warning=f"source {started.source.name!r} is being replaced by backup "
                f"{started.backup.id}; writers should stay stopped until the restore job "
                "completes",
        warnings=started.warnings, message="Disaster recovery initiated")
