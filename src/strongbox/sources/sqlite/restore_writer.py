"""How a row-level SQLite restore reads and writes the target, table by table.

The decisions (conflicts, on_conflict, renames, new keys, the plan) are the engines' shared
ones (sources/row_merge.py); this module gives them the SQLite side: the target table's
shape (:class:`TargetTable`) and :class:`TableWriter`, which looks rows up by key and unique
values, gives rows new keys (SQLite's next rowid, or a new UUID for a text key) and writes
them with plain INSERT and UPDATE statements inside the restore's transaction.
"""

from __future__ import annotations

import sqlite3
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from strongbox.errors import SourceError
from strongbox.sources.row_merge import Record, RowMerger, Unresolved
from strongbox.sources.sqlite.codec import placeholder, sqlite_value
from strongbox.sources.sqlite.foreign_keys import primary_key, quote_identifier
from strongbox.sources.sqlite.reader import TableInfo
from strongbox.sources.sqlite.restore_plan import ConstraintViolation, key_text, value_text
from strongbox.sources.sqlite.selection import Key

if TYPE_CHECKING:
    from strongbox.sources.sqlite.restore import RowRestore

__all__ = ["TableWriter", "TargetTable", "key_condition"]


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



def key_condition(target: TargetTable, key: Key) -> tuple[str, list[Any]]:
    """The WHERE clause, and its parameters, that names the target row with this key."""
    columns = ["rowid" if c == "rowid" else quote_identifier(c) for c in target.primary_key]
    where = " AND ".join(f"{c} = {placeholder(v)}" for c, v in zip(columns, key, strict=True))
    return where, [sqlite_value(v) for v in key]


class TableWriter(RowMerger[TargetTable]):
    """Restores the rows of one table: finds what they meet in the target and resolves it."""

    def __init__(self, run: RowRestore, info: TableInfo, target: TargetTable) -> None:
        super().__init__(run, info, target)
        self.conn = run.conn
        self.q = quote_identifier(info.name)
        self.implicit_rowid = target.primary_key == ("rowid",)
        self.key_columns = () if self.implicit_rowid else target.primary_key
        self.identity = target.primary_key
        self.key_select = ", ".join("rowid" if c == "rowid" else quote_identifier(c)
                                    for c in target.primary_key)

    def restore(self, backup_key: Key, original: Record) -> None:
        prepared = self.prepare(original)
        if prepared is not None:
            self.decide(backup_key, original, *prepared)

    def _row_key(self, backup_key: Key, record: Record) -> Key:
        return backup_key if self.implicit_rowid else super()._row_key(backup_key, record)

    def _tracks(self, columns: tuple[str, ...]) -> bool:
        return "rowid" not in columns

    def _can_renumber(self, key: Key) -> bool:
        """Whether this row can get a key of its own: SQLite's next rowid, or a new UUID
        for a text key. Composite keys (usually made of foreign keys) cannot."""
        return self.target.rowid_alias or (len(key) == 1 and isinstance(key[0], str))

    def _is_text(self, column: str, value: Any) -> bool:
        return isinstance(value, str)

    # --- reading the target -------------------------------------------------------------

    def _fetch(self, key: Key) -> Record | None:
        where, params = key_condition(self.target, key)
        select = ", ".join(quote_identifier(c) for c in self.columns) or "NULL"
        row = self.conn.execute(f"SELECT {select} FROM {self.q} WHERE {where}", params).fetchone()
        return None if row is None else dict(zip(self.columns, row, strict=False))

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

    # --- writing ------------------------------------------------------------------------

    def _insert(self, backup_key: Key, record: Record, key: Key, *, renumber: bool,
                unresolved: Unresolved) -> Key:
        # Links to rows of the cycle not written yet keep their old values: SQLite checks
        # them at the end of the cycle (deferred), after the fixups.
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

    def _update(self, backup_key: Key, key: Key, current: Record, changes: Record,
                unresolved: Unresolved) -> None:
        sets = ", ".join(f"{quote_identifier(c)} = {placeholder(v)}" for c, v in changes.items())
        where, params = key_condition(self.target, key)
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
        for link in self.parent_links:
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

