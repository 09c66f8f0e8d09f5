"""Selective and merge restores of a PostgreSQL snapshot: chosen rows, into live data.

The request, the plan, the result and the choice of rows are the SQLite engine's
(sources/sqlite/restore_plan.py), so both engines follow seed 000 the same way: modes
``selective`` and ``merge``, ``on_conflict`` skip / overwrite / rename / merge / fail,
``maintain_ids`` false with ``id_mappings``, and a dry run that does the same work and
rolls it back, so its plan predicts the real run exactly.

How rows are written:

* One transaction on the target for everything; any error or a cancel rolls it back. Only
  sequences are not transactional in PostgreSQL: a failed run may leave gaps in them (as
  any failed INSERT does), never a value that is in use. A dry run never touches one.
* Rows are read from the snapshot in the backup's table order (parents first) and handled
  in batches: one query finds the target rows that share a key or a unique value with the
  batch, then each row is decided in order against that view, which is kept up to date with
  the batch's own decisions, and the batch is written with COPY (inserts) and pipelined
  UPDATEs, in the order the rows were decided.
* Values stay in PostgreSQL's text form from end to end: the snapshot holds what each type's
  output function wrote, target rows are read back with COPY in the same form (so a
  comparison is a comparison of texts), and writes go through each type's input function.
* A row that gets a new key (``rename``, ``maintain_ids`` false) takes it from the column's
  own sequence or identity (a new UUID for text and uuid keys); every later row pointing at
  it is rewritten. A row left out takes the rows that point at it along.
* Rows of a foreign-key cycle (a self-reference, say) may point at rows written later: such
  links are written NULL and set once the cycle's tables are done; constraints declared
  DEFERRABLE are deferred to the end of the restore.
* Afterwards every sequence feeding a restored column is moved past the largest value in
  it, so the application's next INSERT does not collide with a restored row.
* ``replace_tables`` (seed 002's import mode ``replace``) first deletes the target rows the
  restore does not bring back, children first; rows that come back are overwritten.
* Rows of a table without a primary key cannot be named by key: they are taken when the
  rows they point at are taken (see ``merge_run.RowRestore._keyless_wanted``).

A target schema that has none of the snapshot's tables gets them first, from the backup's
DDL, as in a full restore (restore.py); keys, indexes and constraints are then built after
the rows.

Where things are: this module has the entry points (and the full mode, which is restore.py's
work); merge_run.py the transaction's work across tables; merge_writer.py the reading and
writing of one table's batches; merge_target.py the target tables' shape; ids.py new key
values and sequences. The per-row decisions are shared with SQLite (sources/row_merge.py).
"""

from __future__ import annotations

from dataclasses import replace

import psycopg
from psycopg import sql

from strongbox.errors import InvalidRequest, SourceError
from strongbox.progress import NullProgress, Progress
from strongbox.repository.repository import Repository
from strongbox.repository.snapshot import Snapshot
from strongbox.sources.postgres import catalog
from strongbox.sources.postgres.backup import backup_postgres
from strongbox.sources.postgres.connection import check_identifier, connect, split_password
from strongbox.sources.postgres.merge_run import RowRestore
from strongbox.sources.postgres.merge_target import error_message
from strongbox.sources.postgres.restore import restore_postgres_full
from strongbox.sources.row_merge import tables_in_order
from strongbox.sources.sqlite.foreign_keys import ForeignKeyGraph
from strongbox.sources.sqlite.reader import SnapshotReader
from strongbox.sources.sqlite.restore_plan import (
    RestorePlan,
    RestoreRequest,
    RestoreResult,
    TablePlan,
    choose_rows,
)

__all__ = ["plan_restore_postgres", "restore_postgres"]

BATCH_ROWS = 2000  # rows decided and written together; also the cancellation interval


def plan_restore_postgres(repo: Repository, snapshot: Snapshot | str, target_dsn: str,
                          request: RestoreRequest, *,
                          target_schema: str | None = None) -> RestorePlan:
    """What :func:`restore_postgres` would do, row for row; the target keeps its content."""
    return restore_postgres(repo, snapshot, target_dsn, replace(request, dry_run=True),
                            target_schema=target_schema).plan


def restore_postgres(repo: Repository, snapshot: Snapshot | str, target_dsn: str,
                     request: RestoreRequest | None = None, *,
                     target_schema: str | None = None, replace_objects: bool = False,
                     progress: Progress | None = None) -> RestoreResult:
    """Restore a PostgreSQL snapshot into ``target_dsn`` in any mode, as ``restore_sqlite``
    does for SQLite: same request, same plan, same result.

    ``target_schema`` defaults to the backed-up schema. ``full`` mode is
    :func:`~strongbox.sources.postgres.restore.restore_postgres_full` (``replace_objects``
    drops clashing objects first); ``selective`` and ``merge`` write rows into the live
    tables, or into a new schema built from the backup's DDL.
    """
    request = request or RestoreRequest()
    request.validate()
    progress = progress or NullProgress()
    snap = repo.load_snapshot(snapshot) if isinstance(snapshot, str) else snapshot
    reader = SnapshotReader(repo, snap)
    if snap.kind != "postgres":
        raise InvalidRequest(f"snapshot {snap.short_id} is not a PostgreSQL backup")
    if request.mode == "full":
        return _full(repo, snap, reader, target_dsn, request, target_schema, replace_objects,
                     progress)
    source_schema = str(reader.manifest["schema"])
    target = check_identifier(target_schema or source_schema, "target schema")
    graph = reader.graph()
    tables = tables_in_order(reader, graph, request)
    choice = choose_rows(reader, _keyed_graph(reader, graph), request)
    progress.start("restoring", items_total=sum(choice.count(t.name, t.rows) for t in tables))
    destructive = request.replace_tables or request.on_conflict in ("overwrite", "merge")
    safety = _safety_backup(repo, target_dsn, target, request, progress, destructive)
    try:
        with connect(target_dsn) as conn:  # commits at the end, rolls back on any error
            run = RowRestore(conn, reader, graph, request, choice, progress,
                             batch_rows=BATCH_ROWS)
            run.run(tables, source_schema, target)
            if request.dry_run:
                conn.rollback()
    except psycopg.Error as exc:
        where, _ = split_password(target_dsn)
        raise SourceError(f"restore into schema {target!r} of {where} failed; the target is "
                          f"unchanged: {error_message(exc)}") from exc
    return RestoreResult.from_plan(run.plan, run.id_mappings, safety, request.dry_run)


def _full(repo: Repository, snap: Snapshot, reader: SnapshotReader, dsn: str,
          request: RestoreRequest, target_schema: str | None, replace_objects: bool,
          progress: Progress) -> RestoreResult:
    if request.tables is not None:
        raise InvalidRequest("a full PostgreSQL restore takes every table; use selective or "
                             "merge mode for some tables")
    schema = check_identifier(target_schema or str(reader.manifest["schema"]), "target schema")
    replaced = _row_counts(dsn, schema, [t.name for t in reader.tables()]) \
        if replace_objects else {}
    safety = _safety_backup(repo, dsn, schema, request, progress, destructive=replace_objects)
    done = restore_postgres_full(repo, snap, dsn, target_schema=target_schema,
                                 replace=replace_objects, dry_run=request.dry_run,
                                 progress=progress)
    plan = RestorePlan("full")
    for info in reader.tables():
        plan.tables.append(TablePlan(info.name, insert=done["tables"].get(info.name, 0),
                                     delete=replaced.get(info.name, 0)))
    plan.total_rows = int(done["rows"])
    return RestoreResult.from_plan(plan, {}, safety, request.dry_run)


def _row_counts(dsn: str, schema: str, tables: list[str]) -> dict[str, int]:
    """Rows in those of ``tables`` the target schema has: what a full restore replaces."""
    with connect(dsn, autocommit=True) as conn:
        namespace = catalog.find_schema(conn, schema)
        if namespace is None:
            return {}
        there = {t.name for t in catalog.read_tables(conn, namespace)} & set(tables)
        counts = {}
        for name in sorted(there):
            row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(
                sql.Identifier(schema, name))).fetchone()
            counts[name] = int(row[0]) if row else 0
        return counts


def _keyed_graph(reader: SnapshotReader, graph: ForeignKeyGraph) -> ForeignKeyGraph:
    """The graph without the links of tables that have no primary key.

    The choice of rows names rows by key, which such tables lack; their rows are taken
    by the rows they point at instead (RowRestore._keyless_wanted).
    """
    keyless = {t.name for t in reader.tables() if not t.primary_key}
    if not keyless:
        return graph
    return ForeignKeyGraph(graph.tables, [link for link in graph.links if not keyless & {
        link.child_table, link.parent_table}])


def _safety_backup(repo: Repository, dsn: str, schema: str, request: RestoreRequest,
                   progress: Progress, destructive: bool) -> str | None:
    """A backup of the target schema before a restore that can change its rows.

    ``destructive``: the restore can change or delete rows (overwrite, merge, replace, a
    full restore that drops tables). Purely additive ones need none, nor does a dry run.
    Taken before the restore's transaction starts: rows the application writes in between
    are in neither.
    """
    if request.dry_run or not request.safety_backup or not destructive:
        return None
    with connect(dsn, autocommit=True) as conn:
        namespace = catalog.find_schema(conn, schema)
        if namespace is None or not catalog.read_tables(conn, namespace):
            return None
    progress.operation("safety backup")
    return backup_postgres(repo, dsn, schema=schema, tags=["safety"]).id
