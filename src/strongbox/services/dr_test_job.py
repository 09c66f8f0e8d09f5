"""The DR test: restore the latest backup of every source into scratch, verify, time it.

``POST /api/v1/recovery/test`` records a ``dr_tests`` row and starts a job of kind
``dr_test``. The job takes the tenant's sources in recovery order (the plan's order) and,
for each, the newest restorable backup, and runs
:func:`~strongbox.services.scratch_restore.test_restore` on it: the real restore engine
into a scratch target, then the source's own integrity checks. The wall time of each
source's restore and checks is its measured RTO; the wall time of the whole run is the
tenant's overall RTO (the sources are recovered one after another). A source without a
backup is ``skipped`` and fails the test: it could not be recovered.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from strongbox.catalog.database import Catalog
from strongbox.catalog.models import DrTest
from strongbox.catalog.types import utcnow
from strongbox.errors import Cancelled, StrongboxError
from strongbox.jobs.executor import JobExecutor
from strongbox.jobs.progress import JobProgress
from strongbox.jobs.store import JobStore, JobView
from strongbox.services.backups import BackupService
from strongbox.services.disaster_recovery import (
    DisasterRecoveryService,
    DrTestView,
    dr_test_view,
    recovery_order,
)
from strongbox.services.principal import Principal
from strongbox.services.scratch_restore import test_restore
from strongbox.services.sources import SourceService, SourceView
from strongbox.services.storage import RepositoryProvider

log = logging.getLogger(__name__)

KIND = "dr_test"
STEPS = ("planning", "testing", "recording")
ACTIVE_STATUSES = ("pending", "in_progress")


class DrTestInProgress(StrongboxError):
    code = "OPERATION_IN_PROGRESS"
    http_status = 409


class DrTestService:
    """Start DR tests (one at a time per tenant)."""

    def __init__(self, catalog: Catalog, store: JobStore, executor: JobExecutor) -> None:
        self.catalog = catalog
        self.store = store
        self.executor = executor
        self._lock = threading.Lock()

    def start(self, principal: Principal) -> tuple[DrTestView, JobView]:
        tenant = principal.tenant
        with self._lock:  # the check and the new row together
            with self.catalog.session() as session:
                running = session.scalar(select(DrTest.id).where(
                    DrTest.tenant == tenant, DrTest.status.in_(ACTIVE_STATUSES)).limit(1))
            if running is not None:
                raise DrTestInProgress(f"DR test {running} is still running; wait for it",
                                       details={"test_id": running})
            test_id = str(uuid.uuid4())
            with self.catalog.session() as session:
                job = self.store.create(tenant, KIND, {"test_id": test_id},
                                        created_by=principal.key_id, session=session)
                row = DrTest(id=test_id, tenant=tenant, job_id=job.id, status="pending",
                             created_by=principal.key_id, results={})
                session.add(row)
                session.flush()
                view = dr_test_view(row)
        self.executor.submit(job)
        return view, job


def _skipped(source: SourceView, reason: str) -> dict[str, Any]:
    return {"source_id": source.id, "source_name": source.name, "source_kind": source.kind,
            "status": "skipped", "ok": False, "reason": reason, "duration_seconds": None,
            "checks": [], "damaged": []}


class DrTestJobHandler:
    steps: Sequence[str] = STEPS

    def __init__(self, catalog: Catalog, storage: RepositoryProvider, sources: SourceService,
                 backups: BackupService, dr: DisasterRecoveryService, scratch_root: Path, *,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.catalog = catalog
        self.storage = storage
        self.sources = sources
        self.backups = backups
        self.dr = dr
        self.scratch_root = scratch_root
        self.clock = clock

    def run(self, job: JobView, progress: JobProgress) -> dict[str, Any]:
        test_id = job.params["test_id"]
        self._update(test_id, status="in_progress", started_at=self.clock())
        progress.step("planning")
        ordered, _notes = recovery_order(self.sources.list(job.tenant))
        targets = []
        for source in ordered:
            points = self.dr.points_of(job.tenant, source.id)
            targets.append((source, points[0] if points else None))
        progress.step("testing")
        progress.set_totals(items_total=len(targets))
        repo = self.storage.open()
        started = time.monotonic()
        results = []
        for index, (source, point) in enumerate(targets, start=1):
            progress.check_cancelled()
            progress.operation(f"testing {source.name} ({index}/{len(targets)})")
            if point is None:
                results.append(_skipped(source, "no restorable backup"))
            else:
                results.append(self._test_one(repo, job.tenant, source, point.backup_id,
                                              self.scratch_root / test_id, progress))
            progress.advance(items=1)
        duration = round(time.monotonic() - started, 3)
        progress.step("recording")
        summary = {"sources_total": len(results),
                   "passed": sum(1 for r in results if r["status"] == "passed"),
                   "failed": sum(1 for r in results if r["status"] == "failed"),
                   "skipped": sum(1 for r in results if r["status"] == "skipped")}
        passed = bool(results) and summary["passed"] == len(results)
        self._update(test_id, status="completed", passed=passed, completed_at=self.clock(),
                     duration_seconds=duration,
                     results={"sources": results, "summary": summary})
        return {"test_id": test_id, "passed": passed, "duration_seconds": duration,
                **summary}

    def _test_one(self, repo: Any, tenant: str, source: SourceView, backup_id: str,
                  scratch: Path, progress: JobProgress) -> dict[str, Any]:
        backup = self.backups.get(tenant, backup_id)
        doc: dict[str, Any] = {
            "source_id": source.id, "source_name": source.name, "source_kind": source.kind,
            "backup_id": backup.id, "backup_name": backup.name,
            "backup_created_at": backup.created_at.isoformat(),
            "backup_size_bytes": backup.size_bytes}
        started = time.monotonic()
        try:
            outcome = test_restore(repo, backup, scratch, sources=self.sources,
                                   progress=progress)
        except Cancelled:
            raise
        except Exception as exc:  # one source's surprise must not hide the others' results
            log.exception("DR test of source %s failed unexpectedly", source.id)
            return {**doc, "status": "failed", "ok": False,
                    "duration_seconds": round(time.monotonic() - started, 3),
                    "checks": [{"name": "restore", "ok": False,
                                "detail": f"unexpected error: {exc}"}], "damaged": []}
        # The whole time to get the source back, as measured here (restore and checks).
        measured = round(max(time.monotonic() - started, outcome.duration_seconds), 3)
        return {**doc, "status": "passed" if outcome.ok else "failed", "ok": outcome.ok,
                "duration_seconds": measured,
                "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail}
                           for c in outcome.checks],
                "damaged": list(outcome.damaged), "rows_restored": outcome.rows_restored,
                "files_restored": outcome.files_restored,
                "bytes_restored": outcome.bytes_restored}

    def _update(self, test_id: str, **values: Any) -> None:
        with self.catalog.session() as session:
            row = session.get(DrTest, test_id)
            if row is not None:
                for name, value in values.items():
                    setattr(row, name, value)

    def failed(self, job: JobView, error: dict[str, Any]) -> None:
        """Cancelled, interrupted or broken: the test row says so (and measured nothing)."""
        test_id = job.params.get("test_id")
        if test_id:
            status = "cancelled" if error.get("code") == "CANCELLED" else "failed"
            self._update(test_id, status=status, passed=False, completed_at=self.clock(),
                         results={"error": error, "sources": [], "summary": {}})
