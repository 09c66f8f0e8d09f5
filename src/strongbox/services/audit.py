"""The audit log: every mutating API call, who made it, and how it ended."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from strongbox.catalog.database import Catalog, sql_offset
from strongbox.catalog.models import AuditEntry
from strongbox.services.pagination import Page


@dataclass(frozen=True)
class AuditRecord:
    at: datetime
    method: str
    path: str
    status_code: int
    tenant: str | None = None
    key_id: str | None = None
    key_name: str | None = None
    role: str | None = None
    action: str | None = None
    request_id: str | None = None
    client: str | None = None
    id: int | None = None

    @property
    def result(self) -> str:
        return "success" if self.status_code < 400 else "failure"


AuditPage = Page[AuditRecord]


def _record(row: AuditEntry) -> AuditRecord:
    return AuditRecord(row.at, row.method, row.path, row.status_code, row.tenant, row.key_id,
                       row.key_name, row.role, row.action, row.request_id, row.client, row.id)


class AuditService:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def record(self, entry: AuditRecord) -> None:
        with self.catalog.session() as session:
            session.add(AuditEntry(
                at=entry.at, tenant=entry.tenant, key_id=entry.key_id, key_name=entry.key_name,
                role=entry.role, method=entry.method, path=entry.path[:2000],
                action=entry.action, status_code=entry.status_code, result=entry.result,
                request_id=entry.request_id, client=entry.client))

    def list(self, tenant: str, *, page: int = 1, size: int = 50,
             key_id: str | None = None, method: str | None = None) -> AuditPage:
        """Newest first: the calls made with this tenant's keys."""
        query = select(AuditEntry).where(AuditEntry.tenant == tenant)
        if key_id:
            query = query.where(AuditEntry.key_id == key_id)
        if method:
            query = query.where(AuditEntry.method == method.upper())
        with self.catalog.session() as session:
            total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
            rows = session.scalars(query.order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
                                   .offset(sql_offset(page, size)).limit(size))
            return AuditPage([_record(row) for row in rows], total, page, size)
