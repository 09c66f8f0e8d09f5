"""Every long-running operation of a tenant in one place: list, follow, cancel.

Backups, restores, verifications, cleanups, disaster-recovery tests, snapshot restores
and uploads are all jobs in the one job table; each kind also has its own status
endpoint. This service reads them all the same way and cancels any kind through the
same path the per-kind cancel takes:

- a **pending** job is cancelled at once and never starts (the executor drops it from
  its queue, or the runner records the end of a job no worker has taken);
- a **running** job is asked to stop: ``cancel_requested`` is set in the catalog (for an
  executor in another process) and the in-process executor flags the job's progress,
  which the work checks between units, so it stops at a point where nothing is
  half-written; the runner then calls the handler's ``failed()``, which brings the
  domain records in step (a backup drops what it wrote and its row becomes ``failed``,
  a restore rolls back, a cleanup settles the backups it had claimed).

Two cases refuse with 409 ``JOB_NOT_CANCELLABLE`` rather than leave something broken:
kinds no job handler runs (an upload is driven by the client's own request: abort the
request), and a *running* snapshot restore, which writes its components one after the
other with no rollback across them (its pre-restore snapshot is the way back).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select

from strongbox.catalog.database import Catalog, sql_offset
from strongbox.catalog.models import Job
from strongbox.errors import StrongboxError
from strongbox.jobs.executor import JobExecutor
from strongbox.jobs.runner import JobRunner
from strongbox.jobs.store import (
    ACTIVE,
    CANCELLED,
    COMPLETED,
    FAILED,
    IN_PROGRESS,
    PENDING,
    JobStore,
    JobView,
)
from strongbox.services.backups import parse_uuid
from strongbox.services.errors import JobNotFound
from strongbox.services.principal import Principal
from strongbox.services.restore import JobAlreadyFinished

log = logging.getLogger(__name__)

# Kinds whose work cannot be stopped half-way without leaving the target half-written.
UNSAFE_WHILE_RUNNING = {
    "snapshot_restore": ("a running snapshot restore writes its components one after the "
                         "other and cannot roll back the ones already written; wait for it "
                         "to finish, then restore its pre-restore snapshot to undo it"),
}
NOT_RUN_BY_JOBS = {
    "upload": ("an upload is driven by the client's own request: abort that request to "
               "stop it (the upload is then marked failed)"),
}
# What a cancelled running job leaves behind, by kind (seed 004 "partial_data_cleaned").
AFTER_CANCEL = {
    "backup": "nothing it wrote was kept and earlier backups are intact",
    "restore": "everything it wrote was rolled back; the target is as it was before",
    "verify": "the backup keeps the status it had",
    "cleanup": "backups it had not deleted yet are kept",
    "dr_test": "the recovery test is recorded as cancelled",
}
STATUSES = (PENDING, IN_PROGRESS, COMPLETED, FAILED, CANCELLED)


class JobNotCancellable(StrongboxError):
    code = "JOB_NOT_CANCELLABLE"
    http_status = 409


@dataclass(frozen=True)
class Operation:
    """A job as the operations endpoints show it."""

    job: JobView
    cancel_requested: bool
    cancellable: bool


@dataclass(frozen=True)
class JobQuery:
    page: int = 1
    size: int = 20
    kind: str | None = None
    status: str | None = None  # one of STATUSES; "failed" includes cancelled jobs
    active: bool = False


@dataclass
class OperationPage:
    items: list[Operation]
    total_items: int
    page: int
    size: int

    @property
    def total_pages(self) -> int:
        return math.ceil(self.total_items / self.size) if self.total_items else 0


@dataclass(frozen=True)
class CancelledOperation:
    job: JobView
    cancelled: bool  # the job has ended; False: asked to stop, still on its way
    started: bool  # it had started (so its handler had something to clean up)
    message: str


def progress_summary(job: JobView) -> dict[str, Any]:
    """One shape over every kind's progress block (they differ: a backup counts
    ``documents_processed``/``bytes_written``, a restore ``documents_restored``/
    ``bytes_restored``, an upload ``bytes_received``). Absent facts stay None."""
    doc = job.progress or {}

    def first(*names: str) -> Any:
        return next((doc[n] for n in names if doc.get(n) is not None), None)

    percentage = first("percentage")
    if job.status == COMPLETED:
        percentage = 100.0
    return {
        "percentage": float(percentage) if percentage is not None else 0.0,
        "current_step": first("current_step", "status") or
        ("queued" if job.status == PENDING else None),
        "current_operation": first("current_operation"),
        "total_steps": first("total_steps"),
        "completed_steps": first("completed_steps"),
        "items_done": first("documents_processed", "documents_restored"),
        "items_total": first("documents_total"),
        "bytes_done": first("bytes_written", "bytes_restored", "bytes_received"),
        "bytes_total": first("bytes_total"),
        "elapsed_seconds": first("elapsed_seconds"),
        "eta_seconds": first("estimated_remaining_seconds") if job.active else None,
    }


class OperationsService:
    def __init__(self, catalog: Catalog, store: JobStore, executor: JobExecutor,
                 runner: JobRunner, *, cancel_wait_seconds: float = 15.0) -> None:
        self.catalog = catalog
        self.store = store
        self.executor = executor
        self.runner = runner
        self.cancel_wait_seconds = cancel_wait_seconds

    # --- read -----------------------------------------------------------------------------

    def list(self, tenant: str, query: JobQuery) -> OperationPage:
        base = self._filtered(tenant, query)
        with self.catalog.session() as session:
            total = session.scalar(select(func.count()).select_from(base.subquery())) or 0
            rows = session.scalars(base.order_by(Job.created_at.desc(), Job.id)
                                   .offset(sql_offset(query.page, query.size))
                                   .limit(query.size))
            items = [(row.id, bool(row.cancel_requested)) for row in rows]
        operations = []
        for job_id, requested in items:
            job = self.store.get(job_id)
            if job is not None:
                operations.append(self._operation(job, requested))
        return OperationPage(operations, int(total), query.page, query.size)

    @staticmethod
    def _filtered(tenant: str, query: JobQuery) -> Select[tuple[Job]]:
        base = select(Job).where(Job.tenant == tenant)
        if query.kind:
            base = base.where(Job.kind == query.kind)
        if query.status == FAILED:  # the seed's JobStatus: a cancelled job is a failed one
            base = base.where(Job.status.in_((FAILED, CANCELLED)))
        elif query.status:
            base = base.where(Job.status == query.status)
        if query.active:
            base = base.where(Job.status.in_(ACTIVE))
        return base

    def get(self, tenant: str, job_id: str) -> Operation:
        job = self._job(tenant, job_id)
        return self._operation(job, self.store.cancel_requested(job.id))

    def _job(self, tenant: str, job_id: str) -> JobView:
        key = parse_uuid(job_id)
        job = self.store.get(key) if key else None
        if job is None or job.tenant != tenant:
            raise JobNotFound(f"job {job_id} not found")
        return job

    def _operation(self, job: JobView, requested: bool) -> Operation:
        return Operation(job, requested, job.active and self._refusal(job) is None)

    def _refusal(self, job: JobView) -> str | None:
        """Why this active job may not be cancelled now (None: it may)."""
        if job.kind in NOT_RUN_BY_JOBS or job.kind not in self.runner.handlers:
            return NOT_RUN_BY_JOBS.get(job.kind, f"jobs of kind {job.kind!r} have no "
                                       "handler on this server and cannot be cancelled")
        if job.status != PENDING and job.kind in UNSAFE_WHILE_RUNNING:
            return UNSAFE_WHILE_RUNNING[job.kind]
        return None

    # --- cancel ---------------------------------------------------------------------------

    def cancel(self, principal: Principal, job_id: str,
               reason: str | None = None) -> CancelledOperation:
        job = self._job(principal.tenant, job_id)
        if not job.active:
            raise JobAlreadyFinished(f"{job.kind} job {job.id} has already ended "
                                     f"({job.status})", details={"status": job.status})
        refusal = self._refusal(job)
        if refusal is not None:
            raise JobNotCancellable(f"{job.kind} job {job.id} cannot be cancelled: {refusal}",
                                    details={"kind": job.kind, "status": job.status})
        log.info("job %s (%s) cancelled by key %s: %s", job.id, job.kind, principal.key_id,
                 reason or "no reason given")
        # Durable first: an executor in another process polls this flag.
        self.store.request_cancel(job.id)
        if not self.executor.cancel(job.id):
            # Not in this executor: still queued elsewhere (or never handed to one).
            self.runner.cancel_pending(job.id)
        final = self._wait(job.id)
        if final.status == COMPLETED:
            raise JobAlreadyFinished(f"{job.kind} job {job.id} finished before it could be "
                                     "cancelled", details={"status": final.status})
        started = final.started_at is not None
        return CancelledOperation(final, not final.active, started,
                                  _message(final, started))

    def _wait(self, job_id: str) -> JobView:
        deadline = time.monotonic() + self.cancel_wait_seconds
        while True:
            job = self.store.get(job_id)
            if job is None:
                raise JobNotFound(f"job {job_id} not found")
            if not job.active or time.monotonic() >= deadline:
                return job
            time.sleep(0.05)


def _message(job: JobView, started: bool) -> str:
    if job.active:
        return (f"cancellation requested; the {job.kind} job stops at its next safe point "
                "and cleans up what it wrote")
    if not started:
        return f"{job.kind} job cancelled before it started; nothing was done"
    if job.status == FAILED and (job.error or {}).get("code") != "CANCELLED":
        return f"{job.kind} job failed before the cancellation reached it"
    after = AFTER_CANCEL.get(job.kind, "it stopped at a safe point")
    return f"{job.kind} job cancelled: {after}"
