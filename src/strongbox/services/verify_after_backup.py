"""Verify after backup (seed 001 ``verify``): a backup asked for with ``options.verify``
gets a quick verification as soon as its job completes.

The backup job does not wait for it: this service listens to every job on the
:class:`~strongbox.jobs.events.EventBus`, and when a ``backup`` job whose params say
``verify`` completes, it starts an ordinary ``verify`` job through
:meth:`VerificationService.start` (so the result lands in the backup's
``validation_status``, a damaged backup becomes ``corrupted``, and ``backup.verified`` is
announced like any verification). Starting the job happens on a thread of its own: bus
listeners run on the publishing job's thread and must not block it.

A backup that completed while the server was stopping, or whose verification was
interrupted by a restart, is verified at the next start (:meth:`catch_up`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import select

from strongbox.catalog.database import Catalog
from strongbox.catalog.models import Backup
from strongbox.errors import StrongboxError
from strongbox.jobs.events import COMPLETED, EventBus, JobEvent
from strongbox.jobs.store import INTERRUPTED, JobStore
from strongbox.services import backup_job, verification
from strongbox.services.principal import Principal, Role
from strongbox.services.verification import VerificationService, VerifyOptions

log = logging.getLogger(__name__)

CREATED_BY = "verify-after-backup"  # created_by of verify jobs when the backup names no key


class VerifyAfterBackup:
    def __init__(self, catalog: Catalog, store: JobStore,
                 verification_service: VerificationService) -> None:
        self.catalog = catalog
        self.store = store
        self.verification = verification_service
        self._unsubscribe: Callable[[], None] | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    # --- lifecycle ------------------------------------------------------------------------

    def start(self, bus: EventBus) -> None:
        """Listen to job events (before the executor runs jobs, so no completion is missed)."""
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="verify-after-backup")
            if self._unsubscribe is None:
                self._unsubscribe = bus.subscribe_all(self.on_job_event)

    def stop(self) -> None:
        """Stop listening and let the verifications being started finish starting."""
        with self._lock:
            if self._unsubscribe is not None:
                self._unsubscribe()
                self._unsubscribe = None
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    # --- events ---------------------------------------------------------------------------

    def on_job_event(self, event: JobEvent) -> None:
        """Called on the job's thread: hand over and return at once."""
        if event.kind != backup_job.KIND or event.type != COMPLETED or not event.backup_id:
            return
        with self._lock:
            pool = self._pool
            if pool is not None:
                pool.submit(self._after_backup, event.job_id, event.backup_id)

    def _after_backup(self, job_id: str, backup_id: str) -> None:
        job = self.store.get(job_id)
        if job is None or not (job.params or {}).get("verify"):
            return
        self.verify(job.tenant, backup_id, job.created_by)

    def verify(self, tenant: str, backup_id: str, created_by: str | None) -> str | None:
        """Start the verification of one backup; returns the job id, None if it could not
        start (the backup was deleted or is already being verified: logged)."""
        principal = Principal(created_by or CREATED_BY, CREATED_BY, tenant, Role.OPERATOR)
        try:
            started = self.verification.start(principal, backup_id, VerifyOptions(),
                                              created_by=created_by or CREATED_BY)
        except StrongboxError as exc:
            log.warning("verify after backup %s not started: %s: %s", backup_id, exc.code,
                        exc.message)
            return None
        except RuntimeError as exc:  # the executor is shutting down: catch_up() will do it
            log.warning("verify after backup %s not started: %s", backup_id, exc)
            return None
        log.info("verify after backup %s: job %s", backup_id, started.id)
        return started.id

    # --- after a restart ------------------------------------------------------------------

    def catch_up(self) -> list[str]:
        """Start the verifications a stop or restart left undone: completed backups that
        ask for ``verify`` and have no verify job, or only one a restart interrupted."""
        with self.catalog.session() as session:
            rows = session.execute(
                select(Backup.id, Backup.tenant, Backup.created_by, Backup.options)
                .where(Backup.status == "completed", Backup.deleted_at.is_(None),
                       Backup.verified_at.is_(None), Backup.snapshot_id.is_not(None))).all()
        started = []
        for backup_id, tenant, created_by, options in rows:
            if not (options or {}).get("verify"):
                continue
            jobs = self.store.for_backup(backup_id, kind=verification.KIND)
            if jobs and (jobs[-1].error or {}).get("code") != INTERRUPTED:
                continue
            job_id = self.verify(tenant, backup_id, created_by)
            if job_id is not None:
                started.append(job_id)
        return started
