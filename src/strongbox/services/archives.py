"""Download and upload of backups as portable archives (seed 000 sections 1.4 and 2.2).

A download builds the backup's archive once into ``<data_dir>/archives`` (the bytes are
deterministic, so size and sha256 are known before the first byte is sent) and serves
slices of it. An upload is validated completely from a private temporary directory
before anything is written to the repository or the catalog.

Each upload has a record (a job of kind ``upload``, :class:`UploadTracker`) whose status
follows seed 000 ``UploadStatus``: ``uploading`` while the bytes arrive (with the count
received), ``validating`` while the archive is checked and imported, then ``ready``,
``restoring`` (while the restore it started runs) or ``failed`` (with the error).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from strongbox.catalog.database import Catalog
from strongbox.catalog.models import Backup
from strongbox.catalog.types import utcnow
from strongbox.errors import BlobNotFound, SnapshotNotFound, StrongboxError
from strongbox.jobs.store import ACTIVE, COMPLETED, FAILED, JobStore, job_error
from strongbox.repository.lock import Lock
from strongbox.services.archive_crypto import decrypt_file, encrypt_file, is_encrypted
from strongbox.services.archive_format import (
    COMPRESSIONS,
    ArchiveInfo,
    ArchiveLimits,
    import_archive,
    inspect_archive,
    write_archive,
)
from strongbox.services.backup_metadata import describe
from strongbox.services.backups import BackupService, BackupView
from strongbox.services.errors import FieldError, ValidationFailed
from strongbox.services.principal import Principal
from strongbox.services.sources import SourceService, SourceView
from strongbox.services.storage import RepositoryProvider

HASH_CHUNK = 1 << 20
ENCRYPTED_SUFFIX = ".enc"
ENCRYPTED_MEDIA_TYPE = "application/octet-stream"
CACHE_MAX_AGE = 24 * 3600.0  # seconds an unused cached archive is kept


class BackupFileMissing(StrongboxError):
    code = "BACKUP_FILE_MISSING"
    http_status = 410


class BackupNotDownloadable(StrongboxError):
    code = "BACKUP_NOT_COMPLETED"
    http_status = 409


class UploadNotFound(StrongboxError):
    code = "UPLOAD_NOT_FOUND"
    http_status = 404


class UploadExists(StrongboxError):
    code = "UPLOAD_EXISTS"
    http_status = 409


class FileTooLarge(StrongboxError):
    code = "FILE_TOO_LARGE"
    http_status = 413


@dataclass(frozen=True)
class PreparedArchive:
    path: Path
    size: int
    sha256: str
    filename: str
    media_type: str


@dataclass(frozen=True)
class ArchivePart:
    """Bytes ``start`` (inclusive) to ``end`` (exclusive) of the archive file."""

    number: int
    total: int
    start: int
    end: int


def part_of(size: int, part_bytes: int | None, number: int | None) -> ArchivePart:
    """Part ``number`` (1-based) when the archive is cut every ``part_bytes`` bytes."""
    if not part_bytes:
        if number not in (None, 1):
            raise ValidationFailed("invalid part", [FieldError(
                "part", "this backup is not split: the only part is 1", "OUT_OF_RANGE",
                number)])
        return ArchivePart(1, 1, 0, size)
    total = max(1, -(-size // part_bytes))
    if number is None:
        return ArchivePart(1, total, 0, size) if total == 1 else ArchivePart(0, total, 0, size)
    if not 1 <= number <= total:
        raise ValidationFailed("invalid part", [FieldError(
            "part", f"part must be between 1 and {total}", "OUT_OF_RANGE", number)])
    start = (number - 1) * part_bytes
    return ArchivePart(number, total, start, min(size, start + part_bytes))


def file_slices(path: Path, start: int, end: int) -> Iterator[bytes]:
    with path.open("rb") as f:
        f.seek(start)
        remaining = end - start
        while remaining > 0:
            chunk = f.read(min(HASH_CHUNK, remaining))
            if not chunk:
                return
            remaining -= len(chunk)
            yield chunk


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _iso(moment: Any) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment is not None else None


def portable_backup(backup: BackupView) -> dict[str, Any]:
    """The ``backup`` section of a manifest: what the backup was, not where it lives now.
    An uploaded backup keeps the section of the archive it came from, so downloading it
    gives back the same bytes."""
    imported = (backup.options or {}).get("imported_from")
    if isinstance(imported, dict) and isinstance(imported.get("backup"), dict):
        return dict(imported["backup"])
    return {"_id": backup.id, "name": backup.name, "description": backup.description,
            "type": backup.type, "created_at": _iso(backup.created_at),
            "completed_at": _iso(backup.completed_at), "created_by": backup.created_by,
            "source_name": backup.source_name, "source_kind": backup.source_kind,
            "source_id": backup.source_id, "filters": backup.filters,
            "size_bytes": backup.size_bytes, "contents": backup.contents}


@dataclass
class ReceivedUpload:
    """An uploaded file, already written to ``path`` in a private temporary directory."""

    path: Path
    filename: str
    mime_type: str
    size_bytes: int
    sha256: str


@dataclass
class UploadOutcome:
    upload_id: str
    backup: BackupView
    info: ArchiveInfo
    restore_job_id: str | None = None
    warnings: list[str] = field(default_factory=list)


UPLOAD_KIND = "upload"
UPLOADING, VALIDATING, READY, RESTORING = "uploading", "validating", "ready", "restoring"


@dataclass
class UploadState:
    """An upload's record as ``GET /api/v1/restore/upload/{upload_id}`` shows it."""

    upload_id: str
    status: str  # seed 000 UploadStatus
    bytes_received: int
    created_at: Any
    updated_at: Any
    filename: str | None = None
    backup_id: str | None = None
    restore_job_id: str | None = None
    restore_status: str | None = None
    error: dict[str, Any] | None = None


class UploadTracker:
    """The upload's status record: a job row of kind ``upload``, written by the request
    that receives the file (no worker runs it). A restart marks an unfinished one failed,
    like every job."""

    def __init__(self, store: JobStore) -> None:
        self.store = store

    def begin(self, principal: Principal, upload_id: str | None = None) -> str:
        """A new record in state ``uploading``; ``upload_id`` may be chosen by the client
        (a UUID) so that it can watch the upload while it is still sending it."""
        if upload_id is not None:
            try:
                upload_id = str(uuid.UUID(upload_id))
            except ValueError:
                raise ValidationFailed("request validation failed", [FieldError(
                    "upload_id", "upload_id must be a UUID", "INVALID_FORMAT",
                    upload_id)]) from None
            if self.store.get(upload_id) is not None:
                raise UploadExists(f"upload {upload_id} exists already: choose a new id")
        job = self.store.create(principal.tenant, UPLOAD_KIND, {}, job_id=upload_id,
                                created_by=principal.key_id)
        self.store.start(job.id)
        self.store.save_progress(job.id, {"status": UPLOADING, "bytes_received": 0})
        return job.id

    def received(self, upload_id: str, nbytes: int) -> None:
        self.store.save_progress(upload_id, {"status": UPLOADING, "bytes_received": nbytes})

    def validating(self, upload_id: str, upload: ReceivedUpload) -> None:
        self.store.save_progress(upload_id, {
            "status": VALIDATING, "bytes_received": upload.size_bytes,
            "filename": upload.filename, "checksum": upload.sha256})

    def finished(self, upload_id: str, upload: ReceivedUpload, outcome: UploadOutcome) -> None:
        self.store.finish(upload_id, COMPLETED, progress={
            "status": RESTORING if outcome.restore_job_id else READY,
            "bytes_received": upload.size_bytes, "filename": upload.filename,
            "checksum": upload.sha256}, result={
            "backup_id": outcome.backup.id, "restore_job_id": outcome.restore_job_id,
            "warnings": list(outcome.warnings)})

    def failed(self, upload_id: str, exc: BaseException) -> None:
        job = self.store.get(upload_id)
        if job is None or not job.active:
            return
        if isinstance(exc, StrongboxError):
            error = job_error(exc.code, exc.message, exc.details)
        else:
            error = job_error("UPLOAD_FAILED", "the upload did not complete (the "
                              "connection closed or the server failed)")
        self.store.finish(upload_id, FAILED, progress={**job.progress, "status": "failed"},
                          error=error)

    def get(self, tenant: str, upload_id: str) -> UploadState:
        try:
            key = str(uuid.UUID(upload_id))
        except ValueError:
            key = None
        job = self.store.get(key) if key else None
        if job is None or job.tenant != tenant or job.kind != UPLOAD_KIND:
            raise UploadNotFound(f"upload {upload_id} not found")
        progress = job.progress or {}
        result = job.result or {}
        state = UploadState(job.id, str(progress.get("status", UPLOADING)),
                            int(progress.get("bytes_received", 0)), job.created_at,
                            job.updated_at, progress.get("filename"),
                            result.get("backup_id"), result.get("restore_job_id"))
        if job.status not in ACTIVE and job.status != COMPLETED:
            state.status, state.error = "failed", job.error  # failed, or interrupted
        elif state.restore_job_id:
            restore = self.store.get(state.restore_job_id)
            state.restore_status = restore.status if restore else None
            # The upload is "restoring" while its restore runs, "ready" once it has ended
            # (restore_status says how).
            state.status = RESTORING if restore is not None and restore.active else READY
        return state


# Starts a restore of a backup; returns the restore job id. Filled in by whoever wires
# the restore service (see ArchiveService.restore_starter).
RestoreStarter = Callable[[Principal, str, dict[str, Any]], str]


class ArchiveService:
    def __init__(self, catalog: Catalog, storage: RepositoryProvider, backups: BackupService,
                 sources: SourceService, data_dir: Path, limits: ArchiveLimits,
                 *, restore_starter: RestoreStarter | None = None,
                 jobs: JobStore | None = None) -> None:
        self.catalog = catalog
        self.storage = storage
        self.backups = backups
        self.sources = sources
        self.cache_dir = data_dir / "archives"
        self.upload_root = data_dir / "uploads"
        self.limits = limits
        self.restore_starter = restore_starter
        self.uploads = UploadTracker(jobs or JobStore(catalog))
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    # --- download -------------------------------------------------------------------------

    def prepare_download(self, tenant: str, backup_id: str, compression: str = "gzip"
                         ) -> tuple[BackupView, PreparedArchive]:
        backup = self.backups.get(tenant, backup_id)
        if backup.status != "completed" or backup.snapshot_id is None:
            raise BackupNotDownloadable(f"backup {backup.id} is {backup.status}: only "
                                        "completed backups can be downloaded",
                                        details={"status": backup.status})
        media_type, suffix = COMPRESSIONS[compression]
        stamp = backup.created_at.strftime("%Y%m%dT%H%M%SZ")
        filename = f"backup-{stamp}{suffix}"
        name = f"{backup.id}-{backup.snapshot_id[:16]}{suffix}"
        path = self.cache_dir / name
        meta_path = self.cache_dir / (name + ".json")
        repo = self.storage.open()
        try:
            snapshot = repo.load_snapshot(backup.snapshot_id)
        except SnapshotNotFound:
            raise BackupFileMissing(f"the snapshot of backup {backup.id} is no longer in "
                                    "the repository") from None
        with self._lock_for(name):
            if not (path.exists() and meta_path.exists()):
                self.cache_dir.mkdir(parents=True, exist_ok=True)
                fd, tmp_name = tempfile.mkstemp(dir=self.cache_dir, prefix=".building-")
                tmp = Path(tmp_name)
                try:
                    with os.fdopen(fd, "wb") as out, \
                            Lock(repo.backend, exclusive=False).acquire():
                        write_archive(repo, snapshot, portable_backup(backup), out,
                                      compression)
                    meta = {"size": tmp.stat().st_size, "sha256": _sha256_file(tmp)}
                    os.replace(tmp, path)
                    meta_path.write_text(json.dumps(meta))
                    self._evict_stale(keep=name)
                except BlobNotFound as exc:
                    raise BackupFileMissing(f"data of backup {backup.id} is missing from "
                                            f"the repository: {exc.message}") from None
                finally:
                    tmp.unlink(missing_ok=True)
            meta = json.loads(meta_path.read_text())
            os.utime(path)  # recently used: kept by _evict_stale
        return backup, PreparedArchive(path, int(meta["size"]), str(meta["sha256"]),
                                       filename, media_type)

    def encrypted_copy(self, prepared: PreparedArchive, passphrase: str) -> PreparedArchive:
        """The archive encrypted with ``passphrase`` in a temporary file the caller removes
        (deterministic: the same archive and passphrase give the same bytes)."""
        fd, tmp_name = tempfile.mkstemp(dir=self.cache_dir, prefix=".encrypted-")
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            encrypt_file(prepared.path, tmp, passphrase, seed=bytes.fromhex(prepared.sha256))
            return PreparedArchive(tmp, tmp.stat().st_size, _sha256_file(tmp),
                                   prepared.filename + ENCRYPTED_SUFFIX, ENCRYPTED_MEDIA_TYPE)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def _evict_stale(self, keep: str) -> None:
        """Drop cached archives nobody has downloaded for CACHE_MAX_AGE (they are rebuilt,
        byte for byte, on the next download)."""
        cutoff = time.time() - CACHE_MAX_AGE
        for cached in self.cache_dir.iterdir():
            if cached.name.startswith((keep, ".")) or cached.name.endswith(".json"):
                continue  # metadata goes with its archive
            with contextlib.suppress(OSError):
                if cached.stat().st_mtime < cutoff:
                    cached.unlink()
                    Path(str(cached) + ".json").unlink(missing_ok=True)

    def _lock_for(self, name: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(name, threading.Lock())

    # --- upload ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def upload_area(self) -> Iterator[Path]:
        """A private (0700) temporary directory, always removed afterwards."""
        self.upload_root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.upload_root, 0o700)
        area = Path(tempfile.mkdtemp(prefix="upload-", dir=self.upload_root))
        try:
            yield area
        finally:
            shutil.rmtree(area, ignore_errors=True)

    def register_upload(self, principal: Principal, upload: ReceivedUpload, *,
                        auto_restore: bool = False,
                        restore_options: dict[str, Any] | None = None,
                        passphrase: str | None = None,
                        max_bytes: int | None = None,
                        upload_id: str | None = None) -> UploadOutcome:
        """Validate the uploaded archive (decrypting it first if it is encrypted), import
        it, record a completed backup, and optionally start its restore."""
        archive = upload.path
        if is_encrypted(archive):
            archive = archive.with_name(archive.name + ".decrypted")
            decrypt_file(upload.path, archive, passphrase,
                         max_bytes or self.limits.max_uncompressed_bytes)
        info = inspect_archive(archive, self.limits)  # writes nothing
        upload_id = upload_id or str(uuid.uuid4())
        backup_id = str(uuid.uuid4())
        manifest_backup = dict(info.manifest.get("backup") or {})
        snapshot_doc = info.manifest["snapshot"]
        kind = str(snapshot_doc.get("kind") or "files")
        source = self._target_source(principal.tenant, manifest_backup, kind)
        repo = self.storage.open()
        with Lock(repo.backend, exclusive=False).acquire():
            snapshot, info = import_archive(
                repo, archive, self.limits,
                tags=[f"backup={backup_id}", f"tenant={principal.tenant}"])
        record = describe(repo, snapshot, self.storage.info)
        name = str(manifest_backup.get("name") or "")[:90] or upload.filename[:90] or "upload"
        options = {"imported_from": {"upload_id": upload_id, "filename": upload.filename,
                                     "archive_sha256": upload.sha256,
                                     "backup": manifest_backup}}
        backup_type = manifest_backup.get("type")
        with self.catalog.session() as session:
            row = Backup(id=backup_id, tenant=principal.tenant, name=name,
                         description=_text(manifest_backup.get("description"), 500),
                         type=backup_type if backup_type in ("full", "selective") else "full",
                         status="completed", source_id=source.id if source else None,
                         source_name=source.name if source else str(
                             manifest_backup.get("source_name") or "uploaded")[:100],
                         source_kind=source.kind if source else kind[:20],
                         job_id=upload_id,
                         filters=manifest_backup.get("filters")
                         if isinstance(manifest_backup.get("filters"), dict) else None,
                         options=options, created_by=principal.key_id,
                         storage_location=self.storage.location, completed_at=utcnow(),
                         **record)
            session.add(row)
        backup = self.backups.get(principal.tenant, backup_id)
        outcome = UploadOutcome(upload_id, backup, info, warnings=list(info.warnings))
        if source is None:
            outcome.warnings.append(f"no {kind} source of this tenant matches the archive: "
                                    "register one to restore this backup")
        if auto_restore:
            self._auto_restore(principal, outcome, restore_options or {})
        return outcome

    def _target_source(self, tenant: str, manifest_backup: dict[str, Any], kind: str
                       ) -> SourceView | None:
        """The archive's own source if this tenant has it, else the tenant's first source
        of the same kind."""
        source_id = manifest_backup.get("source_id")
        if isinstance(source_id, str):
            with contextlib.suppress(StrongboxError):
                source = self.sources.get(tenant, source_id)
                if source.kind == kind:
                    return source
        return self.sources.default(tenant, kind)

    def _auto_restore(self, principal: Principal, outcome: UploadOutcome,
                      options: dict[str, Any]) -> None:
        if self.restore_starter is None:
            outcome.warnings.append("auto_restore is not available on this server yet: the "
                                    "backup was registered; start its restore with "
                                    "POST /api/v1/restore")
            return
        try:
            outcome.restore_job_id = self.restore_starter(principal, outcome.backup.id,
                                                          options)
        except StrongboxError as exc:
            outcome.warnings.append(f"the restore was not started: {exc.message} "
                                    f"({exc.code})")


def _text(value: Any, limit: int) -> str | None:
    return str(value)[:limit] if isinstance(value, str) else None


def restore_starter_for(restore_service: Any) -> RestoreStarter:
    """Adapt the restore service (``strongbox.services.restore``) to start a full restore
    of an uploaded backup with the upload's ``restore_options``."""
    from strongbox.services.restore import NewRestore

    def start(principal: Principal, backup_id: str, options: dict[str, Any]) -> str:
        mode = "full"
        backup = restore_service.backups.get(principal.tenant, backup_id)
        if backup.source_kind == "files" and options.get("on_conflict") in ("skip", "rename"):
            mode = "merge"  # a full restore of a tree replaces it: keeping files is a merge
        created = restore_service.create(principal, NewRestore(
            backup_id=backup_id, mode=mode, on_conflict=options.get("on_conflict"),
            overwrite_existing=bool(options.get("overwrite_existing", False)),
            maintain_ids=bool(options.get("maintain_ids", False)),
            validate_before_restore=bool(options.get("validate_before_restore", True)),
            dry_run=bool(options.get("dry_run", False))))
        return str(created.job.id)

    return start
