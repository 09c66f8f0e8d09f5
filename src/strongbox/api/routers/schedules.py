"""``/api/v1/schedules``: recurring backups, verifications and cleanups (docs/schedules.md).

Roles: viewers read; operators create, change, toggle and run; admins also delete.
"""

from __future__ import annotations

from fastapi import Body, Depends, Query

from strongbox.api.deps import api_router, get_services, require
from strongbox.api.schemas.common import Pagination
from strongbox.api.schemas.schedules import (
    DeleteScheduleResponse,
    PagedScheduleRunsResponse,
    PagedSchedulesResponse,
    RunScheduleResponse,
    ScheduleAction,
    ScheduleCreate,
    ScheduleResponse,
    ScheduleRunResponse,
    ScheduleUpdate,
    ToggleScheduleRequest,
    ToggleScheduleResponse,
    request_body,
)
from strongbox.catalog.types import utcnow
from strongbox.services.container import Services
from strongbox.services.principal import Principal, Role
from strongbox.services.schedules import RUN_STATUSES

router = api_router(prefix="/api/v1/schedules", tags=["schedules"])
_ONE = "/{schedule_id}"
_RESPONSE = {"response_model_exclude_none": True}


@router.post("", status_code=201, response_model=ScheduleResponse,
             summary="Create a schedule", **_RESPONSE)
def create_schedule(body: ScheduleCreate, principal: Principal = Depends(require(Role.OPERATOR)),
                    services: Services = Depends(get_services)) -> ScheduleResponse:
    return ScheduleResponse.of(services.schedules.create(
        principal, request_body(body, partial=False)))


@router.get("", response_model=PagedSchedulesResponse, summary="List schedules",
            **_RESPONSE)
def list_schedules(page: int = Query(1, ge=1), size: int = Query(20, ge=1, le=100),
                   enabled: bool | None = Query(None),
                   action: ScheduleAction | None = Query(None),
                   principal: Principal = Depends(require(Role.VIEWER)),
                   services: Services = Depends(get_services)) -> PagedSchedulesResponse:
    result = services.schedules.list(principal.tenant, page=page, size=size, enabled=enabled,
                                     action=action.value if action else None)
    return PagedSchedulesResponse(
        items=[ScheduleResponse.of(s) for s in result.items],
        pagination=Pagination.of(result.total_items, result.total_pages, page, size))


@router.get(_ONE, response_model=ScheduleResponse, summary="Show a schedule", **_RESPONSE)
def get_schedule(schedule_id: str, principal: Principal = Depends(require(Role.VIEWER)),
                 services: Services = Depends(get_services)) -> ScheduleResponse:
    return ScheduleResponse.of(services.schedules.get(principal.tenant, schedule_id))


@router.put(_ONE, response_model=ScheduleResponse, summary="Replace a schedule", **_RESPONSE)
def replace_schedule(schedule_id: str, body: ScheduleCreate,
                     principal: Principal = Depends(require(Role.OPERATOR)),
                     services: Services = Depends(get_services)) -> ScheduleResponse:
    return ScheduleResponse.of(services.schedules.update(
        principal.tenant, schedule_id, request_body(body, partial=False), replace=True))


@router.patch(_ONE, response_model=ScheduleResponse, summary="Change a schedule",
              **_RESPONSE)
def update_schedule(schedule_id: str, body: ScheduleUpdate,
                    principal: Principal = Depends(require(Role.OPERATOR)),
                    services: Services = Depends(get_services)) -> ScheduleResponse:
    return ScheduleResponse.of(services.schedules.update(
        principal.tenant, schedule_id, request_body(body, partial=True)))


@router.post(_ONE + "/toggle", response_model=ToggleScheduleResponse,
             summary="Enable or disable a schedule", **_RESPONSE)
def toggle_schedule(schedule_id: str,
                    body: ToggleScheduleRequest | None = Body(None),
                    principal: Principal = Depends(require(Role.OPERATOR)),
                    services: Services = Depends(get_services)) -> ToggleScheduleResponse:
    view = services.schedules.toggle(principal.tenant, schedule_id,
                                     body.enabled if body else None)
    return ToggleScheduleResponse(
        schedule_id=view.id, enabled=view.enabled, next_run=view.next_run_at,
        message="Schedule enabled" if view.enabled else "Schedule disabled",
        schedule=ScheduleResponse.of(view))


@router.delete(_ONE, response_model=DeleteScheduleResponse, summary="Delete a schedule")
def delete_schedule(schedule_id: str, principal: Principal = Depends(require(Role.ADMIN)),
                    services: Services = Depends(get_services)) -> DeleteScheduleResponse:
    view = services.schedules.delete(principal.tenant, schedule_id)
    return DeleteScheduleResponse(
        message=f"schedule {view.name!r} deleted; the backups it made stay",
        schedule_id=view.id, deleted_at=utcnow())


@router.post(_ONE + "/run", status_code=202, response_model=RunScheduleResponse,
             summary="Run a schedule now", **_RESPONSE)
def run_schedule(schedule_id: str, principal: Principal = Depends(require(Role.OPERATOR)),
                 services: Services = Depends(get_services)) -> RunScheduleResponse:
    start = services.scheduler.run_now(principal.tenant, schedule_id)
    return RunScheduleResponse(schedule_id=start.schedule.id,
                               run=ScheduleRunResponse.of(start.run),
                               message=f"{start.schedule.action} run started")


@router.get(_ONE + "/runs", response_model=PagedScheduleRunsResponse,
            summary="A schedule's runs, newest first", **_RESPONSE)
def schedule_runs(schedule_id: str, page: int = Query(1, ge=1),
                  size: int = Query(20, ge=1, le=100),
                  status: str | None = Query(None, pattern="^(" + "|".join(RUN_STATUSES) + ")$"),
                  principal: Principal = Depends(require(Role.VIEWER)),
                  services: Services = Depends(get_services)) -> PagedScheduleRunsResponse:
    result = services.schedules.runs(principal.tenant, schedule_id, page=page, size=size,
                                     status=status)
    return PagedScheduleRunsResponse(
        items=[ScheduleRunResponse.of(r) for r in result.items],
        pagination=Pagination.of(result.total_items, result.total_pages, page, size))
