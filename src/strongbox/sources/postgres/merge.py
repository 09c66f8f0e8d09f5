"""Selective and merge restores of a PostgreSQL snapshot: chosen rows, into live data.

The request, the plan, the result and the choice of rows are the SQLite engine's
(sources/sqlite/restore_plan.py), so both engines follow seed 000 the same way: modes
``selective`` and ``merge``, ``on_conflict`` skip / overwrite / rename / merge / fail,
``maintain_ids`` false with ``id_mappings``, and a dry run that does the same work and
rolls it back, so its plan predicts the real run exactly.

How rows are written:

* One transaction on the target for everything; any error or a cancel rolls it back. Only
  sequences are not transactional in PostgreSQL: a failed run may leave gaps in them (as
  any failed INSERT does), never a value that is in use. A dry run never touches one.
* Rows are read from the snapshot in the backup's table order (parents first) and handled
  in batches: one query finds the target rows that share a key or a unique value with the
  batch, then each row is decided in order against that view, which is kept up to date with
  the batch's own decisions, and the batch is written with COPY (inserts) and pipelined
  UPDATEs, in the order the rows were decided.
* Values stay in PostgreSQL's text form from end to end: the snapshot holds what each type's
  output function wrote, target rows are read back with COPY in the same form (so a
  comparison is a comparison of texts), and writes go through each type's input function.
* A row that gets a new key (``rename``, ``maintain_ids`` false) takes it from the column's
  own sequence or identity (a new UUID for text and uuid keys); every later row pointing at
  it is rewritten. A row left out takes the rows that point at it along.
* Rows of a foreign-key cycle (a self-reference, say) may point at rows written later: such
  links are written NULL and set once the cycle's tables are done; constraints declared
  DEFERRABLE are deferred to the end of the restore.
* Afterwards every sequence feeding a restored column is moved past the largest value in
  it, so the application's next INSERT does not collide with a restored row.
* ``replace_tables`` (seed 002's import mode ``replace``) first deletes the target rows the
  restore does not bring back, children first; rows that come back are overwritten.
* Rows of a table without a primary key cannot be named by key: they are taken when the
  rows they point at are taken (see ``RowRestore._keyless_wanted``).

A target schema that has none of the snapshot's tables gets them first, from the backup's
DDL, as in a full restore (restore.py); keys, indexes and constraints are then built after
the rows.
"""

from __future__ import annotations

import itertools
import re
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

import psycopg
from psycopg import sql

from strongbox.errors import InvalidRequest, SourceError
from strongbox.progress import NullProgress, Progress
from strongbox.repository.repository import Repository
from strongbox.repository.snapshot import Snapshot
from strongbox.sources.postgres import catalog
from strongbox.sources.postgres.backup import backup_postgres
from strongbox.sources.postgres.connection import check_identifier, connect, split_password
from strongbox.sources.postgres.ddl import without_create_schema
from strongbox.sources.postgres.restore import (
    _clear_target,
    _execute,
    _give_back_source_name,
    _Plan,
    _set_sequences,
    _take_source_name,
    restore_postgres_full,
)
from strongbox.sources.sqlite.foreign_keys import ForeignKey, ForeignKeyGraph
from strongbox.sources.sqlite.reader import SnapshotReader, TableInfo
from strongbox.sources.sqlite.restore_plan import (
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
)
from strongbox.sources.sqlite.selection import Key

__all__ = ["plan_restore_postgres", "restore_postgres"]

BATCH_ROWS = 2000  # rows decided and written together; also the cancellation interval
NAME_COLUMNS = ("name", "title")  # shown in conflicts as seed 000's existing_name/backup_name
TEXT_TYPES = ("text", "citext", "character varying", "character", "uuid")
INTEGER_TYPES = ("smallint", "integer", "bigint")
Record = dict[str, Any]  # column -> text form, or None for NULL
Hits = list[tuple[tuple[str, ...], Key]]
Unresolved = list[tuple[ForeignKey, Key]]
Conflicts = list[tuple[str, Key, Record | None]]
_COPY_LINE = re.compile(r"COPY [^,]+, line (\d+)")
_KEY_DETAIL = re.compile(r"Key \((.+?)\)=\((.*)\) (?:is not present|already exists)")


def plan_restore_postgres(repo: Repository, snapshot: Snapshot | str, target_dsn: str,
                          request: RestoreRequest, *,
                          target_schema: str | None = None) -> RestorePlan:
    """What :func:`restore_postgres` would do, row for row; the target keeps its content."""
    return restore_postgres(repo, snapshot, target_dsn, replace(request, dry_run=True),
                            target_schema=target_schema).plan


def restore_postgres(repo: Repository, snapshot: Snapshot | str, target_dsn: str,
                     request: RestoreRequest | None = None, *,
                     target_schema: str | None = None, replace_objects: bool = False,
                     progress: Progress | None = None) -> RestoreResult:
    """Restore a PostgreSQL snapshot into ``target_dsn`` in any mode, as ``restore_sqlite``
    does for SQLite: same request, same plan, same result.

    ``target_schema`` defaults to the backed-up schema. ``full`` mode is
    :func:`~strongbox.sources.postgres.restore.restore_postgres_full` (``replace_objects``
    drops clashing objects first); ``selective`` and ``merge`` write rows into the live
    tables, or into a new schema built from the backup's DDL.
    """
    request = request or RestoreRequest()
    request.validate()
    progress = progress or NullProgress()
    snap = repo.load_snapshot(snapshot) if isinstance(snapshot, str) else snapshot
    reader = SnapshotReader(repo, snap)
    if snap.kind != "postgres":
        raise InvalidRequest(f"snapshot {snap.short_id} is not a PostgreSQL backup")
    if request.mode == "full":
        return _full(repo, snap, reader, target_dsn, request, target_schema, replace_objects,
                     progress)
    source_schema = str(reader.manifest["schema"])
    target = check_identifier(target_schema or source_schema, "target schema")
    graph = reader.graph()
    tables = _tables_in_order(reader, graph, request)
    choice = choose_rows(reader, _keyed_graph(reader, graph), request)
    progress.start("restoring", items_total=sum(choice.count(t.name, t.rows) for t in tables))
    destructive = request.replace_tables or request.on_conflict in ("overwrite", "merge")
    safety = _safety_backup(repo, target_dsn, target, request, progress, destructive)
    try:
        with connect(target_dsn) as conn:  # commits at the end, rolls back on any error
            run = RowRestore(conn, reader, graph, request, choice, progress)
            run.run(tables, source_schema, target)
            if request.dry_run:
                conn.rollback()
    except psycopg.Error as exc:
        where, _ = split_password(target_dsn)
        raise SourceError(f"restore into schema {target!r} of {where} failed; the target is "
                          f"unchanged: {_message(exc)}") from exc
    return RestoreResult.from_plan(run.plan, run.id_mappings, safety, request.dry_run)


def _full(repo: Repository, snap: Snapshot, reader: SnapshotReader, dsn: str,
          request: RestoreRequest, target_schema: str | None, replace_objects: bool,
          progress: Progress) -> RestoreResult:
    if request.tables is not None:
        raise InvalidRequest("a full PostgreSQL restore takes every table; use selective or "
                             "merge mode for some tables")
    schema = check_identifier(target_schema or str(reader.manifest["schema"]), "target schema")
    replaced = _row_counts(dsn, schema, [t.name for t in reader.tables()]) \
        if replace_objects else {}
    safety = _safety_backup(repo, dsn, schema, request, progress, destructive=replace_objects)
    done = restore_postgres_full(repo, snap, dsn, target_schema=target_schema,
                                 replace=replace_objects, dry_run=request.dry_run,
                                 progress=progress)
    plan = RestorePlan("full")
    for info in reader.tables():
        plan.tables.append(TablePlan(info.name, insert=done["tables"].get(info.name, 0),
                                     delete=replaced.get(info.name, 0)))
    plan.total_rows = int(done["rows"])
    return RestoreResult.from_plan(plan, {}, safety, request.dry_run)


def _row_counts(dsn: str, schema: str, tables: list[str]) -> dict[str, int]:
    """Rows in those of ``tables`` the target schema has: what a full restore replaces."""
    with connect(dsn, autocommit=True) as conn:
        namespace = catalog.find_schema(conn, schema)
        if namespace is None:
            return {}
        there = {t.name for t in catalog.read_tables(conn, namespace)} & set(tables)
        counts = {}
        for name in sorted(there):
            row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(
                sql.Identifier(schema, name))).fetchone()
            counts[name] = int(row[0]) if row else 0
        return counts


def _tables_in_order(reader: SnapshotReader, graph: ForeignKeyGraph,
                     request: RestoreRequest) -> list[TableInfo]:
    wanted = request.tables
    if wanted is not None:
        unknown = sorted(set(wanted) - set(graph.tables))
        if unknown:
            raise InvalidRequest(f"tables not in the snapshot: {', '.join(unknown)}",
                                 details={"tables": unknown})
    return [reader.table(t) for t in graph.topological_order() if wanted is None or t in wanted]


def _keyed_graph(reader: SnapshotReader, graph: ForeignKeyGraph) -> ForeignKeyGraph:
    """The graph without the links of tables that have no primary key.

    The choice of rows names rows by key, which such tables lack; their rows are taken
    by the rows they point at instead (RowRestore._keyless_wanted).
    """
    keyless = {t.name for t in reader.tables() if not t.primary_key}
    if not keyless:
        return graph
    return ForeignKeyGraph(graph.tables, [link for link in graph.links if not keyless & {
        link.child_table, link.parent_table}])


def _safety_backup(repo: Repository, dsn: str, schema: str, request: RestoreRequest,
                   progress: Progress, destructive: bool) -> str | None:
    """A backup of the target schema before a restore that can change its rows.

    ``destructive``: the restore can change or delete rows (overwrite, merge, replace, a
    full restore that drops tables). Purely additive ones need none, nor does a dry run.
    Taken before the restore's transaction starts: rows the application writes in between
    are in neither.
    """
    if request.dry_run or not request.safety_backup or not destructive:
        return None
    with connect(dsn, autocommit=True) as conn:
        namespace = catalog.find_schema(conn, schema)
        if namespace is None or not catalog.read_tables(conn, namespace):
            return None
    progress.operation("safety backup")
    return backup_postgres(repo, dsn, schema=schema, tags=["safety"]).id


def _message(exc: psycopg.Error) -> str:
    diag = exc.diag
    text = diag.message_primary or str(exc).strip()
    return f"{text} ({diag.message_detail})" if diag.message_detail else text


# --- the target's tables ------------------------------------------------------------------


@dataclass
class TargetTable:
    """A table as the target has it: columns and their types, keys, where new keys come from."""

    name: str
    oid: int
    columns: list[str]  # stored columns (not generated), in declaration order
    types: dict[str, str]
    nullable: set[str]
    primary_key: tuple[str, ...]
    unique: list[tuple[str, ...]] = field(default_factory=list)
    sequences: dict[str, int] = field(default_factory=dict)  # column -> sequence oid

    @classmethod
    def read(cls, conn: psycopg.Connection, namespace: int, name: str) -> TargetTable | None:
        row = conn.execute("SELECT oid FROM pg_catalog.pg_class WHERE relnamespace = %s AND "
                           "relname = %s AND relkind IN ('r', 'p')", (namespace, name)).fetchone()
        if row is None:
            return None
        oid = int(row[0])
        attributes = conn.execute(
            "SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull "
            "FROM pg_catalog.pg_attribute a WHERE a.attrelid = %s AND a.attnum > 0 "
            "AND NOT a.attisdropped AND a.attgenerated = '' ORDER BY a.attnum",
            (oid,)).fetchall()
        unique = conn.execute(
            "SELECT ARRAY(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY k(n, o) "
            "  JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n "
            "  WHERE k.o <= i.indnkeyatts ORDER BY k.o)::text[] "
            "FROM pg_catalog.pg_index i WHERE i.indrelid = %s AND i.indisunique "
            "AND NOT i.indisprimary AND i.indpred IS NULL AND i.indexprs IS NULL "
            "ORDER BY i.indexrelid", (oid,)).fetchall()
        return cls(name=name, oid=oid, columns=[a for a, _, _ in attributes],
                   types={a: t for a, t, _ in attributes},
                   nullable={a for a, _, not_null in attributes if not not_null},
                   primary_key=tuple(catalog.read_primary_key(conn, oid)),
                   unique=[tuple(columns) for (columns,) in unique if columns],
                   sequences=_sequences(conn, oid))

    def key_source(self) -> str | None:
        """Where a new key comes from: "sequence", "uuid", "max" (an integer key without
        a sequence: past the largest value, as SQLite does for rowids), or None."""
        if len(self.primary_key) != 1:
            return None  # composite keys are usually made of foreign keys
        column = self.primary_key[0]
        if column in self.sequences:
            return "sequence"
        if self.types[column] in INTEGER_TYPES:
            return "max"
        return "uuid" if self.types[column].startswith(TEXT_TYPES) else None


def _sequences(conn: psycopg.Connection, oid: int) -> dict[str, int]:
    """Columns fed by a sequence: identity, serial, or a ``nextval()`` default."""
    rows = conn.execute(
        "SELECT a.attname, COALESCE("
        "  (SELECT d.objid FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_class s "
        "   ON s.oid = d.objid AND s.relkind = 'S' WHERE d.refclassid = 'pg_class'::regclass "
        "   AND d.refobjid = a.attrelid AND d.refobjsubid = a.attnum "
        "   AND d.classid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') LIMIT 1), "
        "  (SELECT d.refobjid FROM pg_catalog.pg_attrdef ad JOIN pg_catalog.pg_depend d "
        "   ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid "
        "   AND d.refclassid = 'pg_class'::regclass JOIN pg_catalog.pg_class s "
        "   ON s.oid = d.refobjid AND s.relkind = 'S' "
        "   WHERE ad.adrelid = a.attrelid AND ad.adnum = a.attnum LIMIT 1)) "
        "FROM pg_catalog.pg_attribute a WHERE a.attrelid = %s AND a.attnum > 0 "
        "AND NOT a.attisdropped", (oid,)).fetchall()
    return {column: int(seq) for column, seq in rows if seq is not None}


@dataclass
class Fixup:
    """A written row whose link to a row of its own cycle is set once the cycle is done."""

    table: str
    key: Key
    link: ForeignKey
    old: Key


# --- the restore --------------------------------------------------------------------------


class RowRestore:
    """One selective or merge restore: the transaction's work, key mappings and the plan."""

    def __init__(self, conn: psycopg.Connection, reader: SnapshotReader,
                 graph: ForeignKeyGraph, request: RestoreRequest, choice: RowChoice,
                 progress: Progress) -> None:
        self.conn, self.reader, self.graph = conn, reader, graph
        self.request, self.choice, self.progress = request, choice, progress
        self.plan = RestorePlan(request.mode, warnings=list(choice.warnings))
        self.id_mappings: dict[str, dict[str, str]] = {}
        # table -> referenced columns -> old values -> new values (only where they changed)
        self.remap: dict[str, dict[tuple[str, ...], dict[Key, Key]]] = {}
        # table -> referenced columns -> values of rows left out (their children follow)
        self.skipped: dict[str, dict[tuple[str, ...], set[Key]]] = {}
        # tables of a cycle -> referenced columns -> values of rows already decided
        self.done: dict[str, dict[tuple[str, ...], set[Key]]] = {}
        self.cycle_tables = {t for cycle in graph.cycles for t in cycle}
        self.pending: set[str] = set()  # tables of the current cycle not finished yet
        self.fixups: list[Fixup] = []
        self.schema = ""  # the name the target's tables answer to while the restore runs
        self.allocators: dict[Any, KeyAllocator] = {}
        self.key_of: dict[str, tuple[str, ...]] = {}  # table -> its key in the snapshot
        # A new schema built from the backup's DDL: its plan, and a schema parked meanwhile.
        self.ddl_plan: _Plan | None = None
        self.parked: str | None = None
        self.names: tuple[str, str] | None = None  # (source, target) while renamed

    def run(self, tables: list[TableInfo], source_schema: str, target_schema: str) -> None:
        for info in tables:
            self.plan.table(info.name)  # listed in restore order, touched or not
        fresh = self._prepare_schema(tables, source_schema, target_schema)
        namespace = catalog.schema_oid(self.conn, self.schema)
        targets = {}
        for info in tables:
            found = TargetTable.read(self.conn, namespace, info.name)
            assert found is not None  # _prepare_schema made sure
            if fresh:  # keys and unique constraints come with the post-data DDL
                found.primary_key = tuple(info.primary_key)
            targets[info.name] = found
        self.conn.execute("SET CONSTRAINTS ALL DEFERRED")  # only DEFERRABLE ones
        if self.request.replace_tables:
            self._delete_unrestored(tables, targets)
        for group in self._groups(tables):
            self._restore_group(group, targets)
        if fresh:
            self._finish_fresh_schema(source_schema, target_schema)
        self._move_sequences(targets)
        self._check_deferred()
        self.progress.check_cancelled()  # the last point where a cancel changes nothing

    # --- the target schema ----------------------------------------------------------------

    def _prepare_schema(self, tables: list[TableInfo], source: str, target: str) -> bool:
        """Make the tables exist; True if they were created from the backup's DDL."""
        namespace = catalog.find_schema(self.conn, target)
        existing = set() if namespace is None else {
            t.name for t in catalog.read_tables(self.conn, namespace)}
        missing = [t.name for t in tables if t.name not in existing]
        self.schema = target
        if not missing:
            return False
        if len(missing) < len(tables):
            raise InvalidRequest(
                f"schema {target!r} has some of the tables to restore but not "
                f"{', '.join(missing)}; restore those tables in full first, or restore "
                "into a schema that has none of them", details={"missing": missing})
        self.progress.operation("creating tables")
        self.ddl_plan = self._ddl_plan(source, target)
        _clear_target(self.conn, self.ddl_plan, replace=False)
        self.parked = _take_source_name(self.conn, source, target)
        _execute(self.conn, without_create_schema(self.ddl_plan.ddl["pre-data"]))
        self.schema = source
        return True

    def _ddl_plan(self, source: str, target: str) -> _Plan:
        ddl = {entry["section"]: entry["sql"] for entry in self.reader.schema()}
        objects = [catalog.SchemaObject(o["kind"], o["name"], o.get("arguments", ""))
                   for o in self.reader.manifest.get("objects", [])]
        return _Plan(self.reader, source, target, ddl, objects)

    def _finish_fresh_schema(self, source: str, target: str) -> None:
        assert self.ddl_plan is not None
        _set_sequences(self.conn, self.ddl_plan)
        self.progress.operation("creating keys, indexes and constraints")
        try:
            _execute(self.conn, self.ddl_plan.ddl["post-data"])
        except psycopg.errors.IntegrityError as exc:
            raise self._violation(exc, None) from exc
        self.names = (source, target)

    def _move_sequences(self, targets: dict[str, TargetTable]) -> None:
        """Move each sequence feeding a restored column past the column's largest value."""
        if not self.request.dry_run:
            for target in targets.values():
                for column, seq in target.sequences.items():
                    if target.types[column] in INTEGER_TYPES:
                        self.allocator(target, column, seq).move_past_max()
        if self.names is not None:
            _give_back_source_name(self.conn, *self.names, self.parked)
            self.schema = self.names[1]

    def _check_deferred(self) -> None:
        try:
            self.conn.execute("SET CONSTRAINTS ALL IMMEDIATE")
        except psycopg.errors.IntegrityError as exc:
            raise self._violation(exc, None) from exc

    def _violation(self, exc: psycopg.Error, culprit: tuple[str, Key] | None
                   ) -> ConstraintViolation:
        diag = exc.diag
        table = diag.table_name or (culprit[0] if culprit else "?")
        key = key_text(culprit[1]) if culprit else _detail_key(diag.message_detail)
        return ConstraintViolation(
            f"cannot restore {table} row {key}: {_message(exc)}",
            details={"table": table, "key": key, "constraint": diag.constraint_name,
                     "detail": diag.message_detail})

    def allocator(self, target: TargetTable, column: str, seq: int | None) -> KeyAllocator:
        """The source of new keys for a column: its sequence, or (None) its largest value."""
        name = seq if seq is not None else (target.name, column)
        if name not in self.allocators:
            self.allocators[name] = KeyAllocator(self.conn, self.schema, target.name, column,
                                                 seq, simulate=self.request.dry_run)
        return self.allocators[name]

    def _delete_unrestored(self, tables: list[TableInfo],
                           targets: dict[str, TargetTable]) -> None:
        """For ``replace``: delete the target rows the restore does not bring back, children
        first. Rows that do come back stay and are overwritten, so ON DELETE CASCADE does not
        reach their children in tables outside the restore."""
        for info in reversed(tables):
            target = targets[info.name]
            self.progress.operation(f"clearing {info.name}")
            self.progress.check_cancelled()
            table = sql.Identifier(self.schema, info.name)
            try:
                if self.request.maintain_ids and target.primary_key:
                    deleted = self._delete_except(info, target, table)
                else:
                    deleted = self.conn.execute(sql.SQL("DELETE FROM {}").format(table)).rowcount
                self.conn.execute("SET CONSTRAINTS ALL IMMEDIATE")
                self.conn.execute("SET CONSTRAINTS ALL DEFERRED")
            except psycopg.errors.IntegrityError as exc:
                raise ConstraintViolation(
                    f"cannot delete rows of {info.name} that are not in the backup: "
                    f"{_message(exc)}", details={"table": info.name,
                                                 "constraint": exc.diag.constraint_name}
                ) from exc
            self.plan.table(info.name).delete += max(deleted, 0)

    def _delete_except(self, info: TableInfo, target: TargetTable,
                       table: sql.Identifier) -> int:
        """Delete the rows whose key is not among the restored rows' keys."""
        shape = RowShape(info)
        names = [sql.Identifier(f"k{i}") for i in range(len(target.primary_key))]
        keep = sql.Identifier("strongbox_keep")
        self.conn.execute(sql.SQL("CREATE TEMPORARY TABLE {} ({}) ON COMMIT DROP").format(
            keep, sql.SQL(", ").join(sql.SQL("{} text").format(n) for n in names)))
        with self.conn.cursor() as cur, cur.copy(
                sql.SQL("COPY {} FROM STDIN").format(keep)) as copy:
            for row in self.reader.rows(info.name):
                key = shape.key(row)
                if self.choice.wants(info.name, key):
                    copy.write_row(key)
        self.conn.execute(sql.SQL("ANALYZE {}").format(keep))
        match = sql.SQL(" AND ").join(
            sql.SQL("t.{} = k.{}::{}").format(sql.Identifier(c), n, sql.SQL(target.types[c]))
            for c, n in zip(target.primary_key, names, strict=True))
        deleted = self.conn.execute(sql.SQL(
            "DELETE FROM {} AS t WHERE NOT EXISTS (SELECT FROM {} AS k WHERE {})").format(
            table, keep, match)).rowcount
        self.conn.execute(sql.SQL("DROP TABLE {}").format(keep))
        return deleted

    # --- writing rows ---------------------------------------------------------------------

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
        self.pending = {t.name for t in group if t.name in self.cycle_tables}
        for info in group:
            self._restore_table(info, targets[info.name])
            self.pending.discard(info.name)
        self._apply_fixups(targets)

    def _restore_table(self, info: TableInfo, target: TargetTable) -> None:
        self.progress.operation(f"restoring {info.name}")
        writer = TableWriter(self, info, target)
        shape = writer.shape
        keyless = not info.primary_key
        batch: list[tuple[Key, Record]] = []
        for row in self.reader.rows(info.name):
            key = shape.key(row)
            if not keyless and not self.choice.wants(info.name, key):
                continue
            record = shape.record(row)
            if keyless and not self._keyless_wanted(info.name, record):
                continue
            batch.append((key, record))
            if len(batch) >= BATCH_ROWS:
                self._write_batch(writer, batch)
                batch = []
        self._write_batch(writer, batch)
        writer.report()

    def _keyless_wanted(self, table: str, record: Record) -> bool:
        """Whether a row of a table without a primary key belongs to the restore.

        The choice of rows names rows by key, which such a row lacks: it is taken when the
        rows it points at (by their keys) are taken, and left out below an excluded row.
        """
        chosen, excluded = self.choice.chosen, self.choice.excluded
        linked = False
        for link in self.graph.parents(table):
            values = tuple(record.get(c) for c in link.child_columns)
            parent_key = self.key_of.setdefault(
                link.parent_table, self.reader.table(link.parent_table).primary_key)
            if None in values or not parent_key or link.parent_columns != parent_key:
                continue
            linked = True
            if values in excluded.get(link.parent_table, ()) or (
                    chosen is not None and values not in chosen.get(link.parent_table, ())):
                return False
        return chosen is None or linked  # a chosen row hangs off chosen rows

    def _write_batch(self, writer: TableWriter, batch: list[tuple[Key, Record]]) -> None:
        if not batch:
            return
        self.progress.check_cancelled()
        self.plan.total_rows += len(batch)
        writer.process(batch)
        self.progress.advance(items=len(batch))

    def _apply_fixups(self, targets: dict[str, TargetTable]) -> None:
        """Point rows of a cycle at their parents' final keys, now that all are written."""
        runs: dict[tuple[str, ForeignKey], list[tuple[Key, Key]]] = {}
        for fix in self.fixups:
            link = fix.link
            new = self.remap.get(link.parent_table, {}).get(link.parent_columns, {}).get(
                fix.old, fix.old)
            # Nullable links were written NULL; others kept the old value (checked at the
            # end of the statement, or deferred), which only needs rewriting if it moved.
            nulled = all(c in targets[fix.table].nullable for c in link.child_columns)
            if nulled or new != fix.old:
                runs.setdefault((fix.table, link), []).append((new, fix.key))
        self.fixups.clear()
        for (table, link), values in runs.items():
            target = targets[table]
            query = sql.SQL("UPDATE {} SET {} WHERE {}").format(
                sql.Identifier(self.schema, table),
                _assignments(target, link.child_columns), _key_match(target))
            try:
                with self.conn.cursor() as cur:
                    cur.executemany(query, [(*new, *key) for new, key in values])
            except psycopg.errors.IntegrityError as exc:
                raise self._violation(exc, None) from exc


def _detail_key(detail: str | None) -> str:
    match = _KEY_DETAIL.search(detail or "")
    return match.group(2) if match else "(unknown)"


def _assignments(target: TargetTable, columns: tuple[str, ...] | list[str]) -> sql.Composable:
    return sql.SQL(", ").join(
        sql.SQL("{} = %s::{}").format(sql.Identifier(c), sql.SQL(target.types[c]))
        for c in columns)


def _key_match(target: TargetTable) -> sql.Composable:
    return sql.SQL(" AND ").join(
        sql.SQL("{} = %s::{}").format(sql.Identifier(c), sql.SQL(target.types[c]))
        for c in target.primary_key)


class KeyAllocator:
    """New values for an integer key column.

    With a sequence, a real run takes them with ``nextval`` (safe beside an application
    that inserts too); a dry run must not touch the sequence, which no rollback would put
    back, so it counts from the sequence's position instead, reaching the same values a
    real run would. Both first move past the largest value in the column, in case the
    sequence lags behind it. Without a sequence, values go on from the largest one, as
    SQLite does for rowids.
    """

    def __init__(self, conn: psycopg.Connection, schema: str, table: str, column: str,
                 seq: int | None, *, simulate: bool) -> None:
        self.conn, self.simulate = conn, simulate
        self.seq = None if seq is None else str(seq)
        self.table = sql.Identifier(schema, table)
        self.column = sql.Identifier(column)
        self.pool: list[str] = []
        self.next: int | None = None
        self.increment = 1

    def _position(self) -> tuple[int, int]:
        """The value nextval would return now, and the increment."""
        row = self.conn.execute(
            "SELECT pg_catalog.pg_sequence_last_value(s.seqrelid), s.seqstart, "
            "s.seqincrement FROM pg_catalog.pg_sequence s WHERE s.seqrelid = %s::regclass",
            (self.seq,)).fetchone()
        assert row is not None
        last, start, increment = row
        return (start if last is None else last + increment), increment

    def _largest(self) -> int | None:
        row = self.conn.execute(sql.SQL("SELECT max({}) FROM {}").format(
            self.column, self.table)).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def move_past_max(self) -> None:
        """Real runs: make nextval return more than any value in the column."""
        if self.seq is None:
            return
        largest = self._largest()
        position, increment = self._position()
        if largest is not None and increment > 0 and largest >= position:
            self.conn.execute("SELECT pg_catalog.setval(%s::regclass, %s, true)",
                              (self.seq, largest))

    def take(self, count: int) -> str:
        """One new value; ``count`` values are taken at once when the pool is empty."""
        if not self.pool:
            self.pool = self._more(max(count, 1))[::-1]
        return self.pool.pop()

    def _more(self, count: int) -> list[str]:
        if self.seq is not None and not self.simulate:
            if self.next is None:
                self.move_past_max()
                self.next = 0
            rows = self.conn.execute(
                "SELECT pg_catalog.nextval(%s::regclass) FROM generate_series(1, %s)",
                (self.seq, count)).fetchall()
            return sorted((str(v) for (v,) in rows), key=int)
        if self.next is None:
            largest = self._largest()
            if self.seq is None:
                self.next = 1 if largest is None else largest + 1
            else:
                position, self.increment = self._position()
                if largest is not None and largest >= position:
                    position = largest + self.increment
                self.next = position
        values = [str(self.next + i * self.increment) for i in range(count)]
        self.next += count * self.increment
        return values


# --- one table ----------------------------------------------------------------------------


class BatchView:
    """The target as one batch sees it: rows read for the batch, with the batch's own
    writes laid over them, so each row is decided as if the earlier ones were written."""

    def __init__(self) -> None:
        self.rows: dict[Key, Record | None] = {}  # key -> row, None: no such row
        self.holders: dict[tuple[tuple[str, ...], Key], Key | None] = {}
        self.ops: list[tuple[str, Key, Any]] = []  # (insert|update, backup key, payload)


class TableWriter:
    """Restores the rows of one table: finds what they meet in the target and resolves it."""

    def __init__(self, run: RowRestore, info: TableInfo, target: TargetTable) -> None:
        self.run, self.info, self.target = run, info, target
        self.request = run.request
        self.conn = run.conn
        self.shape = RowShape(info)
        self.plan = run.plan.table(info.name)
        self.table = sql.Identifier(run.schema, info.name)
        if target.primary_key and tuple(info.primary_key) != target.primary_key:
            raise InvalidRequest(
                f"table {info.name}: key {list(info.primary_key)} in the snapshot but "
                f"{list(target.primary_key)} in the target", details={"table": info.name})
        self.columns = [c for c in info.columns if c in target.types]
        dropped = [c for c in info.columns if c not in target.types]
        if dropped:
            run.plan.warnings.append(f"{info.name}: columns not in the target are not "
                                     f"restored: {', '.join(dropped)}")
        self.key_columns = target.primary_key
        self.fetched = list(dict.fromkeys(
            [*self.key_columns, *(c for u in target.unique for c in u), *self.columns]))
        self.parent_links = run.graph.parents(info.name)
        self.referenced = sorted({link.parent_columns for link in run.graph.children(info.name)})
        self.name_column = next((c for c in NAME_COLUMNS if c in self.columns), None)
        self.key_source = target.key_source()
        self.cascaded = 0
        self.not_new = 0
        self.mapping = run.id_mappings.setdefault(info.name, {})
        self.view = BatchView()
        self.nulled: dict[int, Unresolved] = {}  # op index -> links written as NULL

    def report(self) -> None:
        if self.cascaded:
            self.run.plan.warnings.append(f"{self.info.name}: {self.cascaded} row(s) skipped "
                                          "because a row they refer to was skipped")
        if self.not_new:
            self.run.plan.warnings.append(f"{self.info.name}: {self.not_new} row(s) not in the "
                                          "target were not inserted (insert_new is off)")
        if not self.request.maintain_ids and self.key_source is None and self.key_columns:
            self.run.plan.warnings.append(f"{self.info.name}: key {', '.join(self.key_columns)} "
                                          "has no sequence to take new values from; ids kept")
        if not self.mapping:
            del self.run.id_mappings[self.info.name]

    # --- a batch ------------------------------------------------------------------------

    def process(self, batch: list[tuple[Key, Record]]) -> None:
        self.view = BatchView()
        self.nulled = {}
        prepared = []
        for backup_key, original in batch:
            record = dict(original)
            unresolved = self._follow_parents(original, record)
            if unresolved is None:
                self.cascaded += 1
                self.plan.skip += 1
                self._leave_out(original)
                continue
            prepared.append((backup_key, original, record, unresolved))
        self._read_ahead([record for _, _, record, _ in prepared])
        self.remaining = len(prepared)
        for backup_key, original, record, unresolved in prepared:
            self._restore(backup_key, original, record, unresolved)
            self.remaining -= 1
        self._flush()

    def _read_ahead(self, records: list[Record]) -> None:
        """Read, in one query per key or unique constraint, every target row the batch can
        meet; what is not found is remembered as absent."""
        if self.key_columns and (self.request.maintain_ids or self.key_source is None):
            keys = {tuple(r.get(c) for c in self.key_columns) for r in records}
            for key in keys:
                self.view.rows[key] = None
            for row in self._select(self.key_columns, keys):
                self.view.rows[self._key(row)] = row
        for columns in self.target.unique:
            if not all(c in self.info.columns for c in columns):
                continue
            values = {tuple(r.get(c) for c in columns) for r in records}
            values = {v for v in values if None not in v}
            for value in values:
                self.view.holders[columns, value] = None
            for row in self._select(columns, values):
                self.view.holders[columns, tuple(row[c] for c in columns)] = self._key(row)
                self.view.rows.setdefault(self._key(row), row)

    def _select(self, columns: tuple[str, ...], values: set[Key]) -> list[Record]:
        """Target rows whose ``columns`` hold one of ``values``, in text form (via COPY,
        so each value is its type's output, exactly as the snapshot stores it)."""
        if not values:
            return []
        ordered = list(values)
        names = [f"v{i}" for i in range(len(columns))]
        arrays = sql.SQL(", ").join(
            sql.SQL("{}::text[]").format(sql.Literal([v[i] for v in ordered]))
            for i in range(len(columns)))
        match = sql.SQL(" AND ").join(
            sql.SQL("t.{} = v.{}::{}").format(sql.Identifier(c), sql.Identifier(n),
                                               sql.SQL(self.target.types[c]))
            for c, n in zip(columns, names, strict=True))
        query = sql.SQL("COPY (SELECT {} FROM {} AS t JOIN unnest({}) AS v({}) ON {}) "
                        "TO STDOUT").format(
            sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in self.fetched),
            self.table, arrays, sql.SQL(", ").join(sql.Identifier(n) for n in names), match)
        with self.conn.cursor() as cur, cur.copy(query) as copy:
            return [dict(zip(self.fetched, row, strict=True)) for row in copy.rows()]

    def _key(self, row: Record) -> Key:
        return tuple(row[c] for c in self.key_columns)

    # --- one row (the decisions follow the SQLite engine's, see sqlite/restore.py) --------

    def _restore(self, backup_key: Key, original: Record, record: Record,
                 unresolved: Unresolved) -> None:
        key = tuple(record[c] for c in self.key_columns)
        renumber = not self.request.maintain_ids and self.key_source is not None
        existing = None if renumber or not self.key_columns else self._fetch(key)
        hits = self._unique_hits(record, key if existing is not None else None)
        if existing is None and not hits:
            if not self.request.insert_new:
                self.not_new += 1
                self.plan.skip += 1
                self._leave_out(original)
                return
            final = self._insert(backup_key, record, key, renumber=renumber,
                                 unresolved=unresolved)
            self.plan.insert += 1
            self._remember(backup_key, original, final, record, unresolved)
            return
        self._resolve(backup_key, original, record, key, existing, hits, renumber, unresolved)

    def _follow_parents(self, original: Record, record: Record) -> Unresolved | None:
        """Point the row at its parents' new keys; None if a parent was left out. Returns
        the links to rows of the current cycle that are not decided yet."""
        unresolved = []
        run = self.run
        for link in self.parent_links:
            old = tuple(original.get(c) for c in link.child_columns)
            if None in old:
                continue  # NULL refers to nothing
            parent, columns = link.parent_table, link.parent_columns
            if old in run.skipped.get(parent, {}).get(columns, ()):
                return None
            new = run.remap.get(parent, {}).get(columns, {}).get(old)
            if new is not None:
                record.update(zip(link.child_columns, new, strict=True))
            elif parent in run.pending and old not in run.done.get(parent, {}).get(columns, ()):
                unresolved.append((link, old))
        return unresolved

    def _resolve(self, backup_key: Key, original: Record, record: Record, key: Key,
                 existing: Record | None, hits: Hits, renumber: bool,
                 unresolved: Unresolved) -> None:
        how = self.request.on_conflict
        conflicts: Conflicts = [("primary_key", key, existing)] if existing is not None else []
        conflicts += [(f"unique:{','.join(cols)}", hit, None) for cols, hit in hits]
        others = {hit for _, hit in hits}
        only = key if existing is not None and not hits else (
            next(iter(others)) if existing is None and len(others) == 1 else None)
        current = existing if existing is not None else (
            self._fetch(only) if only is not None else None)
        if how != "rename" and only is not None and current is not None \
                and not self._changes(record, current, "overwrite"):
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
                self._update(backup_key, only, current, changes, unresolved)
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
            self._remember(backup_key, original, key, existing, [])
        else:
            self._leave_out(original)

    def _rename(self, backup_key: Key, original: Record, record: Record, key: Key,
                existing: Record | None, hits: Hits, renumber: bool, conflicts: Conflicts,
                unresolved: Unresolved) -> None:
        new_key = renumber or existing is not None
        renamed = self._suffixed(record, self._unique_hits(record, None) if new_key else hits)
        if (new_key and self.key_source is None) or renamed is None:
            self.run.plan.warnings.append(
                f"{self.info.name} row {key_text(backup_key)}: cannot be given a new "
                f"{'key' if renamed is not None else 'name'}; skipped")
            self._skip(backup_key, original, record, existing, key, conflicts, "skip")
            return
        final = self._insert(backup_key, renamed, key, renumber=new_key, unresolved=unresolved)
        self.plan.insert += 1
        self._note(backup_key, record, conflicts, "rename")
        self._remember(backup_key, original, final, renamed, unresolved)

    # --- bookkeeping --------------------------------------------------------------------

    def _note(self, backup_key: Key, record: Record, conflicts: Conflicts,
              resolution: str) -> None:
        name = self.name_column
        for kind, existing_key, existing in conflicts:
            self.plan.conflicts.append(PlannedConflict(
                self.info.name, key_text(backup_key), key_text(existing_key), kind, resolution,
                backup_name=_name(record, name),
                existing_name=_name(existing, name) if existing is not None else None))

    def _remember(self, backup_key: Key, original: Record, final_key: Key, final: Record,
                  unresolved: Unresolved) -> None:
        """Where the backup row ended up, for its children and for id_mappings."""
        run = self.run
        if final_key != backup_key:
            self.mapping[key_text(backup_key)] = key_text(final_key)
        in_cycle = self.info.name in run.cycle_tables
        for columns in self.referenced:
            old = self._values(backup_key, original, columns)
            new = final_key if columns == self.key_columns else self._values(
                final_key, final, columns)
            if old != new and None not in old:
                run.remap.setdefault(self.info.name, {}).setdefault(columns, {})[old] = new
            if in_cycle:
                run.done.setdefault(self.info.name, {}).setdefault(columns, set()).add(old)
        for link, old in unresolved:
            run.fixups.append(Fixup(self.info.name, final_key, link, old))

    def _leave_out(self, original: Record) -> None:
        """Remember a row that is not restored, so its children are not either."""
        for columns in self.referenced:
            values = tuple(original.get(c) for c in columns)
            self.run.skipped.setdefault(self.info.name, {}).setdefault(
                columns, set()).add(values)

    def _values(self, key: Key, record: Record, columns: tuple[str, ...]) -> Key:
        if columns == self.key_columns:
            return key
        return tuple(record.get(c) for c in columns)

    # --- reading the target -------------------------------------------------------------

    def _fetch(self, key: Key) -> Record | None:
        if not self.key_columns:
            return None  # without a key, rows cannot be told apart
        if key not in self.view.rows:
            found = self._select(self.key_columns, {key})
            self.view.rows[key] = found[0] if found else None
        return self.view.rows[key]

    def _unique_hits(self, record: Record, own_key: Key | None) -> Hits:
        hits = []
        for columns in self.target.unique:
            found = self._holder(columns, record)
            if found is not None and found != own_key:
                hits.append((columns, found))
        return hits

    def _holder(self, columns: tuple[str, ...], record: Record) -> Key | None:
        """Key of the target row holding these unique values, if any."""
        values = tuple(record.get(c) for c in columns)
        if any(c not in record for c in columns) or None in values:
            return None  # NULLs never collide in a unique index
        if (columns, values) not in self.view.holders:
            found = self._select(columns, {values})
            self.view.holders[columns, values] = self._key(found[0]) if found else None
            if found:
                self.view.rows.setdefault(self._key(found[0]), found[0])
        return self.view.holders[columns, values]

    def _changes(self, record: Record, current: Record, how: str) -> Record:
        """Columns to write: all that differ (overwrite), or those the backup has a value
        for (merge). The key is never rewritten: it is the row's identity."""
        changes = {}
        for column in self.columns:
            if column in self.key_columns:
                continue
            value = record.get(column)
            if how == "merge" and value is None:
                continue
            if value != current.get(column):
                changes[column] = value
        return changes

    def _suffixed(self, record: Record, hits: Hits) -> Record | None:
        """The record with the name suffix on a text column of each colliding unique
        constraint (numbered when the suffixed name is taken too); None if one has none."""
        renamed = dict(record)
        for columns, _ in hits:
            text = next((c for c in columns if renamed.get(c) is not None
                         and self.target.types[c].startswith(TEXT_TYPES[:4])), None)
            if text is None:
                return None
            base = renamed[text] + self.request.name_suffix
            for number in itertools.count(1):
                renamed[text] = base if number == 1 else f"{base}_{number}"
                if self._holder(columns, renamed) is None:
                    break
        return renamed

    # --- writing ------------------------------------------------------------------------

    def _insert(self, backup_key: Key, record: Record, key: Key, *, renumber: bool,
                unresolved: Unresolved) -> Key:
        if renumber:
            column = self.key_columns[0]
            if self.key_source in ("sequence", "max"):
                seq = self.target.sequences.get(column)
                new = self.run.allocator(self.target, column, seq).take(self.remaining)
            else:
                new = str(uuid.uuid4())
            record = {**record, column: new}
            key = (new,)
        self._claim(key, None, record)
        self._queue("insert", backup_key, record, unresolved)
        return key

    def _update(self, backup_key: Key, key: Key, current: Record, changes: Record,
                unresolved: Unresolved) -> None:
        self._claim(key, current, {**current, **changes})
        self._queue("update", backup_key, (key, changes), unresolved)

    def _claim(self, key: Key, before: Record | None, after: Record) -> None:
        """Lay a write over the batch's view of the target."""
        view = self.view
        if self.key_columns:
            view.rows[key] = after
        for columns in self.target.unique:
            if before is not None:
                old = tuple(before.get(c) for c in columns)
                if view.holders.get((columns, old)) == key:
                    view.holders[columns, old] = None
            new = tuple(after.get(c) for c in columns)
            if None not in new:
                view.holders[columns, new] = key

    def _queue(self, kind: str, backup_key: Key, payload: Any,
               unresolved: Unresolved) -> None:
        nullable = [(link, old) for link, old in unresolved
                    if all(c in self.target.nullable for c in link.child_columns)]
        if nullable:
            # Points at a row of its cycle not written yet: NULL now, set by a fixup later.
            self.nulled[len(self.view.ops)] = nullable
        self.view.ops.append((kind, backup_key, payload))

    def _flush(self) -> None:
        """Write the batch's inserts and updates in the order they were decided."""
        ops = self.view.ops
        start = 0
        for index in range(1, len(ops) + 1):
            if index < len(ops) and self._same_run(ops[start], ops[index]):
                continue
            run = list(range(start, index))
            if ops[start][0] == "insert":
                self._copy_in(run)
            else:
                self._update_rows(run)
            start = index
        self.view.ops = []

    @staticmethod
    def _same_run(first: tuple[str, Key, Any], other: tuple[str, Key, Any]) -> bool:
        if first[0] != other[0]:
            return False
        return first[0] == "insert" or list(first[2][1]) == list(other[2][1])

    def _nulls(self, index: int) -> set[str]:
        return {c for link, _ in self.nulled.get(index, ()) for c in link.child_columns}

    def _copy_in(self, run: list[int]) -> None:
        ops = self.view.ops
        query = sql.SQL("COPY {} ({}) FROM STDIN").format(
            self.table, sql.SQL(", ").join(sql.Identifier(c) for c in self.columns))
        try:
            with self.conn.cursor() as cur, cur.copy(query) as copy:
                for index in run:
                    record, nulls = ops[index][2], self._nulls(index)
                    copy.write_row([None if c in nulls else record.get(c)
                                    for c in self.columns])
        except psycopg.errors.IntegrityError as exc:
            raise self.run._violation(exc, self._culprit(exc, run)) from exc
        except psycopg.errors.DataError as exc:
            raise self.run._violation(exc, self._culprit(exc, run)) from exc

    def _update_rows(self, run: list[int]) -> None:
        ops = self.view.ops
        changed = list(ops[run[0]][2][1])
        query = sql.SQL("UPDATE {} SET {} WHERE {}").format(
            self.table, _assignments(self.target, changed), _key_match(self.target))
        params = []
        for index in run:
            key, changes = ops[index][2]
            nulls = self._nulls(index)
            params.append([*(None if c in nulls else changes[c] for c in changed), *key])
        try:
            with self.conn.cursor() as cur:
                cur.executemany(query, params)
        except (psycopg.errors.IntegrityError, psycopg.errors.DataError) as exc:
            raise self.run._violation(exc, self._culprit(exc, run)) from exc

    def _culprit(self, exc: psycopg.Error, run: list[int]) -> tuple[str, Key] | None:
        """The backup row an error is about: COPY names its line; otherwise the key in the
        error's detail is looked for among the rows written."""
        ops = self.view.ops
        line = _COPY_LINE.search(exc.diag.context or "")
        if line and 0 < int(line.group(1)) <= len(run):
            return self.info.name, ops[run[int(line.group(1)) - 1]][1]
        match = _KEY_DETAIL.search(exc.diag.message_detail or "")
        if match:
            columns = [c.strip().strip('"') for c in match.group(1).split(",")]
            values = [v.strip() for v in match.group(2).split(", ")]
            for index in run:
                kind, backup_key, payload = ops[index]
                record = payload if kind == "insert" else {**dict(zip(
                    self.key_columns, payload[0], strict=True)), **payload[1]}
                if [record.get(c) for c in columns] == values:
                    return self.info.name, backup_key
        return None


def _name(record: Record | None, column: str | None) -> str | None:
    if record is None or column is None or record.get(column) is None:
        return None
    return str(record[column])
