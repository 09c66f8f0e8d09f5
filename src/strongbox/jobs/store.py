"""Job records in the catalog."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from strongbox.catalog.database import Catalog
from strongbox.catalog.models import Job
from strongbox.catalog.types import utcnow

PENDING = "pending"
IN_PROGRESS = "in_progress"
COMPLETED = "completed"
FAILED = "failed"
CANCELLED = "cancelled"
ACTIVE = (PENDING, IN_PROGRESS)
FINAL = (COMPLETED, FAILED, CANCELLED)

INTERRUPTED = "INTERRUPTED"
INTERRUPTED_MESSAGE = ("the server restarted while this job was running, so it did not "
                       "finish; nothing it wrote was committed and earlier backups are "
                       "intact: start it again")


@dataclass(frozen=True)
class JobView:
    id: str
    tenant: str
    kind: str
    status: str
    params: dict[str, Any]
    progress: dict[str, Any]
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    backup_id: str | None
    created_by: str | None
    created_at: datetime
    started_at: datetime | None
    updated_at: datetime
    completed_at: datetime | None

    @property
    def active(self) -> bool:
        return self.status in ACTIVE


def _view(row: Job) -> JobView:
    return JobView(row.id, row.tenant, row.kind, row.status, dict(row.params),
                   dict(row.progress), row.result, row.error, row.backup_id, row.created_by,
                   row.created_at, row.started_at, row.updated_at, row.completed_at)


def job_error(code: str, message: str, details: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return error


class JobStore:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def create(self, tenant: str, kind: str, params: dict[str, Any], *,
               backup_id: str | None = None, created_by: str | None = None,
               job_id: str | None = None, session: Session | None = None) -> JobView:
        """A new pending job; inside ``session`` if given (committed with the caller's rows)."""
        row = Job(id=job_id or str(uuid.uuid4()), tenant=tenant, kind=kind, status=PENDING,
                  params=params, progress={}, backup_id=backup_id, created_by=created_by,
                  cancel_requested=False)
        if session is not None:
            session.add(row)
            session.flush()
            return _view(row)
        with self.catalog.session() as own:
            own.add(row)
            own.flush()
            return _view(row)

    def get(self, job_id: str) -> JobView | None:
        with self.catalog.session() as session:
            row = session.get(Job, job_id)
            return _view(row) if row is not None else None

    def for_backup(self, backup_id: str, kind: str | None = None) -> list[JobView]:
        query = select(Job).where(Job.backup_id == backup_id).order_by(Job.created_at)
        if kind is not None:
            query = query.where(Job.kind == kind)
        with self.catalog.session() as session:
            return [_view(row) for row in session.scalars(query)]

    def start(self, job_id: str) -> JobView | None:
        """Mark a pending job in progress; None if it is no longer pending (cancelled)."""
        now = utcnow()
        with self.catalog.session() as session:
            done = session.execute(update(Job).where(Job.id == job_id, Job.status == PENDING)
                                   .values(status=IN_PROGRESS, started_at=now, updated_at=now))
            if not done.rowcount:  # type: ignore[attr-defined]
                return None
            return _view(session.get_one(Job, job_id))

    def save_progress(self, job_id: str, progress: dict[str, Any]) -> None:
        with self.catalog.session() as session:
            session.execute(update(Job).where(Job.id == job_id, Job.status.in_(ACTIVE))
                            .values(progress=progress, updated_at=utcnow()))

    def finish(self, job_id: str, status: str, *, progress: dict[str, Any] | None = None,
               result: dict[str, Any] | None = None,
               error: dict[str, Any] | None = None) -> JobView:
        now = utcnow()
        values: dict[str, Any] = {"status": status, "result": result, "error": error,
                                  "updated_at": now, "completed_at": now}
        if progress is not None:
            values["progress"] = progress
        with self.catalog.session() as session:
            session.execute(update(Job).where(Job.id == job_id).values(**values))
            return _view(session.get_one(Job, job_id))

    def request_cancel(self, job_id: str) -> None:
        with self.catalog.session() as session:
            session.execute(update(Job).where(Job.id == job_id).values(cancel_requested=True))

    def cancel_requested(self, job_id: str) -> bool:
        with self.catalog.session() as session:
            return bool(session.scalar(select(Job.cancel_requested).where(Job.id == job_id)))

    def active(self) -> list[JobView]:
        with self.catalog.session() as session:
            return [_view(row) for row in session.scalars(
                select(Job).where(Job.status.in_(ACTIVE)))]

    def mark_interrupted(self) -> list[JobView]:
        """Fail every job left pending or running by a server that stopped."""
        interrupted = []
        now = utcnow()
        with self.catalog.session() as session:
            for row in session.scalars(select(Job).where(Job.status.in_(ACTIVE))):
                row.status = FAILED
                row.error = job_error(INTERRUPTED, INTERRUPTED_MESSAGE)
                row.updated_at = row.completed_at = now
                interrupted.append(_view(row))
        return interrupted
