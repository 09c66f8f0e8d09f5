"""The transaction's work of a PostgreSQL selective or merge restore (see merge.py): the
target schema made ready, rows cleared for ``replace``, tables restored in batches, the
links of foreign-key cycles set, sequences moved, deferred constraints checked."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from strongbox.errors import InvalidRequest
from strongbox.progress import Progress
from strongbox.sources.postgres import catalog
from strongbox.sources.postgres.ddl import without_create_schema
from strongbox.sources.postgres.ids import KeyAllocator
from strongbox.sources.postgres.merge_target import (
    INTEGER_TYPES,
    TargetTable,
    assignments,
    detail_key,
    error_message,
    key_match,
)
from strongbox.sources.postgres.merge_writer import TableWriter
from strongbox.sources.postgres.restore import (
    _clear_target,
    _execute,
    _give_back_source_name,
    _Plan,
    _set_sequences,
    _take_source_name,
)
from strongbox.sources.row_merge import MergeRun, Record
from strongbox.sources.sqlite.foreign_keys import ForeignKey, ForeignKeyGraph
from strongbox.sources.sqlite.reader import SnapshotReader, TableInfo
from strongbox.sources.sqlite.restore_plan import (
    ConstraintViolation,
    RestoreRequest,
    RowChoice,
    RowShape,
    key_text,
)
from strongbox.sources.sqlite.selection import Key

__all__ = ["RowRestore"]


class RowRestore(MergeRun):
    """One selective or merge restore: the transaction's work, key mappings and the plan
    (the state and the row decisions are the engines' shared ones, sources/row_merge.py).

    ``batch_rows``: rows decided and written together; also the cancellation interval.
    """

    def __init__(self, conn: psycopg.Connection, reader: SnapshotReader,
                 graph: ForeignKeyGraph, request: RestoreRequest, choice: RowChoice,
                 progress: Progress, *, batch_rows: int) -> None:
        super().__init__(graph, request, choice, progress)
        self.conn, self.reader, self.batch_rows = conn, reader, batch_rows
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
        for group in self.groups(tables):
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
        key = key_text(culprit[1]) if culprit else detail_key(diag.message_detail)
        return ConstraintViolation(
            f"cannot restore {table} row {key}: {error_message(exc)}",
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
                    f"{error_message(exc)}", details={"table": info.name,
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
            if len(batch) >= self.batch_rows:
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
                assignments(target, link.child_columns), key_match(target))
            try:
                with self.conn.cursor() as cur:
                    cur.executemany(query, [(*new, *key) for new, key in values])
            except psycopg.errors.IntegrityError as exc:
                raise self._violation(exc, None) from exc
