"""Configuration snapshots (seed 004 section 3): named, tagged, quick captures of chosen
sources or server paths, and their restore with a pre-restore safety snapshot.

A snapshot is not a new kind of record: it is a group of ordinary backups, one per
component (a source), made through :meth:`BackupService.create`, so it is listed, shown,
verified, downloaded and deleted like any backup. What sets its backups apart:

* ``options.kind == "config_snapshot"`` and ``options.snapshot_id`` (the group's id, the
  snapshot's id in the API); ``options.target`` is the captured path of a file tree;
  ``options.pre_restore_of`` names the snapshot a pre-restore snapshot protected against;
* the catalog column ``backups.tags`` holds the snapshot's tags.

A path is captured as a ``files`` source named ``path:<path>`` (registered on first use,
reused afterwards), so it can be backed up and restored like any file tree.

Restoring runs as a job of kind ``snapshot_restore``: first the current state of every
component is captured as a new snapshot tagged ``pre-restore`` (unless the caller says
not to), then each component is written back: a file tree into the place it was captured
from (every file the snapshot holds is replaced by a verified copy; files created since
are left alone), a SQLite database by a full restore (which also keeps its own safety
copy in the repository), a PostgreSQL schema by a full restore that replaces its tables.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import stat
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from strongbox.catalog.database import Catalog
from strongbox.catalog.models import Backup
from strongbox.errors import NotFound, StrongboxError
from strongbox.jobs.executor import JobExecutor
from strongbox.jobs.progress import JobProgress
from strongbox.jobs.runner import JobRunner
from strongbox.jobs.store import FINAL, JobStore, JobView
from strongbox.logs import job_context
from strongbox.repository.lock import Lock
from strongbox.repository.repository import Repository
from strongbox.repository.snapshot import Snapshot
from strongbox.services.backups import BackupService, NewBackup, parse_uuid
from strongbox.services.errors import FieldError, JobNotFound, ValidationFailed
from strongbox.services.pagination import Page
from strongbox.services.principal import Principal
from strongbox.services.sources import SourceService, SourceSpec, SourceView
from strongbox.services.storage import RepositoryProvider
from strongbox.sources.files.patterns import PathFilter
from strongbox.sources.files.restorer import restore_files
from strongbox.sources.sqlite.restore import RestoreRequest, restore_sqlite

log = logging.getLogger(__name__)

MARK = "config_snapshot"  # options.kind of a snapshot's backups
KIND = "snapshot_restore"  # the restore job
STEPS = ("pre-restore snapshot", "restoring")
PRE_RESTORE_TAG = "pre-restore"
PATH_SOURCE_PREFIX = "path:"
WAIT_POLL_SECONDS = 0.1


class ConfigSnapshotNotFound(NotFound):
    code = "SNAPSHOT_NOT_FOUND"


class SnapshotNotReady(StrongboxError):
    """Not every component backup has completed (still running, failed, corrupted)."""

    code = "SNAPSHOT_NOT_READY"
    http_status = 409


class SnapshotFailed(StrongboxError):
    """Seed 004's SNAPSHOT_FAILED: the pre-restore snapshot failed, nothing was restored."""

    code = "SNAPSHOT_FAILED"
    http_status = 500


class RestoreInProgress(StrongboxError):
    code = "RESTORE_IN_PROGRESS"
    http_status = 409


@dataclass
class NewSnapshot:
    name: str
    description: str | None = None
    tags: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)  # source ids or names
    paths: list[str] = field(default_factory=list)  # files or folders on the server


@dataclass
class SnapshotRestoreSpec:
    components: list[str] | None = None  # source ids; None: all
    create_backup: bool = True  # take the pre-restore snapshot first
    reason: str | None = None
    remove_new_files: bool = False  # file trees: also delete what the snapshot lacks


@dataclass(frozen=True)
class SnapshotComponent:
    backup_id: str
    job_id: str
    source_id: str | None
    source_name: str
    source_kind: str
    status: str
    size_bytes: int
    target: str | None
    error_message: str | None


@dataclass(frozen=True)
class SnapshotView:
    id: str
    tenant: str
    name: str
    description: str | None
    tags: list[str]
    status: str
    created_at: datetime
    completed_at: datetime | None
    created_by: str | None
    size_bytes: int
    components: list[SnapshotComponent]
    pre_restore_of: str | None

    @property
    def can_restore(self) -> bool:
        return self.status == "active"


SnapshotPage = Page[SnapshotView]


@dataclass
class CreatedSnapshot:
    snapshot: SnapshotView
    job_ids: list[str]


@dataclass
class StartedSnapshotRestore:
    job: JobView
    snapshot: SnapshotView
    pre_restore: CreatedSnapshot | None
    components: list[SnapshotComponent]


def missing_data(source: SourceView) -> str | None:
    """The path of a file or SQLite source whose data is gone (else None)."""
    path = source.config.get("path") if source.kind in ("files", "sqlite") else None
    if isinstance(path, str) and not os.path.lexists(path):
        return path
    return None


def snapshot_status(statuses: Sequence[str]) -> str:
    """One status for the group: ``active`` (restorable) when every backup completed."""
    for status in ("deleting", "corrupted", "failed", "in_progress"):
        if status in statuses:
            return status
    if "pending" in statuses:
        return "in_progress" if "completed" in statuses else "pending"
    return "active"


def _component(row: Backup) -> SnapshotComponent:
    options = row.options or {}
    return SnapshotComponent(row.id, row.job_id, row.source_id, row.source_name,
                             row.source_kind, row.status, row.size_bytes,
                             options.get("target"), row.error_message)


def _group(rows: list[Backup]) -> SnapshotView:
    rows = sorted(rows, key=lambda r: (r.created_at, r.source_name))
    first = rows[0]
    options = first.options or {}
    status = snapshot_status([r.status for r in rows])
    done = [r.completed_at for r in rows if r.completed_at is not None]
    return SnapshotView(
        id=options["snapshot_id"], tenant=first.tenant, name=first.name,
        description=first.description, tags=list(first.tags or []), status=status,
        created_at=first.created_at,
        completed_at=max(done) if status == "active" and done else None,
        created_by=first.created_by, size_bytes=sum(r.size_bytes for r in rows),
        components=[_component(r) for r in rows], pre_restore_of=options.get("pre_restore_of"))


class ConfigSnapshotService:
    def __init__(self, catalog: Catalog, store: JobStore, executor: JobExecutor,
                 backups: BackupService, sources: SourceService, *,
                 allowed_paths: Sequence[str] = ()) -> None:
        self.catalog = catalog
        self.store = store
        self.executor = executor
        self.backups = backups
        self.sources = sources
        # Folders a path capture must lie under (empty: anywhere but the root itself).
        self.allowed_paths = [Path(p).resolve() for p in allowed_paths]
        self._restore_lock = threading.Lock()

    # --- create -----------------------------------------------------------------------------

    def create(self, principal: Principal, spec: NewSnapshot, *,
               pre_restore_of: str | None = None) -> CreatedSnapshot:
        tenant = principal.tenant
        if not spec.sources and not spec.paths:
            raise ValidationFailed("a snapshot needs something to capture", [FieldError(
                "sources", "give at least one source or path", "REQUIRED")])
        chosen = self._resolve(tenant, spec)
        snapshot_id = str(uuid.uuid4())
        created = []
        try:
            for source in chosen:
                options: dict[str, Any] = {"kind": MARK, "snapshot_id": snapshot_id}
                if source.kind == "files":
                    options["target"] = source.config.get("path")
                if pre_restore_of:
                    options["pre_restore_of"] = pre_restore_of
                created.append(self.backups.create(principal, NewBackup(
                    name=spec.name, type="full", description=spec.description,
                    options=options, source_id=source.id)))
        except Exception:
            for done in created:  # all or nothing: no half snapshot stays behind
                try:
                    self.backups.delete(principal, done.backup.id, force=True)
                except Exception:
                    log.exception("could not remove backup %s of a failed snapshot",
                                  done.backup.id)
            raise
        with self.catalog.session() as session:
            session.execute(update(Backup).where(Backup.id.in_([c.backup.id for c in created]))
                            .values(tags=list(spec.tags)))
        return CreatedSnapshot(self.get(tenant, snapshot_id), [c.job.id for c in created])

    def _resolve(self, tenant: str, spec: NewSnapshot) -> list[SourceView]:
        chosen: dict[str, SourceView] = {}
        known = self.sources.list(tenant)
        for i, ref in enumerate(spec.sources):
            found = next((s for s in known if s.id == ref), None) or next(
                (s for s in known if s.name == ref), None)
            if found is None:
                raise ValidationFailed("unknown source", [FieldError(
                    f"sources[{i}]", "no source of this tenant has this id or name",
                    "NOT_FOUND", ref)])
            chosen.setdefault(found.id, found)
        for i, raw in enumerate(spec.paths):
            source = self._path_source(tenant, raw, f"paths[{i}]", known)
            known.append(source)
            chosen.setdefault(source.id, source)
        return list(chosen.values())

    def _path_source(self, tenant: str, raw: str, field_name: str,
                     known: list[SourceView]) -> SourceView:
        path = Path(raw)
        if not path.is_absolute():
            raise ValidationFailed("invalid path", [FieldError(
                field_name, "give an absolute path on the server", "INVALID_FORMAT", raw)])
        if not path.exists():
            raise ValidationFailed("invalid path", [FieldError(
                field_name, "no such file or folder on the server", "NOT_FOUND", raw)])
        # Resolved: ".." and symlinks cannot walk out of an allowed folder.
        path = path.resolve()
        wanted = str(path)
        if path == Path(path.anchor):
            raise ValidationFailed("invalid path", [FieldError(
                field_name, "the whole file system is not a configuration snapshot",
                "NOT_SUPPORTED", raw)])
        if self.allowed_paths and not any(path.is_relative_to(root)
                                          for root in self.allowed_paths):
            raise ValidationFailed("invalid path", [FieldError(
                field_name, "outside the folders snapshots may capture (settings: "
                "config_snapshot_allowed_paths)", "NOT_SUPPORTED", raw)])
        for source in known:
            if source.kind == "files" and source.config.get("path") == wanted:
                return source
        name = f"{PATH_SOURCE_PREFIX}{wanted}"
        if len(name) > 100 or any(s.name == name for s in known):
            digest = hashlib.sha256(wanted.encode()).hexdigest()[:8]
            name = f"{PATH_SOURCE_PREFIX}{digest}:{wanted[-(100 - 14):]}"
        return self.sources.create(tenant, SourceSpec(name=name, kind="files", path=wanted))

    # --- read -------------------------------------------------------------------------------

    def _rows(self, tenant: str, snapshot_id: str | None = None) -> dict[str, list[Backup]]:
        query = select(Backup).where(Backup.tenant == tenant, Backup.deleted_at.is_(None),
                                     Backup.options["kind"].as_string() == MARK)
        if snapshot_id is not None:
            query = query.where(Backup.options["snapshot_id"].as_string() == snapshot_id)
        groups: dict[str, list[Backup]] = {}
        with self.catalog.session() as session:
            for row in session.scalars(query):
                session.expunge(row)
                groups.setdefault((row.options or {})["snapshot_id"], []).append(row)
        return groups

    def get(self, tenant: str, snapshot_id: str) -> SnapshotView:
        key = parse_uuid(snapshot_id)
        rows = self._rows(tenant, key).get(key or "") if key else None
        if not rows:
            raise ConfigSnapshotNotFound(f"snapshot {snapshot_id} not found")
        return _group(rows)

    def list(self, tenant: str, *, tag: str | None = None, page: int = 1,
             size: int = 20) -> SnapshotPage:
        views = [_group(rows) for rows in self._rows(tenant).values()]
        if tag is not None:
            wanted = tag.casefold()
            views = [v for v in views if any(t.casefold() == wanted for t in v.tags)]
        views.sort(key=lambda v: (v.created_at, v.id), reverse=True)
        start = (page - 1) * size
        return SnapshotPage(views[start:start + size], len(views), page, size)

    # --- restore ----------------------------------------------------------------------------

    def restore(self, principal: Principal, snapshot_id: str,
                spec: SnapshotRestoreSpec) -> StartedSnapshotRestore:
        tenant = principal.tenant
        snapshot = self.get(tenant, snapshot_id)
        if not snapshot.can_restore:
            raise SnapshotNotReady(f"snapshot {snapshot.name!r} is {snapshot.status}: only a "
                                   "snapshot whose every backup completed can be restored")
        components = self._chosen(snapshot, spec.components)
        sources = [self.sources.get(tenant, c.source_id or "") for c in components]
        with self._restore_lock:  # the check and the new job together: one at a time
            return self._start_restore(principal, snapshot, components, sources, spec)

    def _start_restore(self, principal: Principal, snapshot: SnapshotView,
                       components: list[SnapshotComponent], sources: list[SourceView],
                       spec: SnapshotRestoreSpec) -> StartedSnapshotRestore:
        tenant = principal.tenant
        self._check_idle(tenant, [s.id for s in sources])
        pre_restore = None
        # A folder or database that is gone has nothing to keep (and its backup would
        # fail, blocking the very restore that brings it back).
        present = [s for s in sources if missing_data(s) is None]
        if spec.create_backup and present:
            note = f"state before restoring snapshot {snapshot.name!r}"
            if spec.reason:
                note += f": {spec.reason}"
            pre_restore = self.create(principal, NewSnapshot(
                name=f"pre-restore {snapshot.name}"[:100], description=note[:500],
                tags=[PRE_RESTORE_TAG], sources=[s.id for s in present]),
                pre_restore_of=snapshot.id)
        params = {
            "snapshot_id": snapshot.id, "reason": spec.reason,
            "remove_new_files": spec.remove_new_files,
            "components": [{"backup_id": c.backup_id, "source_id": c.source_id,
                            "target": c.target, "remove_new_files": spec.remove_new_files}
                           for c in components],
            "pre_restore_snapshot_id": pre_restore.snapshot.id if pre_restore else None,
            "pre_restore_job_ids": pre_restore.job_ids if pre_restore else [],
        }
        job = self.store.create(tenant, KIND, params, created_by=principal.key_id)
        self.executor.submit(job)
        return StartedSnapshotRestore(job, snapshot, pre_restore, components)

    @staticmethod
    def _chosen(snapshot: SnapshotView, wanted: list[str] | None) -> list[SnapshotComponent]:
        if not wanted:
            return list(snapshot.components)
        by_source = {c.source_id: c for c in snapshot.components}
        errors = [FieldError(f"components[{i}]", "this source is not in the snapshot",
                             "NOT_FOUND", ref) for i, ref in enumerate(wanted)
                  if ref not in by_source]
        if errors:
            raise ValidationFailed("unknown component", errors)
        return [by_source[ref] for ref in dict.fromkeys(wanted)]

    def _check_idle(self, tenant: str, source_ids: list[str]) -> None:
        """One restore at a time per source (seed 000 restores or snapshot restores)."""
        for job in self.store.active():
            if job.tenant != tenant or job.kind not in ("restore", KIND):
                continue
            touched = {job.params.get("source_id")} | {
                c.get("source_id") for c in job.params.get("components", [])}
            if touched & set(source_ids):
                raise RestoreInProgress(f"restore job {job.id} is still writing to one of "
                                        "these sources; wait for it to finish")

    def job(self, tenant: str, job_id: str) -> JobView:
        key = parse_uuid(job_id)
        job = self.store.get(key) if key else None
        if job is None or job.tenant != tenant or job.kind != KIND:
            raise JobNotFound(f"job {job_id} not found")
        return job

    # --- delete -----------------------------------------------------------------------------

    def delete(self, principal: Principal, snapshot_id: str) -> tuple[SnapshotView, int]:
        """Delete every backup of the snapshot; returns it and the bytes prune will free."""
        snapshot = self.get(principal.tenant, snapshot_id)
        freed = 0
        for component in snapshot.components:
            freed += self.backups.delete(principal, component.backup_id).freed_bytes
        return snapshot, freed


class SnapshotRestoreHandler:
    """The ``snapshot_restore`` job: drive the pre-restore snapshot's backups to their end,
    then write every chosen component back."""

    steps: Sequence[str] = STEPS

    def __init__(self, catalog: Catalog, store: JobStore, runner: JobRunner,
                 storage: RepositoryProvider, sources: SourceService) -> None:
        self.catalog = catalog
        self.store = store
        self.runner = runner
        self.storage = storage
        self.sources = sources

    def run(self, job: JobView, progress: JobProgress) -> dict[str, Any]:
        with job_context(job.id):
            return self._run(job, progress)

    def _run(self, job: JobView, progress: JobProgress) -> dict[str, Any]:
        started = time.monotonic()
        params = job.params
        progress.step("pre-restore snapshot")
        for job_id in params.get("pre_restore_job_ids") or []:
            self._finish_backup(job_id, progress)
        progress.step("restoring")
        repo = self.storage.open()
        done = []
        with Lock(repo.backend, exclusive=False).acquire():
            for component in params["components"]:
                progress.check_cancelled()
                done.append(self._restore(repo, job.tenant, component, progress))
        log.info("snapshot %s restored (%d components)", params["snapshot_id"], len(done))
        return {"snapshot_id": params["snapshot_id"],
                "pre_restore_snapshot_id": params.get("pre_restore_snapshot_id"),
                "components": done, "duration_seconds": round(time.monotonic() - started, 3)}

    def _finish_backup(self, job_id: str, progress: JobProgress) -> None:
        """Run the pre-restore backup here if no worker has taken it yet (so a busy or
        one-worker pool cannot deadlock), else wait for the worker that has."""
        self.runner.run(job_id)
        while True:
            job = self.store.get(job_id)
            if job is None or job.status in FINAL:
                break
            progress.check_cancelled()
            time.sleep(WAIT_POLL_SECONDS)
        if job is None or job.status != "completed":
            reason = (job.error or {}).get("message") if job else "the job disappeared"
            raise SnapshotFailed(f"the pre-restore snapshot failed ({reason}); nothing was "
                                 "restored", details={"job_id": job_id})

    def _restore(self, repo: Repository, tenant: str, component: dict[str, Any],
                 progress: JobProgress) -> dict[str, Any]:
        with self.catalog.session() as session:
            row = session.get(Backup, component["backup_id"])
            snapshot_ref = row.snapshot_id if row is not None and row.deleted_at is None \
                else None
        if snapshot_ref is None:
            raise ConfigSnapshotNotFound(f"backup {component['backup_id']} of the snapshot "
                                         "was deleted")
        source = self.sources.get(tenant, component["source_id"])
        snapshot = repo.load_snapshot(snapshot_ref)
        progress.operation(f"restoring {source.name}")
        outcome: dict[str, Any] = {"source_id": source.id, "source_name": source.name,
                                   "kind": source.kind, "backup_id": component["backup_id"]}
        if source.kind == "files":
            path_filter = PathFilter(tuple(source.config.get("include_patterns") or ()),
                                     tuple(source.config.get("exclude_patterns") or ()))
            outcome.update(self._restore_tree(
                repo, snapshot, progress,
                path_filter if component.get("remove_new_files") else None))
        elif source.kind == "sqlite":
            result = restore_sqlite(repo, snapshot, source.config["path"],
                                    RestoreRequest(mode="full"), progress)
            outcome.update(target=source.config["path"], rows_restored=result.rows_restored,
                           safety_snapshot_id=result.safety_snapshot)
        else:
            # Imported here: the PostgreSQL driver is only needed by servers that use it.
            from strongbox.sources.postgres.restore import restore_postgres_full

            result = restore_postgres_full(repo, snapshot, source.config["dsn"],
                                           target_schema=source.config.get("schema"),
                                           replace=True, progress=progress)
            outcome.update(rows_restored=int(result.get("rows", 0)))
        return outcome

    @staticmethod
    def _restore_tree(repo: Repository, snapshot: Snapshot, progress: JobProgress,
                      remove_new: PathFilter | None) -> dict[str, Any]:
        """Each captured root goes back where it was: its parent folder receives it.
        With ``remove_new`` (the source's patterns), entries the snapshot lacks go."""
        files = written = removed = 0
        warnings: list[str] = []
        held = {path for path, _node in repo.iter_tree(snapshot.tree)} if remove_new \
            else set()
        for root in snapshot.paths:
            place = Path(root)
            summary = restore_files(repo, snapshot, place.parent, subpath=place.name,
                                    progress=progress)
            files += summary.files
            written += summary.bytes_written
            warnings += summary.warnings
            if remove_new is not None and place.is_dir() and not place.is_symlink():
                removed += remove_unheld(place, held, remove_new)
        return {"target": snapshot.paths[0] if len(snapshot.paths) == 1 else snapshot.paths,
                "files_restored": files, "bytes_written": written, "entries_removed": removed,
                "warnings": warnings}

    def failed(self, job: JobView, error: dict[str, Any]) -> None:
        """Nothing to bring in step: the job row is the restore's record, and the
        pre-restore snapshot stays (it is the way back)."""


def remove_unheld(root: Path, held: set[str], path_filter: PathFilter) -> int:
    """Delete the files, links and folders under ``root`` that a snapshot of it does not
    hold (``held``: its paths, ``<root name>/...``), so the tree is as captured. Entries
    the source's patterns leave out were never captured and stay. Links are removed, never
    followed. Returns how many entries were removed."""
    removed = 0
    new_folders: list[str] = []  # in walk order: parents before children
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root.parent)
        descend = []
        for name in dirnames:
            rel = f"{rel_dir}/{name}"
            if path_filter.excludes(rel):
                continue  # never captured: neither it nor anything below it is touched
            if os.path.islink(os.path.join(dirpath, name)):
                filenames.append(name)  # a link to a folder is an entry like a file
                continue
            descend.append(name)
            if rel not in held:
                new_folders.append(os.path.join(dirpath, name))
        dirnames[:] = descend
        for name in filenames:
            rel = f"{rel_dir}/{name}"
            path = os.path.join(dirpath, name)
            if rel not in held and path_filter.includes_file(rel) and _capturable(path):
                os.unlink(path)
                removed += 1
    for folder in reversed(new_folders):  # deepest first
        with contextlib.suppress(OSError):  # not empty: it holds what must stay
            os.rmdir(folder)
            removed += 1
    return removed


def _capturable(path: str) -> bool:
    """Files and links: what a snapshot holds when they exist at capture. Anything else
    (FIFO, socket, device) is never captured, so its absence says nothing: it stays."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return False
    return stat.S_ISREG(mode) or stat.S_ISLNK(mode)
