"""Read a database snapshot back: schema, links, tables and their rows, and the page copy.

Restore, preview, export and verification all read snapshots through this one class, so
the snapshot layout (see backup.py) is known in two places only: where it is written and
here. A table's rows come from its row stream, or, in a full SQLite backup, from the page
copy (page_copy_rows.py); either way they come out the same: typed, in key order.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from strongbox.errors import InvalidRequest, SourceError
from strongbox.repository.repository import Repository
from strongbox.repository.snapshot import Snapshot
from strongbox.repository.tree import Node
from strongbox.sources.sqlite.codec import decode_rows
from strongbox.sources.sqlite.foreign_keys import ForeignKey, ForeignKeyGraph
from strongbox.sources.sqlite.page_copy_rows import ROWS_IN_PAGE_COPY, PageCopyTables


@dataclass(frozen=True)
class TableInfo:
    name: str
    columns: list[str]
    primary_key: tuple[str, ...]
    rows: int
    has_rowid_key: bool  # key is SQLite's implicit rowid (stored as the first value)


def project(rows: Iterable[tuple[Any, ...]], info: TableInfo, columns: Sequence[str]
            ) -> Iterator[tuple[Any, ...]]:
    """Only ``columns`` of full rows shaped as ``info`` says."""
    offset = 1 if info.has_rowid_key else 0
    position = {name: index + offset for index, name in enumerate(info.columns)}
    if info.has_rowid_key:
        position["rowid"] = 0
    picks = [position[c] for c in columns]
    return (tuple(row[p] for p in picks) for row in rows)


class SnapshotReader:
    def __init__(self, repo: Repository, snapshot: Snapshot) -> None:
        if snapshot.kind not in ("sqlite", "postgres"):
            raise InvalidRequest(f"snapshot {snapshot.short_id} is a {snapshot.kind} backup, "
                                 "not a database backup")
        self.repo = repo
        self.snapshot = snapshot
        root = repo.load_tree(snapshot.tree)
        self._root = {n.name: n for n in root.nodes}
        self.manifest: dict[str, Any] = json.loads(self._stream("manifest.json"))
        if self.manifest.get("format", "").split("/")[0] not in ("strongbox-sqlite",
                                                                  "strongbox-sqlite-pages",
                                                                  "strongbox-postgres"):
            raise SourceError(f"snapshot {snapshot.short_id}: unknown database format")
        tables_node = self._root["tables"]
        assert tables_node.subtree is not None
        stored = {n.name: n for n in repo.load_tree(tables_node.subtree).nodes}
        # A tree keeps its nodes sorted by name; the manifest keeps the backup's table
        # order (parents before children), which restores depend on.
        order = [name for name in self.manifest.get("tables", {}) if name in stored]
        self._tables: dict[str, Node] = {name: stored[name] for name in order}
        self._tables.update(stored)
        self._page_tables: PageCopyTables | None = None

    def close(self) -> None:
        """Remove the scratch copy a page-copy read made (also done when collected)."""
        if self._page_tables is not None:
            self._page_tables.close()

    def __enter__(self) -> SnapshotReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _stream(self, name: str) -> bytes:
        node = self._root.get(name)
        if node is None:
            raise SourceError(f"snapshot {self.snapshot.short_id} has no {name}")
        return b"".join(self.repo.read_stream(node.content))

    @property
    def selective(self) -> bool:
        return bool(self.manifest.get("selective"))

    def schema(self) -> list[dict[str, str]]:
        """CREATE statements: dicts with type, name, table, sql; tables first."""
        return list(json.loads(self._stream("schema.sql")))

    def links(self) -> list[ForeignKey]:
        return [ForeignKey(d["child_table"], tuple(d["child_columns"]), d["parent_table"],
                           tuple(d["parent_columns"])) for d in self.manifest["links"]]

    def graph(self) -> ForeignKeyGraph:
        return ForeignKeyGraph(list(self._tables), self.links())

    def tables(self) -> list[TableInfo]:
        """Tables in the order they were stored (parents before children)."""
        return [self.table(name) for name in self._tables]

    def table(self, name: str) -> TableInfo:
        node = self._tables.get(name)
        if node is None:
            raise InvalidRequest(f"table {name!r} is not in snapshot {self.snapshot.short_id}")
        meta = node.meta or {}
        return TableInfo(name, list(meta["columns"]), tuple(meta["primary_key"]),
                         int(meta["rows"]), bool(meta.get("rowid")))

    def rows(self, name: str) -> Iterator[tuple[Any, ...]]:
        """Rows in key order; for rowid-keyed tables the rowid comes first."""
        node = self._tables.get(name)
        if node is None:
            raise InvalidRequest(f"table {name!r} is not in snapshot {self.snapshot.short_id}")
        if (node.meta or {}).get("rows_in") == ROWS_IN_PAGE_COPY:
            return self._page_copy_tables().rows(name, *self._key_shape(name))
        return decode_rows(self.repo.read_stream(node.content))

    def column_rows(self, name: str, columns: Sequence[str]) -> Iterator[tuple[Any, ...]]:
        """Only ``columns`` of each row ("rowid" for the rowid of a rowid-keyed table), in
        key order: from a page copy SQLite reads nothing else, which is what makes
        foreign-key lookups over a large full backup quick."""
        node = self._tables.get(name)
        if node is not None and (node.meta or {}).get("rows_in") == ROWS_IN_PAGE_COPY:
            return self._page_copy_tables().column_values(name, columns,
                                                          self.table(name).primary_key)
        return project(self.rows(name), self.table(name), columns)

    def _key_shape(self, name: str) -> tuple[list[str], tuple[str, ...]]:
        info = self.table(name)
        return info.columns, info.primary_key

    def _page_copy_tables(self) -> PageCopyTables:
        if self._page_tables is None:
            node = self.page_copy()
            if node is None:
                raise SourceError(f"snapshot {self.snapshot.short_id}: its tables are in a "
                                  "page copy the snapshot does not have")
            self._page_tables = PageCopyTables(self.repo, node,
                                               f"snapshot {self.snapshot.short_id}")
        return self._page_tables

    def page_copy(self) -> Node | None:
        """The file node of the exact page-level copy (full backups only)."""
        return self._root.get("database.sqlite")
