"""Verify a backup: is everything it needs still there, readable and what it claims to be?

Checks, in the order they run (seed 001 ``checks_performed`` names in brackets):

* **checksum** [checksum_validation]: the SHA-256 of the stored snapshot document against
  the ``checksum`` recorded when the backup completed. The document names the root tree by
  its content hash, so a match pins every blob below it.
* **metadata** [metadata_validation]: the snapshot opens (decrypts, its name is its hash),
  is of the backup's kind, its trees load, and what it holds matches what the catalog
  recorded (size, tables and row counts, file count).
* **completeness** [component_completeness]: every blob every table/file of the tree names
  is in the index, and its pack exists in storage, long enough to hold it.
* **data** [file_integrity, encryption_validation, compression_validation]: blobs are read,
  decrypted, decompressed and hashed against their ids. A quick verification reads the
  tree blobs and the first chunk of every table and file (enough to prove the key and the
  codec); ``deep`` reads every blob the snapshot uses.
* **test restore** (option): :func:`strongbox.services.scratch_restore.test_restore`.

A blob that fails is mapped back, through the tree, to the tables (database backups) or
files (file trees) that use it: those are named in ``errors`` and ``damaged``, and the
backup becomes ``corrupted`` with an ``error_message`` naming them. A backup that verifies
clean after being marked corrupted (a pack was put back) becomes ``completed`` again.

Results go to ``backups.validation`` (seed 000 ``validation_status``: ``validated_at``,
``is_valid``, ``errors``, ``warnings``, plus ``mode``, ``checks``, ``damaged``...) and
``backups.verified_at``. The work runs as a job of kind ``verify`` (``backup_id`` set).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from strongbox.catalog.database import Catalog
from strongbox.catalog.models import Backup
from strongbox.catalog.types import utcnow
from strongbox.errors import BackendError, IntegrityError, StrongboxError
from strongbox.jobs.executor import JobExecutor
from strongbox.jobs.progress import JobProgress
from strongbox.jobs.store import ACTIVE, JobStore, JobView
from strongbox.progress import NullProgress, Progress
from strongbox.repository.lock import Lock
from strongbox.repository.pack import BlobType
from strongbox.repository.repository import Repository
from strongbox.repository.snapshot import Snapshot
from strongbox.repository.tree import Tree
from strongbox.services.backups import BackupService, BackupView, parse_uuid
from strongbox.services.errors import JobNotFound
from strongbox.services.principal import Principal
from strongbox.services.scratch_restore import ScratchRestoreResult, test_restore
from strongbox.services.sources import SourceService
from strongbox.services.storage import RepositoryProvider, logical_size, snapshot_checksum
from strongbox.sources.sqlite.backup import CONTENT_COUNTERS

log = logging.getLogger(__name__)

KIND = "verify"
STEPS = ("opening repository", "checking metadata", "reading data", "test restore",
         "recording")
QUICK_SAMPLE = 1  # chunks a quick verification reads from each table or file...
QUICK_MAX_READS = 1000  # ...up to this many data blobs (a tree of a million small files)
MISSING_KINDS = ("missing_blob", "missing_pack", "truncated_pack")
PASSED, FAILED, SKIPPED, WARNING = "passed", "failed", "skipped", "warning"
# Seed 001 ``checks_performed`` keys, by our check names.
SEED_CHECKS = {
    "checksum": "checksum_validation",
    "metadata": "metadata_validation",
    "completeness": "component_completeness",
    "file_integrity": "file_integrity",
    "decryption": "encryption_validation",
    "decompression": "compression_validation",
}


# --- reading a snapshot's blobs --------------------------------------------------------------


@dataclass
class BlobProblem:
    blob_id: str
    pack_id: str | None
    kind: str  # missing_blob, missing_pack, truncated_pack, decryption, decompression, hash
    message: str
    paths: list[str] = field(default_factory=list)


@dataclass
class SnapshotScan:
    """What reading a snapshot's trees and (some or all of) its blobs found."""

    read_all: bool
    trees: int = 0
    blobs: int = 0  # distinct blobs the snapshot uses (trees included)
    blobs_read: int = 0
    bytes_read: int = 0
    components: int = 0  # tables or files with content
    problems: list[BlobProblem] = field(default_factory=list)
    damaged: list[str] = field(default_factory=list)  # tables or file paths, sorted

    @property
    def ok(self) -> bool:
        return not self.problems

    def kinds(self) -> set[str]:
        return {p.kind for p in self.problems}


def component_name(kind: str, path: str) -> str:
    """What a person calls the thing at ``path`` of a snapshot: a table name for the
    table streams of database snapshots, else the path itself."""
    if kind in ("sqlite", "postgres") and path.startswith("tables/"):
        return path.split("/", 1)[1]
    return path or "/"


def _problem_kind(exc: StrongboxError) -> str:
    text = exc.message
    if "cannot decompress" in text:
        return "decompression"
    if "does not match its id" in text:
        return "hash"
    if isinstance(exc, BackendError):
        return "missing_pack"
    return "decryption"  # authentication failed / truncated sealed object


class _Scanner:
    def __init__(self, repo: Repository, snapshot: Snapshot, read_all: bool,
                 progress: Progress) -> None:
        self.repo = repo
        self.snapshot = snapshot
        self.progress = progress
        self.scan = SnapshotScan(read_all)
        self.packs = {o.name.split("/", 1)[1]: o.size for o in repo.backend.list("data")}
        self.seen: dict[bytes, BlobProblem | None] = {}
        self.read: set[bytes] = set()
        self.data_reads = 0

    def run(self) -> SnapshotScan:
        todo: list[tuple[str, str]] = [(self.snapshot.tree, "")]
        while todo:
            self.progress.check_cancelled()
            tree_hex, path = todo.pop()
            tree = self._tree(tree_hex, path)
            if tree is None:
                continue
            for node in tree.nodes:
                child = f"{path}/{node.name}" if path else node.name
                if node.type == "dir" and node.subtree:
                    todo.append((node.subtree, child))
                if node.content:
                    self.scan.components += 1
                    self._content(node.content, child)
        self.scan.blobs = len(self.seen)
        self.scan.damaged.sort()
        return self.scan

    def _tree(self, tree_hex: str, path: str) -> Tree | None:
        key = bytes.fromhex(tree_hex)
        if self._blob(key, BlobType.TREE, path, read=False) is not None:
            return None
        try:
            tree = self.repo.load_tree(tree_hex)
        except (StrongboxError, ValueError, KeyError, TypeError) as exc:
            error = exc if isinstance(exc, StrongboxError) else IntegrityError(str(exc))
            self._record(key, BlobProblem(tree_hex, self._pack(key), _problem_kind(error),
                                          f"tree of {path or '/'}: {error}"), path)
            return None
        self.scan.trees += 1
        if key not in self.read:
            self.read.add(key)
            self.scan.blobs_read += 1
        return tree

    def _content(self, content: Sequence[str], path: str) -> None:
        for position, blob_hex in enumerate(content):
            read = self.scan.read_all or (position < QUICK_SAMPLE
                                          and self.data_reads < QUICK_MAX_READS)
            self._blob(bytes.fromhex(blob_hex), BlobType.DATA, path, read=read)
            if read:
                self.progress.check_cancelled()

    def _pack(self, key: bytes) -> str | None:
        found = self.repo.index.lookup(key)
        return found[0] if found else None

    def _record(self, key: bytes, problem: BlobProblem, path: str) -> None:
        self.seen[key] = problem
        self._use(problem, path)
        self.scan.problems.append(problem)

    def _use(self, problem: BlobProblem, path: str) -> None:
        if path not in problem.paths:
            problem.paths.append(path)
        name = component_name(self.snapshot.kind, path)
        if name not in self.scan.damaged:
            self.scan.damaged.append(name)

    def _blob(self, key: bytes, blob_type: BlobType, path: str, *, read: bool
              ) -> BlobProblem | None:
        if key in self.seen:
            problem = self.seen[key]
            if problem is not None:
                self._use(problem, path)
                return problem
            if not read or key in self.read:
                return None
        problem = self._locate(key)
        if problem is None and read:
            problem = self._decode(key, blob_type)
        if problem is not None:
            self._record(key, problem, path)
        else:
            self.seen[key] = None
        return problem

    def _locate(self, key: bytes) -> BlobProblem | None:
        found = self.repo.index.lookup(key)
        if found is None:
            return BlobProblem(key.hex(), None, "missing_blob",
                               f"blob {key.hex()} is not in any index")
        pack_id, blob = found
        size = self.packs.get(pack_id)
        if size is None:
            return BlobProblem(key.hex(), pack_id, "missing_pack",
                               f"pack {pack_id} holding blob {key.hex()} is missing from "
                               "storage")
        if blob.offset + blob.length > size:
            return BlobProblem(key.hex(), pack_id, "truncated_pack",
                               f"pack {pack_id} is {size} bytes, too short for blob "
                               f"{key.hex()}")
        return None

    def _decode(self, key: bytes, blob_type: BlobType) -> BlobProblem | None:
        found = self.repo.index.lookup(key)
        assert found is not None
        self.read.add(key)
        if blob_type == BlobType.DATA:
            self.data_reads += 1
        try:
            self.repo.load_blob(blob_type, key)
        except (IntegrityError, BackendError) as exc:
            return BlobProblem(key.hex(), found[0], _problem_kind(exc), exc.message)
        self.scan.blobs_read += 1
        self.scan.bytes_read += found[1].length
        self.progress.advance(nbytes=found[1].length)
        return None


def scan_snapshot(repo: Repository, snapshot: Snapshot, *, read_all: bool,
                  progress: Progress | None = None) -> SnapshotScan:
    """Walk ``snapshot``'s trees; locate every blob it uses; read ``read_all`` of them
    (else the first chunk of each table/file). Problems name the tables or files they
    damage; the scan itself never raises for damaged data."""
    return _Scanner(repo, snapshot, read_all, progress or NullProgress()).run()


# --- one verification ------------------------------------------------------------------------


class BackupNotVerifiable(StrongboxError):
    """The backup has not completed (pending, running, failed, being deleted)."""

    code = "BACKUP_NOT_COMPLETED"
    http_status = 409


class VerificationInProgress(StrongboxError):
    code = "VERIFICATION_IN_PROGRESS"
    http_status = 409


@dataclass(frozen=True)
class VerifyOptions:
    deep: bool = False  # read every blob, not only trees and a sample
    test_restore: bool = False  # restore into a scratch target and check it there

    @property
    def mode(self) -> str:
        return "deep" if self.deep else "quick"


@dataclass
class Check:
    name: str
    status: str  # passed | failed | skipped | warning
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status, "detail": self.detail}


@dataclass
class VerificationReport:
    backup_id: str
    options: VerifyOptions
    verified_at: datetime
    duration_seconds: float = 0.0
    checks: list[Check] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    damaged: list[str] = field(default_factory=list)
    scan: SnapshotScan | None = None
    scratch: ScratchRestoreResult | None = None
    source_kind: str = ""
    size_bytes: int = 0
    corrupted: bool = False  # damage found (not merely a test restore that could not run)

    @property
    def is_valid(self) -> bool:
        return not self.errors

    def add(self, name: str, status: str, detail: str) -> None:
        self.checks.append(Check(name, status, detail))
        if status == FAILED:
            self.errors.append(f"{name}: {detail}")
        elif status == WARNING:
            self.warnings.append(f"{name}: {detail}")

    def damage(self, names: Sequence[str]) -> None:
        for name in names:
            if name not in self.damaged:
                self.damaged.append(name)
        if names:
            self.corrupted = True

    def status_of(self, name: str) -> str:
        found = [c.status for c in self.checks if c.name == name]
        if not found:
            return SKIPPED
        return FAILED if FAILED in found else found[-1]

    def checks_performed(self) -> dict[str, str]:
        """Seed 001 ``checks_performed``: passed, failed or skipped for each check."""
        done = {seed: self.status_of(ours) for ours, seed in SEED_CHECKS.items()}
        done = {k: (PASSED if v == WARNING else v) for k, v in done.items()}
        if self.options.test_restore:
            done["test_restore"] = self.status_of("test_restore")
        return done

    def components_verified(self) -> dict[str, Any]:
        """Seed 001 ``components_verified``: ``database`` or ``files``."""
        status = PASSED if self.is_valid else FAILED
        problems = self.scan.problems if self.scan else []
        if self.source_kind == "files":
            missing = {path for p in problems if p.kind in MISSING_KINDS for path in p.paths}
            broken = {path for p in problems if p.kind not in MISSING_KINDS
                      for path in p.paths}
            return {"files": {
                "status": status, "files_verified": self.scan.components if self.scan else 0,
                "missing_files": len(missing), "corrupted_files": len(broken - missing)}}
        return {"database": {"status": status, "size_verified": self.size_bytes,
                             "checksum_match": self.status_of("checksum") == PASSED,
                             "tables_damaged": list(self.damaged)}}

    def validation_status(self, job_id: str | None) -> dict[str, Any]:
        """What ``backups.validation`` stores: seed 000 ``validation_status`` and more."""
        doc: dict[str, Any] = {
            "validated_at": self.verified_at.isoformat(),
            "is_valid": self.is_valid,
            "errors": list(self.errors),
            "warnings": list(self.warnings),
            "mode": self.options.mode,
            "deep_verification": self.options.deep,
            "test_restore": self.options.test_restore,
            "checks": [c.to_dict() for c in self.checks],
            "checks_performed": self.checks_performed(),
            "damaged": list(self.damaged),
            "duration_seconds": self.duration_seconds,
        }
        if job_id:
            doc["job_id"] = job_id
        return doc

    def result(self, job_id: str | None = None) -> dict[str, Any]:
        """The job's result: seed 001's verify response, with our details."""
        scan = self.scan
        doc: dict[str, Any] = {
            "backup_id": self.backup_id,
            "verification_status": PASSED if self.is_valid else FAILED,
            "verified": self.is_valid,
            "verified_at": self.verified_at.isoformat(),
            "verification_duration_seconds": self.duration_seconds,
            "mode": self.options.mode,
            "deep_verification": self.options.deep,
            "test_restore": self.options.test_restore,
            "checks_performed": self.checks_performed(),
            "checks": [c.to_dict() for c in self.checks],
            "components_verified": self.components_verified(),
            "issues": list(self.errors),
            "errors": list(self.errors),
            "warnings": list(self.warnings),
            "damaged": list(self.damaged),
            "corrupted": self.corrupted,
            "blobs_total": scan.blobs if scan else 0,
            "blobs_checked": scan.blobs_read if scan else 0,
            "bytes_checked": scan.bytes_read if scan else 0,
            "recommendations": self.recommendations(),
        }
        if self.scratch is not None:
            doc["test_restore_result"] = self.scratch.to_dict()
        if job_id:
            doc["job_id"] = job_id
        return doc

    def recommendations(self) -> list[str]:
        if self.is_valid:
            advice = ["Backup is healthy and can be used for restore operations"]
            if not self.options.deep:
                advice.append("Run a deep verification to read every block of the backup")
            return advice
        if self.corrupted:
            return ["Do not rely on this backup: take a new backup of the source now",
                    "Run `strongbox repo check --read-data` to see what else the damaged "
                    "packs affect"]
        return ["Look at the errors above; the backup's data was not found damaged"]


def _open_snapshot(repo: Repository, backup: BackupView, report: VerificationReport
                   ) -> Snapshot | None:
    assert backup.snapshot_id
    try:
        stored = snapshot_checksum(repo, backup.snapshot_id)
    except BackendError as exc:
        report.add("checksum", FAILED, f"the snapshot document is missing: {exc.message}")
        report.add("metadata", FAILED, f"snapshot {backup.snapshot_id[:8]} does not exist")
        report.damage(["snapshot"])
        return None
    if backup.checksum is None:
        report.add("checksum", WARNING, "no checksum was recorded for this backup")
    elif stored != backup.checksum:
        report.add("checksum", FAILED, f"snapshot document checksum {stored[:16]}… differs "
                   f"from the recorded {backup.checksum[:16]}…")
        report.damage(["snapshot"])
    else:
        report.add("checksum", PASSED, f"sha256 {stored[:16]}… matches")
    try:
        return repo.load_snapshot(backup.snapshot_id)
    except StrongboxError as exc:
        report.add("metadata", FAILED, f"the snapshot cannot be read: {exc.message}")
        report.damage(["snapshot"])
        return None


def _check_metadata(repo: Repository, backup: BackupView, snapshot: Snapshot,
                    report: VerificationReport) -> None:
    problems: list[str] = []
    if snapshot.kind != backup.source_kind:
        problems.append(f"the snapshot is a {snapshot.kind} backup, the catalog says "
                        f"{backup.source_kind}")
    try:
        size, _entries = logical_size(repo, snapshot)
    except StrongboxError as exc:
        report.add("metadata", FAILED, f"the snapshot's trees cannot be read: {exc.message}")
        return
    report.size_bytes = size
    if backup.size_bytes and size != backup.size_bytes:
        problems.append(f"the snapshot holds {size} bytes, the catalog recorded "
                        f"{backup.size_bytes}")
    if snapshot.kind in ("sqlite", "postgres"):
        problems += _database_contents(repo, snapshot, backup.contents, report)
    if problems:
        report.add("metadata", FAILED, "; ".join(problems))
    else:
        report.add("metadata", PASSED, "snapshot, trees and recorded contents agree")


def _database_contents(repo: Repository, snapshot: Snapshot, contents: dict[str, Any] | None,
                       report: VerificationReport) -> list[str]:
    from strongbox.sources.sqlite.reader import SnapshotReader

    try:
        reader = SnapshotReader(repo, snapshot)
        rows = {t.name: t.rows for t in reader.tables()}
    except (StrongboxError, ValueError, KeyError, TypeError) as exc:
        text = exc.message if isinstance(exc, StrongboxError) else str(exc)
        return [f"the database layout cannot be read: {text}"]
    if not contents:
        report.add("metadata", WARNING, "no contents were recorded for this backup")
        return []
    problems = []
    for counter, table in CONTENT_COUNTERS.items():
        recorded = contents.get(counter)
        if recorded and int(recorded) != rows.get(table, 0):
            problems.append(f"{counter} is {recorded}, the snapshot's {table} has "
                            f"{rows.get(table, 0)} rows")
    total = contents.get("total_documents")
    if total is not None and int(total) != sum(rows.values()):
        problems.append(f"total_documents is {total}, the snapshot has "
                        f"{sum(rows.values())} rows")
    return problems


def _record_scan(scan: SnapshotScan, report: VerificationReport) -> None:
    report.scan = scan
    kinds = scan.kinds()
    by_kind = {k: [p for p in scan.problems if p.kind == k] for k in kinds}

    def names(problems: list[BlobProblem]) -> str:
        used = []
        for problem in problems:
            for path in problem.paths:
                name = component_name(report.source_kind, path)
                if name not in used:
                    used.append(name)
        return ", ".join(used[:20]) + (" …" if len(used) > 20 else "")

    missing = [p for k in MISSING_KINDS for p in by_kind.get(k, [])]
    packs = sorted({p.pack_id for p in missing if p.pack_id})
    report.add("completeness", FAILED if missing else PASSED,
               f"{len(missing)} blobs missing (packs {', '.join(p[:12] for p in packs)}) "
               f"used by {names(missing)}" if missing else
               f"all {scan.blobs} blobs of {scan.components} tables/files are in the index "
               "and their packs are present")
    read = f"{scan.blobs_read} of {scan.blobs} blobs read"
    for check, kind, what in (("decryption", "decryption", "fail authentication"),
                              ("decompression", "decompression", "do not decompress"),
                              ("file_integrity", "hash", "do not match their hash")):
        bad = by_kind.get(kind, [])
        report.add(check, FAILED if bad else PASSED,
                   f"{len(bad)} blobs {what}: {names(bad)}" if bad else read)
    report.damage(scan.damaged)


def _record_scratch(result: ScratchRestoreResult, report: VerificationReport) -> None:
    report.scratch = result
    for check in result.checks:
        if check.name == "restore" and not check.ok and not result.damaged:
            # The restore could not run (a database server down, say): worth an error,
            # but no evidence the backup is damaged.
            report.add("test_restore", FAILED, f"the test restore could not run: "
                       f"{check.detail}")
            continue
        report.add("test_restore", PASSED if check.ok else FAILED,
                   f"{check.name}: {check.detail}")
        if not check.ok:
            report.corrupted = True
    report.damage(result.damaged)


def verify_backup(repo: Repository, backup: BackupView, options: VerifyOptions, *,
                  scratch_dir: Path, sources: SourceService | None = None,
                  progress: Progress | None = None,
                  clock: Callable[[], datetime] = utcnow) -> VerificationReport:
    """Run every check on ``backup`` (no catalog writes); the caller holds no lock."""
    progress = progress or NullProgress()
    started = time.monotonic()
    report = VerificationReport(backup.id, options, clock(), source_kind=backup.source_kind)
    if not backup.snapshot_id:
        report.add("metadata", FAILED, "the backup has no snapshot")
        return report
    _step(progress, "checking metadata")
    with Lock(repo.backend, exclusive=False).acquire():
        snapshot = _open_snapshot(repo, backup, report)
        if snapshot is not None:
            report.source_kind = snapshot.kind
            _check_metadata(repo, backup, snapshot, report)
            _step(progress, "reading data", backup.compressed_size_bytes if options.deep
                  else None)
            _record_scan(scan_snapshot(repo, snapshot, read_all=options.deep,
                                       progress=progress), report)
    if options.test_restore:
        _step(progress, "test restore", backup.size_bytes)
        if report.corrupted:
            report.add("test_restore", SKIPPED, "skipped: the backup's data is damaged")
        else:
            _record_scratch(test_restore(repo, backup, scratch_dir, sources=sources,
                                         progress=progress), report)
    report.duration_seconds = round(time.monotonic() - started, 3)
    return report


def _step(progress: Progress, name: str, expected_bytes: int | None = None) -> None:
    """Enter a job step; ``expected_bytes`` (what the step will read or write) drives the
    percentage, counted from the step's start whatever totals the engines set."""
    if isinstance(progress, JobProgress):
        progress.step(name)
        progress.expect(expected_bytes or None)
    else:
        progress.operation(name)


# --- the job and the service -----------------------------------------------------------------


class VerifyJobHandler:
    """Jobs of kind ``verify``: params ``deep``, ``test_restore``; ``backup_id`` set."""

    steps: Sequence[str] = STEPS

    def __init__(self, catalog: Catalog, storage: RepositoryProvider, sources: SourceService,
                 backups: BackupService, scratch_dir: Path, *,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.catalog = catalog
        self.storage = storage
        self.sources = sources
        self.backups = backups
        self.scratch_dir = scratch_dir
        self.clock = clock

    def run(self, job: JobView, progress: JobProgress) -> dict[str, Any]:
        progress.step("opening repository")
        assert job.backup_id is not None
        backup = self.backups.get(job.tenant, job.backup_id)
        options = VerifyOptions(bool(job.params.get("deep")),
                                bool(job.params.get("test_restore")))
        repo = self.storage.open()
        report = verify_backup(repo, backup, options, scratch_dir=self.scratch_dir,
                               sources=self.sources, progress=progress, clock=self.clock)
        progress.step("recording")
        record_verification(self.catalog, backup.id, report, job.id)
        return report.result(job.id)

    def failed(self, job: JobView, error: dict[str, Any]) -> None:
        """Nothing to undo: a verification that did not finish records nothing, and the
        backup keeps the status it had."""


def record_verification(catalog: Catalog, backup_id: str, report: VerificationReport,
                        job_id: str | None = None) -> None:
    """Store the result; a damaged backup becomes ``corrupted`` with the damage named, and
    a ``corrupted`` one that verifies clean again becomes ``completed``."""
    values: dict[str, Any] = {"validation": report.validation_status(job_id),
                              "verified_at": report.verified_at}
    with catalog.session() as session:
        row = session.get(Backup, backup_id)
        if row is None or row.deleted_at is not None:
            return
        if report.corrupted and row.status == "completed":
            values["status"] = "corrupted"
            values["error_message"] = corruption_message(report)
        elif report.corrupted and row.status == "corrupted":
            values["error_message"] = corruption_message(report)
        elif report.is_valid and row.status == "corrupted":
            values["status"] = "completed"
            values["error_message"] = None
        # Guarded by the status read above: a delete that started meanwhile wins.
        session.execute(update(Backup).where(Backup.id == backup_id,
                                             Backup.status == row.status).values(**values))


def corruption_message(report: VerificationReport) -> str:
    what = "tables" if report.source_kind in ("sqlite", "postgres") else "files"
    names = report.damaged[:20]
    more = f" and {len(report.damaged) - 20} more" if len(report.damaged) > 20 else ""
    if names:
        return (f"verification found damaged data; damaged {what}: {', '.join(names)}{more}")
    return "verification failed: " + "; ".join(report.errors[:3])


class VerificationService:
    def __init__(self, catalog: Catalog, store: JobStore, executor: JobExecutor,
                 backups: BackupService, sources: SourceService) -> None:
        self.catalog = catalog
        self.store = store
        self.executor = executor
        self.backups = backups
        self.sources = sources

    def start(self, principal: Principal, backup_id: str, options: VerifyOptions, *,
              created_by: str | None = None) -> JobView:
        """Start a ``verify`` job for a completed (or corrupted) backup of the tenant."""
        backup = self.backups.get(principal.tenant, backup_id)
        return self._start(backup, options, created_by or principal.key_id)

    def _start(self, backup: BackupView, options: VerifyOptions,
               created_by: str | None) -> JobView:
        if backup.status not in ("completed", "corrupted") or not backup.snapshot_id:
            raise BackupNotVerifiable(f"backup {backup.id} is {backup.status}: only completed "
                                      "backups can be verified")
        running = [j for j in self.store.for_backup(backup.id, kind=KIND)
                   if j.status in ACTIVE]
        if running:
            raise VerificationInProgress(
                f"backup {backup.id} is already being verified (job {running[0].id})",
                details={"job_id": running[0].id})
        job = self.store.create(backup.tenant, KIND,
                                {"deep": options.deep, "test_restore": options.test_restore},
                                backup_id=backup.id, created_by=created_by,
                                job_id=str(uuid.uuid4()))
        self.executor.submit(job)
        return job

    def job(self, tenant: str, job_id: str) -> JobView:
        key = parse_uuid(job_id)
        job = self.store.get(key) if key else None
        if job is None or job.tenant != tenant or job.kind != KIND:
            raise JobNotFound(f"job {job_id} not found")
        return job

    def last_result(self, tenant: str, backup_id: str) -> tuple[BackupView, JobView | None]:
        """The backup (its ``validation``) and its latest verify job, if any."""
        backup = self.backups.get(tenant, backup_id)
        jobs = [j for j in self.store.for_backup(backup.id, kind=KIND) if j.tenant == tenant]
        return backup, (jobs[-1] if jobs else None)

    def verify_latest(self, tenant: str, *, source_ids: Sequence[str] | None = None,
                      options: VerifyOptions | None = None,
                      not_verified_since: datetime | None = None,
                      created_by: str | None = "scheduler") -> list[JobView]:
        """For the scheduler's ``verify`` action: verify the newest completed backup of
        each source (all the tenant's sources, or ``source_ids``).

        A backup already being verified is skipped, and so is one verified at or after
        ``not_verified_since`` (so a frequent schedule does not re-read unchanged
        backups). Returns the jobs started.
        """
        options = options or VerifyOptions()
        wanted = set(source_ids) if source_ids else None
        started = []
        for backup in self._latest_per_source(tenant):
            if wanted is not None and backup.source_id not in wanted:
                continue
            if not_verified_since is not None and self._verified_since(backup.id,
                                                                       not_verified_since):
                continue
            try:
                started.append(self._start(backup, options, created_by))
            except VerificationInProgress:
                continue
        return started

    def _latest_per_source(self, tenant: str) -> list[BackupView]:
        latest: dict[str, str] = {}
        with self.catalog.session() as session:
            rows = session.execute(
                select(Backup.id, Backup.source_id)
                .where(Backup.tenant == tenant, Backup.deleted_at.is_(None),
                       Backup.status.in_(("completed", "corrupted")),
                       Backup.snapshot_id.is_not(None))
                .order_by(Backup.created_at.desc(), Backup.id))
            for backup_id, source_id in rows:
                latest.setdefault(source_id or "", backup_id)
        return [self.backups.get(tenant, backup_id) for backup_id in latest.values()]

    def _verified_since(self, backup_id: str, moment: datetime) -> bool:
        with self.catalog.session() as session:
            verified = session.scalar(select(Backup.verified_at).where(Backup.id == backup_id))
        return verified is not None and verified >= moment
