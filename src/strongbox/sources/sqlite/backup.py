"""Record-aware backup of a SQLite database.

The backup reads one point in time of the database while the application keeps writing
(see consistent_view: a WAL database is read in place inside read transactions pinned to
one commit; other databases through a private copy made with the online backup API). From
that moment it stores:

``database.sqlite``  the page-level copy, for an exact full restore (chunked, so unchanged
                     pages deduplicate across backups); full backups only
``schema.sql``       every CREATE statement, in dependency order
``tables/<name>``    one node per table: columns, key and row count in the node's ``meta``,
                     and the table's rows as a typed row stream (see codec.py) in key
                     order, or, in a full backup, ``meta.rows_in = "database.sqlite"``:
                     the rows are read from the page copy (page_copy_rows.py) instead of
                     being stored twice
``manifest.json``    source, filters, foreign-key links, row counts per table

A selective backup (filters) stores only the chosen rows, with their foreign-key closure,
as row streams. A full backup stores row streams as well only when asked
(``row_streams=True``): they cost most of a full backup's time and double what it writes.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, BinaryIO

from strongbox.errors import SourceError
from strongbox.moments import date_range
from strongbox.progress import NullProgress, Progress
from strongbox.repository.repository import Repository
from strongbox.repository.snapshot import Snapshot
from strongbox.repository.tree import Node, Tree
from strongbox.sources.sqlite.codec import IteratorReader, encode_batches, text_factory
from strongbox.sources.sqlite.foreign_keys import (
    ForeignKey,
    ForeignKeyGraph,
    primary_key,
    quote_identifier,
    table_columns,
)
from strongbox.sources.sqlite.page_copy_rows import ROWS_IN_PAGE_COPY
from strongbox.sources.sqlite.selection import (
    Key,
    Selection,
    child_count_filter,
    detect_timestamp_column,
    filter_by_date,
    select_closure,
)
from strongbox.sources.sqlite.table_rows import count_rows, row_batches

# Every table as a row stream (selective backups, or row_streams=True): the layout any
# Strongbox reads. Tables read from the page copy (meta.rows_in) get a format name of their
# own, so a reader that predates it refuses the snapshot instead of seeing empty tables.
FORMAT = "strongbox-sqlite/1"
FORMAT_TABLES_IN_PAGE_COPY = "strongbox-sqlite-pages/1"
# How long a backup waits for the application's write transaction to end before taking the
# write lock for an instant (see _pinned_pair); past that it falls back to a private copy.
WRITE_LOCK_WAIT = 5.0

# Seed 000's BackupContents counters and the tables they count, where such tables exist.
CONTENT_COUNTERS = {
    "projects_count": "projects",
    "sessions_count": "sessions",
    "messages_count": "messages",
    "prompts_count": "prompts",
    "ai_settings_count": "ai_settings",
}
# The page copy is compressed and sealed on this many threads at once (zstd, AES-GCM
# and BLAKE3 release the GIL).
BLOB_WORKERS = max(2, min(4, os.cpu_count() or 2))
# Tables whose creation times give a database backup's date range, best first.
DATE_RANGE_TABLES = ("sessions", "projects")


@dataclass
class DatabaseFilters:
    """Which rows a selective backup takes (seed 000 BackupFilters, generalised)."""

    records: dict[str, list[Any]] = field(default_factory=dict)  # table → key values
    date_start: datetime | str | None = None
    date_end: datetime | str | None = None
    date_columns: dict[str, str] = field(default_factory=dict)  # table → column
    min_children: int | None = None
    max_children: int | None = None
    count_parent: str = "sessions"
    count_child: str = "messages"
    include_tables: Sequence[str] = ()
    exclude_tables: Sequence[str] = ()

    def is_empty(self) -> bool:
        return not (self.records or self.date_start or self.date_end
                    or self.min_children is not None or self.max_children is not None
                    or self.include_tables or self.exclude_tables)

    def to_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, datetime) else v) for k, v in self.__dict__.items()
                if v not in (None, {}, (), [])}


@dataclass
class SourceView:
    """One point in time of the source database, as read by a backup.

    ``conn`` serves every read for the row streams; ``page_copy`` (called at most once,
    on the page thread) opens a file holding the page-level copy of the same moment.
    """

    conn: sqlite3.Connection
    page_copy: Callable[[], BinaryIO]


@contextlib.contextmanager
def consistent_view(db_path: Path) -> Iterator[SourceView]:
    """A consistent view of the database while the application keeps writing.

    WAL databases are read in place: two read transactions that start while a write lock
    is held see the same commit, one serving the row streams, the other feeding the online
    backup API for the page copy (no private copy to make first, and the two run on both
    cores). When the WAL is empty at that moment, the database file itself is the page
    copy (see _frozen_file). Other databases, and sources this process may not lock for
    writing, are read from a private copy as before (see consistent_copy).
    """
    if not db_path.is_file():
        raise SourceError(f"{db_path}: no such SQLite database")
    uri = db_path.absolute().as_uri()
    with contextlib.ExitStack() as stack:
        try:
            pinned = _pinned_pair(db_path, uri, stack)
        except (sqlite3.DatabaseError, OSError) as exc:
            raise SourceError(f"{db_path}: cannot read as SQLite ({exc})") from exc
        if pinned is None:
            conn = stack.enter_context(consistent_copy(db_path))
            copy_path = Path(conn.execute("PRAGMA database_list").fetchone()[2])
            yield SourceView(conn, lambda: open(copy_path, "rb"))  # noqa: SIM115
            return
        rows, pages, frozen = pinned
        rows.text_factory = text_factory
        if frozen is not None:
            yield SourceView(rows, lambda: frozen)
            return
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(
            prefix="strongbox-sqlite-"))) / "pages.sqlite"
        yield SourceView(rows, lambda: _backup_to_file(pages, scratch))


def _connect_ro(uri: str) -> sqlite3.Connection:
    # as_uri() percent-encodes the path: a raw "#", "?" or "%" in a file name would
    # otherwise be read as URI syntax and open (even create) a different file.
    return sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=30, isolation_level=None,
                           check_same_thread=False)


def _pinned_pair(db_path: Path, uri: str, stack: contextlib.ExitStack
                 ) -> tuple[sqlite3.Connection, sqlite3.Connection, BinaryIO | None] | None:
    """Two read connections pinned to the same commit, or None (use a private copy); and
    the database file when it is the page copy of that commit (see _frozen_file).

    In WAL mode a read transaction sees the last commit made before its first read and
    keeps seeing it however long it lasts, without blocking writers. Both first reads
    happen while a third connection holds the write lock (BEGIN IMMEDIATE), so no commit
    can fall between them; the lock is released at once, before the long reads start.
    """
    # Opened before SQLite opens it, to be sure below that both are the same file.
    db_file = stack.enter_context(open(db_path, "rb"))  # noqa: SIM115
    rows = stack.enter_context(contextlib.closing(_connect_ro(uri)))
    if rows.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        return None  # rollback journal: a long read would block the writers; copy instead
    pages = stack.enter_context(contextlib.closing(_connect_ro(uri)))
    try:
        lock = sqlite3.connect(f"{uri}?mode=rw", uri=True, timeout=WRITE_LOCK_WAIT,
                               isolation_level=None)
    except sqlite3.OperationalError:
        return None  # cannot open for writing (permissions): copy instead
    with contextlib.closing(lock):
        try:
            lock.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:
            return None  # read-only file or a writer holding on for too long
        try:
            for conn in (rows, pages):
                conn.execute("BEGIN")
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            frozen = _frozen_file(db_path, db_file, pages)
        finally:
            lock.execute("ROLLBACK")
    return rows, pages, frozen


def _frozen_file(db_path: Path, db_file: BinaryIO, pinned: sqlite3.Connection
                 ) -> BinaryIO | None:
    """The database file, if it holds exactly the pinned commit and will not change.

    Called while the write lock is held, after the read transactions began. An empty WAL
    means no commit is waiting in it: the pinned commit is the database file as it is.
    Readers that began on an empty WAL read the file directly and hold SQLite's
    "read mark 0" lock, which a checkpoint must take exclusively before it writes into the
    database file, and in WAL mode nothing else writes there; so the file stays as it is
    until the read transactions end. Its size must be exactly the pinned page count.
    """
    wal = db_path.with_name(db_path.name + "-wal")
    if wal.exists() and wal.stat().st_size:
        return None
    if os.fstat(db_file.fileno()).st_ino != db_path.stat().st_ino:
        return None  # the path was replaced since it was opened
    (page_count,) = pinned.execute("PRAGMA page_count").fetchone()
    (page_size,) = pinned.execute("PRAGMA page_size").fetchone()
    if os.fstat(db_file.fileno()).st_size != page_count * page_size:
        return None
    return db_file


def _backup_to_file(source: sqlite3.Connection, target_path: Path) -> BinaryIO:
    """The page copy of ``source``'s open read transaction: the backup API copies from a
    read transaction that is already open instead of starting its own."""
    target = sqlite3.connect(target_path)
    with contextlib.closing(target):
        _scratch_pragmas(target)
        source.backup(target)
    return open(target_path, "rb")  # closed by _store_page_copy


def _scratch_pragmas(conn: sqlite3.Connection) -> None:
    # A throwaway file: no journal to keep, nothing to fsync.
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")


@contextlib.contextmanager
def consistent_copy(db_path: Path) -> Iterator[sqlite3.Connection]:
    """A private, point-in-time copy of the database, made with the online backup API."""
    if not db_path.is_file():
        raise SourceError(f"{db_path}: no such SQLite database")
    with tempfile.TemporaryDirectory(prefix="strongbox-sqlite-") as tmp:
        copy_path = Path(tmp) / "copy.sqlite"
        try:
            uri = f"{db_path.absolute().as_uri()}?mode=ro"
            source = sqlite3.connect(uri, uri=True, timeout=30)
            target = sqlite3.connect(copy_path)
            with contextlib.closing(source), contextlib.closing(target):
                _scratch_pragmas(target)
                source.backup(target)
        except sqlite3.DatabaseError as exc:
            raise SourceError(f"{db_path}: cannot read as SQLite ({exc})") from exc
        conn = sqlite3.connect(copy_path)
        conn.text_factory = text_factory
        try:
            yield conn
        finally:
            conn.close()


def _schema(conn: sqlite3.Connection) -> list[dict[str, str]]:
    rows = conn.execute(
        "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE sql IS NOT NULL "
        "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' "
        "ORDER BY CASE type WHEN 'table' THEN 0 WHEN 'index' THEN 1 ELSE 2 END, rowid")
    return [{"type": t, "name": n, "table": tb, "sql": s} for t, n, tb, s in rows]


def _select(conn: sqlite3.Connection, graph: ForeignKeyGraph,
            filters: DatabaseFilters) -> Selection | None:
    """Keys of the rows a selective backup keeps; None means every row."""
    roots: dict[str, set[Key]] = {}
    row_filters = False
    for table, keys in filters.records.items():
        roots.setdefault(table, set()).update(k if isinstance(k, tuple) else (k,) for k in keys)
        row_filters = True
    if filters.date_start or filters.date_end:
        row_filters = True
        for table in graph.tables:
            column = filters.date_columns.get(table) or detect_timestamp_column(conn, table)
            if column and not graph.parents(table):
                _intersect(roots, table, filter_by_date(conn, table, column,
                                                        filters.date_start, filters.date_end))
    if filters.min_children is not None or filters.max_children is not None:
        row_filters = True
        _intersect(roots, filters.count_parent,
                   child_count_filter(conn, graph, filters.count_parent, filters.count_child,
                                      filters.min_children, filters.max_children))
    if not row_filters:
        return None
    return select_closure(conn, graph, roots)


def _intersect(roots: dict[str, set[Key]], table: str, keys: set[Key]) -> None:
    roots[table] = roots[table] & keys if table in roots else set(keys)


def _table_wanted(table: str, filters: DatabaseFilters | None) -> bool:
    if filters is None:
        return True
    if filters.include_tables and not any(fnmatchcase(table, p)
                                          for p in filters.include_tables):
        return False
    return not any(fnmatchcase(table, p) for p in filters.exclude_tables)


def _stream_node(repo: Repository, name: str, data: bytes, progress: Progress) -> Node:
    content, size = repo.save_stream(IteratorReader([data]), progress)
    return Node(name=name, type="stream", size=size, content=content)


def backup_sqlite(repo: Repository, db_path: str | Path, *,
                  filters: DatabaseFilters | None = None, tags: Sequence[str] = (),
                  extra_links: Sequence[ForeignKey] = (), row_streams: bool = False,
                  progress: Progress | None = None) -> Snapshot:
    """Back up the database at ``db_path``: all of it, or the rows ``filters`` choose.

    ``row_streams`` makes a full backup store every table as a row stream too, next to
    the page copy (a selective backup always stores row streams, and only those).
    """
    progress = progress or NullProgress()
    db_path = Path(db_path).absolute()
    filters = filters if filters is not None and not filters.is_empty() else None
    streams = filters is not None or row_streams
    stats_before = dict(repo.stats)
    progress.start("copying database")
    with consistent_view(db_path) as view, ThreadPoolExecutor(1) as page_thread:
        # The page copy is taken and stored on a second thread (its chunks compressed
        # and sealed on one thread per core) while the tables are read here: both read
        # the same moment of the database.
        conn = view.conn
        pages = (page_thread.submit(_store_page_copy, repo, view.page_copy, progress)
                 if filters is None else None)
        graph = ForeignKeyGraph.from_connection(conn, extra_links)
        selection = _select(conn, graph, filters) if filters else None
        tables = [t for t in graph.topological_order() if _table_wanted(t, filters)]
        counts = {t: 0 for t in tables}
        progress.operation("reading tables")
        table_nodes = []
        for table in tables:
            progress.check_cancelled()
            if streams:
                chosen = None if selection is None else selection.get(table, set())
                table_nodes.append(_table_node(repo, conn, table, chosen, counts, progress))
            else:
                table_nodes.append(_page_copy_table_node(conn, table, counts))
            progress.advance(items=1)
        nodes = [
            Node(name="tables", type="dir", mode=0o755, subtree=repo.save_tree(Tree(table_nodes))),
            _stream_node(repo, "schema.sql", json.dumps(_schema(conn)).encode(), progress),
        ]
        manifest = {
            "format": FORMAT if streams else FORMAT_TABLES_IN_PAGE_COPY,
            "source": str(db_path), "selective": filters is not None,
            "filters": filters.to_dict() if filters else None,
            "sqlite_version": sqlite3.sqlite_version, "tables": counts,
            "row_streams": streams,
            "links": [link.__dict__ for link in graph.links],
        }
        if filters is None:
            manifest["date_range"] = _date_range(conn, graph)
        nodes.append(_stream_node(repo, "manifest.json", json.dumps(manifest).encode(),
                                  progress))
        if pages is not None:
            nodes.append(pages.result())
    summary = {"tables": counts, "contents": contents_summary(counts),
               "selective": filters is not None,
               **{k: v - stats_before[k] for k, v in repo.stats.items()}}
    snap = Snapshot(tree=repo.save_tree(Tree(nodes)), paths=[str(db_path)], tags=list(tags),
                    kind="sqlite", summary=summary)
    repo.save_snapshot(snap)
    return snap


def _store_page_copy(repo: Repository, page_copy: Callable[[], BinaryIO],
                     progress: Progress) -> Node:
    with page_copy() as fh:
        content, size = repo.save_stream(fh, progress, workers=BLOB_WORKERS)
    return Node(name="database.sqlite", type="file", mode=0o644, size=size, content=content)


def _page_copy_table_node(conn: sqlite3.Connection, table: str,
                          counts: dict[str, int]) -> Node:
    """A table of a full backup whose rows are read from the page copy when needed."""
    columns = table_columns(conn, table)
    key = primary_key(conn, table)
    counts[table] = count_rows(conn, table)
    return Node(name=table, type="stream",
                meta={"columns": columns, "primary_key": list(key), "rows": counts[table],
                      "rowid": "rowid" in key, "rows_in": ROWS_IN_PAGE_COPY})


def _date_range(conn: sqlite3.Connection, graph: ForeignKeyGraph) -> dict[str, str] | None:
    """Earliest and latest ``created_at`` of the sessions (or projects) backed up."""
    for table in DATE_RANGE_TABLES:
        if table in graph.tables and "created_at" in table_columns(conn, table):
            found = date_range(value for (value,) in conn.execute(
                f"SELECT created_at FROM {quote_identifier(table)}"))
            if found:
                return found
    return None


def _table_node(repo: Repository, conn: sqlite3.Connection, table: str,
                chosen: set[Key] | None, counts: dict[str, int], progress: Progress) -> Node:
    columns = table_columns(conn, table)
    key = primary_key(conn, table)
    try:
        # Fast path: SQLite decodes TEXT in C. A table holding TEXT that is not UTF-8
        # makes it fail; that table is read again with the lossless Python decoder.
        conn.text_factory = str
        content, size = _store_rows(repo, conn, table, columns, key, chosen, counts, progress)
    except sqlite3.OperationalError as exc:
        if "decode" not in str(exc):
            raise
        conn.text_factory = text_factory
        content, size = _store_rows(repo, conn, table, columns, key, chosen, counts, progress)
    finally:
        conn.text_factory = text_factory
    return Node(name=table, type="stream", size=size, content=content,
                meta={"columns": columns, "primary_key": list(key), "rows": counts[table],
                      "rowid": "rowid" in key})


def _store_rows(repo: Repository, conn: sqlite3.Connection, table: str, columns: list[str],
                key: tuple[str, ...], chosen: set[Key] | None, counts: dict[str, int],
                progress: Progress) -> tuple[list[str], int]:
    counter = [0]
    batches = row_batches(conn, table, columns, key, chosen)
    content, size = repo.save_stream(IteratorReader(encode_batches(batches, counter)), progress)
    counts[table] = counter[0]
    return content, size


def contents_summary(counts: dict[str, int]) -> dict[str, int]:
    """Seed 000 BackupContents counters from per-table row counts."""
    summary = {field_name: counts.get(table, 0) for field_name, table in CONTENT_COUNTERS.items()}
    summary["total_documents"] = sum(counts.values())
    return summary
