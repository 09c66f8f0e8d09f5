"""Test restores: restore a backup into a scratch target, check it, and throw it away.

A backup is only as good as the restore it allows. :func:`test_restore` runs the real
restore engine of the backup's source kind against a target nobody uses, then asks the
restored data itself whether it is whole, with the source's own tools:

* SQLite: a new database file under ``scratch_dir``; ``PRAGMA integrity_check``,
  ``PRAGMA foreign_key_check``, and each table's row count against the count the backup
  recorded (the snapshot's table metadata and the catalog's ``contents`` counters).
* Files: a new folder under ``scratch_dir``; the restorer already verifies every chunk
  against its id as it reads it; afterwards each restored file is read back from disk and
  cut at the snapshot's chunk boundaries, and every piece's keyed hash must equal the
  snapshot's chunk id (so what landed on disk is exactly what was backed up), and the
  number of files, links and folders must match the snapshot.
* PostgreSQL: a scratch schema ``strongbox_scratch_<random>`` in the source's own
  database (creating a database needs a privilege a backup role rarely has); row counts
  per table against the snapshot, then ``DROP SCHEMA ... CASCADE``.

The scratch target is always removed, also when the restore or a check fails. A restore
that fails on damaged data is reported, not raised: the result names the damaged tables
or files (found by reading every blob the snapshot uses), so a DR test or a verification
can record what a real restore would lose.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from strongbox.errors import Cancelled, StrongboxError
from strongbox.progress import NullProgress, Progress
from strongbox.repository.lock import Lock
from strongbox.repository.repository import Repository
from strongbox.repository.snapshot import Snapshot
from strongbox.repository.tree import Node
from strongbox.services.backups import BackupView
from strongbox.services.sources import SourceService
from strongbox.sources.sqlite.backup import CONTENT_COUNTERS
from strongbox.sources.sqlite.foreign_keys import quote_identifier
from strongbox.sources.sqlite.reader import SnapshotReader

log = logging.getLogger(__name__)

READ_SIZE = 1 << 20


@dataclass
class ScratchCheck:
    name: str  # e.g. "restore", "integrity_check", "row_counts", "file_hashes"
    ok: bool
    detail: str


@dataclass
class ScratchRestoreResult:
    backup_id: str
    source_kind: str  # sqlite | postgres | files
    ok: bool
    duration_seconds: float  # measured wall time of restore + checks
    checks: list[ScratchCheck]
    damaged: list[str]  # names of damaged files / tables ([] when ok)
    target: str = ""  # where the scratch copy was (already removed)
    rows_restored: int = 0  # databases: rows in the scratch copy
    files_restored: int = 0  # file trees: files in the scratch copy
    bytes_restored: int = 0
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "backup_id": self.backup_id, "source_kind": self.source_kind, "ok": self.ok,
            "duration_seconds": self.duration_seconds,
            "checks": [c.__dict__ for c in self.checks], "damaged": list(self.damaged),
            "target": self.target, "rows_restored": self.rows_restored,
            "files_restored": self.files_restored, "bytes_restored": self.bytes_restored,
            "errors": list(self.errors),
        }


class _Outcome:
    """Checks collected while a test restore runs."""

    def __init__(self) -> None:
        self.checks: list[ScratchCheck] = []
        self.damaged: list[str] = []
        self.rows = 0
        self.files = 0
        self.bytes = 0
        self.target = ""

    def check(self, name: str, ok: bool, detail: str) -> bool:
        self.checks.append(ScratchCheck(name, ok, detail))
        return ok

    def damage(self, names: list[str]) -> None:
        for name in names:
            if name not in self.damaged:
                self.damaged.append(name)


def test_restore(repo: Repository, backup: BackupView, scratch_dir: Path, *,
                 sources: SourceService | None = None, progress: Progress | None = None
                 ) -> ScratchRestoreResult:
    """Restore ``backup`` into a scratch target under ``scratch_dir`` and check it.

    ``sources`` is needed for PostgreSQL backups only (the scratch schema lives on the
    source's server). Raises :class:`~strongbox.errors.Cancelled` if ``progress`` is
    cancelled; every other failure is reported in the result.
    """
    progress = progress or NullProgress()
    started = time.monotonic()
    outcome = _Outcome()
    kind = backup.source_kind
    try:
        if not backup.snapshot_id:
            outcome.check("restore", False, f"backup {backup.id} has no snapshot")
        else:
            with Lock(repo.backend, exclusive=False).acquire():
                snapshot = repo.load_snapshot(backup.snapshot_id)
                kind = snapshot.kind
                _run(repo, backup, snapshot, Path(scratch_dir), sources, progress, outcome)
    except Cancelled:
        raise
    except StrongboxError as exc:
        outcome.check("restore", False, exc.message)
    ok = bool(outcome.checks) and all(c.ok for c in outcome.checks)
    errors = [f"{c.name}: {c.detail}" for c in outcome.checks if not c.ok]
    return ScratchRestoreResult(
        backup.id, kind, ok, round(time.monotonic() - started, 3), outcome.checks,
        [] if ok else outcome.damaged, outcome.target, outcome.rows, outcome.files,
        outcome.bytes, errors)


# Not a test itself: keeps pytest from collecting it where a test module imports it by name.
test_restore.__test__ = False  # type: ignore[attr-defined]


def _run(repo: Repository, backup: BackupView, snapshot: Snapshot, scratch_dir: Path,
         sources: SourceService | None, progress: Progress, outcome: _Outcome) -> None:
    if snapshot.kind == "sqlite":
        _test_sqlite(repo, backup, snapshot, scratch_dir, progress, outcome)
    elif snapshot.kind == "files":
        _test_files(repo, snapshot, scratch_dir, progress, outcome)
    elif snapshot.kind == "postgres":
        _test_postgres(repo, backup, snapshot, sources, progress, outcome)
    else:
        outcome.check("restore", False, f"no test restore for {snapshot.kind} backups")


def _restore_failed(repo: Repository, snapshot: Snapshot, exc: StrongboxError,
                    progress: Progress, outcome: _Outcome) -> None:
    """Record a failed restore and name what is damaged, by reading every blob."""
    outcome.check("restore", False, exc.message)
    # Imported here: verification builds on this module.
    from strongbox.services.verification import scan_snapshot

    progress.operation("locating damaged data")
    scan = scan_snapshot(repo, snapshot, read_all=True, progress=progress)
    outcome.damage(scan.damaged)


@contextlib.contextmanager
def _scratch_path(scratch_dir: Path, name: str) -> Iterator[Path]:
    """A fresh path under ``scratch_dir``, removed afterwards whatever happens."""
    scratch_dir.mkdir(parents=True, exist_ok=True)
    work = scratch_dir / f"strongbox-scratch-{secrets.token_hex(6)}"
    work.mkdir(mode=0o700)
    try:
        yield work / name
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --- SQLite ----------------------------------------------------------------------------------


def _test_sqlite(repo: Repository, backup: BackupView, snapshot: Snapshot, scratch_dir: Path,
                 progress: Progress, outcome: _Outcome) -> None:
    from strongbox.sources.sqlite.restore import RestoreRequest, restore_sqlite

    with _scratch_path(scratch_dir, "restored.sqlite") as target:
        outcome.target = str(target)
        progress.operation("test restore: restoring database")
        try:
            restore_sqlite(repo, snapshot, target, RestoreRequest(mode="full"), progress)
        except Cancelled:
            raise
        except StrongboxError as exc:
            _restore_failed(repo, snapshot, exc, progress, outcome)
            return
        outcome.check("restore", True, f"restored into a scratch database ({target.name})")
        progress.check_cancelled()
        progress.operation("test restore: checking database")
        reader = SnapshotReader(repo, snapshot)
        expected = {t.name: t.rows for t in reader.tables()}
        conn = sqlite3.connect(target)
        with contextlib.closing(conn):
            _sqlite_integrity(conn, outcome)
            _sqlite_foreign_keys(conn, outcome)
            actual = _sqlite_counts(conn, expected, outcome)
        outcome.rows = sum(actual.values())
        _compare_counts(expected, actual, outcome)
        _compare_contents(backup.contents, actual, outcome)


def _sqlite_integrity(conn: sqlite3.Connection, outcome: _Outcome) -> None:
    try:
        result = [str(row[0]) for row in conn.execute("PRAGMA integrity_check")]
    except sqlite3.DatabaseError as exc:
        result = [str(exc)]
    if outcome.check("integrity_check", result == ["ok"],
                     "ok" if result == ["ok"] else "; ".join(result[:5])):
        return
    outcome.damage(["database.sqlite"])


def _sqlite_foreign_keys(conn: sqlite3.Connection, outcome: _Outcome) -> None:
    try:
        rows = conn.execute("PRAGMA foreign_key_check").fetchall()
    except sqlite3.DatabaseError as exc:
        outcome.check("foreign_key_check", False, str(exc))
        return
    tables = sorted({str(r[0]) for r in rows})
    outcome.check("foreign_key_check", not rows,
                  "ok" if not rows else f"{len(rows)} rows point at missing parents in "
                  f"{', '.join(tables)}")


def _sqlite_counts(conn: sqlite3.Connection, expected: dict[str, int],
                   outcome: _Outcome) -> dict[str, int]:
    actual: dict[str, int] = {}
    for table in expected:
        try:
            actual[table] = int(conn.execute(
                f"SELECT COUNT(*) FROM {quote_identifier(table)}").fetchone()[0])
        except sqlite3.DatabaseError as exc:
            outcome.check("row_counts", False, f"table {table}: {exc}")
            outcome.damage([table])
    return actual


def _compare_counts(expected: dict[str, int], actual: dict[str, int],
                    outcome: _Outcome) -> None:
    wrong = [t for t, rows in expected.items() if t in actual and actual[t] != rows]
    missing = [t for t in expected if t not in actual]
    outcome.damage(wrong + missing)
    if not wrong and not missing:
        outcome.check("row_counts", True, f"{len(expected)} tables, {sum(actual.values())} "
                      "rows, as recorded")
        return
    detail = [f"{t}: {actual[t]} rows restored, {expected[t]} recorded" for t in wrong]
    detail += [f"{t}: missing" for t in missing]
    outcome.check("row_counts", False, "; ".join(detail))


def _compare_contents(contents: dict[str, Any] | None, actual: dict[str, int],
                      outcome: _Outcome) -> None:
    """The catalog's seed 000 ``contents`` counters against the restored tables."""
    if not contents:
        return
    wrong = []
    for counter, table in CONTENT_COUNTERS.items():
        recorded = contents.get(counter)
        if recorded is not None and int(recorded) != actual.get(table, 0):
            wrong.append(f"{counter} is {recorded}, {table} has {actual.get(table, 0)} rows")
    total = contents.get("total_documents")
    if total is not None and int(total) != sum(actual.values()):
        wrong.append(f"total_documents is {total}, the restore has {sum(actual.values())}")
    outcome.check("contents", not wrong,
                  "matches the backup's recorded contents" if not wrong else "; ".join(wrong))


# --- files -----------------------------------------------------------------------------------


def _test_files(repo: Repository, snapshot: Snapshot, scratch_dir: Path, progress: Progress,
                outcome: _Outcome) -> None:
    from strongbox.sources.files.restorer import restore_files

    with _scratch_path(scratch_dir, "files") as target:
        outcome.target = str(target)
        progress.operation("test restore: restoring files")
        try:
            summary = restore_files(repo, snapshot, target, progress=progress)
        except Cancelled:
            raise
        except StrongboxError as exc:
            _restore_failed(repo, snapshot, exc, progress, outcome)
            return
        outcome.files, outcome.bytes = summary.files + summary.hardlinks, summary.bytes_written
        outcome.check("restore", True, f"{summary.files} files restored into a scratch "
                      "folder, every chunk verified as it was read")
        progress.operation("test restore: checking restored files")
        _check_tree(repo, snapshot, target, progress, outcome)


def _check_tree(repo: Repository, snapshot: Snapshot, target: Path, progress: Progress,
                outcome: _Outcome) -> None:
    expected = {"file": 0, "dir": 0, "symlink": 0, "hardlink": 0}
    bad: list[str] = []
    for path, node in repo.iter_tree(snapshot.tree):
        progress.check_cancelled()
        if node.type in expected:
            expected[node.type] += 1
        if not _restored_as_stored(repo, target / path, node):
            bad.append(path)
    outcome.damage(bad)
    files = expected["file"] + expected["hardlink"]
    outcome.check("file_hashes", not bad,
                  f"{files} files match the snapshot's chunk hashes" if not bad else
                  f"{len(bad)} entries differ from the snapshot: {', '.join(bad[:10])}")
    found = _count_entries(target)
    want = (files, expected["dir"], expected["symlink"])
    outcome.check("file_count", found == want,
                  f"{want[0]} files, {want[1]} folders, {want[2]} symlinks"
                  + ("" if found == want else
                     f"; the restore has {found[0]} files, {found[1]} folders, "
                     f"{found[2]} symlinks"))


def _restored_as_stored(repo: Repository, dest: Path, node: Node) -> bool:
    if node.type == "file":
        return _same_content(repo, dest, node)
    if node.type == "dir":
        return dest.is_dir() and not dest.is_symlink()
    if node.type == "symlink":
        return dest.is_symlink() and os.readlink(dest) == (node.link_target or "")
    if node.type == "hardlink":
        return dest.is_file()
    return True


def _same_content(repo: Repository, path: Path, node: Node) -> bool:
    """Whether the file on disk is, chunk for chunk, the content the snapshot names."""
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size != node.size:
            return False
        with open(path, "rb") as fh:
            for blob_hex in node.content:
                found = repo.index.lookup(bytes.fromhex(blob_hex))
                if found is None:
                    return False
                piece = fh.read(found[1].raw_length)
                if repo.blob_id(piece).hex() != blob_hex:
                    return False
            return fh.read(1) == b""
    except OSError:
        return False


def _count_entries(target: Path) -> tuple[int, int, int]:
    files = dirs = links = 0
    for _root, dirnames, filenames in os.walk(target):
        for name in dirnames:
            if os.path.islink(os.path.join(_root, name)):
                links += 1
            else:
                dirs += 1
        for name in filenames:
            if os.path.islink(os.path.join(_root, name)):
                links += 1
            else:
                files += 1
    return files, dirs, links


# --- PostgreSQL ------------------------------------------------------------------------------


def _test_postgres(repo: Repository, backup: BackupView, snapshot: Snapshot,
                   sources: SourceService | None, progress: Progress, outcome: _Outcome) -> None:
    if sources is None or not backup.source_id:
        outcome.check("restore", False, "a PostgreSQL test restore needs the backup's source "
                      "(its server holds the scratch schema)")
        return
    source = sources.get(backup.tenant, backup.source_id)
    dsn = str(source.config["dsn"])
    from strongbox.sources.postgres.restore import restore_postgres_full

    schema = f"strongbox_scratch_{secrets.token_hex(6)}"
    outcome.target = f"schema {schema}"
    try:
        progress.operation(f"test restore: restoring into scratch schema {schema}")
        try:
            done = restore_postgres_full(repo, snapshot, dsn, target_schema=schema,
                                         progress=progress)
        except Cancelled:
            raise
        except StrongboxError as exc:
            _restore_failed(repo, snapshot, exc, progress, outcome)
            return
        outcome.check("restore", True, f"restored into scratch schema {schema}")
        progress.operation("test restore: counting rows")
        expected = {t.name: t.rows for t in SnapshotReader(repo, snapshot).tables()}
        actual = _postgres_counts(dsn, schema, list(done.get("tables", expected)), outcome)
        outcome.rows = sum(actual.values())
        _compare_counts(expected, actual, outcome)
        _compare_contents(backup.contents, actual, outcome)
    finally:
        _drop_schema(dsn, schema)


def _postgres_counts(dsn: str, schema: str, tables: list[str],
                     outcome: _Outcome) -> dict[str, int]:
    import psycopg
    from psycopg import sql

    from strongbox.sources.postgres.connection import connect

    actual: dict[str, int] = {}
    with connect(dsn, autocommit=True) as conn:
        for table in tables:
            try:
                row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(
                    sql.Identifier(schema, table))).fetchone()
                actual[table] = int(row[0]) if row else 0
            except psycopg.Error as exc:
                outcome.check("row_counts", False, f"table {table}: {exc}")
    return actual


def _drop_schema(dsn: str, schema: str) -> None:
    import psycopg
    from psycopg import sql

    from strongbox.sources.postgres.connection import connect

    try:
        with connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                sql.Identifier(schema)))
    except (psycopg.Error, StrongboxError):
        log.exception("could not drop scratch schema %s; drop it by hand", schema)
