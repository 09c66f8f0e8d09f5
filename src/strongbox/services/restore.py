"""Restores (seed 000 section 2): start one, follow it, cancel it.

A restore writes a completed backup back into the source it was taken from (the source
the catalog records for the backup) -- for a file tree, into its directory or another
allowed one (``target.path``, services/file_restore.py). It runs as a job of kind
``restore`` whose ``backup_id`` names the backup, which is how ``restore_history`` and
the statistics find it. One restore at a time per source (and per target directory): a
second answers 409 RESTORE_IN_PROGRESS. ``target.project_id``/``project_name`` are
services/project_target.py.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from strongbox.errors import StrongboxError
from strongbox.jobs.executor import JobExecutor
from strongbox.jobs.runner import JobRunner
from strongbox.jobs.store import ACTIVE, COMPLETED, JobStore, JobView
from strongbox.moments import parse_moment
from strongbox.repository.lock import Lock
from strongbox.services import file_restore, project_target, restore_job
from strongbox.services.backups import BackupService, BackupView, parse_uuid
from strongbox.services.config_snapshots import KIND as SNAPSHOT_RESTORE
from strongbox.services.errors import (
    FieldError,
    InvalidDateRangeFields,
    JobNotFound,
    SourceNotFound,
    ValidationFailed,
)
from strongbox.services.principal import Principal
from strongbox.services.sources import SourceService, SourceView
from strongbox.services.storage import RepositoryProvider
from strongbox.sources.sqlite.reader import SnapshotReader
from strongbox.sources.sqlite.restore import RestoreRequest, plan_restore, restore_from_reader
from strongbox.sources.sqlite.restore_plan import PlannedConflict, RowShape, key_text

ROWS_PER_SECOND = 20_000  # assumed for duration estimates
# Engine table names → seed 000 ConflictInfo.type
CONFLICT_TYPES = {"projects": "project", "sessions": "session", "messages": "message",
                  "prompts": "prompt"}



class RestoreInProgress(StrongboxError):
    code = "RESTORE_IN_PROGRESS"
    http_status = 409


class BackupNotRestorable(StrongboxError):
    """The backup has not completed (pending, running, failed, being deleted)."""

    code = "BACKUP_NOT_COMPLETED"
    http_status = 409


class JobAlreadyFinished(StrongboxError):
    code = "JOB_ALREADY_FINISHED"
    http_status = 409


@dataclass
class NewRestore:
    """A restore as a caller asks for it (seed 000 ``CreateRestoreRequest``, flattened)."""

    backup_id: str
    mode: str
    selections: dict[str, list[str]] = field(default_factory=dict)  # seed key → ids
    exclude: dict[str, list[str]] = field(default_factory=dict)  # seed key → ids
    date_range: dict[str, Any] | None = None
    on_conflict: str | None = None
    overwrite_existing: bool = False
    maintain_ids: bool = False
    validate_before_restore: bool = True
    dry_run: bool = False
    name_suffix: str = "_restored"
    target_project_id: str | None = None
    target_project_name: str | None = None
    # File sources (extensions): where to restore, and which entries.
    target_path: str | None = None
    paths: list[str] = field(default_factory=list)
    include_patterns: list[str] = field(default_factory=list)
    exclude_patterns: list[str] = field(default_factory=list)


@dataclass
class ConflictView:
    type: str
    existing_id: str
    backup_id: str
    resolution: str
    existing_name: str | None = None
    backup_name: str | None = None
    table: str = ""


@dataclass
class ValidationOutcome:
    is_valid: bool
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    conflicts: list[ConflictView] = field(default_factory=list)


@dataclass
class CreatedRestore:
    job: JobView
    backup: BackupView
    mode: str
    estimated_documents: int
    estimated_duration_seconds: float
    validation: ValidationOutcome | None


@dataclass
class CancelledRestore:
    job_id: str
    cancelled_at: datetime
    documents_restored: int
    rollback_available: bool
    message: str


def conflict_view(conflict: PlannedConflict) -> ConflictView:
    existing_name = conflict.existing_name
    if existing_name is None and conflict.kind in ("unique:name", "unique:title"):
        existing_name = conflict.backup_name  # they collide on exactly that value
    return ConflictView(CONFLICT_TYPES.get(conflict.table, conflict.table),
                        conflict.existing_key, conflict.key, conflict.resolution,
                        existing_name, conflict.backup_name, conflict.table)


def table_map(ids: dict[str, list[str]]) -> dict[str, list[Any]]:
    """Seed selection keys (``projects``, ``exclude_sessions``...) → engine table names."""
    return {key.removeprefix("exclude_"): list(values) for key, values in ids.items() if values}


def duration_for(rows: int) -> float:
    return max(1.0, round(rows / ROWS_PER_SECOND, 1))


def _nearest_existing(path: str) -> str:
    """``path`` or its closest ancestor that exists."""
    while not os.path.lexists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


class RestoreService:
    def __init__(self, store: JobStore, executor: JobExecutor, runner: JobRunner,
                 storage: RepositoryProvider, sources: SourceService,
                 backups: BackupService, *, cancel_wait_seconds: float = 15.0,
                 restore_roots: Sequence[Path] = (), protected: Sequence[Path] = ()) -> None:
        self.store = store
        self.executor = executor
        self.runner = runner
        self.storage = storage
        self.sources = sources
        self.backups = backups
        self.cancel_wait_seconds = cancel_wait_seconds
        # Where file trees may be restored besides a source's own directory (the server's
        # scratch area and STRONGBOX_RESTORE_ROOTS), and what no restore may replace.
        self.restore_roots = [Path(r) for r in restore_roots]
        self.protected = [Path(p) for p in protected]
        self._lock = threading.Lock()

    # --- create ---------------------------------------------------------------------------

    def restorable(self, tenant: str, backup_id: str) -> tuple[BackupView, SourceView]:
        """The backup (404 if not the tenant's) and the source it restores into."""
        backup = self.backups.get(tenant, backup_id)
        if not backup.can_restore or backup.snapshot_id is None:
            raise BackupNotRestorable(
                f"backup {backup.id} is {backup.status}: only completed backups can be "
                "restored", details={"status": backup.status})
        if backup.source_id is None:
            raise SourceNotFound(f"the source of backup {backup.id} is no longer registered")
        try:
            source = self.sources.get(tenant, backup.source_id)
        except SourceNotFound:
            raise SourceNotFound(f"the source of backup {backup.id} ({backup.source_name}) "
                                 "is no longer registered") from None
        return backup, source

    def create(self, principal: Principal, spec: NewRestore) -> CreatedRestore:
        tenant = principal.tenant
        if parse_uuid(spec.backup_id) is None:
            raise ValidationFailed("request validation failed", [FieldError(
                "backup_id", "backup_id must be a UUID", "INVALID_FORMAT", spec.backup_id)])
        backup, source = self.restorable(tenant, spec.backup_id)
        if source.kind == "files":
            return self._create_files(principal, spec, backup, source)
        self._refuse_file_fields(spec)
        if spec.date_range is not None and source.kind == "sqlite" and spec.mode != "full":
            in_range = self._sessions_in(backup, spec)
            spec = replace(spec, date_range=None, selections={
                **spec.selections, "sessions": [*spec.selections.get("sessions", []),
                                                *in_range]})
        request = self._request(spec, source)
        project = None
        if spec.target_project_id is not None or spec.target_project_name is not None:
            project, request = self._project_target(backup, source, spec, request)
        self._check_not_running(source, None)
        estimate = int((backup.contents or {}).get("total_documents", 0))
        validation = None
        if spec.validate_before_restore and source.kind == "sqlite":
            validation, planned = self._validate(backup, source, request, project)
            if not validation.is_valid:
                raise ValidationFailed(
                    "the restore would fail: " + "; ".join(validation.errors),
                    details={"validation_results": _validation_doc(validation)})
            estimate = planned
        params = {"source_id": source.id, "snapshot_id": backup.snapshot_id,
                  "mode": request.mode, "selections": request.selections,
                  "exclude": request.exclude, "on_conflict": request.on_conflict,
                  "maintain_ids": request.maintain_ids, "name_suffix": request.name_suffix,
                  "dry_run": request.dry_run,
                  "replace": spec.overwrite_existing or request.on_conflict == "overwrite"}
        if project is not None:
            params["project_target"] = project
        with self._lock:  # the check and the new row together: one restore per source
            self._check_not_running(source, None)
            job = self.store.create(tenant, restore_job.KIND, params, backup_id=backup.id,
                                    created_by=principal.key_id)
        self.executor.submit(job)
        return CreatedRestore(job, backup, request.mode, estimate, duration_for(estimate),
                              validation)

    @staticmethod
    def _request(spec: NewRestore, source: SourceView) -> RestoreRequest:
        errors: list[FieldError] = []
        selections, exclude = table_map(spec.selections), table_map(spec.exclude)
        if spec.mode == "selective" and not selections:
            errors.append(FieldError("selections", "a selective restore needs at least one "
                                     "of projects, sessions, messages, prompts", "REQUIRED"))
        if spec.mode == "full" and (selections or exclude):
            errors.append(FieldError("selections", "a full restore takes every row: use "
                                     "selective or merge mode to choose rows",
                                     "NOT_APPLICABLE"))
        if spec.date_range is not None:
            errors.append(FieldError("selections.date_range", "a date range selects the "
                                     "sessions of a database backup in selective or merge "
                                     "mode", "NOT_APPLICABLE"))
        for name, value in (("target.project_id", spec.target_project_id),
                            ("target.project_name", spec.target_project_name)):
            if value is None:
                continue
            if source.kind != "sqlite":
                errors.append(FieldError(name, "restoring into another project needs a "
                                         "SQLite source", "NOT_SUPPORTED", value))
            elif spec.mode == "full":
                errors.append(FieldError(name, "a full restore replaces the database: use "
                                         "selective or merge mode to restore into a "
                                         "project", "NOT_APPLICABLE", value))
        if errors:
            raise ValidationFailed("request validation failed", errors)
        on_conflict = spec.on_conflict or ("overwrite" if spec.overwrite_existing else "skip")
        request = RestoreRequest(mode=spec.mode, selections=selections, exclude=exclude,
                                 on_conflict=on_conflict, maintain_ids=spec.maintain_ids,
                                 name_suffix=spec.name_suffix, dry_run=spec.dry_run)
        try:
            request.validate()
        except StrongboxError as exc:
            raise ValidationFailed("request validation failed", [FieldError(
                "body", exc.message, "INVALID_VALUE")]) from None
        return request

    def _sessions_in(self, backup: BackupView, spec: NewRestore) -> list[str]:
        """Keys of the backup's sessions created within ``spec.date_range``."""
        assert spec.date_range is not None and backup.snapshot_id is not None
        start = parse_moment(spec.date_range.get("start"))
        end = parse_moment(spec.date_range.get("end"))
        if start is None or end is None or start >= end:
            raise InvalidDateRangeFields("the date range is invalid", [FieldError(
                "selections.date_range.start", "start must be before end",
                "INVALID_DATE_RANGE", spec.date_range.get("start"))])
        repo = self.storage.open()
        reader = SnapshotReader(repo, repo.load_snapshot(backup.snapshot_id))
        info = next((t for t in reader.tables() if t.name == "sessions"), None)
        if info is None or "created_at" not in info.columns or len(info.primary_key) != 1:
            raise ValidationFailed("request validation failed", [FieldError(
                "selections.date_range", "the backup has no sessions table with created_at",
                "NOT_APPLICABLE")])
        shape = RowShape(info)
        found = []
        for row in reader.rows("sessions"):
            record = shape.record(row)
            moment = parse_moment(record.get("created_at"))
            if moment is not None and start <= moment <= end:
                found.append(key_text(shape.key(row)))
        if not found and spec.mode == "selective":
            raise ValidationFailed("request validation failed", [FieldError(
                "selections.date_range", "no session of the backup was created in this "
                "range", "NOT_FOUND")])
        return found

    def _check_not_running(self, source: SourceView, target: str | None) -> None:
        """One restore per source, and one per target directory."""
        for job in self.store.active():
            if job.kind == SNAPSHOT_RESTORE and source.id in {
                    c.get("source_id") for c in job.params.get("components", [])}:
                raise RestoreInProgress(
                    f"configuration snapshot restore {job.id} is writing to source "
                    f"{source.name!r}; wait for it", details={"job_id": job.id})
            if job.kind != restore_job.KIND:
                continue
            if job.params.get("source_id") == source.id:
                raise RestoreInProgress(
                    f"restore job {job.id} into source {source.name!r} is still running; "
                    "wait for it or cancel it", details={"job_id": job.id})
            other = job.params.get("target")
            if target is not None and isinstance(other, str) and (
                    _inside(target, other) or _inside(other, target)):
                raise RestoreInProgress(
                    f"restore job {job.id} is writing to {other}; wait for it or cancel it",
                    details={"job_id": job.id})

    def _project_target(self, backup: BackupView, source: SourceView, spec: NewRestore,
                        request: RestoreRequest) -> tuple[dict[str, Any], RestoreRequest]:
        """RestoreTarget.project_id / project_name (services/project_target.py): checked
        against the backup and the target; the job parameters and the engine request."""
        assert backup.snapshot_id is not None
        repo = self.storage.open()
        with Lock(repo.backend, exclusive=False).acquire():
            reader = SnapshotReader(repo, repo.load_snapshot(backup.snapshot_id))
            project = project_target.plan_project_target(
                reader, source.config["path"], project_id=spec.target_project_id,
                project_name=spec.target_project_name, selections=request.selections,
                exclude=request.exclude, maintain_ids=request.maintain_ids)
        request = replace(request, selections=project.pop("selections"))
        try:
            request.validate()
        except StrongboxError as exc:
            raise ValidationFailed("request validation failed", [FieldError(
                "selections", exc.message, "INVALID_VALUE")]) from None
        return project, request

    def _validate(self, backup: BackupView, source: SourceView, request: RestoreRequest,
                  project: dict[str, Any] | None = None) -> tuple[ValidationOutcome, int]:
        """Run the restore as a dry run: its plan is an exact prediction."""
        assert backup.snapshot_id is not None
        repo = self.storage.open()
        try:
            with Lock(repo.backend, exclusive=False).acquire():
                if project is None:
                    plan = plan_restore(repo, backup.snapshot_id, source.config["path"],
                                        request)
                else:
                    reader = project_target.retargeted(
                        SnapshotReader(repo, repo.load_snapshot(backup.snapshot_id)), project)
                    plan = restore_from_reader(repo, reader, source.config["path"],
                                               replace(request, dry_run=True)).plan
        except StrongboxError as exc:
            return ValidationOutcome(False, errors=[exc.message]), 0
        return ValidationOutcome(True, warnings=list(plan.warnings),
                                 conflicts=[conflict_view(c) for c in plan.conflicts()]
                                 ), plan.total_rows

    # --- file trees -----------------------------------------------------------------------

    @staticmethod
    def _refuse_file_fields(spec: NewRestore) -> None:
        errors = [FieldError(name, "applies to file-tree backups only", "NOT_APPLICABLE",
                             value)
                  for name, value in (("target.path", spec.target_path),
                                      ("selections.paths", spec.paths),
                                      ("selections.include_patterns", spec.include_patterns),
                                      ("selections.exclude_patterns", spec.exclude_patterns))
                  if value]
        if errors:
            raise ValidationFailed("request validation failed", errors)

    def _create_files(self, principal: Principal, spec: NewRestore, backup: BackupView,
                      source: SourceView) -> CreatedRestore:
        file_spec = self._file_spec(spec, source)
        self._check_not_running(source, file_spec.target)
        validation = None
        estimate = int((backup.contents or {}).get("total_documents", 0))
        if spec.validate_before_restore:
            validation, estimate = self._validate_files(backup, file_spec)
        params = {"source_id": source.id, "snapshot_id": backup.snapshot_id,
                  "kind": "files", "mode": spec.mode, "target": file_spec.target,
                  "paths": list(file_spec.paths), "include": list(file_spec.include),
                  "exclude": list(file_spec.exclude), "on_conflict": file_spec.on_conflict,
                  "name_suffix": file_spec.suffix, "dry_run": file_spec.dry_run,
                  "source_include": list(file_spec.source_include),
                  "source_exclude": list(file_spec.source_exclude),
                  "maintain_ids": True}
        with self._lock:  # the check and the new row together
            self._check_not_running(source, file_spec.target)
            job = self.store.create(principal.tenant, restore_job.KIND, params,
                                    backup_id=backup.id, created_by=principal.key_id)
        self.executor.submit(job)
        return CreatedRestore(job, backup, spec.mode, estimate, duration_for(estimate),
                              validation)

    def _file_spec(self, spec: NewRestore, source: SourceView) -> file_restore.FileRestoreSpec:
        """The request for a file tree, validated (400 for anything it cannot mean)."""
        errors: list[FieldError] = []
        for key, values in {**spec.selections, **spec.exclude}.items():
            if values:
                errors.append(FieldError(f"selections.{key}", "selects rows of a database "
                                         "backup; choose files with selections.paths, "
                                         "include_patterns or exclude_patterns",
                                         "NOT_APPLICABLE"))
        if spec.date_range is not None:
            errors.append(FieldError("selections.date_range", "a date range selects rows of "
                                     "a database backup", "NOT_APPLICABLE"))
        for name, value in (("target.project_id", spec.target_project_id),
                            ("target.project_name", spec.target_project_name)):
            if value is not None:
                errors.append(FieldError(name, "projects are rows of a database backup; "
                                         "restore a file tree elsewhere with target.path",
                                         "NOT_APPLICABLE"))
        chosen = bool(spec.paths or spec.include_patterns or spec.exclude_patterns)
        if spec.mode == "selective" and not chosen:
            errors.append(FieldError("selections", "a selective restore of a file tree needs "
                                     "selections.paths, include_patterns or "
                                     "exclude_patterns", "REQUIRED"))
        if spec.mode == "full" and chosen:
            errors.append(FieldError("selections", "a full restore takes the whole tree: use "
                                     "selective or merge mode to choose files",
                                     "NOT_APPLICABLE"))
        on_conflict = spec.on_conflict or ("overwrite" if spec.overwrite_existing else "skip")
        if on_conflict == "merge":
            errors.append(FieldError("options.on_conflict", "files are not merged: use skip, "
                                     "overwrite or rename", "NOT_APPLICABLE", on_conflict))
        elif spec.mode == "full" and spec.on_conflict not in (None, "overwrite"):
            errors.append(FieldError("options.on_conflict", "a full restore replaces the "
                                     "directory: use merge mode to keep existing files",
                                     "NOT_APPLICABLE", spec.on_conflict))
        try:
            file_restore.check_suffix(spec.name_suffix)
        except StrongboxError as exc:
            errors.append(FieldError("target.project_name_suffix", exc.message,
                                     "INVALID_VALUE", spec.name_suffix))
        paths = []
        for number, path in enumerate(spec.paths):
            try:
                paths.append(file_restore.normalise_path(path))
            except StrongboxError as exc:
                errors.append(FieldError(f"selections.paths.{number}", exc.message,
                                         "INVALID_PATH", path))
        target = self._file_target(spec, source, errors)
        if errors:
            raise ValidationFailed("request validation failed", errors)
        return file_restore.FileRestoreSpec(
            mode=spec.mode, target=target, paths=tuple(paths),
            include=tuple(spec.include_patterns), exclude=tuple(spec.exclude_patterns),
            on_conflict="overwrite" if spec.mode == "full" else on_conflict,
            suffix=spec.name_suffix, dry_run=spec.dry_run,
            source_include=tuple(source.config.get("include_patterns") or ()),
            source_exclude=tuple(source.config.get("exclude_patterns") or ()))

    def allowed_roots(self, source: SourceView) -> list[str]:
        return [os.path.realpath(p) for p in (source.config["path"], *self.restore_roots)]

    def _file_target(self, spec: NewRestore, source: SourceView,
                     errors: list[FieldError]) -> str:
        """The real path of the target directory, if it is allowed (else an error)."""
        raw = spec.target_path or source.config["path"]
        if "\0" in raw or not os.path.isabs(raw):
            errors.append(FieldError("target.path", "the target must be an absolute path",
                                     "INVALID_PATH", raw))
            return raw
        real = os.path.realpath(raw)  # symlinks resolved: where the data would really go
        roots = self.allowed_roots(source)
        if not any(_inside(real, root) for root in roots):
            errors.append(FieldError(
                "target.path", "the target is outside the allowed restore roots (the "
                "source's directory, the server's restore area and STRONGBOX_RESTORE_ROOTS)",
                "OUTSIDE_RESTORE_ROOTS", raw))
        elif self._protected(real, roots):
            errors.append(FieldError("target.path", "the target holds (or lies in) the "
                                     "server's own data", "PROTECTED_PATH", raw))
        elif os.path.lexists(real) and not os.path.isdir(real):
            errors.append(FieldError("target.path", "the target exists and is not a "
                                     "directory", "NOT_A_DIRECTORY", raw))
        elif not os.path.isdir(_nearest_existing(real)):
            errors.append(FieldError("target.path", "a folder on the way to the target is "
                                     "a file", "NOT_A_DIRECTORY", raw))
        return real

    def _protected(self, real: str, roots: list[str]) -> bool:
        """Whether the target holds the server's data (catalog, repository, keys) or lies
        in it -- unless it lies in a root set aside inside it (the restore area, a source
        kept in the data directory)."""
        location = getattr(self.storage, "location", None)
        repository = [location.removeprefix("file://")] if isinstance(location, str) and \
            "://" not in location.removeprefix("file://") else []
        for path in [*self.protected, *repository]:  # the repository may lie elsewhere
            guarded = os.path.realpath(path)
            if _inside(guarded, real):
                return True
            if _inside(real, guarded) and not any(
                    _inside(real, root) and _inside(root, guarded) and root != guarded
                    for root in roots):
                return True
        return False

    def _validate_files(self, backup: BackupView, spec: file_restore.FileRestoreSpec
                        ) -> tuple[ValidationOutcome, int]:
        """The plan itself (what the dry run and the real run compute)."""
        assert backup.snapshot_id is not None
        repo = self.storage.open()
        try:
            with Lock(repo.backend, exclusive=False).acquire():
                plan = file_restore.plan_file_restore(
                    repo, repo.load_snapshot(backup.snapshot_id), spec)
        except StrongboxError as exc:
            raise ValidationFailed("the restore would fail: " + exc.message, details={
                "validation_results": _validation_doc(ValidationOutcome(
                    False, errors=[exc.message]))}) from None
        if plan.missing:
            raise ValidationFailed("request validation failed", [
                FieldError("selections.paths", f"{path!r} is not in the backup (or is "
                           "excluded)", "NOT_FOUND", path) for path in plan.missing])
        conflicts = [ConflictView(**{k: v for k, v in file_restore.conflict_doc(a).items()})
                     for a in plan.conflicts()]
        return ValidationOutcome(True, warnings=list(plan.warnings),
                                 conflicts=conflicts), plan.restored

    # --- read -----------------------------------------------------------------------------

    def job(self, tenant: str, job_id: str) -> JobView:
        return self.backups.job(tenant, job_id, kind=restore_job.KIND)

    # --- cancel ---------------------------------------------------------------------------

    def cancel(self, principal: Principal, job_id: str) -> CancelledRestore:
        job = self.job(principal.tenant, job_id)
        if not job.active:
            raise JobAlreadyFinished(f"restore job {job.id} has already ended ({job.status})",
                                     details={"status": job.status})
        started = job.status != "pending"
        if not self.executor.cancel(job.id) and self.runner.cancel_pending(job.id) is None:
            self.store.request_cancel(job.id)  # running elsewhere: it polls this flag
        final = self._wait(job.id)
        if final.status == COMPLETED:
            raise JobAlreadyFinished(f"restore job {job.id} finished before it could be "
                                     "cancelled", details={"status": final.status})
        started = started or final.started_at is not None
        written = int(final.progress.get("documents_restored", 0))
        if final.status in ACTIVE:
            message = ("cancellation requested; the restore stops at its next safe point "
                       "and rolls back everything it wrote")
        elif started:
            what = "file(s)" if job.params.get("kind") == "files" else "row(s)"
            message = (f"restore cancelled and rolled back: the {written} {what} it had "
                       "processed were undone; the target is as it was before")
        else:
            message = "restore cancelled before it started; the target was not touched"
        return CancelledRestore(job.id, final.completed_at or final.updated_at, written,
                                started, message)

    def _wait(self, job_id: str) -> JobView:
        deadline = time.monotonic() + self.cancel_wait_seconds
        while True:
            job = self.store.get(job_id)
            if job is None:
                raise JobNotFound(f"job {job_id} not found")
            if not job.active or time.monotonic() >= deadline:
                return job
            time.sleep(0.05)


def _validation_doc(outcome: ValidationOutcome) -> dict[str, Any]:
    return {"is_valid": outcome.is_valid, "warnings": outcome.warnings,
            "errors": outcome.errors,
            "conflicts": [{k: v for k, v in vars(c).items() if v is not None and k != "table"}
                          for c in outcome.conflicts]}
