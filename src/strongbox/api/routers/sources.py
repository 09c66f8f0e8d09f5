"""``/api/v1/sources``: what a tenant protects (extension to seed 000)."""

from __future__ import annotations

from fastapi import Depends

from strongbox.api.deps import api_router, get_services, require
from strongbox.api.presenters import source_response
from strongbox.api.schemas.sources import (
    DeleteSourceResponse,
    SourceCreate,
    SourceList,
    SourceResponse,
    SourceUpdate,
)
from strongbox.catalog.types import utcnow
from strongbox.services.container import Services
from strongbox.services.principal import Principal, Role
from strongbox.services.sources import SourceSpec

router = api_router(prefix="/api/v1/sources", tags=["sources"])


def _spec(body: SourceCreate | SourceUpdate) -> SourceSpec:
    return SourceSpec(name=body.name, kind=getattr(body, "kind", None), path=body.path,
                      include_patterns=body.include_patterns,
                      exclude_patterns=body.exclude_patterns, dsn=body.dsn,
                      schema=body.schema_name, row_streams=body.row_streams)


@router.post("", status_code=201, response_model=SourceResponse,
             response_model_exclude_none=True, summary="Register a source")
def create_source(body: SourceCreate, principal: Principal = Depends(require(Role.ADMIN)),
                  services: Services = Depends(get_services)) -> SourceResponse:
    return source_response(services.sources.create(principal.tenant, _spec(body)))


@router.get("", response_model=SourceList, response_model_exclude_none=True,
            summary="List sources")
def list_sources(principal: Principal = Depends(require(Role.VIEWER)),
                 services: Services = Depends(get_services)) -> SourceList:
    items = [source_response(s) for s in services.sources.list(principal.tenant)]
    return SourceList(items=items, total=len(items))


@router.get("/{source_id}", response_model=SourceResponse, response_model_exclude_none=True,
            summary="Show a source")
def get_source(source_id: str, principal: Principal = Depends(require(Role.VIEWER)),
               services: Services = Depends(get_services)) -> SourceResponse:
    return source_response(services.sources.get(principal.tenant, source_id))


@router.patch("/{source_id}", response_model=SourceResponse, response_model_exclude_none=True,
              summary="Change a source")
def update_source(source_id: str, body: SourceUpdate,
                  principal: Principal = Depends(require(Role.ADMIN)),
                  services: Services = Depends(get_services)) -> SourceResponse:
    return source_response(services.sources.update(principal.tenant, source_id, _spec(body)))


@router.delete("/{source_id}", response_model=DeleteSourceResponse,
               summary="Remove a source (its backups stay)")
def delete_source(source_id: str, principal: Principal = Depends(require(Role.ADMIN)),
                  services: Services = Depends(get_services)) -> DeleteSourceResponse:
    source = services.sources.delete(principal.tenant, source_id)
    return DeleteSourceResponse(message=f"source {source.name!r} removed; its backups stay",
                                source_id=source.id, deleted_at=utcnow())
