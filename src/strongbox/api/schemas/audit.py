"""The audit log (extension to seed 000, for its section 12 "audit log all operations")."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from strongbox.api.schemas.common import ApiModel, Pagination


class AuditEntryResponse(ApiModel):
    id: int = Field(alias="_id")
    at: datetime
    tenant: str | None = None
    key_id: str | None = None
    key_name: str | None = None
    role: str | None = None
    method: str
    path: str
    action: str | None = None
    status_code: int
    result: str
    request_id: str | None = None
    client: str | None = None


class AuditPageResponse(ApiModel):
    items: list[AuditEntryResponse]
    pagination: Pagination
