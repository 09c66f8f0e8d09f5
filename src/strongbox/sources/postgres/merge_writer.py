"""How a PostgreSQL merge restore reads and writes one table, batch by batch.

The decisions are the engines' shared ones (sources/row_merge.py); this module gives them the
PostgreSQL side. For each batch, one query per key or unique constraint reads every target
row the batch can meet (:meth:`TableWriter._read_ahead`); the rows are then decided in order
against that view (:class:`BatchView`), which each decision updates, and the batch is
written in the order it was decided: runs of inserts with COPY, runs of updates of the same
columns as pipelined UPDATEs. New integer keys come from ids.py.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from strongbox.sources.postgres.merge_target import (
    COPY_LINE,
    KEY_DETAIL,
    TEXT_TYPES,
    TargetTable,
    assignments,
    key_match,
)
from strongbox.sources.row_merge import Record, RowMerger, Unresolved
from strongbox.sources.sqlite.reader import TableInfo
from strongbox.sources.sqlite.selection import Key

if TYPE_CHECKING:
    from strongbox.sources.postgres.merge_run import RowRestore

__all__ = ["BatchView", "TableWriter"]


class BatchView:
    """The target as one batch sees it: rows read for the batch, with the batch's own
    writes laid over them, so each row is decided as if the earlier ones were written."""

    def __init__(self) -> None:
        self.rows: dict[Key, Record | None] = {}  # key -> row, None: no such row
        self.holders: dict[tuple[tuple[str, ...], Key], Key | None] = {}
        self.ops: list[tuple[str, Key, Any]] = []  # (insert|update, backup key, payload)


class TableWriter(RowMerger[TargetTable]):
    """Restores the rows of one table: finds what they meet in the target and resolves it."""

    def __init__(self, run: RowRestore, info: TableInfo, target: TargetTable) -> None:
        super().__init__(run, info, target)
        self.pg_run = run
        self.conn = run.conn
        self.table = sql.Identifier(run.schema, info.name)
        self.key_columns = self.identity = target.primary_key
        self.fetched = list(dict.fromkeys(
            [*self.key_columns, *(c for u in target.unique for c in u), *self.columns]))
        self.key_source = target.key_source()
        self.view = BatchView()
        self.nulled: dict[int, Unresolved] = {}  # op index -> links written as NULL
        self.remaining = 0  # rows of the batch not decided yet: new keys taken at once

    def _more_warnings(self) -> list[str]:
        if not self.request.maintain_ids and self.key_source is None and self.key_columns:
            return [f"{self.info.name}: key {', '.join(self.key_columns)} "
                    "has no sequence to take new values from; ids kept"]
        return []

    def _can_renumber(self, key: Key) -> bool:
        return self.key_source is not None

    def _is_text(self, column: str, value: Any) -> bool:
        return value is not None and self.target.types[column].startswith(TEXT_TYPES[:4])

    # --- a batch ------------------------------------------------------------------------

    def process(self, batch: list[tuple[Key, Record]]) -> None:
        self.view = BatchView()
        self.nulled = {}
        prepared = []
        for backup_key, original in batch:
            ready = self.prepare(original)
            if ready is not None:
                prepared.append((backup_key, original, *ready))
        self._read_ahead([record for _, _, record, _ in prepared])
        self.remaining = len(prepared)
        for backup_key, original, record, unresolved in prepared:
            self.decide(backup_key, original, record, unresolved)
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


    # --- reading the target -------------------------------------------------------------

    def _fetch(self, key: Key) -> Record | None:
        if not self.key_columns:
            return None  # without a key, rows cannot be told apart
        if key not in self.view.rows:
            found = self._select(self.key_columns, {key})
            self.view.rows[key] = found[0] if found else None
        return self.view.rows[key]

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


    # --- writing ------------------------------------------------------------------------

    def _insert(self, backup_key: Key, record: Record, key: Key, *, renumber: bool,
                unresolved: Unresolved) -> Key:
        if renumber:
            column = self.key_columns[0]
            if self.key_source in ("sequence", "max"):
                seq = self.target.sequences.get(column)
                new = self.pg_run.allocator(self.target, column, seq).take(self.remaining)
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
            raise self.pg_run._violation(exc, self._culprit(exc, run)) from exc
        except psycopg.errors.DataError as exc:
            raise self.pg_run._violation(exc, self._culprit(exc, run)) from exc

    def _update_rows(self, run: list[int]) -> None:
        ops = self.view.ops
        changed = list(ops[run[0]][2][1])
        query = sql.SQL("UPDATE {} SET {} WHERE {}").format(
            self.table, assignments(self.target, changed), key_match(self.target))
        params = []
        for index in run:
            key, changes = ops[index][2]
            nulls = self._nulls(index)
            params.append([*(None if c in nulls else changes[c] for c in changed), *key])
        try:
            with self.conn.cursor() as cur:
                cur.executemany(query, params)
        except (psycopg.errors.IntegrityError, psycopg.errors.DataError) as exc:
            raise self.pg_run._violation(exc, self._culprit(exc, run)) from exc

    def _culprit(self, exc: psycopg.Error, run: list[int]) -> tuple[str, Key] | None:
        """The backup row an error is about: COPY names its line; otherwise the key in the
        error's detail is looked for among the rows written."""
        ops = self.view.ops
        line = COPY_LINE.search(exc.diag.context or "")
        if line and 0 < int(line.group(1)) <= len(run):
            return self.info.name, ops[run[int(line.group(1)) - 1]][1]
        match = KEY_DETAIL.search(exc.diag.message_detail or "")
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

