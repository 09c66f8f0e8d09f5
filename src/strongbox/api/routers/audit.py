"""``/api/v1/audit``: the audit log, for admins."""

from __future__ import annotations

from fastapi import Depends, Query

from strongbox.api.deps import api_router, get_services, require
from strongbox.api.schemas.audit import AuditEntryResponse, AuditPageResponse
from strongbox.api.schemas.common import Pagination
from strongbox.services.container import Services
from strongbox.services.principal import Principal, Role

router = api_router(prefix="/api/v1/audit", tags=["audit"])


@router.get("", response_model=AuditPageResponse, response_model_exclude_none=True,
            summary="The tenant's audit log, newest first")
def list_audit(page: int = Query(1, ge=1), size: int = Query(50, ge=1, le=100),
               key_id: str | None = Query(None), method: str | None = Query(None),
               principal: Principal = Depends(require(Role.ADMIN)),
               services: Services = Depends(get_services)) -> AuditPageResponse:
    result = services.audit.list(principal.tenant, page=page, size=size, key_id=key_id,
                                 method=method)
    items = [AuditEntryResponse.model_validate({**entry.__dict__, "_id": entry.id,
                                                "result": entry.result})
             for entry in result.items]
    return AuditPageResponse(items=items, pagination=Pagination.of(
        result.total_items, result.total_pages, page, size))
