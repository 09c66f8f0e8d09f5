"""Read a live SQLite database through the same interface as a database snapshot.

Export, preview and import code is written once against ``SnapshotReader``'s methods
(tables, table, rows, links, graph, schema); this class offers them over an open database
so the same code exports a live database as it exports a backup.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from strongbox.errors import InvalidRequest, SourceError
from strongbox.sources.sqlite.backup import _schema
from strongbox.sources.sqlite.codec import text_factory
from strongbox.sources.sqlite.foreign_keys import (
    ForeignKey,
    ForeignKeyGraph,
    primary_key,
    table_columns,
)
from strongbox.sources.sqlite.reader import TableInfo
from strongbox.sources.sqlite.selection import Key
from strongbox.sources.sqlite.table_rows import table_rows


class LiveDatabaseReader:
    selective = False

    def __init__(self, db_path: str | Path, *, selection: dict[str, set[Key]] | None = None,
                 extra_links: tuple[ForeignKey, ...] = ()) -> None:
        path = Path(db_path)
        if not path.is_file():
            raise SourceError(f"{path}: no such SQLite database")
        self.conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        self.conn.text_factory = text_factory
        try:
            self._graph = ForeignKeyGraph.from_connection(self.conn, extra_links)
        except sqlite3.DatabaseError as exc:
            raise SourceError(f"{path}: cannot read as SQLite ({exc})") from exc
        self.selection = selection
        self.manifest: dict[str, Any] = {"source": str(path.absolute())}

    def close(self) -> None:
        self.conn.close()

    def graph(self) -> ForeignKeyGraph:
        return self._graph

    def links(self) -> list[ForeignKey]:
        return list(self._graph.links)

    def schema(self) -> list[dict[str, str]]:
        return _schema(self.conn)

    def _names(self) -> list[str]:
        order = self._graph.topological_order()
        if self.selection is None:
            return order
        return [t for t in order if t in self.selection]

    def tables(self) -> list[TableInfo]:
        return [self.table(name) for name in self._names()]

    def table(self, name: str) -> TableInfo:
        if name not in self._graph.tables:
            raise InvalidRequest(f"no table {name!r} in the database")
        key = primary_key(self.conn, name)
        chosen = None if self.selection is None else self.selection.get(name, set())
        rows = (len(chosen) if chosen is not None else
                self.conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0])
        return TableInfo(name, table_columns(self.conn, name), key, rows, "rowid" in key)

    def rows(self, name: str) -> Iterator[tuple[Any, ...]]:
        """Rows in key order; for rowid-keyed tables the rowid comes first, as in snapshots."""
        info = self.table(name)
        chosen = None if self.selection is None else self.selection.get(name, set())
        return table_rows(self.conn, name, info.columns, info.primary_key, chosen)
