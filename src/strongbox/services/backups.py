"""Backups (seed 000 ``BackupService``): create, list, show, delete, and their jobs."""

from __future__ import annotations

import builtins
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Select, func, or_, select, update

from strongbox.catalog.database import Catalog, sql_offset
from strongbox.catalog.models import Backup
from strongbox.catalog.types import utcnow
from strongbox.errors import InsufficientStorage, SnapshotNotFound, StrongboxError
from strongbox.jobs.executor import JobExecutor
from strongbox.jobs.store import FINAL, JobStore, JobView
from strongbox.repository.lock import Lock
from strongbox.services import backup_job
from strongbox.services.backup_job import estimate_bytes
from strongbox.services.errors import (
    BackupInProgress,
    BackupNotFound,
    FieldError,
    InvalidBackupType,
    JobNotFound,
    ValidationFailed,
)
from strongbox.services.filters import check_applicable, has_any
from strongbox.services.notifications import check_backup_notification
from strongbox.services.pagination import Page
from strongbox.services.principal import Principal
from strongbox.services.sources import SourceService
from strongbox.services.storage import RepositoryProvider, exclusive_bytes

log = logging.getLogger(__name__)

BACKUP_TYPES = ("full", "selective", "incremental", "differential")
CHAINED_TYPES = ("incremental", "differential")  # types that build on a parent backup
# Types a later incremental/differential backup may build on: a selective backup holds only
# part of its source, so change detection against it would say little.
PARENT_TYPES = ("full", "incremental", "differential")
BACKUP_STATUSES = ("pending", "in_progress", "completed", "failed", "corrupted", "deleting")
SORT_FIELDS = ("created_at", "completed_at", "name", "size_bytes", "type", "status")
THROUGHPUT = 50 * 1024 * 1024  # bytes/s assumed for duration estimates
MAX_RETENTION_DAYS = 36500


def check_extras(options: dict[str, Any] | None) -> dict[str, Any] | None:
    """Check and normalize a backup's seed 001 options (``verify``, ``retention_days``,
    ``notification``), whoever asks for the backup (the API, a schedule's options)."""
    if not options:
        return options
    errors: list[FieldError] = []
    result = dict(options)
    verify = options.get("verify")
    if verify is not None and not isinstance(verify, bool):
        errors.append(FieldError("options.verify", "true or false", "INVALID_TYPE", verify))
    days = options.get("retention_days")
    if days is not None and (isinstance(days, bool) or not isinstance(days, int)
                             or not 1 <= days <= MAX_RETENTION_DAYS):
        errors.append(FieldError("options.retention_days", f"whole days, 1 to "
                                 f"{MAX_RETENTION_DAYS}", "OUT_OF_RANGE", days))
    try:
        notification = check_backup_notification(options.get("notification"))
    except ValidationFailed as exc:
        errors.extend(exc.errors)
    else:
        result.pop("notification", None)
        if notification:
            result["notification"] = notification
    if errors:
        raise ValidationFailed("request validation failed", errors)
    return result


def backup_expiry(created_at: datetime, options: dict[str, Any] | None) -> datetime | None:
    """When a backup with ``options.retention_days`` expires: that many days after it was
    created (seed 001 "days to retain backup"); None: it never expires by itself."""
    days = (options or {}).get("retention_days")
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        return None
    return _aware(created_at) + timedelta(days=days)


def parse_uuid(value: str) -> str | None:
    try:
        return str(uuid.UUID(value))
    except (ValueError, AttributeError, TypeError):
        return None


class BackupDefaults(Protocol):
    """Per-tenant settings a backup takes its defaults and limits from."""

    def compression_level(self, tenant: str) -> int: ...

    def quota_bytes(self, tenant: str) -> int | None: ...


@dataclass
class NewBackup:
    name: str
    type: str
    description: str | None = None
    filters: dict[str, Any] | None = None
    options: dict[str, Any] | None = None
    source_id: str | None = None
    schedule_id: str | None = None  # the schedule that asked for it, if any
    tags: list[str] | None = None


@dataclass(frozen=True)
class BackupView:
    id: str
    tenant: str
    name: str
    description: str | None
    type: str
    status: str
    source_id: str | None
    source_name: str
    source_kind: str
    job_id: str
    filters: dict[str, Any] | None
    options: dict[str, Any] | None
    created_at: datetime
    created_by: str | None
    completed_at: datetime | None
    snapshot_id: str | None
    storage_location: str
    size_bytes: int
    compressed_size_bytes: int | None
    added_bytes: int | None
    contents: dict[str, Any] | None
    checksum: str | None
    encryption: dict[str, Any] | None
    compression: dict[str, Any] | None
    validation: dict[str, Any] | None
    error_message: str | None
    parent_id: str | None = None
    protected: bool = False
    protected_reason: str | None = None
    tags: list[str] | None = None
    schedule_id: str | None = None
    verified_at: datetime | None = None

    @property
    def can_restore(self) -> bool:
        return self.status == "completed" and self.snapshot_id is not None

    @property
    def expires_at(self) -> datetime | None:
        return backup_expiry(self.created_at, self.options)


def _view(row: Backup) -> BackupView:
    return BackupView(
        row.id, row.tenant, row.name, row.description, row.type, row.status, row.source_id,
        row.source_name, row.source_kind, row.job_id, row.filters, row.options, row.created_at,
        row.created_by, row.completed_at, row.snapshot_id, row.storage_location, row.size_bytes,
        row.compressed_size_bytes, row.added_bytes, row.contents, row.checksum, row.encryption,
        row.compression, row.validation, row.error_message, row.parent_id,
        bool(row.protected), row.protected_reason, row.tags, row.schedule_id, row.verified_at)


@dataclass
class BackupQuery:
    page: int = 1
    size: int = 20
    sort: str = "created_at,desc"
    type: str | None = None
    status: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    min_size: int | None = None
    max_size: int | None = None
    search: str | None = None

    def sort_key(self) -> tuple[str, bool]:
        """(field, descending); raises ValidationFailed for anything else."""
        field_name, _, direction = self.sort.partition(",")
        field_name, direction = field_name.strip(), (direction.strip() or "asc").lower()
        if field_name not in SORT_FIELDS or direction not in ("asc", "desc"):
            raise ValidationFailed("invalid sort", [FieldError(
                "sort", f"sort is FIELD,asc|desc with FIELD one of {', '.join(SORT_FIELDS)}",
                "INVALID_FORMAT", self.sort)])
        return field_name, direction == "desc"


@dataclass
class BackupPage(Page[BackupView]):
    summary: dict[str, Any]


@dataclass
class CreatedBackup:
    backup: BackupView
    job: JobView
    estimated_size_bytes: int | None
    estimated_duration_seconds: float | None
    note: str | None = None  # e.g. an incremental taken as full for want of a parent


@dataclass
class DeletedBackup:
    backup_id: str
    deleted_at: datetime
    freed_bytes: int
    files_deleted: int
    message: str


@dataclass(frozen=True)
class RestoreAttemptView:
    id: str
    restored_at: datetime
    restored_by: str
    status: str
    documents_restored: int
    error_message: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


class BackupService:
    def __init__(self, catalog: Catalog, store: JobStore, executor: JobExecutor,
                 storage: RepositoryProvider, sources: SourceService,
                 defaults: BackupDefaults, *, delete_wait_seconds: float = 15.0) -> None:
        self.catalog = catalog
        self.store = store
        self.executor = executor
        self.storage = storage
        self.sources = sources
        self.defaults = defaults
        self.delete_wait_seconds = delete_wait_seconds

    # --- create ---------------------------------------------------------------------------

    def create(self, principal: Principal, spec: NewBackup) -> CreatedBackup:
        if spec.type not in BACKUP_TYPES:
            raise InvalidBackupType("invalid backup type", [FieldError(
                "type", f"type must be one of {', '.join(BACKUP_TYPES)}", "INVALID_VALUE",
                spec.type)])
        selective = spec.type == "selective"
        if selective and not has_any(spec.filters):
            raise ValidationFailed("a selective backup needs at least one filter", [FieldError(
                "filters", "give at least one filter for a selective backup",
                "FILTER_REQUIRED")])
        options = check_extras(spec.options)
        tenant = principal.tenant
        if spec.source_id is not None:
            source = self.sources.get(tenant, spec.source_id)
        else:
            found = self.sources.default(tenant, "sqlite")
            if found is None:
                raise ValidationFailed("no source to back up", [FieldError(
                    "source_id", "this tenant has no sqlite source: give source_id",
                    "REQUIRED")])
            source = found
        if selective and spec.filters:
            check_applicable(source.kind, spec.filters)
        estimate = estimate_bytes(source, selective)
        self._check_space(tenant, estimate)
        level = self._compression_level(tenant, options or {})
        backup_type, parent, note = self._lineage(tenant, source.id, spec.type)
        backup_id = str(uuid.uuid4())
        job_id = str(uuid.uuid4())
        params = {"source_id": source.id, "selective": selective, "filters": spec.filters,
                  "compression_level": level, "type": backup_type,
                  "parent_backup_id": parent.id if parent else None,
                  "parent_snapshot_id": parent.snapshot_id if parent else None}
        # What happens around the job (services/verify_after_backup.py, notifications).
        if options and options.get("verify"):
            params["verify"] = True
        if options and options.get("notification"):
            params["notification"] = options["notification"]
        with self.catalog.session() as session:
            row = Backup(id=backup_id, tenant=tenant, name=spec.name,
                         description=spec.description, type=backup_type, status="pending",
                         source_id=source.id, source_name=source.name, source_kind=source.kind,
                         job_id=job_id, filters=spec.filters, options=options,
                         created_by=principal.key_id,
                         storage_location=self.storage.location, size_bytes=0,
                         parent_id=parent.id if parent else None,
                         schedule_id=spec.schedule_id, tags=spec.tags)
            session.add(row)
            session.flush()
            job = self.store.create(tenant, backup_job.KIND, params, backup_id=backup_id,
                                    created_by=principal.key_id, job_id=job_id,
                                    session=session)
            backup = _view(row)
        self.executor.submit(job)
        duration = None if estimate is None else max(1.0, round(estimate / THROUGHPUT, 1))
        return CreatedBackup(backup, job, estimate, duration, note)

    def _lineage(self, tenant: str, source_id: str, requested: str
                 ) -> tuple[str, BackupView | None, str | None]:
        """(type to record, parent backup, a note for the caller).

        An incremental backup builds on the last completed backup of its source, a
        differential one on the last completed full backup. Without such a parent the
        backup is taken as a full one (and says so), so that a schedule of incrementals
        works from its very first run.
        """
        if requested not in CHAINED_TYPES:
            return requested, None, None
        parent = self.latest_completed(tenant, source_id, PARENT_TYPES if
                                       requested == "incremental" else ("full",))
        if parent is None:
            wanted = "backup" if requested == "incremental" else "full backup"
            return "full", None, (f"no completed {wanted} of this source to build on: "
                                  f"taken as a full backup instead of {requested}")
        return requested, parent, None

    def latest_completed(self, tenant: str, source_id: str,
                         types: tuple[str, ...] = PARENT_TYPES) -> BackupView | None:
        """The newest completed backup of ``source_id`` among ``types``."""
        with self.catalog.session() as session:
            row = session.scalars(
                select(Backup).where(Backup.tenant == tenant, Backup.source_id == source_id,
                                     Backup.status == "completed", Backup.deleted_at.is_(None),
                                     Backup.type.in_(types), Backup.snapshot_id.is_not(None))
                .order_by(Backup.created_at.desc(), Backup.id.desc()).limit(1)).first()
            return _view(row) if row is not None else None

    def _compression_level(self, tenant: str, options: dict[str, Any]) -> int:
        if options.get("compress") is False:
            return 0
        if options.get("compression_level") is not None:
            return int(options["compression_level"])
        return self.defaults.compression_level(tenant)

    def _check_space(self, tenant: str, estimate: int | None) -> None:
        quota = self.defaults.quota_bytes(tenant)
        if quota is not None and self.storage.used_bytes() + (estimate or 0) > quota:
            raise InsufficientStorage("the backup would exceed the storage quota "
                                      "(settings: storage.filesystem.max_size_gb)")
        free = self.storage.available_bytes()
        if estimate is not None and free is not None and free < estimate:
            raise InsufficientStorage(f"not enough free space for the repository: about "
                                      f"{estimate} bytes needed, {free} free")

    # --- read -----------------------------------------------------------------------------

    def get(self, tenant: str, backup_id: str) -> BackupView:
        key = parse_uuid(backup_id)
        with self.catalog.session() as session:
            row = session.get(Backup, key) if key else None
            if row is None or row.tenant != tenant or row.deleted_at is not None:
                raise BackupNotFound(f"backup {backup_id} not found")
            return _view(row)

    def _filtered(self, tenant: str, query: BackupQuery) -> Select[Any]:
        stmt = select(Backup).where(Backup.tenant == tenant, Backup.deleted_at.is_(None))
        if query.type:
            stmt = stmt.where(Backup.type == query.type)
        if query.status:
            stmt = stmt.where(Backup.status == query.status)
        if query.created_after:
            stmt = stmt.where(Backup.created_at >= query.created_after)
        if query.created_before:
            stmt = stmt.where(Backup.created_at <= query.created_before)
        if query.min_size is not None:
            stmt = stmt.where(Backup.size_bytes >= query.min_size)
        if query.max_size is not None:
            stmt = stmt.where(Backup.size_bytes <= query.max_size)
        if query.search:
            escaped = (query.search.lower().replace("\\", "\\\\").replace("%", "\\%")
                       .replace("_", "\\_"))
            pattern = f"%{escaped}%"
            stmt = stmt.where(or_(func.lower(Backup.name).like(pattern, escape="\\"),
                                  func.lower(func.coalesce(Backup.description, ""))
                                  .like(pattern, escape="\\")))
        return stmt

    def list(self, tenant: str, query: BackupQuery) -> BackupPage:
        field_name, descending = query.sort_key()
        base = self._filtered(tenant, query)
        column = getattr(Backup, field_name)
        order = column.desc() if descending else column.asc()
        matching = base.subquery()
        with self.catalog.session() as session:
            total, size_sum, oldest, newest = session.execute(select(
                func.count(), func.coalesce(func.sum(matching.c.size_bytes), 0),
                func.min(matching.c.created_at), func.max(matching.c.created_at))).one()
            by_type = dict.fromkeys(BACKUP_TYPES, 0)
            for kind, count in session.execute(select(matching.c.type, func.count())
                                               .group_by(matching.c.type)):
                by_type[kind] = count
            rows = session.scalars(base.order_by(order, Backup.id)
                                   .offset(sql_offset(query.page, query.size)).limit(query.size))
            items = [_view(row) for row in rows]
        summary: dict[str, Any] = {"total_size_bytes": int(size_sum), "total_backups": total,
                                   "backups_by_type": by_type}
        if oldest is not None:
            # Aggregates bypass the column type: give SQLite's naive values their zone.
            summary["oldest_backup"] = _aware(oldest)
            summary["newest_backup"] = _aware(newest)
        return BackupPage(items, total, query.page, query.size, summary)

    def restore_history(self, tenant: str, backup_id: str
                        ) -> builtins.list[RestoreAttemptView]:
        """Restores made from this backup (jobs of kind ``restore`` naming it, not dry
        runs)."""
        attempts = []
        for job in self.store.for_backup(backup_id, kind="restore"):
            if job.tenant != tenant or job.status not in FINAL or job.params.get("dry_run"):
                continue  # a dry run restored nothing
            result = job.result or {}
            status = "success" if job.status == "completed" else "failed"
            if status == "success" and result.get("failed_documents"):
                status = "partial"
            attempts.append(RestoreAttemptView(
                job.id, job.completed_at or job.updated_at, job.created_by or "",
                status, int(result.get("total_documents", 0)),
                (job.error or {}).get("message")))
        return attempts

    def job(self, tenant: str, job_id: str, kind: str = backup_job.KIND) -> JobView:
        key = parse_uuid(job_id)
        job = self.store.get(key) if key else None
        if job is None or job.tenant != tenant or job.kind != kind:
            raise JobNotFound(f"job {job_id} not found")
        return job

    # --- delete ---------------------------------------------------------------------------

    def delete(self, principal: Principal, backup_id: str, *, force: bool = False,
               reason: str | None = None) -> DeletedBackup:
        """Delete a backup (seed 000 1.5). A protected one only with ``force`` and a
        ``reason`` (seed 001): the deletion is logged with the reason."""
        backup = self.get(principal.tenant, backup_id)
        pinned = backup.protected
        if pinned:
            self._check_override(principal, backup, force=force, reason=reason)
        if backup.status == "deleting":
            raise BackupInProgress(f"backup {backup.id} is already being deleted")
        if backup.status in ("pending", "in_progress"):
            if not force:
                raise BackupInProgress(f"backup {backup.id} is still running (job "
                                       f"{backup.job_id}); wait, or delete with force=true")
            if not self._mark_deleting(backup.id, backup.status, pinned):
                # It just finished, or was just protected: look again.
                return self.delete(principal, backup_id, force=force, reason=reason)
            return self._delete_running(backup)
        if not self._mark_deleting(backup.id, backup.status, pinned):
            return self.delete(principal, backup_id, force=force, reason=reason)
        try:
            freed, files = self._forget_snapshot(backup.snapshot_id)
        except Exception:
            self._set_status(backup.id, backup.status)
            raise
        deleted_at = self._mark_deleted(backup.id)
        if pinned and reason:  # the catalog row keeps why a pinned backup went
            self._set_protection(backup.id, True, f"force-deleted: {reason.strip()}"[:500])
        return DeletedBackup(backup.id, deleted_at, freed, files,
                             f"backup {backup.name!r} deleted; its snapshot was forgotten and "
                             "the next prune frees its space")

    def _check_override(self, principal: Principal, backup: BackupView, *, force: bool,
                        reason: str | None) -> None:
        """A protected backup goes only with force=true and a reason; log who and why."""
        if not force:
            raise BackupProtected(
                f"backup {backup.id} is protected ({backup.protected_reason or 'no reason'}): "
                "unprotect it first, or delete with force=true and a reason",
                details={"backup_id": backup.id, "protected_reason": backup.protected_reason})
        if not (reason and reason.strip()):
            raise ValidationFailed("deleting a protected backup needs a reason", [FieldError(
                "reason", "give the reason for deleting a protected backup", "REQUIRED")])
        log.warning("protected backup %s (%s) force-deleted by key %s (tenant %s): %s",
                    backup.id, backup.protected_reason, principal.key_id, principal.tenant,
                    reason.strip())

    # --- protection -----------------------------------------------------------------------

    def protect(self, principal: Principal, backup_id: str, reason: str) -> BackupView:
        """Pin a backup: no retention rule, cleanup or plain DELETE removes it."""
        backup = self.get(principal.tenant, backup_id)
        if backup.status == "deleting":
            raise BackupInProgress(f"backup {backup.id} is being deleted")
        with self.catalog.session() as session:
            done = session.execute(update(Backup).where(Backup.id == backup.id,
                                                        Backup.status != "deleting",
                                                        Backup.deleted_at.is_(None))
                                   .values(protected=True, protected_reason=reason.strip()))
            if not done.rowcount:  # type: ignore[attr-defined]
                raise BackupInProgress(f"backup {backup.id} is being deleted")
        return self.get(principal.tenant, backup.id)

    def unprotect(self, principal: Principal, backup_id: str,
                  reason: str | None = None) -> BackupView:
        backup = self.get(principal.tenant, backup_id)
        note = f"unprotected: {reason.strip()}"[:500] if reason and reason.strip() else None
        self._set_protection(backup.id, False, note)
        return self.get(principal.tenant, backup.id)

    def _set_protection(self, backup_id: str, protected: bool, reason: str | None) -> None:
        with self.catalog.session() as session:
            session.execute(update(Backup).where(Backup.id == backup_id)
                            .values(protected=protected, protected_reason=reason))

    # --- deletion for cleanup -------------------------------------------------------------

    def claim_for_cleanup(self, tenant: str, backup_id: str,
                          in_use: Callable[[str], bool]) -> tuple[BackupView, str] | str:
        """Mark a backup ``deleting`` for a cleanup, unless it may not go any more.

        Returns the backup and its status before the claim, or why it was skipped. The
        claim is one conditional update (terminal status, not protected), and "in use" is
        checked after it: a restore or verification that starts later sees ``deleting``
        and refuses, one that started earlier is seen here, and the claim is undone.
        """
        with self.catalog.session() as session:
            row = session.get(Backup, backup_id)
            if row is None or row.tenant != tenant or row.deleted_at is not None:
                return "already deleted"
            if row.protected:
                return "protected since the plan was made"
            status = row.status
            if status not in ("completed", "failed", "corrupted"):
                return f"status is {status}"
            done = session.execute(update(Backup).where(
                Backup.id == backup_id, Backup.status == status,
                Backup.protected.is_(False), Backup.deleted_at.is_(None))
                .values(status="deleting"))
            if not done.rowcount:  # type: ignore[attr-defined]
                return "changed since the plan was made"
        if in_use(backup_id):
            self._set_status(backup_id, status)
            return "in use by a running job"
        return self.get(tenant, backup_id), status

    def release_claim(self, backup_id: str, status: str) -> None:
        """Undo :meth:`claim_for_cleanup` (forgetting the snapshot failed)."""
        self._set_status(backup_id, status)

    def finish_deletion(self, backup_id: str) -> datetime:
        return self._mark_deleted(backup_id)

    def _delete_running(self, backup: BackupView) -> DeletedBackup:
        """Cancel the job; the job itself drops whatever it wrote and marks the row."""
        self.store.request_cancel(backup.job_id)
        self.executor.cancel(backup.job_id)
        deadline = time.monotonic() + self.delete_wait_seconds
        while time.monotonic() < deadline:
            job = self.store.get(backup.job_id)
            if job is None or job.status in FINAL:
                break
            time.sleep(0.05)
        else:
            return DeletedBackup(backup.id, utcnow(), 0, 0,
                                 "the backup's job was asked to stop; the backup disappears "
                                 "when it does")
        with self.catalog.session() as session:
            row = session.get_one(Backup, backup.id)
            if row.deleted_at is None:  # the job had already committed a snapshot
                snapshot_id = row.snapshot_id
            else:
                return DeletedBackup(backup.id, row.deleted_at, 0, 0,
                                     "the running backup was cancelled and deleted")
        freed, files = self._forget_snapshot(snapshot_id)
        return DeletedBackup(backup.id, self._mark_deleted(backup.id), freed, files,
                             "the backup was deleted")

    def _forget_snapshot(self, snapshot_id: str | None) -> tuple[int, int]:
        """Forget the snapshot; returns (bytes the next prune frees, files deleted)."""
        if not snapshot_id:
            return 0, 0
        repo = self.storage.open()
        with Lock(repo.backend, exclusive=False).acquire():
            try:
                snapshot = repo.load_snapshot(snapshot_id)
            except SnapshotNotFound:
                return 0, 0
            freed = exclusive_bytes(repo, snapshot)
            with contextlib.suppress(SnapshotNotFound):
                repo.delete_snapshot(snapshot.id)
                return freed, 1
        return 0, 0

    def _mark_deleting(self, backup_id: str, old_status: str, protected: bool) -> bool:
        """Claim the row for deletion if it is as the caller saw it (status and
        protection): a protection that lands after the caller's check wins."""
        with self.catalog.session() as session:
            done = session.execute(update(Backup).where(Backup.id == backup_id,
                                                        Backup.status == old_status,
                                                        Backup.protected.is_(protected))
                                   .values(status="deleting"))
            return bool(done.rowcount)  # type: ignore[attr-defined]

    def _set_status(self, backup_id: str, status: str) -> None:
        with self.catalog.session() as session:
            session.execute(update(Backup).where(Backup.id == backup_id).values(status=status))

    def _mark_deleted(self, backup_id: str) -> datetime:
        now = utcnow()
        with self.catalog.session() as session:
            session.execute(update(Backup).where(Backup.id == backup_id)
                            .values(deleted_at=now))
        return now


class BackupProtected(StrongboxError):
    """Seed 001's RETENTION_POLICY_VIOLATION: the backup is pinned."""

    code = "RETENTION_POLICY_VIOLATION"
    http_status = 409


def _aware(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
