"""``/api/v1/backups/cleanup``: dry run → plan → confirmed execute; the retention rules.

Seed 004 section 7 (``cleanup`` and ``cleanup/execute``) and seed 002's cleanup form, in
seed 000's style. See docs/retention-cleanup.md.
"""

from __future__ import annotations

from typing import Any

from fastapi import Body, Depends
from fastapi.responses import JSONResponse

from strongbox.api.deps import api_router, get_services, require
from strongbox.api.presenters import job_progress, job_status
from strongbox.api.schemas.backups import JobError
from strongbox.api.schemas.cleanup import (
    CleanupAnalysis,
    CleanupJobStatus,
    CleanupPlanResponse,
    CleanupRequest,
    CleanupResult,
    ExecuteCleanupRequest,
    ExecuteCleanupResponse,
    PlannedBackupModel,
    RetentionPolicyPatch,
    RetentionPolicyResponse,
    UpdateRetentionPolicyResponse,
)
from strongbox.services.cleanup import (
    STEPS,
    CleanupCriteria,
    CleanupPlanView,
    ConfirmationRequired,
    PlannedBackup,
    StartedCleanup,
    gb_to_bytes,
    settings_policy,
)
from strongbox.services.container import Services
from strongbox.services.errors import FieldError, Forbidden, ValidationFailed
from strongbox.services.principal import Principal, Role
from strongbox.services.retention_rules import CleanupPolicy

router = api_router(prefix="/api/v1/backups/cleanup", tags=["cleanup"])

RULES = ("keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly",
         "keep_yearly", "keep_within_days", "timezone")
THROUGHPUT_BACKUPS = 20  # backups forgotten per second, for the duration estimate


@router.post("", response_model=CleanupPlanResponse, response_model_exclude_none=True,
             responses={202: {"model": ExecuteCleanupResponse,
                              "description": "dry_run: false: the cleanup started"}},
             summary="Analyse a cleanup (dry run) and get a plan id")
def analyze_cleanup(body: CleanupRequest,
                    principal: Principal = Depends(require(Role.OPERATOR)),
                    services: Services = Depends(get_services)) -> Any:
    """A dry run (the default) stores a plan and lists what it would delete and why.
    With ``dry_run: false`` and ``confirmation: true`` (admin) the plan is executed at
    once and the answer is the started cleanup (202), as seed 002's form does."""
    if not body.dry_run:
        if not principal.allows(Role.ADMIN):
            raise Forbidden("a cleanup with dry_run: false deletes backups: it needs the admin "
                            f"role; the key is {principal.role}")
        _check_confirmation(body.confirmation)
    criteria = criteria_from_request(body, services, principal.tenant)
    plan = services.cleanup.analyze(principal, criteria)
    if body.dry_run:
        return plan_response(plan, services)
    started = services.cleanup.execute(principal, plan.id, body.confirmation)
    return JSONResponse(status_code=202, content=execute_response(started)
                        .model_dump(mode="json", exclude_none=True))


@router.post("/execute", status_code=202, response_model=ExecuteCleanupResponse,
             summary="Execute a cleanup plan (admin; needs confirmation)")
def execute_cleanup(body: ExecuteCleanupRequest,
                    principal: Principal = Depends(require(Role.ADMIN)),
                    services: Services = Depends(get_services)) -> ExecuteCleanupResponse:
    started = services.cleanup.execute(principal, body.cleanup_plan_id, body.confirmation)
    return execute_response(started)


@router.get("/plans/{plan_id}", response_model=CleanupPlanResponse,
            response_model_exclude_none=True, summary="A cleanup plan and its outcome")
def get_plan(plan_id: str, principal: Principal = Depends(require(Role.VIEWER)),
             services: Services = Depends(get_services)) -> CleanupPlanResponse:
    return plan_response(services.cleanup.get_plan(principal.tenant, plan_id), services)


@router.get("/jobs/{job_id}", response_model=CleanupJobStatus,
            response_model_exclude_none=True, summary="Cleanup job status")
def get_cleanup_job(job_id: str, principal: Principal = Depends(require(Role.VIEWER)),
                    services: Services = Depends(get_services)) -> CleanupJobStatus:
    job = services.cleanup.job(principal.tenant, job_id)
    result = job.result if job.status == "completed" else None
    return CleanupJobStatus(
        job_id=job.id, cleanup_plan_id=job.params["plan_id"],
        status=job_status(job),  # type: ignore[arg-type]
        progress=job_progress(job, len(STEPS)), started_at=job.started_at or job.created_at,
        updated_at=job.updated_at, completed_at=job.completed_at,
        result=CleanupResult.model_validate(result) if result else None,
        error=JobError.model_validate(job.error) if job.error else None)


@router.get("/policy", response_model=RetentionPolicyResponse,
            summary="The tenant's retention settings and keep rules")
def get_policy(principal: Principal = Depends(require(Role.VIEWER)),
               services: Services = Depends(get_services)) -> RetentionPolicyResponse:
    return RetentionPolicyResponse.model_validate(
        services.cleanup.policy_document(principal.tenant))


@router.put("/policy", response_model=UpdateRetentionPolicyResponse,
            summary="Change the retention settings and keep rules")
def put_policy(body: RetentionPolicyPatch = Body(...),
               principal: Principal = Depends(require(Role.ADMIN)),
               services: Services = Depends(get_services)) -> UpdateRetentionPolicyResponse:
    patch = body.model_dump(exclude_unset=True)
    policy, updated = services.cleanup.update_policy(principal.tenant, patch)
    return UpdateRetentionPolicyResponse(
        message="retention policy updated" if updated else "nothing changed",
        updated_fields=updated, policy=RetentionPolicyResponse.model_validate(policy))


# --- parsing and presenting --------------------------------------------------------------


def _check_confirmation(confirmation: bool) -> None:
    if confirmation is not True:
        raise ConfirmationRequired("a cleanup with dry_run: false needs confirmation: true", [
            FieldError("confirmation", "set confirmation to true, or run a dry run first",
                       "REQUIRED")])


def criteria_from_request(body: CleanupRequest, services: Services,
                          tenant: str) -> CleanupCriteria | None:
    """The request's rules (seed 002 and 004 names mapped to one policy), or None for
    "use the tenant's settings"."""
    errors: list[FieldError] = []
    if body.storage_locations and set(body.storage_locations) - {"local", "filesystem"}:
        errors.append(FieldError("storage_locations", "the one storage location is 'local'",
                                 "NOT_SUPPORTED", body.storage_locations))
    if body.min_free_space is not None:
        errors.append(FieldError("min_free_space", "not supported: use max_total_size_gb",
                                 "NOT_SUPPORTED", body.min_free_space))
    fields: dict[str, Any] = {name: getattr(body, name) for name in RULES
                              if getattr(body, name) is not None}
    if body.retention_policy:
        rule, _, count = body.retention_policy.rpartition("_")
        if rule in fields and fields[rule] != int(count):
            errors.append(FieldError("retention_policy", f"contradicts {rule}",
                                     "INVALID_VALUE", body.retention_policy))
        fields[rule] = int(count)
    for name, seed_name in (("max_backups", "keep_count"), ("max_age_days",
                                                             "older_than_days")):
        values = {v for v in (getattr(body, name), getattr(body, seed_name)) if v is not None}
        if len(values) > 1:
            errors.append(FieldError(seed_name, f"{seed_name} and {name} mean the same; they "
                                     "differ", "INVALID_VALUE", getattr(body, seed_name)))
        elif values:
            fields[name] = values.pop()
    if body.max_total_size_gb is not None:
        fields["max_total_size_bytes"] = gb_to_bytes(body.max_total_size_gb)
    for flag in ("delete_failed", "delete_unverified"):
        if getattr(body, flag):
            fields[flag] = True
    if errors:
        raise ValidationFailed("the cleanup request is not valid", errors)
    if not fields and not body.use_settings:
        return None
    base: dict[str, Any] = {}
    if body.use_settings:
        stored = settings_policy(services.backup_settings.get(tenant)["retention"])
        base = stored.to_dict() if stored is not None else {}
    policy = CleanupPolicy.from_dict({**base, **fields})
    return CleanupCriteria(policy, source_ids=body.source_ids, reason=body.reason,
                           origin="settings+request" if body.use_settings else "request")


def human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _planned(item: PlannedBackup) -> PlannedBackupModel:
    return PlannedBackupModel.model_validate(vars(item))


def plan_status(plan: CleanupPlanView, services: Services) -> str:
    if plan.executed_at is None:
        return "expired" if services.cleanup.clock() >= plan.expires_at else "analyzed"
    if plan.result is None:
        return "executing"
    return "failed" if "error" in plan.result else "executed"


def plan_response(plan: CleanupPlanView, services: Services) -> CleanupPlanResponse:
    status = plan_status(plan, services)
    count = len(plan.to_delete)
    pending = status == "analyzed" and count > 0
    message = (f"cleanup analysis completed: {count} of {plan.total} backups would be "
               f"deleted, about {human_bytes(plan.estimated_bytes)} freed")
    if pending:
        message += "; execute the plan with confirmation to delete them"
    return CleanupPlanResponse(
        status=status,  # type: ignore[arg-type]
        dry_run=plan.executed_at is None, cleanup_plan_id=plan.id,
        created_at=plan.created_at, expires_at=plan.expires_at,
        analysis=CleanupAnalysis(
            total_backups=plan.total, eligible_for_removal=count,
            backups_to_keep=len(plan.kept), protected_backups=plan.protected_count,
            in_use_backups=plan.in_use_count, space_to_free=human_bytes(plan.estimated_bytes),
            space_to_free_bytes=plan.estimated_bytes),
        action_required=pending, confirm_action="cleanup_execute" if pending else None,
        criteria=plan.criteria, backups_to_delete=[_planned(b) for b in plan.to_delete],
        backups_kept=[_planned(b) for b in plan.kept], executed_at=plan.executed_at,
        job_id=plan.job_id, result=plan.result, message=message)


def execute_response(started: StartedCleanup) -> ExecuteCleanupResponse:
    plan = started.plan
    count = len(plan.to_delete)
    return ExecuteCleanupResponse(
        cleanup_id=started.job.id, job_id=started.job.id, cleanup_plan_id=plan.id,
        backups_to_remove=count, estimated_space=human_bytes(plan.estimated_bytes),
        estimated_space_bytes=plan.estimated_bytes,
        estimated_duration_seconds=max(1.0, round(count / THROUGHPUT_BACKUPS, 1)),
        message=f"cleanup started: {count} backups to delete, then the repository is "
                "pruned; follow the job")
