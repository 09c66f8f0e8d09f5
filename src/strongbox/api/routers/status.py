"""``/api/v1/status``: is the backup system healthy, and what needs attention (seed 004)."""

from __future__ import annotations

from fastapi import Depends

from strongbox.api.deps import api_router, get_services, require
from strongbox.api.schemas.status import SystemStatusResponse
from strongbox.services.container import Services
from strongbox.services.principal import Principal, Role

router = api_router(prefix="/api/v1/status", tags=["status"])


@router.get("", response_model=SystemStatusResponse, response_model_exclude_none=True,
            summary="Health of the backup system, last backups and alerts")
def system_status(principal: Principal = Depends(require(Role.VIEWER)),
                  services: Services = Depends(get_services)) -> SystemStatusResponse:
    # The scheduler is optional: a server may run without one (schedules then never fire).
    scheduler = getattr(services, "scheduler", None)
    return SystemStatusResponse.of(services.status.status(principal.tenant, scheduler))
