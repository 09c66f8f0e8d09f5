"""Backups (seed 000 ``BackupService``): create, list, show, delete, and their jobs."""

from __future__ import annotations

import builtins
import contextlib
import math
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import Select, func, or_, select, update

from strongbox.catalog.database import Catalog, sql_offset
from strongbox.catalog.models import Backup
from strongbox.catalog.types import utcnow
from strongbox.errors import InsufficientStorage, SnapshotNotFound
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
from strongbox.services.principal import Principal
from strongbox.services.sources import SourceService
from strongbox.services.storage import RepositoryProvider, exclusive_bytes

BACKUP_TYPES = ("full", "selective")
BACKUP_STATUSES = ("pending", "in_progress", "completed", "failed", "corrupted", "deleting")
SORT_FIELDS = ("created_at", "completed_at", "name", "size_bytes", "type", "status")
THROUGHPUT = 50 * 1024 * 1024  # bytes/s assumed for duration estimates


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

    @property
    def can_restore(self) -> bool:
        return self.status == "completed" and self.snapshot_id is not None


def _view(row: Backup) -> BackupView:
    return BackupView(
        row.id, row.tenant, row.name, row.description, row.type, row.status, row.source_id,
        row.source_name, row.source_kind, row.job_id, row.filters, row.options, row.created_at,
        row.created_by, row.completed_at, row.snapshot_id, row.storage_location, row.size_bytes,
        row.compressed_size_bytes, row.added_bytes, row.contents, row.checksum, row.encryption,
        row.compression, row.validation, row.error_message)


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
class BackupPage:
    items: list[BackupView]
    total_items: int
    page: int
    size: int
    summary: dict[str, Any]

    @property
    def total_pages(self) -> int:
        return math.ceil(self.total_items / self.size) if self.total_items else 0


@dataclass
class CreatedBackup:
    backup: BackupView
    job: JobView
    estimated_size_bytes: int | None
    estimated_duration_seconds: float | None


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
                "type", "type must be 'full' or 'selective'", "INVALID_VALUE", spec.type)])
        selective = spec.type == "selective"
        if selective and not has_any(spec.filters):
            raise ValidationFailed("a selective backup needs at least one filter", [FieldError(
                "filters", "give at least one filter for a selective backup",
                "FILTER_REQUIRED")])
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
        level = self._compression_level(tenant, spec.options or {})
        backup_id = str(uuid.uuid4())
        job_id = str(uuid.uuid4())
        params = {"source_id": source.id, "selective": selective, "filters": spec.filters,
                  "compression_level": level}
        with self.catalog.session() as session:
            row = Backup(id=backup_id, tenant=tenant, name=spec.name,
                         description=spec.description, type=spec.type, status="pending",
                         source_id=source.id, source_name=source.name, source_kind=source.kind,
                         job_id=job_id, filters=spec.filters, options=spec.options,
                         created_by=principal.key_id,
                         storage_location=self.storage.location, size_bytes=0)
            session.add(row)
            session.flush()
            job = self.store.create(tenant, backup_job.KIND, params, backup_id=backup_id,
                                    created_by=principal.key_id, job_id=job_id,
                                    session=session)
            backup = _view(row)
        self.executor.submit(job)
        duration = None if estimate is None else max(1.0, round(estimate / THROUGHPUT, 1))
        return CreatedBackup(backup, job, estimate, duration)

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

    def delete(self, principal: Principal, backup_id: str, *, force: bool = False
               ) -> DeletedBackup:
        backup = self.get(principal.tenant, backup_id)
        if backup.status == "deleting":
            raise BackupInProgress(f"backup {backup.id} is already being deleted")
        if backup.status in ("pending", "in_progress"):
            if not force:
                raise BackupInProgress(f"backup {backup.id} is still running (job "
                                       f"{backup.job_id}); wait, or delete with force=true")
            if not self._mark_deleting(backup.id, backup.status):
                return self.delete(principal, backup_id, force=force)  # it just finished
            return self._delete_running(backup)
        if not self._mark_deleting(backup.id, backup.status):
            return self.delete(principal, backup_id, force=force)
        try:
            freed, files = self._forget_snapshot(backup.snapshot_id)
        except Exception:
            self._set_status(backup.id, backup.status)
            raise
        deleted_at = self._mark_deleted(backup.id)
        return DeletedBackup(backup.id, deleted_at, freed, files,
                             f"backup {backup.name!r} deleted; its snapshot was forgotten and "
                             "the next prune frees its space")

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

    def _mark_deleting(self, backup_id: str, old_status: str) -> bool:
        with self.catalog.session() as session:
            done = session.execute(update(Backup).where(Backup.id == backup_id,
                                                        Backup.status == old_status)
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


def _aware(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
