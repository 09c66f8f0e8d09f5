"""A table's rows as a backup stores them: in key order, the rowid first when it is the key.

Backups read the live source this way, and so do readers of a page copy (page_copy_rows.py)
and of a live database (live.py), so every reader hands out the same row shape.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

from strongbox.sources.sqlite.foreign_keys import quote_identifier
from strongbox.sources.sqlite.selection import Key

ROWS_PER_FETCH = 1000


def table_rows(conn: sqlite3.Connection, table: str, columns: list[str],
               key: tuple[str, ...], selected: set[Key] | None = None
               ) -> Iterator[tuple[Any, ...]]:
    """The table's rows one by one."""
    for batch in row_batches(conn, table, columns, key, selected):
        yield from batch


def row_batches(conn: sqlite3.Connection, table: str, columns: list[str],
                key: tuple[str, ...], selected: set[Key] | None = None
                ) -> Iterator[list[tuple[Any, ...]]]:
    """The table's rows in key order, in lists (fetched, and later packed, in C).

    ``selected`` keeps only rows whose key is in it; None keeps every row.
    """
    cols = ", ".join(quote_identifier(c) for c in columns)
    order = ", ".join(quote_identifier(c) if c != "rowid" else "rowid" for c in key)
    key_pos = [columns.index(c) for c in key] if "rowid" not in key else None
    # The rowid stays in the stream, first (see reader.TableInfo.has_rowid_key): it is
    # the row's identity, and other rows may refer to it.
    select_cols = cols if key_pos is not None else f"rowid, {cols}"
    cursor = conn.execute(f"SELECT {select_cols} FROM {quote_identifier(table)} "
                          f"ORDER BY {order}")
    while batch := cursor.fetchmany(ROWS_PER_FETCH):
        if selected is None:
            yield batch  # every row: no per-row key work
        elif key_pos is None:
            yield [row for row in batch if (row[0],) in selected]
        else:
            yield [row for row in batch if tuple(row[i] for i in key_pos) in selected]


def column_values(conn: sqlite3.Connection, table: str, columns: Sequence[str],
                  key: tuple[str, ...]) -> Iterator[tuple[Any, ...]]:
    """Only ``columns`` ("rowid" names the rowid) of every row, in key order."""
    select = ", ".join(c if c == "rowid" else quote_identifier(c) for c in columns)
    order = ", ".join(quote_identifier(c) if c != "rowid" else "rowid" for c in key)
    cursor = conn.execute(f"SELECT {select} FROM {quote_identifier(table)} ORDER BY {order}")
    while batch := cursor.fetchmany(ROWS_PER_FETCH):
        yield from batch


def count_rows(conn: sqlite3.Connection, table: str) -> int:
    (count,) = conn.execute(f"SELECT count(*) FROM {quote_identifier(table)}").fetchone()
    return int(count)
