"""``/api/v1/policies``: each source's backup policy, read and set in one call
(docs/policies.md). Seed 003 names them ``/backup-recovery/backup-policies``; here they
are keyed by source, under ``/api/v1`` like the rest.

Roles: viewers read; admins set and remove (a policy decides what is kept and deleted).
"""

from __future__ import annotations

from fastapi import Depends, Query

from strongbox.api.deps import api_router, get_services, require
from strongbox.api.schemas.common import Pagination
from strongbox.api.schemas.policies import (
    DeletePolicyResponse,
    PagedPoliciesResponse,
    PolicyResponse,
    PolicySet,
    policy_body,
)
from strongbox.services.container import Services
from strongbox.services.principal import Principal, Role

router = api_router(prefix="/api/v1/policies", tags=["policies"])
_ONE = "/{source_id}"


@router.get("", response_model=PagedPoliciesResponse,
            summary="Every source's backup policy, with compliance")
def list_policies(page: int = Query(1, ge=1), size: int = Query(20, ge=1, le=100),
                  principal: Principal = Depends(require(Role.VIEWER)),
                  services: Services = Depends(get_services)) -> PagedPoliciesResponse:
    result = services.policies.list(principal.tenant, page=page, size=size)
    return PagedPoliciesResponse(
        items=[PolicyResponse.of(p) for p in result.items],
        pagination=Pagination.of(result.total_items, result.total_pages, page, size))


@router.get(_ONE, response_model=PolicyResponse, summary="A source's backup policy")
def get_policy(source_id: str, principal: Principal = Depends(require(Role.VIEWER)),
               services: Services = Depends(get_services)) -> PolicyResponse:
    return PolicyResponse.of(services.policies.get(principal.tenant, source_id))


@router.put(_ONE, response_model=PolicyResponse, summary="Set a source's backup policy")
def set_policy(source_id: str, body: PolicySet,
               principal: Principal = Depends(require(Role.ADMIN)),
               services: Services = Depends(get_services)) -> PolicyResponse:
    return PolicyResponse.of(services.policies.set(principal, source_id, policy_body(body)))


@router.delete(_ONE, response_model=DeletePolicyResponse,
               summary="Remove a source's backup policy (its schedules)")
def delete_policy(source_id: str, principal: Principal = Depends(require(Role.ADMIN)),
                  services: Services = Depends(get_services)) -> DeletePolicyResponse:
    removed = services.policies.remove(principal.tenant, source_id)
    policy = services.policies.get(principal.tenant, source_id)
    message = (f"policy of source {policy.source.name!r} removed: {len(removed)} schedule(s) "
               "deleted; the backups they made stay" if removed
               else f"source {policy.source.name!r} had no policy")
    return DeletePolicyResponse(message=message, source_id=policy.source.id,
                                removed_schedule_ids=[s.id for s in removed],
                                policy=PolicyResponse.of(policy))
