"""Choosing rows to back up or restore: by key, by date, by number of children, and the
closure that follows foreign keys so a choice never leaves a row without its parents.

The closure itself only speaks of key sets ("for table T, these primary-key tuples") and
asks a :class:`RowLookup` two questions, so the same logic can run over a live database
(:class:`SqliteRowLookup`) or over rows streamed back from a backup.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from strongbox.errors import InvalidDateRange, InvalidRequest
from strongbox.sources.sqlite.foreign_keys import (
    ForeignKey,
    ForeignKeyGraph,
    primary_key,
    quote_identifier,
    table_columns,
)

Key = tuple[Any, ...]
Selection = dict[str, set[Key]]

# SQLite's default limit on host parameters is 999 before 3.32; staying well below it
# keeps queries portable and their plans cheap.
MAX_PARAMETERS = 500

# Preferred names for "when was this row made", best first.
TIMESTAMP_NAMES = (
    "created_at",
    "created",
    "created_on",
    "creation_date",
    "inserted_at",
    "updated_at",
    "modified_at",
    "updated",
    "timestamp",
    "ts",
    "date",
    "datetime",
    "time",
)
TIMESTAMP_SUFFIXES = ("_at", "_on", "_date", "_time", "_timestamp")
TIMESTAMP_TYPES = ("DATE", "TIME")  # also matches DATETIME and TIMESTAMP


class RowLookup(Protocol):
    """What the closure needs to know about the rows of a table."""

    def primary_key(self, table: str) -> tuple[str, ...]: ...

    def keys_where(self, table: str, columns: tuple[str, ...], values: Iterable[Key]) -> set[Key]:
        """Keys of the rows whose ``columns`` hold one of ``values``."""
        ...

    def values_of(self, table: str, keys: Iterable[Key], columns: tuple[str, ...]) -> set[Key]:
        """The distinct ``columns`` of the rows with these keys."""
        ...


class SqliteRowLookup:
    """Answers :class:`RowLookup` questions with batched ``IN`` queries on a connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._keys: dict[str, tuple[str, ...]] = {}

    def primary_key(self, table: str) -> tuple[str, ...]:
        if table not in self._keys:
            self._keys[table] = primary_key(self.conn, table)
        return self._keys[table]

    def keys_where(self, table: str, columns: tuple[str, ...], values: Iterable[Key]) -> set[Key]:
        select = _column_list(self.primary_key(table))
        return self._query(f"SELECT {select} FROM {quote_identifier(table)}", columns, values)

    def values_of(self, table: str, keys: Iterable[Key], columns: tuple[str, ...]) -> set[Key]:
        select = _column_list(columns)
        sql = f"SELECT DISTINCT {select} FROM {quote_identifier(table)}"
        return self._query(sql, self.primary_key(table), keys)

    def _query(self, select: str, columns: tuple[str, ...], values: Iterable[Key]) -> set[Key]:
        found: set[Key] = set()
        for batch in _batches(values, max(1, MAX_PARAMETERS // len(columns))):
            sql = f"{select} WHERE {_in_clause(columns, len(batch))}"
            found.update(self.conn.execute(sql, [v for value in batch for v in value]))
        return found


def select_closure(
    conn: sqlite3.Connection,
    graph: ForeignKeyGraph,
    roots: Mapping[str, Iterable[Key | Any]],
    *,
    include_children: bool = True,
    include_parents: bool = True,
) -> Selection:
    """The rows of ``roots`` with everything hanging off them and everything they need.

    Children are followed from the roots only (project → its sessions → their messages);
    parents are then added for every selected row (a message's session and project), but
    a row added as a parent does not bring its own children, so selecting one message does
    not select its siblings. Root keys that match no row are dropped. Tables with nothing
    selected are left out of the result.
    """
    return expand_selection(
        SqliteRowLookup(conn),
        graph,
        roots,
        include_children=include_children,
        include_parents=include_parents,
    )


def expand_selection(
    lookup: RowLookup,
    graph: ForeignKeyGraph,
    roots: Mapping[str, Iterable[Key | Any]],
    *,
    include_children: bool = True,
    include_parents: bool = True,
) -> Selection:
    """:func:`select_closure` over any :class:`RowLookup`."""
    selection: Selection = {table: set() for table in graph.tables}
    for table, keys in roots.items():
        key_columns = lookup.primary_key(_require_table(graph, table))
        wanted = {_as_key(key, key_columns, table) for key in keys}
        selection[table] |= lookup.keys_where(table, key_columns, wanted)
    if include_children:
        _follow(lookup, graph, selection, _children_of)
    if include_parents:
        _follow(lookup, graph, selection, _parents_of)
    return {table: keys for table, keys in selection.items() if keys}


Step = Callable[[RowLookup, ForeignKeyGraph, str, set[Key]], Iterator[tuple[str, set[Key]]]]


def _follow(lookup: RowLookup, graph: ForeignKeyGraph, selection: Selection, step: Step) -> None:
    """Apply ``step`` to every selected row, then to what it adds, until nothing is new."""
    pending = {table: set(keys) for table, keys in selection.items() if keys}
    while pending:
        table, keys = pending.popitem()
        for target, found in step(lookup, graph, table, keys):
            new = found - selection[target]
            if new:
                selection[target] |= new
                pending.setdefault(target, set()).update(new)


def _children_of(
    lookup: RowLookup, graph: ForeignKeyGraph, table: str, keys: set[Key]
) -> Iterator[tuple[str, set[Key]]]:
    for link in graph.children(table):
        referenced = _link_values(lookup, table, keys, link.parent_columns)
        yield link.child_table, lookup.keys_where(link.child_table, link.child_columns, referenced)


def _parents_of(
    lookup: RowLookup, graph: ForeignKeyGraph, table: str, keys: set[Key]
) -> Iterator[tuple[str, set[Key]]]:
    for link in graph.parents(table):
        referencing = _link_values(lookup, table, keys, link.child_columns)
        yield (
            link.parent_table,
            lookup.keys_where(link.parent_table, link.parent_columns, referencing),
        )


def _link_values(
    lookup: RowLookup, table: str, keys: set[Key], columns: tuple[str, ...]
) -> set[Key]:
    """The values of ``columns`` in the given rows, without any that contain NULL.

    When the columns are part of the key (the usual parent side of a link) they are read
    off the keys instead of the database. NULL never matches in a foreign key, so a tuple
    containing one points at nothing.
    """
    key_columns = lookup.primary_key(table)
    if set(columns) <= set(key_columns):
        positions = [key_columns.index(column) for column in columns]
        values = {tuple(key[position] for position in positions) for key in keys}
    else:
        values = lookup.values_of(table, keys, columns)
    return {value for value in values if None not in value}


def filter_by_date(
    conn: sqlite3.Connection,
    table: str,
    column: str,
    start: datetime | str | None,
    end: datetime | str | None,
) -> set[Key]:
    """Keys of the rows whose ``column`` lies in [start, end]; None leaves a side open.

    Values may be ISO 8601 text (any offset, ``Z`` included) or Unix time in seconds or
    milliseconds; comparing their Julian day numbers makes all of these agree. Rows whose
    value is NULL or not a time are not selected. Naive ``start``/``end`` mean UTC.
    """
    _require_column(conn, table, column)
    low, high = _as_utc_text(start, "start"), _as_utc_text(end, "end")
    if low is not None and high is not None and low > high:
        raise InvalidDateRange(
            f"date range starts after it ends ({low} > {high})",
            details={"start": low, "end": high},
        )
    conditions, params = [], []
    if low is not None:
        conditions.append(f"{_julian_day(column)} >= julianday(?)")
        params.append(low)
    if high is not None:
        conditions.append(f"{_julian_day(column)} <= julianday(?)")
        params.append(high)
    # With no bound at all, still skip rows that hold no time.
    where = " AND ".join(conditions) or f"{_julian_day(column)} IS NOT NULL"
    select = _column_list(primary_key(conn, table))
    sql = f"SELECT {select} FROM {quote_identifier(table)} WHERE {where}"
    return set(conn.execute(sql, params))


def detect_timestamp_column(conn: sqlite3.Connection, table: str) -> str | None:
    """The column that most likely says when a row was made, or None if none looks like it.

    Well-known names win (``created_at`` first, then ``updated_at``, ``timestamp``,
    ``date``...); failing those, a column whose name ends like ``_at``/``_date`` or whose
    declared type mentions DATE or TIME.
    """
    info = conn.execute(f"PRAGMA table_info({quote_identifier(table)})").fetchall()
    by_name = {row[1].lower(): row[1] for row in info}
    for name in TIMESTAMP_NAMES:
        if name in by_name:
            return by_name[name]
    for _, name, declared_type, *_ in info:
        if name.lower().endswith(TIMESTAMP_SUFFIXES):
            return str(name)
        if any(word in (declared_type or "").upper() for word in TIMESTAMP_TYPES):
            return str(name)
    return None


def child_count_filter(
    conn: sqlite3.Connection,
    graph: ForeignKeyGraph,
    parent_table: str,
    child_table: str,
    min_count: int | None = None,
    max_count: int | None = None,
) -> set[Key]:
    """Keys of ``parent_table`` rows with between min_count and max_count children (inclusive).

    Children are the ``child_table`` rows that reference the parent through the one link
    between them; parents with no children count 0, so ``min_count=0`` includes them.
    """
    _check_count_range(min_count, max_count)
    link = _only_link(graph, parent_table, child_table)
    join = " AND ".join(
        f"c.{quote_identifier(child)} = p.{quote_identifier(parent)}"
        for child, parent in zip(link.child_columns, link.parent_columns, strict=True)
    )
    keys = ", ".join(f"p.{quote_identifier(c)}" for c in primary_key(conn, parent_table))
    counted = f"COUNT(c.{quote_identifier(link.child_columns[0])})"
    sql = (
        f"SELECT {keys} FROM {quote_identifier(parent_table)} AS p "
        f"LEFT JOIN {quote_identifier(child_table)} AS c ON {join} "
        f"GROUP BY {keys} HAVING {counted} BETWEEN ? AND ?"
    )
    bounds = (min_count or 0, max_count if max_count is not None else 2**63 - 1)
    return set(conn.execute(sql, bounds))


def _only_link(graph: ForeignKeyGraph, parent_table: str, child_table: str) -> ForeignKey:
    links = [link for link in graph.children(parent_table) if link.child_table == child_table]
    if len(links) != 1:
        # None: nothing to count. Several: counting through which one would be a guess.
        found = [link.describe() for link in links]
        raise InvalidRequest(
            f"need exactly one link from {child_table!r} to {parent_table!r}, found {len(links)}",
            details={"links": found},
        )
    return links[0]


def _check_count_range(min_count: int | None, max_count: int | None) -> None:
    for name, value in (("min_count", min_count), ("max_count", max_count)):
        if value is not None and value < 0:
            raise InvalidRequest(f"{name} must not be negative", details={name: value})
    if min_count is not None and max_count is not None and min_count > max_count:
        raise InvalidRequest(
            "min_count must not exceed max_count",
            details={"min_count": min_count, "max_count": max_count},
        )


def _require_column(conn: sqlite3.Connection, table: str, column: str) -> None:
    # SQLite reads an unknown double-quoted name as a string literal, so a typo would
    # silently compare a constant instead of failing; check the name first.
    columns = table_columns(conn, table)
    if not columns:
        raise InvalidRequest(f"unknown table {table!r}", details={"table": table})
    if column.lower() not in {name.lower() for name in columns}:  # SQL names ignore case
        raise InvalidRequest(
            f"table {table!r} has no column {column!r}", details={"table": table, "column": column}
        )


def _julian_day(column: str) -> str:
    """SQL for the column's value as a Julian day number, whatever form the time is in."""
    quoted = quote_identifier(column)
    # Numbers are Unix times; above 1e11 (the year 5138 in seconds) they must be milliseconds.
    return (
        f"(CASE WHEN typeof({quoted}) IN ('integer', 'real') THEN julianday("
        f"CASE WHEN abs({quoted}) >= 100000000000 THEN {quoted} / 1000.0 ELSE {quoted} END, "
        f"'unixepoch') ELSE julianday({quoted}) END)"
    )


def _as_utc_text(moment: datetime | str | None, name: str) -> str | None:
    """A bound as 'YYYY-MM-DD HH:MM:SS.ffffff' in UTC, the form julianday() reads exactly."""
    if moment is None:
        return None
    if isinstance(moment, str):
        try:
            moment = datetime.fromisoformat(moment)
        except ValueError:
            raise InvalidRequest(
                f"{name} is not an ISO 8601 date-time: {moment!r}", details={name: moment}
            ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def _require_table(graph: ForeignKeyGraph, table: str) -> str:
    if table not in graph.tables:
        raise InvalidRequest(f"unknown table {table!r}", details={"table": table})
    return table


def _as_key(key: Key | Any, key_columns: tuple[str, ...], table: str) -> Key:
    """A root key as a tuple; a bare value is accepted for a one-column key ("p1")."""
    key = key if isinstance(key, tuple) else (key,)
    if len(key) != len(key_columns):
        raise InvalidRequest(
            f"key {key!r} does not fit the primary key {key_columns} of {table!r}",
            details={"table": table, "key": list(key), "primary_key": list(key_columns)},
        )
    return key


def _column_list(columns: tuple[str, ...]) -> str:
    return ", ".join(quote_identifier(column) for column in columns)


def _in_clause(columns: tuple[str, ...], count: int) -> str:
    """``col IN (?, ...)`` for one column, a row-value ``IN (VALUES ...)`` for several."""
    if len(columns) == 1:
        return f"{quote_identifier(columns[0])} IN ({', '.join(['?'] * count)})"
    row = "(" + ", ".join(["?"] * len(columns)) + ")"
    return f"({_column_list(columns)}) IN (VALUES {', '.join([row] * count)})"


def _batches(values: Iterable[Key], size: int) -> Iterator[list[Key]]:
    batch: list[Key] = []
    for value in values:
        batch.append(value)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
