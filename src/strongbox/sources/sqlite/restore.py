"""Restore a database snapshot into a SQLite file: the original database or another one.

Modes (seed 000): ``full`` replaces the target with the snapshot; ``selective`` restores
chosen rows with their foreign-key closure; ``merge`` brings the snapshot's rows into live
data. Seed 002's import modes are merges with other conflict rules (restore_plan.py).

Two ways of writing:

* A full restore of a full snapshot copies its exact page-level copy into the target with
  SQLite's backup API, after checking the copy's integrity and taking a safety backup of
  the target. The backup API writes through the target's own journal (or WAL) in one
  transaction, so open connections see the old or the new database, never a mix, and a
  crash or a cancel leaves the old one.
* Every other restore writes rows, inside one ``BEGIN IMMEDIATE`` transaction with foreign
  keys enforced: any error, a cancel, or a killed process leaves the target as it was. A
  dry run does exactly the same work and rolls it back, which is why its plan is an exact
  prediction (conflicts that only exist because of earlier restored rows included).

Rows are written parents before children. A row whose key had to change (``rename``,
``maintain_ids=False``, or a match on a unique column) is remembered, and every later row
that refers to it is rewritten to point at the new key. A row left out (``skip`` of a row
that is a different row from the one it collides with) takes its children with it, since
they would point at nothing.

Those per-row decisions are shared with the PostgreSQL engine (sources/row_merge.py);
restore_writer.py gives them SQLite's reads and writes.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from strongbox.errors import IntegrityError, InvalidRequest, SourceError
from strongbox.fsutil import fsync_dir
from strongbox.progress import NullProgress, Progress
from strongbox.repository.repository import Repository
from strongbox.repository.snapshot import Snapshot
from strongbox.sources.row_merge import MergeRun, tables_in_order
from strongbox.sources.sqlite.backup import backup_sqlite
from strongbox.sources.sqlite.codec import placeholder, sqlite_value, text_factory
from strongbox.sources.sqlite.foreign_keys import ForeignKeyGraph, primary_key, quote_identifier
from strongbox.sources.sqlite.reader import SnapshotReader, TableInfo
from strongbox.sources.sqlite.restore_plan import (
    IMPORT_MODES,
    ConstraintViolation,
    PlannedConflict,
    RestoreConflict,
    RestorePlan,
    RestoreRequest,
    RestoreResult,
    RowChoice,
    RowShape,
    TablePlan,
    choose_rows,
    key_text,
    request_for_import,
)
from strongbox.sources.sqlite.restore_writer import TableWriter, TargetTable, key_condition

__all__ = [
    "IMPORT_MODES",
    "ConstraintViolation",
    "PlannedConflict",
    "RestoreConflict",
    "RestorePlan",
    "RestoreRequest",
    "RestoreResult",
    "TablePlan",
    "plan_restore",
    "request_for_import",
    "restore_sqlite",
]

CHECK_EVERY = 500  # rows between progress reports and cancellation checks
PAGES_PER_STEP = 1024  # pages the backup API copies between cancellation checks


def plan_restore(repo: Repository, snapshot: Snapshot | str, target_db: str | Path,
                 request: RestoreRequest) -> RestorePlan:
    """What :func:`restore_sqlite` would do, row for row; the target keeps its content."""
    return restore_sqlite(repo, snapshot, target_db, replace(request, dry_run=True)).plan


def restore_sqlite(repo: Repository, snapshot: Snapshot | str, target_db: str | Path,
                   request: RestoreRequest | None = None,
                   progress: Progress | None = None) -> RestoreResult:
    request = request or RestoreRequest()
    request.validate()
    progress = progress or NullProgress()
    snap = repo.load_snapshot(snapshot) if isinstance(snapshot, str) else snapshot
    return restore_from_reader(repo, SnapshotReader(repo, snap), target_db, request, progress)


def restore_from_reader(repo: Repository, reader: Any, target_db: str | Path,
                        request: RestoreRequest, progress: Progress | None = None
                        ) -> RestoreResult:
    """Restore rows from any reader with SnapshotReader's interface (a backup, or an export
    file read back by ``export.JsonExportReader`` for a seed 002 import). ``repo`` receives
    the safety backup."""
    request.validate()
    progress = progress or NullProgress()
    target = Path(target_db).absolute()
    if not target.parent.is_dir():
        raise InvalidRequest(f"{target.parent}: no such directory", details={"target": str(target)})
    if request.mode == "full" and request.tables is None and reader.page_copy() is not None:
        return _restore_pages(repo, reader, target, request, progress)
    if request.mode == "full":
        # Without a page copy (selective snapshot) or for some tables only, "full" means
        # those tables end up holding exactly the snapshot's rows.
        request = replace(request, replace_tables=True, maintain_ids=True)
    return _restore_rows(repo, reader, target, request, progress)


# --- full restore from the page copy ------------------------------------------------------


def _restore_pages(repo: Repository, reader: SnapshotReader, target: Path,
                   request: RestoreRequest, progress: Progress) -> RestoreResult:
    plan = _page_plan(reader, target)
    if request.dry_run:
        return RestoreResult.from_plan(plan, {}, None, dry_run=True)
    node = reader.page_copy()
    assert node is not None
    progress.start("restoring", items_total=plan.total_rows, bytes_total=node.size)
    safety = None
    # Beside the target: same file system, so a new target is published by a rename.
    with tempfile.TemporaryDirectory(prefix=f".{target.name}.", dir=target.parent) as work:
        copy = Path(work) / target.name
        progress.operation("reading page copy")
        with open(copy, "wb") as out:
            for chunk in repo.read_stream(node.content):
                progress.check_cancelled()
                out.write(chunk)
                progress.advance(nbytes=len(chunk))
            out.flush()
            os.fsync(out.fileno())
        _check_integrity(copy, reader)
        progress.check_cancelled()
        if target.exists():
            safety = _safety_backup(repo, target, request, progress)
            progress.operation("replacing database")
            _copy_database(copy, target, progress)
        else:
            os.replace(copy, target)
            fsync_dir(target.parent)
    progress.advance(items=plan.total_rows)
    return RestoreResult.from_plan(plan, {}, safety, dry_run=False)


def _page_plan(reader: SnapshotReader, target: Path) -> RestorePlan:
    existing = _existing_counts(target)
    plan = RestorePlan("full")
    for info in reader.tables():
        plan.tables.append(TablePlan(info.name, insert=info.rows,
                                     delete=existing.pop(info.name, 0)))
        plan.total_rows += info.rows
    for table, rows in sorted(existing.items()):
        plan.tables.append(TablePlan(table, delete=rows))
        plan.warnings.append(f"table {table} is not in the snapshot and will be removed")
    return plan


def _existing_counts(target: Path) -> dict[str, int]:
    if not target.exists():
        return {}
    try:
        conn = sqlite3.connect(f"{target.as_uri()}?mode=ro", uri=True, timeout=30)
        with contextlib.closing(conn):
            return {t: conn.execute(f"SELECT COUNT(*) FROM {quote_identifier(t)}").fetchone()[0]
                    for t in _user_tables(conn)}
    except sqlite3.DatabaseError as exc:
        raise SourceError(f"{target}: cannot read as SQLite ({exc})") from exc


def _user_tables(conn: sqlite3.Connection) -> list[str]:
    return [name for (name,) in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' "
        "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'")]


def _check_integrity(path: Path, reader: SnapshotReader) -> None:
    conn = sqlite3.connect(path)
    with contextlib.closing(conn):
        try:
            result = [row[0] for row in conn.execute("PRAGMA integrity_check")]
        except sqlite3.DatabaseError as exc:
            result = [str(exc)]
    if result != ["ok"]:
        raise IntegrityError(
            f"snapshot {reader.snapshot.short_id}: page copy fails integrity_check: "
            f"{'; '.join(result[:5])}", details={"integrity_check": result[:20]})


def _copy_database(source: Path, target: Path, progress: Progress) -> None:
    """Replace the target's content with the source's, in one transaction on the target."""
    src = sqlite3.connect(source)
    dst = _connect(target)

    def step(_status: int, remaining: int, _total: int) -> None:
        # Raising here makes sqlite3 finish the backup unfinished, which rolls the target's
        # transaction back: the target keeps its old content. After the last step the copy
        # is already committed, so a cancel then would be a lie.
        if remaining:
            progress.check_cancelled()

    with contextlib.closing(src), contextlib.closing(dst):
        try:
            src.backup(dst, pages=PAGES_PER_STEP, progress=step)
        except sqlite3.Error as exc:
            raise SourceError(f"{target}: cannot replace the database ({exc})",
                              details={"target": str(target)}) from exc



def _safety_backup(repo: Repository, target: Path, request: RestoreRequest,
                   progress: Progress) -> str | None:
    if not request.safety_backup or request.dry_run:
        return None
    progress.operation("safety backup")
    # Its own progress: the restore's counters must not include the backup's work.
    return backup_sqlite(repo, target, tags=["safety"]).id


# --- row-level restore ------------------------------------------------------------------


def _restore_rows(repo: Repository, reader: SnapshotReader, target: Path,
                  request: RestoreRequest, progress: Progress) -> RestoreResult:
    graph = reader.graph()
    tables = tables_in_order(reader, graph, request)
    choice = choose_rows(reader, graph, request)
    progress.start("restoring", items_total=sum(choice.count(t.name, t.rows) for t in tables))
    existed = target.exists()
    with _target_connection(target, publish=not request.dry_run) as conn:
        run = RowRestore(repo, reader, graph, conn, request, choice, progress)
        safety = run.run(tables, target if existed else None)
    return RestoreResult.from_plan(run.plan, run.id_mappings, safety, request.dry_run)


@contextlib.contextmanager
def _target_connection(target: Path, *, publish: bool) -> Iterator[sqlite3.Connection]:
    """A connection to the target. A target that does not exist yet is built in a temporary
    file beside it and renamed into place only once complete (and only if ``publish``), so
    a failed restore does not leave a half-made database behind."""
    if target.exists():
        conn = _connect(target)
        try:
            yield conn
        finally:
            conn.close()
        return
    with tempfile.TemporaryDirectory(prefix=f".{target.name}.", dir=target.parent) as work:
        path = Path(work) / target.name
        conn = _connect(path)
        try:
            yield conn
        finally:
            conn.close()
        if publish:
            os.replace(path, target)
            fsync_dir(target.parent)


def _connect(path: Path) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(path, isolation_level=None, timeout=30)
        conn.execute("PRAGMA schema_version").fetchone()  # fails here if not a database
    except sqlite3.DatabaseError as exc:
        raise SourceError(f"{path}: cannot open as SQLite ({exc})") from exc
    conn.text_factory = text_factory  # so non-UTF-8 text compares equal to the backup's
    return conn


class RowRestore(MergeRun):
    """One row-level restore: the transaction, the key mappings and the plan it fills in
    (the state and the row decisions are the engines' shared ones, sources/row_merge.py)."""

    def __init__(self, repo: Repository, reader: SnapshotReader, graph: ForeignKeyGraph,
                 conn: sqlite3.Connection, request: RestoreRequest, choice: RowChoice,
                 progress: Progress) -> None:
        super().__init__(graph, request, choice, progress)
        self.repo, self.reader, self.conn = repo, reader, conn
        self._unreported = 0

    def run(self, tables: list[TableInfo], existing_target: Path | None) -> str | None:
        """Restore ``tables`` in one transaction; returns the safety snapshot id, if any."""
        conn = self.conn
        conn.execute("PRAGMA foreign_keys = ON")  # a no-op inside a transaction
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise SourceError(f"cannot lock the target database for writing ({exc})") from exc
        for info in tables:
            self.plan.table(info.name)  # listed in restore order, touched or not
        try:
            was_empty = not _user_tables(conn)
            safety = self._prepare(tables, existing_target)
            created = self._create_missing(tables)
            targets = {t.name: TargetTable.read(conn, t.name) for t in tables}
            if self.request.replace_tables:
                self._delete_unrestored(tables, targets)
            for group in self.groups(tables):
                self._restore_group(group, targets)
            self.progress.advance(items=self._unreported)
            self._create_late_objects(created, target_was_empty=was_empty)
            self._finish(tables)
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return safety

    # --- before the first write -----------------------------------------------------------

    def _prepare(self, tables: list[TableInfo], existing_target: Path | None) -> str | None:
        request = self.request
        if request.mode == "full" and request.on_conflict != "overwrite":
            filled = [t.name for t in tables if self._has_rows(t.name)]
            if filled:
                raise InvalidRequest(
                    f"full restore would replace the rows of {', '.join(filled)}; "
                    "set on_conflict to 'overwrite' to allow it", details={"tables": filled})
        destructive = (request.mode == "full" or request.replace_tables
                       or request.on_conflict in ("overwrite", "merge"))
        if existing_target is None or not destructive:
            return None
        # Taken while this transaction holds the write lock and before it writes anything,
        # so the safety snapshot is exactly the state the restore starts from.
        return _safety_backup(self.repo, existing_target, request, self.progress)

    def _has_rows(self, table: str) -> bool:
        if not self._exists(table):
            return False
        sql = f"SELECT 1 FROM {quote_identifier(table)} LIMIT 1"
        return self.conn.execute(sql).fetchone() is not None

    def _exists(self, name: str) -> bool:
        row = self.conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (name,))
        return row.fetchone() is not None

    def _create_missing(self, tables: list[TableInfo]) -> set[str]:
        schema = self.reader.schema()
        created = set()
        for info in tables:
            if self._exists(info.name):
                continue
            statements = [e for e in schema if e["type"] == "table" and e["name"] == info.name]
            if not statements:
                raise SourceError(f"snapshot {self.reader.snapshot.short_id} has no schema "
                                  f"for table {info.name}", details={"table": info.name})
            statements += [e for e in schema if e["type"] == "index" and e["table"] == info.name]
            for entry in statements:
                self.conn.execute(entry["sql"])
            created.add(info.name)
        return created

    def _create_late_objects(self, created: set[str], *, target_was_empty: bool) -> None:
        # Triggers come after the rows so restoring does not fire them; views only into a
        # new database, where nothing else can have a different view of the same name.
        for entry in self.reader.schema():
            wanted = ((entry["type"] == "trigger" and entry["table"] in created)
                      or (entry["type"] == "view" and target_was_empty))
            if wanted and not self._exists(entry["name"]):
                try:
                    self.conn.execute(entry["sql"])
                except sqlite3.OperationalError as exc:
                    self.plan.warnings.append(f"{entry['type']} {entry['name']} not created: {exc}")

    def _delete_unrestored(self, tables: list[TableInfo], targets: dict[str, TargetTable]) -> None:
        """For ``replace``: delete target rows the restore does not bring back, children
        first. Rows that do come back stay and are overwritten, so cascades do not reach
        their children in tables outside the restore."""
        for info in reversed(tables):
            target = targets[info.name]
            table_plan = self.plan.table(info.name)
            self.progress.operation(f"clearing {info.name}")
            self.progress.check_cancelled()
            try:
                if self.request.maintain_ids:
                    table_plan.delete += self._delete_except(info, target)
                else:
                    cursor = self.conn.execute(f"DELETE FROM {quote_identifier(info.name)}")
                    table_plan.delete += cursor.rowcount
            except sqlite3.IntegrityError as exc:
                raise ConstraintViolation(
                    f"cannot delete rows of {info.name} that are not in the backup: {exc}",
                    details={"table": info.name, "constraint": str(exc)}) from exc

    def _delete_except(self, info: TableInfo, target: TargetTable) -> int:
        shape = RowShape(info)
        width = len(info.primary_key)
        columns = [f"k{i}" for i in range(width)]
        conn = self.conn
        conn.execute("DROP TABLE IF EXISTS temp.strongbox_keep")
        conn.execute(f"CREATE TEMP TABLE strongbox_keep ({', '.join(columns)})")
        conn.execute(f"CREATE INDEX temp.strongbox_keep_k ON strongbox_keep ({', '.join(columns)})")
        for row in self.reader.rows(info.name):
            key = shape.key(row)
            if self.choice.wants(info.name, key):
                conn.execute(f"INSERT INTO temp.strongbox_keep VALUES "
                             f"({', '.join(placeholder(v) for v in key)})",
                             [sqlite_value(v) for v in key])
        table = quote_identifier(info.name)
        own = [f"{table}.{'rowid' if c == 'rowid' else quote_identifier(c)}"
               for c in target.primary_key]
        match = " AND ".join(f"k.k{i} = {column}" for i, column in enumerate(own))
        cursor = conn.execute(f"DELETE FROM {table} WHERE NOT EXISTS "
                              f"(SELECT 1 FROM temp.strongbox_keep AS k WHERE {match})")
        conn.execute("DROP TABLE temp.strongbox_keep")
        return cursor.rowcount

    # --- writing rows -----------------------------------------------------------------------

    def _restore_group(self, group: list[TableInfo], targets: dict[str, TargetTable]) -> None:
        names = [t.name for t in group]
        in_cycle = any(name in cycle for cycle in self.graph.cycles for name in names)
        if not in_cycle:
            self._restore_table(group[0], targets[group[0].name])
            return
        # Rows of a cycle may point at rows written after them: check those links at the
        # end of the group instead of row by row.
        before = self._violations(names)
        self.conn.execute("PRAGMA defer_foreign_keys = ON")
        self.pending = set(names)
        for info in group:
            self._restore_table(info, targets[info.name])
            self.pending.discard(info.name)
        self._apply_fixups(targets)
        self._raise_new_violations(names, before)
        # Turning deferral off forgets the deferred count, so this comes after the check.
        self.conn.execute("PRAGMA defer_foreign_keys = OFF")

    def _restore_table(self, info: TableInfo, target: TargetTable) -> None:
        self.progress.operation(f"restoring {info.name}")
        writer = TableWriter(self, info, target)
        shape = writer.shape
        for row in self.reader.rows(info.name):
            key = shape.key(row)
            if not self.choice.wants(info.name, key):
                continue
            self.plan.total_rows += 1
            writer.restore(key, shape.record(row))
            self._unreported += 1
            if self._unreported >= CHECK_EVERY:
                self.progress.advance(items=self._unreported)
                self._unreported = 0
                self.progress.check_cancelled()
        writer.report()

    def _apply_fixups(self, targets: dict[str, TargetTable]) -> None:
        for fix in self.fixups:
            link = fix.link
            new = self.new_key(link, fix.old)
            if new is None:
                continue
            target = targets[fix.table]
            sets = ", ".join(f"{quote_identifier(c)} = {placeholder(v)}"
                             for c, v in zip(link.child_columns, new, strict=True))
            where, params = key_condition(target, fix.key)
            self.conn.execute(f"UPDATE {quote_identifier(fix.table)} SET {sets} WHERE {where}",
                              [*(sqlite_value(v) for v in new), *params])
        self.fixups.clear()

    def _violations(self, tables: list[str]) -> set[tuple[Any, ...]]:
        found: set[tuple[Any, ...]] = set()
        for table in tables:
            found.update(tuple(row) for row in self.conn.execute(
                f"PRAGMA foreign_key_check({quote_identifier(table)})"))
        return found

    def _raise_new_violations(self, tables: list[str], before: set[tuple[Any, ...]]) -> None:
        new = sorted(self._violations(tables) - before, key=repr)
        if new:
            table, rowid, parent, _ = new[0]
            key = self._key_of(table, rowid)
            raise ConstraintViolation(
                f"cannot restore {table} row {key}: FOREIGN KEY constraint failed "
                f"(no matching row in {parent}); {len(new)} row(s) affected",
                details={"table": table, "key": key, "parent": parent, "violations": len(new)})

    def _key_of(self, table: str, rowid: int | None) -> str:
        """The key of the row foreign_key_check names by rowid (None: WITHOUT ROWID)."""
        if rowid is None:
            return "(unknown)"
        key = primary_key(self.conn, table)
        if key == ("rowid",):
            return str(rowid)
        select = ", ".join(quote_identifier(c) for c in key)
        row = self.conn.execute(f"SELECT {select} FROM {quote_identifier(table)} "
                                "WHERE rowid = ?", (rowid,)).fetchone()
        return key_text(tuple(row)) if row else f"with rowid {rowid}"

    def _finish(self, tables: list[TableInfo]) -> None:
        if self.request.dry_run:
            self.conn.execute("ROLLBACK")
            return
        self.progress.check_cancelled()  # the last moment a cancel can still undo everything
        try:
            self.conn.execute("COMMIT")
        except sqlite3.IntegrityError as exc:
            # Only constraints the schema itself declares DEFERRABLE get here.
            names = [t.name for t in tables]
            self._raise_new_violations(names, set())
            raise ConstraintViolation(f"restore cannot be committed: {exc}") from exc
