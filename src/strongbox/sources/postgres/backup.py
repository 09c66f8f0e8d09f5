"""Record-aware backup of one schema of a PostgreSQL database.

Everything is read from one point in time: a REPEATABLE READ, READ ONLY transaction
exports its snapshot, pg_dump writes the DDL from that snapshot, and the same transaction
reads the catalog and streams every table with COPY. The snapshot has the same layout as
a SQLite one, so the shared :class:`~strongbox.sources.sqlite.reader.SnapshotReader`
reads both:

``tables/<name>``  rows in primary-key order as a row stream (sqlite/codec.py) of each
                   value's PostgreSQL text form, or None for NULL; ``meta`` holds columns,
                   their types, the primary key and the row count
``schema.sql``     JSON list of the pg_dump DDL, one entry per section (ddl.py)
``manifest.json``  source (without password), schema, row counts in restore order,
                   foreign-key links, sequence positions, indexes, objects, text settings

Text is lossless for every type: each type's output function writes what its input
function reads back to the same value (numeric digits, bytea hex, json as written, arrays
with their quoting, NaN and infinities), under the fixed settings of connection.py.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Generator, Iterator, Sequence
from typing import Any

import psycopg
from psycopg import sql

from strongbox.errors import SourceError
from strongbox.progress import NullProgress, Progress
from strongbox.repository.repository import Repository
from strongbox.repository.snapshot import Snapshot
from strongbox.repository.tree import Node, Tree
from strongbox.sources.postgres import catalog
from strongbox.sources.postgres.catalog import TableDef
from strongbox.sources.postgres.connection import (
    TEXT_SETTINGS,
    check_identifier,
    connect,
    split_password,
)
from strongbox.sources.postgres.ddl import SECTIONS, dump_section
from strongbox.sources.sqlite.backup import contents_summary
from strongbox.sources.sqlite.codec import IteratorReader, encode_rows
from strongbox.sources.sqlite.foreign_keys import ForeignKeyGraph

FORMAT = "strongbox-postgres/1"


def backup_postgres(repo: Repository, dsn: str, *, schema: str = "public",
                    tags: Sequence[str] = (), progress: Progress | None = None) -> Snapshot:
    """Back up every table of ``schema``, with its DDL and sequences, as one snapshot."""
    progress = progress or NullProgress()
    check_identifier(schema, "schema")
    conninfo, password = split_password(dsn)
    stats_before = dict(repo.stats)
    progress.start("opening a snapshot of the database")
    try:
        with connect(dsn) as conn:
            nodes, counts = _read_snapshot(repo, conn, conninfo, password, schema, progress)
    except psycopg.Error as exc:
        raise SourceError(f"backup of PostgreSQL schema {schema!r} failed: {exc}") from exc
    summary = {"tables": counts, "contents": contents_summary(counts), "selective": False,
               "schema": schema,
               **{k: v - stats_before[k] for k, v in repo.stats.items()}}
    snap = Snapshot(tree=repo.save_tree(Tree(nodes)), paths=[f"{conninfo} schema={schema}"],
                    tags=list(tags), kind="postgres", summary=summary)
    repo.save_snapshot(snap)
    return snap


def _read_snapshot(repo: Repository, conn: psycopg.Connection, conninfo: str,
                   password: str | None, schema: str,
                   progress: Progress) -> tuple[list[Node], dict[str, int]]:
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    conn.read_only = True
    # The first statement fixes the transaction's snapshot; exporting it lets pg_dump,
    # in its own session, see exactly what this transaction sees.
    snapshot_id = _one(conn, "SELECT pg_catalog.pg_export_snapshot()")
    namespace = catalog.schema_oid(conn, schema)
    tables = catalog.read_tables(conn, namespace)
    _lock(conn, schema, tables)
    ddl = [{"type": "ddl", "name": schema, "table": "", "section": section,
            "sql": dump_section(conninfo, password, snapshot_id, schema, section)}
           for section in SECTIONS]
    links = catalog.read_foreign_keys(conn, namespace)
    order = ForeignKeyGraph([t.name for t in tables], links).topological_order()
    by_name = {t.name: t for t in tables}
    progress.start("reading tables", items_total=len(tables))
    counts: dict[str, int] = {}
    table_nodes = []
    for name in order:
        progress.check_cancelled()
        progress.operation(f"reading table {name}")
        node = _table_node(repo, conn, schema, by_name[name], progress)
        counts[name] = node.meta["rows"] if node.meta else 0
        table_nodes.append(node)
        progress.advance(items=1)
    manifest = {
        "format": FORMAT, "source": conninfo, "schema": schema, "selective": False,
        "filters": None, "server_version": _one(conn, "SHOW server_version"),
        "server_encoding": _one(conn, "SHOW server_encoding"),
        "text_settings": TEXT_SETTINGS, "tables": counts,
        "links": [link.__dict__ for link in links],
        "sequences": catalog.read_sequences(conn, schema, namespace),
        "indexes": catalog.read_indexes(conn, namespace),
        "objects": [o.to_dict() for o in catalog.read_objects(conn, namespace)],
    }
    nodes = [
        Node(name="tables", type="dir", mode=0o755, subtree=repo.save_tree(Tree(table_nodes))),
        _document_node(repo, "schema.sql", ddl, progress),
        _document_node(repo, "manifest.json", manifest, progress),
    ]
    return nodes, counts


def _one(conn: psycopg.Connection, query: str) -> Any:
    row = conn.execute(query).fetchone()
    assert row is not None  # these queries always return one row
    return row[0]


def _lock(conn: psycopg.Connection, schema: str, tables: list[TableDef]) -> None:
    """Hold ACCESS SHARE locks until the backup ends, as pg_dump does.

    The snapshot alone does not stop another session from dropping or rewriting a table
    (ALTER TABLE, TRUNCATE) before COPY reaches it; the lock makes such DDL wait.
    """
    if tables:
        conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS SHARE MODE").format(
            sql.SQL(", ").join(sql.Identifier(schema, t.name) for t in tables)))


def _table_node(repo: Repository, conn: psycopg.Connection, schema: str, table: TableDef,
                progress: Progress) -> Node:
    # Closed explicitly: a COPY cut short (cancelled, failed) must end before the
    # transaction does, not whenever the generator is collected.
    with contextlib.closing(_copy_rows(conn, schema, table)) as copied:
        rows = _CountedRows(copied)
        content, size = repo.save_stream(IteratorReader(encode_rows(rows)), progress)
    return Node(name=table.name, type="stream", size=size, content=content,
                meta={"columns": table.columns, "types": table.types,
                      "primary_key": table.primary_key, "generated": table.generated,
                      "rows": rows.count})


def _copy_rows(conn: psycopg.Connection, schema: str,
               table: TableDef) -> Generator[tuple[str | None, ...], None, None]:
    """The table's rows in key order, each value in its text form (None for NULL).

    ONLY keeps inheritance children's rows out (they are tables of their own); a
    partitioned table has no rows but its partitions', so it is read whole.
    """
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in table.columns)
    source = sql.SQL("{}" if table.partitioned else "ONLY {}").format(
        sql.Identifier(schema, table.name))
    query = sql.SQL("COPY (SELECT {} FROM {}{}) TO STDOUT").format(
        columns, source, _order_by(table))
    with conn.cursor() as cur, cur.copy(query) as copy:
        # Without declared types, psycopg parses COPY's text format (escapes, \N) and
        # hands each value over as the str PostgreSQL wrote.
        yield from copy.rows()


def _order_by(table: TableDef) -> sql.Composable:
    # Key order lets restores and previews find rows by key; a table without a primary
    # key is read in storage order (its columns may have no ordering, like json).
    if not table.primary_key:
        return sql.SQL("")
    return sql.SQL(" ORDER BY {}").format(
        sql.SQL(", ").join(sql.Identifier(c) for c in table.primary_key))


class _CountedRows:
    def __init__(self, rows: Iterator[tuple[Any, ...]]) -> None:
        self._rows = rows
        self.count = 0

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        for row in self._rows:
            self.count += 1
            yield row


def _document_node(repo: Repository, name: str, document: Any, progress: Progress) -> Node:
    content, size = repo.save_stream(IteratorReader([json.dumps(document).encode()]),
                                     progress)
    return Node(name=name, type="stream", size=size, content=content)
