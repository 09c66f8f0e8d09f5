"""Answering foreign-key questions about a snapshot's rows with bounded memory.

A snapshot's tables can only be streamed, but following links (a project's sessions, their
messages, the parents they need) asks random questions: "which rows of ``messages`` have
``session_id`` in {...}?". :class:`SnapshotRowLookup` streams each table it is asked about
once into a scratch SQLite database on disk that holds only the key and the columns links
use, with an index per column group asked about. Memory is SQLite's bounded page cache plus
the answers themselves, so it grows with the size of the selection, not with the tables.

Values keep their exact Python identity: blobs and non-UTF-8 text (:class:`InvalidText`)
are stored as tagged blobs, so a key read back compares equal to the key a streamed row
gives later.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from strongbox.errors import InvalidRequest
from strongbox.sources.sqlite.codec import InvalidText
from strongbox.sources.sqlite.foreign_keys import ForeignKeyGraph
from strongbox.sources.sqlite.reader import SnapshotReader, TableInfo, project
from strongbox.sources.sqlite.selection import Key

MAX_PARAMETERS = 500
CACHE_KIB = 16 * 1024  # SQLite page cache of the scratch database
INSERT_BATCH = 5000

_BLOB, _BAD_TEXT = b"b", b"t"


def _encode(value: Any) -> Any:
    if isinstance(value, bytes):
        return _BLOB + value
    if isinstance(value, InvalidText):
        return _BAD_TEXT + value.raw
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, bytes):
        return value[1:] if value[:1] == _BLOB else InvalidText(value[1:])
    return value


def value_text(value: Any) -> str:
    """How a key value is written by someone naming it (JSON turns 7 into "7")."""
    if isinstance(value, InvalidText):
        return value.raw.decode("utf-8", "backslashreplace")
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def _text_of(key: Key) -> str:
    return "\x1f".join(value_text(v) for v in key)


class _ScratchTable:
    """Where one snapshot table's key and link columns live in the scratch database."""

    def __init__(self, number: int, info: TableInfo, link_columns: list[str]) -> None:
        self.name = f"t{number}"
        self.info = info
        self.key_columns = info.primary_key
        self.columns = list(self.key_columns) + [c for c in link_columns
                                                  if c not in self.key_columns]
        self.alias = {c: f"c{i}" for i, c in enumerate(self.columns)}
        self.indexed: set[tuple[str, ...]] = set()

    def select(self, columns: tuple[str, ...]) -> str:
        return ", ".join(self.alias[c] for c in columns)


class SnapshotRowLookup:
    """A :class:`~strongbox.sources.sqlite.selection.RowLookup` over a snapshot's rows.

    Use it as a context manager (or call :meth:`close`): the scratch database is removed
    when done.
    """

    def __init__(self, reader: SnapshotReader, graph: ForeignKeyGraph, *,
                 workdir: Path | None = None) -> None:
        self._reader = reader
        self._infos = {info.name: info for info in reader.tables()}
        self._link_columns: dict[str, list[str]] = {t: [] for t in self._infos}
        for link in graph.links:
            for table, columns in ((link.child_table, link.child_columns),
                                   (link.parent_table, link.parent_columns)):
                wanted = self._link_columns.setdefault(table, [])
                wanted.extend(c for c in columns if c not in wanted)
        self._tables: dict[str, _ScratchTable] = {}
        self._dir = Path(tempfile.mkdtemp(prefix="strongbox-lookup-", dir=workdir))
        self._conn = sqlite3.connect(self._dir / "lookup.db", isolation_level=None,
                                     check_same_thread=False)
        for pragma in ("journal_mode=OFF", "synchronous=OFF", "temp_store=FILE",
                       f"cache_size=-{CACHE_KIB}"):
            self._conn.execute(f"PRAGMA {pragma}")

    def __enter__(self) -> SnapshotRowLookup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._conn.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    # --- RowLookup ------------------------------------------------------------------

    def primary_key(self, table: str) -> tuple[str, ...]:
        return self._infos[table].primary_key

    def keys(self, table: str) -> set[Key]:
        scratch = self._table(table)
        sql = f"SELECT {scratch.select(scratch.key_columns)} FROM {scratch.name}"
        return {tuple(_decode(v) for v in row) for row in self._conn.execute(sql)}

    def keys_where(self, table: str, columns: tuple[str, ...], values: Iterable[Key]) -> set[Key]:
        scratch = self._table(table)
        self._ensure_index(scratch, columns)
        select = f"SELECT {scratch.select(scratch.key_columns)} FROM {scratch.name}"
        return self._query(scratch, select, columns, values)

    def values_of(self, table: str, keys: Iterable[Key], columns: tuple[str, ...]) -> set[Key]:
        scratch = self._table(table)
        select = f"SELECT DISTINCT {scratch.select(columns)} FROM {scratch.name}"
        return self._query(scratch, select, scratch.key_columns, keys)

    def resolve(self, table: str, keys: Iterable[Any]) -> tuple[set[Key], list[Any]]:
        """Keys as a caller gave them (JSON turns 7 into "7" and tuples into lists) matched
        to the snapshot's keys; returns (found, not found)."""
        if table not in self._infos:
            raise InvalidRequest(f"table {table!r} is not in the snapshot",
                                 details={"table": table})
        scratch = self._table(table)
        self._ensure_text_index(scratch)
        select = f"SELECT {scratch.select(scratch.key_columns)} FROM {scratch.name}"
        found: set[Key] = set()
        missing: list[Any] = []
        for given in keys:
            key = tuple(given) if isinstance(given, list | tuple) else (given,)
            match = self._query(scratch, select, scratch.key_columns, [key]) if len(key) == len(
                scratch.key_columns) else set()
            if not match:
                rows = self._conn.execute(f"{select} WHERE _text = ?", (_text_of(key),))
                match = {tuple(_decode(v) for v in row) for row in rows}
            if match:
                found |= match
            else:
                missing.append(given)
        return found, missing

    # --- the scratch database -----------------------------------------------------------

    def _table(self, table: str) -> _ScratchTable:
        if table in self._tables:
            return self._tables[table]
        if table not in self._infos:
            raise InvalidRequest(f"table {table!r} is not in the snapshot",
                                 details={"table": table})
        scratch = _ScratchTable(len(self._tables), self._infos[table],
                                self._link_columns.get(table, []))
        columns = ", ".join(scratch.alias[c] for c in scratch.columns)
        self._conn.execute(f"CREATE TABLE {scratch.name} ({columns}, _text)")
        self._load(scratch, table)
        self._ensure_index(scratch, scratch.key_columns)
        self._tables[table] = scratch
        return scratch

    def _load(self, scratch: _ScratchTable, table: str) -> None:
        marks = ", ".join("?" * (len(scratch.columns) + 1))
        sql = f"INSERT INTO {scratch.name} VALUES ({marks})"
        key_count = len(scratch.key_columns)
        batch: list[list[Any]] = []
        self._conn.execute("BEGIN")
        for values in self._column_rows(table, scratch):
            batch.append([_encode(v) for v in values] + [_text_of(tuple(values[:key_count]))])
            if len(batch) >= INSERT_BATCH:
                self._conn.executemany(sql, batch)
                batch = []
        if batch:
            self._conn.executemany(sql, batch)
        self._conn.execute("COMMIT")

    def _column_rows(self, table: str, scratch: _ScratchTable) -> Iterator[tuple[Any, ...]]:
        # A snapshot reader reads only the wanted columns; other readers (an export file
        # being imported) give whole rows.
        column_rows = getattr(self._reader, "column_rows", None)
        if column_rows is not None:
            return column_rows(table, scratch.columns)
        return project(self._reader.rows(table), scratch.info, scratch.columns)

    def _ensure_index(self, scratch: _ScratchTable, columns: tuple[str, ...]) -> None:
        if columns in scratch.indexed:
            return
        name = f"{scratch.name}_i{len(scratch.indexed)}"
        self._conn.execute(f"CREATE INDEX {name} ON {scratch.name} ({scratch.select(columns)})")
        scratch.indexed.add(columns)

    def _ensure_text_index(self, scratch: _ScratchTable) -> None:
        if ("_text",) not in scratch.indexed:
            self._conn.execute(f"CREATE INDEX {scratch.name}_text ON {scratch.name} (_text)")
            scratch.indexed.add(("_text",))

    def _query(self, scratch: _ScratchTable, select: str, columns: tuple[str, ...],
               values: Iterable[Key]) -> set[Key]:
        found: set[Key] = set()
        size = max(1, MAX_PARAMETERS // len(columns))
        batch: list[Key] = []
        for value in values:
            batch.append(value)
            if len(batch) == size:
                found |= self._run(scratch, select, columns, batch)
                batch = []
        if batch:
            found |= self._run(scratch, select, columns, batch)
        return found

    def _run(self, scratch: _ScratchTable, select: str, columns: tuple[str, ...],
             batch: list[Key]) -> set[Key]:
        aliases = [scratch.alias[c] for c in columns]
        if len(aliases) == 1:
            where = f"{aliases[0]} IN ({', '.join('?' * len(batch))})"
        else:
            row = "(" + ", ".join("?" * len(aliases)) + ")"
            where = f"({', '.join(aliases)}) IN (VALUES {', '.join([row] * len(batch))})"
        params = [_encode(v) for value in batch for v in value]
        rows = self._conn.execute(f"{select} WHERE {where}", params)
        return {tuple(_decode(v) for v in row) for row in rows}
