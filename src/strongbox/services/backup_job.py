"""The ``backup`` job: back one source up into the repository and record the result.

The backup row and the snapshot are kept in step: the row is completed with a
conditional update, so a backup deleted while its job was running (status ``deleting``)
never shows up as completed; its job forgets the snapshot it has just written instead.
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Any

from sqlalchemy import update

from strongbox.catalog.database import Catalog
from strongbox.catalog.models import Backup
from strongbox.catalog.types import utcnow
from strongbox.errors import Cancelled, SnapshotNotFound
from strongbox.jobs.progress import JobProgress
from strongbox.jobs.store import JobView
from strongbox.repository.lock import Lock
from strongbox.repository.repository import Repository
from strongbox.repository.snapshot import Snapshot
from strongbox.services.backup_metadata import describe
from strongbox.services.file_restore import STAGING_PREFIX
from strongbox.services.filters import database_filters, file_globs
from strongbox.services.sources import SourceService, SourceView
from strongbox.services.storage import RepositoryProvider, path_size
from strongbox.sources.files.archiver import backup_files
from strongbox.sources.sqlite.backup import backup_sqlite

log = logging.getLogger(__name__)

KIND = "backup"
STEPS = ("opening repository", "backing up", "recording")


def estimate_bytes(source: SourceView, selective: bool) -> int | None:
    """Bytes a backup of ``source`` will stream, roughly (None if unknown)."""
    if source.kind == "sqlite":
        db = Path(source.config["path"])
        size = path_size(db) or 0
        wal = db.with_name(db.name + "-wal")
        size += wal.stat().st_size if wal.exists() else 0
        # A full backup stores the rows and the page copy: about twice the file.
        return size if selective else 2 * size
    if source.kind == "files":
        return path_size(Path(source.config["path"]))
    return None


def change_detection_parent(repo: Repository, params: dict[str, Any]
                            ) -> Snapshot | str | None:
    """The snapshot a files backup compares against (files whose size, mtime and inode
    match it are not read again).

    - ``incremental`` / ``differential``: the parent backup's snapshot (the last backup of
      the source, or its last full one); if it has been forgotten meanwhile, none.
    - ``full``: none, so every file is read and stored afresh;
    - ``selective`` (and jobs queued before backup types existed): ``"auto"``, the newest
      snapshot of the same paths, as before.

    Whatever the parent, the new snapshot is a complete tree: it never needs its parent
    to be restored. Database sources always read the whole database; deduplication makes
    an unchanged table cost nothing.
    """
    kind = params.get("type")
    if kind == "full":
        return None
    snapshot_id = params.get("parent_snapshot_id")
    if kind in ("incremental", "differential"):
        if not snapshot_id:
            return None
        try:
            return repo.load_snapshot(snapshot_id)
        except SnapshotNotFound:
            log.info("parent snapshot %s is gone: reading every file", snapshot_id)
            return None
    return "auto"


class BackupJobHandler:
    steps = STEPS

    def __init__(self, catalog: Catalog, storage: RepositoryProvider,
                 sources: SourceService) -> None:
        self.catalog = catalog
        self.storage = storage
        self.sources = sources

    def run(self, job: JobView, progress: JobProgress) -> dict[str, Any]:
        started = time.monotonic()
        backup_id = job.backup_id
        assert backup_id is not None
        if not self._set_status(backup_id, "pending", "in_progress"):
            raise Cancelled("the backup was deleted before its job started")
        params = job.params
        progress.step("opening repository")
        source = self.sources.get(job.tenant, params["source_id"])
        repo = self.storage.open()
        # Only this job's Repository instance: other jobs keep their own level.
        repo.config.compression_level = int(params.get("compression_level",
                                                       repo.config.compression_level))
        progress.step("backing up")
        filters = params.get("filters") if params.get("selective") else None
        progress.expect(estimate_bytes(source, bool(filters)))
        tags = [f"backup={backup_id}", f"tenant={job.tenant}"]
        with Lock(repo.backend, exclusive=False).acquire():
            parent = change_detection_parent(repo, params)
            snapshot = self._back_up(repo, source, filters, tags, progress, parent)
        progress.step("recording")
        record = describe(repo, snapshot, self.storage.info)
        if not self._complete(backup_id, record):
            self._forget(repo, snapshot.id)
            raise Cancelled("the backup was deleted while it ran")
        result = {"backup_id": backup_id, "snapshot_id": snapshot.id,
                  "size_bytes": record["size_bytes"],
                  "duration_seconds": round(time.monotonic() - started, 3)}
        if params.get("parent_backup_id"):
            result["parent_backup_id"] = params["parent_backup_id"]
            # None when the parent's snapshot was gone: every file was read again.
            result["parent_snapshot_id"] = parent.id if isinstance(parent, Snapshot) else None
        return result

    @staticmethod
    def _back_up(repo: Repository, source: SourceView, filters: dict[str, Any] | None,
                 tags: list[str], progress: JobProgress,
                 parent: Snapshot | str | None = "auto") -> Snapshot:
        config = source.config
        if source.kind == "sqlite":
            return backup_sqlite(repo, config["path"], tags=tags, progress=progress,
                                 filters=database_filters(filters) if filters else None,
                                 row_streams=bool(config.get("row_streams")))
        if source.kind == "files":
            include = list(config.get("include_patterns") or [])
            # A restore in progress stages its files inside the tree: never back those up.
            exclude = [*(config.get("exclude_patterns") or []), f"{STAGING_PREFIX}*"]
            if filters:
                extra_include, extra_exclude = file_globs(filters)
                include += extra_include
                exclude += extra_exclude
            return backup_files(repo, [config["path"]], include=include, exclude=exclude,
                                tags=tags, progress=progress, parent=parent)
        # Imported here: the PostgreSQL driver is only needed by servers that use it.
        from strongbox.sources.postgres.backup import backup_postgres

        return backup_postgres(repo, config["dsn"], schema=config.get("schema", "public"),
                               tags=tags, progress=progress)

    def _set_status(self, backup_id: str, old: str, new: str) -> bool:
        with self.catalog.session() as session:
            done = session.execute(update(Backup).where(Backup.id == backup_id,
                                                        Backup.status == old)
                                   .values(status=new))
            return bool(done.rowcount)  # type: ignore[attr-defined]

    def _complete(self, backup_id: str, record: dict[str, Any]) -> bool:
        with self.catalog.session() as session:
            done = session.execute(
                update(Backup).where(Backup.id == backup_id, Backup.status == "in_progress")
                .values(status="completed", completed_at=utcnow(), **record))
            return bool(done.rowcount)  # type: ignore[attr-defined]

    @staticmethod
    def _forget(repo: Repository, snapshot_id: str) -> None:
        # The row is marked deleted by failed(), which the runner calls next.
        with contextlib.suppress(SnapshotNotFound):
            repo.delete_snapshot(snapshot_id)

    def failed(self, job: JobView, error: dict[str, Any]) -> None:
        if job.backup_id is None:
            return
        now = utcnow()
        with self.catalog.session() as session:
            row = session.get(Backup, job.backup_id)
            if row is None:
                return
            if row.status == "deleting":
                # Deleted while running: nothing was kept, so the deletion is complete.
                row.deleted_at = row.deleted_at or now
                return
            if row.status in ("pending", "in_progress"):
                row.status = "failed"
                row.error_message = f"{error['message']} ({error['code']})"
                row.completed_at = now
