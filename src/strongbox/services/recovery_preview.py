"""Recovery preview: what restoring a backup over its source *now* would do.

A recovery is a full restore: the source becomes what the backup holds. The preview
compares the backup with the live source to say what would be replaced and which data is
newer than the backup (and so would be lost from the source; the pre-recovery backup
keeps it):

* SQLite: every table row by row (by primary key, or rowid): rows added since the backup
  and rows changed since are newer data; rows deleted since come back. Tables larger
  than ``ROW_DIFF_LIMIT`` rows are compared by count only.
* PostgreSQL: row counts per table (current vs backup); more rows now than in the backup
  is counted as newer data (at least that many rows).
* File trees: every file and symlink by type, size, modification time and link target
  (the archiver's own change test): files the restore adds back, files it changes (their
  current version is newer data), files created since (not in the backup).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from strongbox.errors import SourceError, StrongboxError
from strongbox.repository.lock import Lock
from strongbox.repository.repository import Repository
from strongbox.repository.snapshot import Snapshot
from strongbox.services.backup_job import estimate_bytes
from strongbox.services.backups import BackupService, BackupView
from strongbox.services.disaster_recovery import DisasterRecoveryService, size_estimate
from strongbox.services.restore import RestoreService
from strongbox.services.sources import SourceView
from strongbox.services.storage import RepositoryProvider
from strongbox.sources.files.patterns import PathFilter
from strongbox.sources.sqlite.live import LiveDatabaseReader
from strongbox.sources.sqlite.reader import SnapshotReader, TableInfo
from strongbox.sources.sqlite.restore_plan import RowShape

ROW_DIFF_LIMIT = 1_000_000  # rows per table compared one by one; larger: counts only
EXAMPLES = 20  # paths listed per file category
LOW_RISK_SHARE = 0.01  # newer data up to 1% of the current items is a "low" risk


def confirmation_text(backup_id: str) -> str:
    """What ``POST /recovery/initiate`` must be sent as ``confirmation_text``."""
    return f"RECOVER {backup_id}"


@dataclass
class TableImpact:
    name: str
    backup_rows: int | None  # None: the table is not in the backup (a recovery drops it)
    current_rows: int | None  # None: the table is not in the source now
    added_since: int | None = None  # rows now that the backup lacks: lost
    changed_since: int | None = None  # rows that differ from the backup: current version lost
    deleted_since: int | None = None  # rows of the backup gone now: they come back
    compared: bool = False  # row by row; False: counts only


@dataclass
class FileImpact:
    files_in_backup: int = 0
    files_current: int = 0
    added: int = 0  # in the backup, missing now: written back
    changed: int = 0  # differ: the backup's version replaces the current one
    removed: int = 0  # created since the backup: not in it
    unchanged: int = 0
    examples: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class RecoveryPreview:
    backup: BackupView
    source: SourceView | None
    can_recover: bool
    confirmation_text: str
    tables: list[TableImpact] = field(default_factory=list)
    files: FileImpact | None = None
    newer_items: int = 0  # rows or files newer than the backup
    current_items: int | None = None
    restore_seconds: float = 0.0
    snapshot_seconds: float = 0.0
    estimate_basis: str = "size_estimate"  # dr_test | size_estimate
    data_loss_risk: str = "none"  # none | low | high
    warnings: list[str] = field(default_factory=list)
    recommendations: list[str] = field(default_factory=list)

    @property
    def estimated_duration_seconds(self) -> float:
        return round(self.restore_seconds + self.snapshot_seconds, 1)

    @property
    def recovery_type(self) -> str:
        return "full"


def _digest(values: tuple[Any, ...]) -> bytes:
    return hashlib.blake2b(repr(values).encode(), digest_size=16).digest()


def _keyed(rows: Iterator[tuple[Any, ...]], info: TableInfo, columns: list[str]
           ) -> dict[tuple[Any, ...], bytes]:
    shape = RowShape(info)
    return {shape.key(row): _digest(shape.values(row, columns)) for row in rows}


def compare_table(backup: SnapshotReader, live: LiveDatabaseReader, name: str,
                  current: TableInfo) -> TableImpact:
    stored = backup.table(name)
    impact = TableImpact(name, stored.rows, current.rows)
    if max(stored.rows, current.rows) > ROW_DIFF_LIMIT:
        impact.added_since = max(0, current.rows - stored.rows)
        return impact
    columns = [c for c in stored.columns if c in current.columns]
    then = _keyed(backup.rows(name), stored, columns)
    now = _keyed(live.rows(name), current, columns)
    impact.added_since = sum(1 for key in now if key not in then)
    impact.deleted_since = sum(1 for key in then if key not in now)
    impact.changed_since = sum(1 for key, digest in now.items()
                               if key in then and then[key] != digest)
    if set(stored.columns) != set(current.columns):
        # A column added or dropped since: every row's stored form differs.
        impact.changed_since = sum(1 for key in now if key in then)
    impact.compared = True
    return impact


def sqlite_impact(repo: Repository, snapshot: Snapshot, path: str) -> list[TableImpact]:
    backup = SnapshotReader(repo, snapshot)
    live = LiveDatabaseReader(path)
    try:
        now = {t.name: t for t in live.tables()}
        impacts = []
        for stored in backup.tables():
            current = now.pop(stored.name, None)
            if current is None:
                impacts.append(TableImpact(stored.name, stored.rows, None, 0, 0, stored.rows,
                                           True))
            else:
                impacts.append(compare_table(backup, live, stored.name, current))
        for current in now.values():  # created since the backup: a recovery drops them
            impacts.append(TableImpact(current.name, None, current.rows, current.rows, 0, 0,
                                       True))
        return impacts
    finally:
        live.close()


def postgres_impact(repo: Repository, snapshot: Snapshot, source: SourceView
                    ) -> list[TableImpact]:
    # Imported here: the PostgreSQL driver is only needed by servers that use it.
    import psycopg

    from strongbox.sources.postgres.catalog import find_schema, read_tables
    from strongbox.sources.postgres.connection import connect, quoted

    backup = {t.name: t.rows for t in SnapshotReader(repo, snapshot).tables()}
    schema = source.config.get("schema", "public")
    counts: dict[str, int] = {}
    try:
        with connect(source.config["dsn"]) as conn:
            namespace = find_schema(conn, schema)
            if namespace is not None:
                for table in read_tables(conn, namespace):
                    row = conn.execute(
                        f"SELECT count(*) FROM {quoted(conn, schema, table.name)}").fetchone()
                    counts[table.name] = int(row[0]) if row else 0
    except psycopg.Error as exc:
        raise SourceError(f"cannot count the rows of schema {schema!r}: {exc}") from exc
    impacts = []
    for name in sorted(set(backup) | set(counts)):
        then, now = backup.get(name), counts.get(name)
        impact = TableImpact(name, then, now)
        if now is not None:
            impact.added_since = max(0, now - (then or 0))
        if then is not None:
            impact.deleted_since = max(0, then - (now or 0))
        impacts.append(impact)
    return impacts


def _entry_state(node_type: str, size: int, mtime_ns: int, target: str | None
                 ) -> tuple[str, int, int, str | None]:
    if node_type == "symlink":
        return node_type, 0, 0, target  # a link's own time is not restored
    return node_type, size, mtime_ns, None


def snapshot_files(repo: Repository, snapshot: Snapshot
                   ) -> dict[str, tuple[str, int, int, str | None]]:
    """Path → (type, size, mtime_ns, link target) of the files and links in a backup."""
    found = {}
    links: dict[str, str] = {}
    for path, node in repo.iter_tree(snapshot.tree):
        if node.type in ("file", "symlink"):
            found[path] = _entry_state(node.type, node.size, node.mtime_ns, node.link_target)
        elif node.type == "hardlink" and node.link_target:
            links[path] = node.link_target
    for path, first in links.items():  # a hard link is the file it names, on disk
        if first in found:
            found[path] = found[first]
    return found


def live_files(root: Path, path_filter: PathFilter
               ) -> dict[str, tuple[str, int, int, str | None]]:
    """The same for the tree on disk, named and filtered as the archiver names them."""
    found: dict[str, tuple[str, int, int, str | None]] = {}
    if not root.is_dir():
        return found
    todo = [(root, root.name)]
    while todo:
        folder, rel = todo.pop()
        with contextlib.suppress(OSError), os.scandir(folder) as entries:
            for entry in entries:
                child = f"{rel}/{entry.name}"
                if path_filter.excludes(child):
                    continue
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISDIR(info.st_mode):
                    todo.append((Path(entry.path), child))
                elif not path_filter.includes_file(child):
                    continue
                elif stat.S_ISLNK(info.st_mode):
                    found[child] = _entry_state("symlink", 0, 0, os.readlink(entry.path))
                elif stat.S_ISREG(info.st_mode):
                    found[child] = _entry_state("file", info.st_size, info.st_mtime_ns, None)
    return found


def file_impact(repo: Repository, snapshot: Snapshot, source: SourceView) -> FileImpact:
    config = source.config
    then = snapshot_files(repo, snapshot)
    now = live_files(Path(config["path"]), PathFilter(
        tuple(config.get("include_patterns") or ()), tuple(config.get("exclude_patterns") or ())))
    impact = FileImpact(len(then), len(now))
    groups: dict[str, list[str]] = {"added": [], "changed": [], "removed": []}
    for path, state in then.items():
        current = now.get(path)
        if current is None:
            groups["added"].append(path)
        elif current != state:
            groups["changed"].append(path)
        else:
            impact.unchanged += 1
    groups["removed"] = [p for p in now if p not in then]
    impact.added, impact.changed, impact.removed = (len(groups[k]) for k in
                                                    ("added", "changed", "removed"))
    impact.examples = {k: sorted(v)[:EXAMPLES] for k, v in groups.items() if v}
    return impact


class RecoveryPreviewService:
    def __init__(self, storage: RepositoryProvider, backups: BackupService,
                 restores: RestoreService, dr: DisasterRecoveryService) -> None:
        self.storage = storage
        self.backups = backups
        self.restores = restores
        self.dr = dr

    def preview(self, tenant: str, backup_id: str) -> RecoveryPreview:
        backup = self.backups.get(tenant, backup_id)
        result = RecoveryPreview(backup, None, False, confirmation_text(backup.id))
        try:
            _, source = self.restores.restorable(tenant, backup.id)
        except StrongboxError as exc:
            result.warnings.append(exc.message)
            return result
        result.source = source
        result.can_recover = True
        assert backup.snapshot_id is not None
        repo = self.storage.open()
        try:
            with Lock(repo.backend, exclusive=False).acquire():
                self._compare(repo, repo.load_snapshot(backup.snapshot_id), source, result)
        except (StrongboxError, sqlite3.Error, OSError) as exc:
            # The preview advises; a source it cannot read is worth saying, not failing on.
            reason = exc.message if isinstance(exc, StrongboxError) else str(exc)
            result.warnings.append(f"the source cannot be compared with the backup now "
                                   f"({reason}): everything the backup holds is written back")
        self._estimate(tenant, backup, source, result)
        self._advise(result)
        return result

    @staticmethod
    def _compare(repo: Repository, snapshot: Snapshot, source: SourceView,
                 result: RecoveryPreview) -> None:
        if source.kind == "files":
            result.files = file_impact(repo, snapshot, source)
            result.newer_items = result.files.changed + result.files.removed
            result.current_items = result.files.files_current
            return
        if source.kind == "sqlite":
            if not Path(source.config["path"]).is_file():
                result.warnings.append("the database file is missing now: the recovery "
                                       "writes it back whole")
                result.tables = [TableImpact(t.name, t.rows, None, 0, 0, t.rows, True)
                                 for t in SnapshotReader(repo, snapshot).tables()]
                return
            result.tables = sqlite_impact(repo, snapshot, source.config["path"])
        else:
            result.tables = postgres_impact(repo, snapshot, source)
        result.newer_items = sum((t.added_since or 0) + (t.changed_since or 0)
                                 for t in result.tables)
        result.current_items = sum(t.current_rows or 0 for t in result.tables)

    def _estimate(self, tenant: str, backup: BackupView, source: SourceView,
                  result: RecoveryPreview) -> None:
        """The restore takes what the last DR test measured for the source (else the
        size estimate); the pre-recovery backup about the source's size at the same rate."""
        rto = self.dr.rto_of(source.id, self.dr.finished_tests(tenant, limit=20), None)
        if rto.measured_seconds is not None:
            result.restore_seconds = float(rto.measured_seconds)
            result.estimate_basis = "dr_test"
        else:
            result.restore_seconds = size_estimate(backup.size_bytes)
        try:
            current = estimate_bytes(source, False)
        except (OSError, KeyError):
            current = None
        result.snapshot_seconds = size_estimate(current if current is not None
                                                else backup.size_bytes)

    @staticmethod
    def _advise(result: RecoveryPreview) -> None:
        newer, current = result.newer_items, result.current_items or 0
        if newer == 0:
            result.data_loss_risk = "none"
        else:
            share = newer / current if current else 1.0
            result.data_loss_risk = "low" if share <= LOW_RISK_SHARE else "high"
            what = "file(s)" if result.files is not None else "row(s)"
            result.warnings.append(
                f"{newer} {what} in the source are newer than the backup and will be "
                "replaced or removed; the pre-recovery backup keeps them")
        result.warnings.append("the source will be replaced by the backup as a whole")
        if result.backup.validation is None or not result.backup.validation.get("is_valid"):
            result.recommendations.append("verify the backup before recovering from it")
        result.recommendations.append("stop the applications that write to the source "
                                      "before recovering")
        result.recommendations.append(
            f"to proceed, POST /api/v1/recovery/initiate with backup_id, confirmation: "
            f"true and confirmation_text {result.confirmation_text!r}")
