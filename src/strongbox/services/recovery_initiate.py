"""Recovery initiate (seed 004 section 4): restore a backup over its source, for real.

The order is what makes it safe:

1. the request is checked (confirmation, backup, source, no restore or recovery of the
   source running): a refused request changes nothing;
2. a pre-recovery backup of the source is taken (an ordinary full backup, tagged
   ``pre-recovery``) and waited for: if it fails, nothing is restored;
3. the full restore is started through the restore service, as a restore job whose
   progress ``GET /api/v1/restore/jobs/{id}`` shows (``overwrite_existing``: the source
   becomes what the backup holds). Should the restore service refuse it at this point
   (its own validation), the error is returned and the pre-recovery backup stays.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from sqlalchemy import update

from strongbox.catalog.database import Catalog
from strongbox.catalog.models import Backup
from strongbox.errors import StrongboxError
from strongbox.jobs.store import COMPLETED, FINAL, JobStore
from strongbox.services import restore_job
from strongbox.services.backups import BackupService, BackupView, NewBackup, parse_uuid
from strongbox.services.config_snapshots import missing_data
from strongbox.services.disaster_recovery import DisasterRecoveryService, size_estimate
from strongbox.services.errors import FieldError, ValidationFailed
from strongbox.services.principal import Principal
from strongbox.services.recovery_preview import confirmation_text
from strongbox.services.restore import NewRestore, RestoreInProgress, RestoreService
from strongbox.services.sources import SourceView

PRE_RECOVERY_TAG = "pre-recovery"
RECOVERY_TYPES = ("full",)


class RecoveryInProgress(StrongboxError):
    code = "OPERATION_IN_PROGRESS"
    http_status = 409


class PreRecoverySnapshotFailed(StrongboxError):
    """The pre-recovery backup failed or took too long: nothing was restored."""

    code = "SNAPSHOT_FAILED"
    http_status = 500


@dataclass
class RecoveryRequest:
    backup_id: str
    confirmation: bool | None = None
    confirmation_text: str | None = None
    recovery_type: str = "full"
    create_pre_recovery_snapshot: bool = True
    module_filter: list[str] | None = None
    reason: str | None = None


@dataclass
class StartedRecovery:
    backup: BackupView
    source: SourceView
    restore_job_id: str
    pre_recovery_backup_id: str | None
    pre_recovery_job_id: str | None
    estimated_duration_seconds: float
    warnings: list[str] = field(default_factory=list)


def check_request(request: RecoveryRequest) -> None:
    """400 for anything missing or wrong, before anything is touched."""
    errors: list[FieldError] = []
    if parse_uuid(request.backup_id) is None:
        errors.append(FieldError("backup_id", "backup_id must be a UUID", "INVALID_FORMAT",
                                 request.backup_id))
    if request.confirmation is not True:
        errors.append(FieldError("confirmation", "a recovery replaces the source: send "
                                 "confirmation: true", "REQUIRED"))
    expected = confirmation_text(str(parse_uuid(request.backup_id) or request.backup_id))
    if request.confirmation_text != expected:
        errors.append(FieldError("confirmation_text", f"send exactly {expected!r} (see GET "
                                 "/api/v1/recovery/preview/{backup_id})",
                                 "REQUIRED" if request.confirmation_text is None
                                 else "INVALID_VALUE", request.confirmation_text))
    if request.recovery_type not in RECOVERY_TYPES:
        errors.append(FieldError("recovery_type", "a recovery restores the whole backup: "
                                 "'full'", "NOT_SUPPORTED", request.recovery_type))
    if request.module_filter:
        errors.append(FieldError("module_filter", "a backup holds one source; restore parts "
                                 "of it with POST /api/v1/restore (selective mode)",
                                 "NOT_SUPPORTED", request.module_filter))
    if errors:
        raise ValidationFailed("the recovery was not confirmed or is not valid: nothing "
                               "was changed", errors)


class RecoveryService:
    def __init__(self, catalog: Catalog, store: JobStore, backups: BackupService,
                 restores: RestoreService, dr: DisasterRecoveryService, *,
                 snapshot_timeout_seconds: float = 3600.0, poll_seconds: float = 0.1) -> None:
        self.catalog = catalog
        self.store = store
        self.backups = backups
        self.restores = restores
        self.dr = dr
        self.snapshot_timeout_seconds = snapshot_timeout_seconds
        self.poll_seconds = poll_seconds
        self._busy: set[str] = set()  # sources with a recovery being started
        self._lock = threading.Lock()

    def initiate(self, principal: Principal, request: RecoveryRequest) -> StartedRecovery:
        check_request(request)
        backup, source = self.restores.restorable(principal.tenant, request.backup_id)
        spec = NewRestore(backup_id=backup.id, mode="full", overwrite_existing=True)
        self._check_no_restore_running(source)
        with self._lock:
            if source.id in self._busy:
                raise RecoveryInProgress(f"a recovery of source {source.name!r} is being "
                                         "started; wait for it")
            self._busy.add(source.id)
        try:
            return self._recover(principal, request, backup, source, spec)
        finally:
            with self._lock:
                self._busy.discard(source.id)

    def _check_no_restore_running(self, source: SourceView) -> None:
        """Refuse before the pre-recovery backup what the restore service would refuse
        after it: a restore into the source still running."""
        for job in self.store.active():
            if job.kind == restore_job.KIND and job.params.get("source_id") == source.id:
                raise RestoreInProgress(
                    f"restore job {job.id} into source {source.name!r} is still running; "
                    "wait for it or cancel it", details={"job_id": job.id})

    def _recover(self, principal: Principal, request: RecoveryRequest, backup: BackupView,
                 source: SourceView, spec: NewRestore) -> StartedRecovery:
        warnings: list[str] = []
        pre_backup = pre_job = None
        missing = missing_data(source)
        if request.create_pre_recovery_snapshot and missing is not None:
            # The disaster itself: a backup of nothing would fail and block the recovery.
            warnings.append(f"no pre-recovery backup was taken: the source's data ({missing}) "
                            "is missing, so there was nothing to keep")
        elif request.create_pre_recovery_snapshot:
            pre_backup, pre_job = self._pre_recovery_backup(principal, source, backup,
                                                            request.reason)
        else:
            warnings.append("no pre-recovery backup was taken (create_pre_recovery_snapshot "
                            "false): the source's current data is not kept")
        created = self.restores.create(principal, spec)
        rto = self.dr.rto_of(source.id, self.dr.finished_tests(principal.tenant, limit=20),
                             None)
        estimate = (float(rto.measured_seconds) if rto.measured_seconds is not None
                    else size_estimate(backup.size_bytes))
        return StartedRecovery(backup, source, created.job.id, pre_backup, pre_job,
                               round(estimate, 1), warnings)

    def _pre_recovery_backup(self, principal: Principal, source: SourceView,
                             backup: BackupView, reason: str | None) -> tuple[str, str]:
        """Back the source up as it is now and wait for it; (backup id, job id)."""
        description = f"Taken before recovering backup {backup.id} over this source"
        if reason:
            description += f": {reason}"
        created = self.backups.create(principal, NewBackup(
            name=f"pre-recovery {source.name}"[:100], type="full",
            description=description[:500], source_id=source.id))
        with self.catalog.session() as session:
            session.execute(update(Backup).where(Backup.id == created.backup.id)
                            .values(tags=[PRE_RECOVERY_TAG]))
        job_id = created.job.id
        deadline = time.monotonic() + self.snapshot_timeout_seconds
        while True:
            job = self.store.get(job_id)
            if job is not None and job.status in FINAL:
                break
            if time.monotonic() >= deadline:
                raise PreRecoverySnapshotFailed(
                    f"the pre-recovery backup {created.backup.id} did not finish within "
                    f"{self.snapshot_timeout_seconds:.0f} s: nothing was restored; start the "
                    "recovery again when it has completed",
                    details={"backup_id": created.backup.id, "job_id": job_id})
            time.sleep(self.poll_seconds)
        if job.status != COMPLETED:
            error = job.error or {}
            raise PreRecoverySnapshotFailed(
                f"the pre-recovery backup failed ({error.get('code')}: "
                f"{error.get('message')}): nothing was restored",
                details={"backup_id": created.backup.id, "job_id": job_id, "error": error})
        return created.backup.id, job_id
