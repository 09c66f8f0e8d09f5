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
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sqlite3
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from strongbox.errors import IntegrityError, InvalidRequest, SourceError
from strongbox.fsutil import fsync_dir
from strongbox.progress import NullProgress, Progress
from strongbox.repository.repository import Repository
from strongbox.repository.snapshot import Snapshot
from strongbox.sources.sqlite.backup import backup_sqlite
from strongbox.sources.sqlite.codec import placeholder, sqlite_value, text_factory
from strongbox.sources.sqlite.foreign_keys import (
    ForeignKey,
    ForeignKeyGraph,
    primary_key,
    quote_identifier,
)
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
    value_text,
)
from strongbox.sources.sqlite.selection import Key

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
NAME_COLUMNS = ("name", "title")  # shown in conflicts as seed 000's existing_name/backup_name
Record = dict[str, Any]
Hits = list[tuple[tuple[str, ...], Key]]  # unique columns, key of the row holding them
Unresolved = list[tuple[ForeignKey, Key]]  # links to rows of the cycle not written yet
Conflicts = list[tuple[str, Key, Record | None]]  # kind, existing key, existing row


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
    tables = _tables_in_order(reader, graph, request)
    choice = choose_rows(reader, graph, request)
    progress.start("restoring", items_total=sum(choice.count(t.name, t.rows) for t in tables))
    existed = target.exists()
    with _target_connection(target, publish=not request.dry_run) as conn:
        run = RowRestore(repo, reader, graph, conn, request, choice, progress)
        safety = run.run(tables, target if existed else None)
    return RestoreResult.from_plan(run.plan, run.id_mappings, safety, request.dry_run)


def _tables_in_order(reader: SnapshotReader, graph: ForeignKeyGraph,
                     request: RestoreRequest) -> list[TableInfo]:
    # The reader lists tables by name; writing needs parents before children.
    wanted = request.tables
    if wanted is not None:
        unknown = sorted(set(wanted) - set(graph.tables))
        if unknown:
            raise InvalidRequest(f"tables not in the snapshot: {', '.join(unknown)}",
                                 details={"tables": unknown})
    return [reader.table(t) for t in graph.topological_order() if wanted is None or t in wanted]


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


@dataclass
class TargetTable:
    """How a table looks in the target: its columns, key and unique constraints."""

    name: str
    columns: list[str]
    primary_key: tuple[str, ...]
    rowid_alias: bool  # the key is SQLite's rowid: new keys are SQLite's to choose
    unique: list[tuple[str, ...]] = field(default_factory=list)

    @classmethod
    def read(cls, conn: sqlite3.Connection, table: str) -> TargetTable:
        q = quote_identifier(table)
        info = conn.execute(f"PRAGMA table_info({q})").fetchall()
        key = primary_key(conn, table)
        indexes = conn.execute(f"PRAGMA index_list({q})").fetchall()
        # (seq, name, unique, origin, partial); origin "pk" is an index on a key that is
        # not the rowid, so an INTEGER key without one is the rowid itself.
        has_key_index = any(row[3] == "pk" for row in indexes)
        declared = {row[1]: (row[2] or "").upper() for row in info}
        alias = key == ("rowid",) or (len(key) == 1 and declared.get(key[0]) == "INTEGER"
                                       and not has_key_index)
        unique = []
        for _, name, is_unique, origin, partial in indexes:
            if not is_unique or origin == "pk" or partial:
                continue  # a partial index is left to SQLite to enforce, with a clear error
            columns = conn.execute(f"PRAGMA index_info({quote_identifier(name)})").fetchall()
            if all(cid >= 0 for _, cid, _ in columns):  # not on expressions
                unique.append(tuple(col for _, _, col in columns))
        return cls(table, [row[1] for row in info], key, alias, unique)


@dataclass
class Fixup:
    """A written row that points at a row of its own cycle not restored yet."""

    table: str
    key: Key
    link: ForeignKey
    old: Key


class RowRestore:
    """One row-level restore: the transaction, the key mappings and the plan it fills in."""

    def __init__(self, repo: Repository, reader: SnapshotReader, graph: ForeignKeyGraph,
                 conn: sqlite3.Connection, request: RestoreRequest, choice: RowChoice,
                 progress: Progress) -> None:
        self.repo, self.reader, self.graph, self.conn = repo, reader, graph, conn
        self.request, self.choice, self.progress = request, choice, progress
        self.plan = RestorePlan(request.mode, warnings=list(choice.warnings))
        self.id_mappings: dict[str, dict[str, str]] = {}
        # table -> referenced columns -> old values -> new values (only where they changed)
        self.remap: dict[str, dict[tuple[str, ...], dict[Key, Key]]] = {}
        # table -> referenced columns -> values of rows left out (their children follow)
        self.skipped: dict[str, dict[tuple[str, ...], set[Key]]] = {}
        self.pending: set[str] = set()  # tables of the current cycle not finished yet
        self.fixups: list[Fixup] = []
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
            for group in self._groups(tables):
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

    def _groups(self, tables: list[TableInfo]) -> list[list[TableInfo]]:
        """Tables in order, with the tables of one foreign-key cycle kept together."""
        cycle_of = {t: cycle for cycle in self.graph.cycles for t in cycle}
        groups: list[list[TableInfo]] = []
        placed: set[str] = set()
        for info in tables:
            if info.name in placed:
                continue
            cycle = cycle_of.get(info.name, (info.name,))
            group = [t for t in tables if t.name in cycle]
            placed.update(t.name for t in group)
            groups.append(group)
        return groups

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
            new = self.remap.get(link.parent_table, {}).get(link.parent_columns, {}).get(fix.old)
            if new is None:
                continue
            target = targets[fix.table]
            sets = ", ".join(f"{quote_identifier(c)} = {placeholder(v)}"
                             for c, v in zip(link.child_columns, new, strict=True))
            where, params = _key_condition(target, fix.key)
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


def _key_condition(target: TargetTable, key: Key) -> tuple[str, list[Any]]:
    columns = ["rowid" if c == "rowid" else quote_identifier(c) for c in target.primary_key]
    where = " AND ".join(f"{c} = {placeholder(v)}" for c, v in zip(columns, key, strict=True))
    return where, [sqlite_value(v) for v in key]


class TableWriter:
    """Restores the rows of one table: finds what they meet in the target and resolves it."""

    def __init__(self, run: RowRestore, info: TableInfo, target: TargetTable) -> None:
        self.run, self.info, self.target = run, info, target
        self.request = run.request
        self.conn = run.conn
        self.shape = RowShape(info)
        self.plan = run.plan.table(info.name)
        self.q = quote_identifier(info.name)
        if tuple(info.primary_key) != target.primary_key:
            raise InvalidRequest(
                f"table {info.name}: key {list(info.primary_key)} in the snapshot but "
                f"{list(target.primary_key)} in the target", details={"table": info.name})
        self.columns = [c for c in info.columns if c in target.columns]
        dropped = [c for c in info.columns if c not in target.columns]
        if dropped:
            run.plan.warnings.append(f"{info.name}: columns not in the target are not "
                                     f"restored: {', '.join(dropped)}")
        self.implicit_rowid = target.primary_key == ("rowid",)
        self.key_columns = () if self.implicit_rowid else target.primary_key
        self.key_select = ", ".join("rowid" if c == "rowid" else quote_identifier(c)
                                    for c in target.primary_key)
        self.parent_links = run.graph.parents(info.name)
        self.referenced = sorted({link.parent_columns for link in run.graph.children(info.name)})
        self.name_column = next((c for c in NAME_COLUMNS if c in self.columns), None)
        self.cascaded = 0
        self.not_new = 0
        self.mapping = run.id_mappings.setdefault(info.name, {})

    def report(self) -> None:
        if self.cascaded:
            self.run.plan.warnings.append(f"{self.info.name}: {self.cascaded} row(s) skipped "
                                          "because a row they refer to was skipped")
        if self.not_new:
            self.run.plan.warnings.append(f"{self.info.name}: {self.not_new} row(s) not in the "
                                          "target were not inserted (insert_new is off)")
        if not self.mapping:
            del self.run.id_mappings[self.info.name]

    # --- one row ------------------------------------------------------------------------

    def restore(self, backup_key: Key, original: Record) -> None:
        record = dict(original)
        unresolved = self._follow_parents(original, record)
        if unresolved is None:
            self.cascaded += 1
            self.plan.skip += 1
            self._leave_out(original)
            return
        key = backup_key if self.implicit_rowid else tuple(record[c] for c in self.key_columns)
        renumber = not self.request.maintain_ids and self._can_renumber(key)
        existing = None if renumber else self._fetch(key)
        hits = self._unique_hits(record, key if existing is not None else None)
        if existing is None and not hits:
            if not self.request.insert_new:
                self.not_new += 1
                self.plan.skip += 1
                self._leave_out(original)
                return
            final = self._insert(backup_key, record, key, renumber=renumber)
            self.plan.insert += 1
            self._remember(backup_key, original, final, record, unresolved)
            return
        self._resolve(backup_key, original, record, key, existing, hits, renumber, unresolved)

    def _follow_parents(self, original: Record, record: Record) -> Unresolved | None:
        """Point the row at its parents' new keys; None if a parent was left out. Returns
        the links to parents of the current cycle that are not written yet."""
        unresolved = []
        for link in self.parent_links:
            old = tuple(original.get(c) for c in link.child_columns)
            if None in old:
                continue  # NULL refers to nothing
            parent, columns = link.parent_table, link.parent_columns
            if old in self.run.skipped.get(parent, {}).get(columns, ()):
                return None
            new = self.run.remap.get(parent, {}).get(columns, {}).get(old)
            if new is not None:
                record.update(zip(link.child_columns, new, strict=True))
            elif parent in self.run.pending:
                unresolved.append((link, old))
        return unresolved

    def _resolve(self, backup_key: Key, original: Record, record: Record, key: Key,
                 existing: Record | None, hits: Hits,
                 renumber: bool, unresolved: Unresolved) -> None:
        how = self.request.on_conflict
        conflicts = ([("primary_key", key, existing)] if existing is not None else [])
        conflicts += [(f"unique:{','.join(cols)}", hit, None) for cols, hit in hits]
        others = {hit for _, hit in hits}
        only = key if existing is not None and not hits else (
            next(iter(others)) if existing is None and len(others) == 1 else None)
        current = existing if existing is not None else (
            self._fetch(only) if only is not None else None)
        if how != "rename" and only is not None and current is not None \
                and not self._changes(record, current, "overwrite"):
            # Already there with this content: nothing to resolve.
            self.plan.skip += 1
            self.plan.duplicates += 1
            self._remember(backup_key, original, only, current, [])
            return
        if how == "fail" and not self.request.dry_run:
            kind, existing_key, _ = conflicts[0]
            raise RestoreConflict(
                f"{self.info.name} row {key_text(backup_key)} conflicts with existing row "
                f"{key_text(existing_key)} ({kind})",
                details={"table": self.info.name, "key": key_text(backup_key),
                         "existing_key": key_text(existing_key), "kind": kind})
        if how == "rename":
            self._rename(backup_key, original, record, key, existing, hits, renumber,
                         conflicts, unresolved)
        elif how in ("overwrite", "merge") and only is not None and current is not None:
            changes = self._changes(record, current, how)
            if changes:
                self._update(backup_key, only, changes)
                self.plan.update += 1
            else:
                self.plan.skip += 1
            self._note(backup_key, record, conflicts, how)
            self._remember(backup_key, original, only, {**current, **changes}, unresolved)
        else:
            if how == "fail":
                self.run.plan.warnings.append(
                    f"{self.info.name} row {key_text(backup_key)} conflicts with an existing "
                    "row: the restore would fail")
            elif how in ("overwrite", "merge"):
                self.run.plan.warnings.append(
                    f"{self.info.name} row {key_text(backup_key)} meets several existing rows "
                    f"({', '.join(key_text(k) for k in sorted(others | {key}, key=repr))}); "
                    "left as it is")
            self._skip(backup_key, original, record, existing, key, conflicts,
                       "fail" if how == "fail" else "skip")

    def _skip(self, backup_key: Key, original: Record, record: Record, existing: Record | None,
              key: Key, conflicts: Conflicts, resolution: str) -> None:
        self.plan.skip += 1
        self._note(backup_key, record, conflicts, resolution)
        if existing is not None:
            # Same key: the same row, which children of the backup row can hang off.
            self._remember(backup_key, original, key, existing, [])
        else:
            self._leave_out(original)

    def _rename(self, backup_key: Key, original: Record, record: Record, key: Key,
                existing: Record | None, hits: Hits,
                renumber: bool, conflicts: Conflicts,
                unresolved: Unresolved) -> None:
        new_key = renumber or existing is not None
        # As a new row it also collides with the unique values of the row it copies.
        renamed = self._suffixed(record, self._unique_hits(record, None) if new_key else hits)
        if (new_key and not self._can_renumber(key)) or renamed is None:
            self.run.plan.warnings.append(
                f"{self.info.name} row {key_text(backup_key)}: cannot be given a new "
                f"{'key' if renamed is not None else 'name'}; skipped")
            self._skip(backup_key, original, record, existing, key, conflicts, "skip")
            return
        final = self._insert(backup_key, renamed, key, renumber=new_key)
        self.plan.insert += 1
        self._note(backup_key, record, conflicts, "rename")
        self._remember(backup_key, original, final, renamed, unresolved)

    # --- bookkeeping --------------------------------------------------------------------

    def _note(self, backup_key: Key, record: Record,
              conflicts: Conflicts, resolution: str) -> None:
        name = self.name_column
        for kind, existing_key, existing in conflicts:
            self.plan.conflicts.append(PlannedConflict(
                self.info.name, key_text(backup_key), key_text(existing_key), kind, resolution,
                backup_name=_name(record, name),
                existing_name=_name(existing, name) if existing is not None else None))

    def _remember(self, backup_key: Key, original: Record, final_key: Key, final: Record,
                  unresolved: Unresolved) -> None:
        """Where the backup row ended up, for its children and for id_mappings."""
        if final_key != backup_key:
            self.mapping[key_text(backup_key)] = key_text(final_key)
        for columns in self.referenced:
            old = self._values(backup_key, original, columns)
            new = final_key if columns == self.target.primary_key else (
                self._values(final_key, final, columns))
            if old != new and None not in old:
                self.run.remap.setdefault(self.info.name, {}).setdefault(columns, {})[old] = new
        for link, old in unresolved:
            self.run.fixups.append(Fixup(self.info.name, final_key, link, old))

    def _leave_out(self, original: Record) -> None:
        """Remember a row that is not restored, so its children are not either."""
        for columns in self.referenced:
            if "rowid" not in columns:
                values = tuple(original.get(c) for c in columns)
                self.run.skipped.setdefault(self.info.name, {}).setdefault(
                    columns, set()).add(values)

    def _values(self, key: Key, record: Record, columns: tuple[str, ...]) -> Key:
        if columns == self.target.primary_key:
            return key
        return tuple(record.get(c) for c in columns)

    def _can_renumber(self, key: Key) -> bool:
        """Whether this row can get a key of its own: SQLite's next rowid, or a new UUID
        for a text key. Composite keys (usually made of foreign keys) cannot."""
        return self.target.rowid_alias or (len(key) == 1 and isinstance(key[0], str))

    # --- reading the target -------------------------------------------------------------

    def _fetch(self, key: Key) -> Record | None:
        where, params = _key_condition(self.target, key)
        select = ", ".join(quote_identifier(c) for c in self.columns) or "NULL"
        row = self.conn.execute(f"SELECT {select} FROM {self.q} WHERE {where}", params).fetchone()
        return None if row is None else dict(zip(self.columns, row, strict=False))

    def _unique_hits(self, record: Record, own_key: Key | None) -> Hits:
        hits = []
        for columns in self.target.unique:
            found = self._holder(columns, record)
            if found is not None and found != own_key:
                hits.append((columns, found))
        return hits

    def _holder(self, columns: tuple[str, ...], record: Record) -> Key | None:
        """Key of the target row holding these unique values, if any."""
        values = [record.get(c) for c in columns]
        if any(c not in record for c in columns) or None in values:
            return None  # NULLs never collide in a unique index
        where = " AND ".join(f"{quote_identifier(c)} = {placeholder(v)}"
                             for c, v in zip(columns, values, strict=True))
        row = self.conn.execute(f"SELECT {self.key_select} FROM {self.q} WHERE {where} LIMIT 1",
                                [sqlite_value(v) for v in values]).fetchone()
        return None if row is None else tuple(row)

    def _changes(self, record: Record, current: Record, how: str) -> Record:
        """Columns to write: all that differ (overwrite), or those the backup has a value
        for (merge). The key is never rewritten: it is the row's identity."""
        changes = {}
        for column in self.columns:
            if column in self.key_columns:
                continue
            value, now = record.get(column), current.get(column)
            if how == "merge" and value is None:
                continue
            if value != now or type(value) is not type(now):
                changes[column] = value
        return changes

    def _suffixed(self, record: Record, hits: Hits) -> Record | None:
        """The record with the name suffix on a text column of each colliding unique
        constraint (numbered when the suffixed name is taken too); None if one has none."""
        renamed = dict(record)
        for columns, _ in hits:
            text = next((c for c in columns if isinstance(renamed.get(c), str)), None)
            if text is None:
                return None
            base = renamed[text] + self.request.name_suffix
            for number in itertools.count(1):
                renamed[text] = base if number == 1 else f"{base}_{number}"
                if self._holder(columns, renamed) is None:
                    break
        return renamed

    # --- writing ------------------------------------------------------------------------

    def _insert(self, backup_key: Key, record: Record, key: Key, *, renumber: bool) -> Key:
        columns = list(self.columns)
        if renumber and self.target.rowid_alias:
            columns = [c for c in columns if c not in self.key_columns]  # SQLite picks
        elif renumber:
            record = {**record, self.key_columns[0]: str(uuid.uuid4())}
        values = [record.get(c) for c in columns]
        names = [quote_identifier(c) for c in columns]
        if self.implicit_rowid and not renumber:
            names, values = ["rowid", *names], [key[0], *values]
        sql = (f"INSERT INTO {self.q} ({', '.join(names)}) "
               f"VALUES ({', '.join(placeholder(v) for v in values)})")
        cursor = self._write(backup_key, record, sql, [sqlite_value(v) for v in values])
        if renumber and self.target.rowid_alias:
            return (cursor.lastrowid,)
        return key if self.implicit_rowid else tuple(record[c] for c in self.key_columns)

    def _update(self, backup_key: Key, key: Key, changes: Record) -> None:
        sets = ", ".join(f"{quote_identifier(c)} = {placeholder(v)}" for c, v in changes.items())
        where, params = _key_condition(self.target, key)
        self._write(backup_key, changes, f"UPDATE {self.q} SET {sets} WHERE {where}",
                    [*(sqlite_value(v) for v in changes.values()), *params])

    def _write(self, backup_key: Key, record: Record, sql: str,
               params: list[Any]) -> sqlite3.Cursor:
        try:
            return self.conn.execute(sql, params)
        except sqlite3.IntegrityError as exc:
            detail = self._explain(record, exc)
            raise ConstraintViolation(
                f"cannot restore {self.info.name} row {key_text(backup_key)}: {detail}",
                details={"table": self.info.name, "key": key_text(backup_key),
                         "constraint": str(exc)}) from exc
        except sqlite3.OperationalError as exc:
            raise SourceError(f"cannot restore {self.info.name} row {key_text(backup_key)}: "
                              f"{exc}", details={"table": self.info.name,
                                                 "key": key_text(backup_key)}) from exc

    def _explain(self, record: Record, exc: sqlite3.IntegrityError) -> str:
        """The constraint message, with the missing parent named for a foreign key."""
        message = str(exc)
        if "FOREIGN KEY" not in message:
            return message
        for link in self.run.graph.parents(self.info.name):
            values = tuple(record.get(c) for c in link.child_columns)
            if None in values or not all(c in record for c in link.child_columns):
                continue
            where = " AND ".join(f"{quote_identifier(c)} = {placeholder(v)}"
                                 for c, v in zip(link.parent_columns, values, strict=True))
            sql = f"SELECT 1 FROM {quote_identifier(link.parent_table)} WHERE {where} LIMIT 1"
            try:
                found = self.conn.execute(sql, [sqlite_value(v) for v in values]).fetchone()
            except sqlite3.OperationalError:
                found = None
            if found is None:
                shown = ", ".join(f"{c}={value_text(v)}"
                                  for c, v in zip(link.child_columns, values, strict=True))
                return f"{message}: {shown} has no matching row in {link.parent_table}"
        return message


def _name(record: Record | None, column: str | None) -> str | None:
    if record is None or column is None or record.get(column) is None:
        return None
    return value_text(record[column])
