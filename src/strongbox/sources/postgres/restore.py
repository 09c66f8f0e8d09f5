"""Full restore of a PostgreSQL snapshot into a database and schema, in one transaction.

PostgreSQL's DDL is transactional, so the whole restore (schema, rows, sequences,
constraints) commits at the end or not at all: on any error or cancellation the target is
left exactly as it was.

Restoring under another schema name: pg_dump qualifies every name with the source
schema, also inside expressions and string literals (``nextval('app.seq'::regclass)``),
so rewriting the SQL text would be guesswork. Instead the DDL runs unchanged against a
schema that, for the length of the transaction, carries the source schema's name; then
that schema is renamed to the target. References between objects are stored by OID
(defaults, foreign keys, views, column types), so they follow the rename, exactly as with
``ALTER SCHEMA ... RENAME``. A schema that already has the source's name is parked under
a temporary name meanwhile; nobody else sees any of it, since it all commits at once.
Function bodies are text and keep the names they were written with, as they would after
a rename by hand.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from strongbox.errors import InvalidRequest, SourceError
from strongbox.progress import NullProgress, Progress
from strongbox.repository.repository import Repository
from strongbox.repository.snapshot import Snapshot
from strongbox.sources.postgres.catalog import (
    SchemaObject,
    find_schema,
    read_objects,
)
from strongbox.sources.postgres.connection import check_identifier, connect, split_password
from strongbox.sources.postgres.ddl import without_create_schema
from strongbox.sources.sqlite.reader import SnapshotReader, TableInfo

CANCEL_CHECK_ROWS = 5000
# Objects that depend on others go first, so one DROP per kind succeeds without CASCADE.
DROP_ORDER = ("MATERIALIZED VIEW", "VIEW", "FOREIGN TABLE", "TABLE", "INDEX", "SEQUENCE",
              "ROUTINE", "DOMAIN", "TYPE")


@dataclass(frozen=True)
class _Plan:
    reader: SnapshotReader
    source_schema: str
    target_schema: str
    ddl: dict[str, str]  # section → SQL
    objects: list[SchemaObject]


def restore_postgres_full(repo: Repository, snapshot: Snapshot, target_dsn: str, *,
                          target_schema: str | None = None, replace: bool = False,
                          dry_run: bool = False,
                          progress: Progress | None = None) -> dict[str, Any]:
    """Restore every table, its rows and the sequences of ``snapshot`` into ``target_dsn``.

    The target database must exist; the schema is created if it does not. Objects of the
    snapshot that already exist in the target schema are refused (InvalidRequest) unless
    ``replace`` is set, which drops them first, in the same transaction. ``dry_run`` does
    all of it and rolls it back: the counts are what a real run would restore.
    """
    progress = progress or NullProgress()
    plan = _plan(repo, snapshot, target_schema)
    target = plan.target_schema
    progress.start(f"restoring into schema {target}", items_total=len(plan.reader.tables()))
    try:
        with connect(target_dsn) as conn:  # commits on success, rolls back on any error
            counts = _restore(conn, plan, replace, progress)
            if dry_run:
                conn.rollback()
    except psycopg.Error as exc:
        where, _ = split_password(target_dsn)
        raise SourceError(f"restore into schema {target!r} of {where} failed; the target "
                          f"is unchanged: {exc}") from exc
    return {"schema": target, "tables": counts, "rows": sum(counts.values()),
            "sequences": len(plan.reader.manifest.get("sequences", {}))}


def _plan(repo: Repository, snapshot: Snapshot, target_schema: str | None) -> _Plan:
    reader = SnapshotReader(repo, snapshot)
    if snapshot.kind != "postgres" or not str(reader.manifest.get("format", "")).startswith(
            "strongbox-postgres/"):
        raise InvalidRequest(f"snapshot {snapshot.short_id} is not a PostgreSQL backup")
    if reader.selective:
        raise InvalidRequest(f"snapshot {snapshot.short_id} is selective; a full restore "
                             "needs a full backup")
    source_schema = str(reader.manifest["schema"])
    target = check_identifier(target_schema or source_schema, "target schema")
    ddl = {entry["section"]: entry["sql"] for entry in reader.schema()}
    objects = [SchemaObject(o["kind"], o["name"], o.get("arguments", ""))
               for o in reader.manifest.get("objects", [])]
    return _Plan(reader, source_schema, target, ddl, objects)


def _restore(conn: psycopg.Connection, plan: _Plan, replace: bool,
             progress: Progress) -> dict[str, int]:
    _clear_target(conn, plan, replace)
    parked = _take_source_name(conn, plan.source_schema, plan.target_schema)
    _execute(conn, without_create_schema(plan.ddl["pre-data"]))
    counts = {}
    for table in plan.reader.tables():
        progress.check_cancelled()
        progress.operation(f"restoring table {table.name}")
        counts[table.name] = _copy_in(conn, plan, table, progress)
        progress.advance(items=1)
    _set_sequences(conn, plan)
    progress.operation("creating keys, indexes and constraints")
    _execute(conn, plan.ddl["post-data"])
    _give_back_source_name(conn, plan.source_schema, plan.target_schema, parked)
    progress.check_cancelled()  # the last point where cancelling still changes nothing
    return counts


def _clear_target(conn: psycopg.Connection, plan: _Plan, replace: bool) -> None:
    existing = _existing(conn, plan.target_schema, plan.objects)
    if not existing:
        return
    if not replace:
        names = ", ".join(f"{o.kind.lower()} {o.name}" for o in existing)
        raise InvalidRequest(
            f"schema {plan.target_schema!r} already has {names}; restore with replace to "
            "drop them, or into another schema",
            details={"schema": plan.target_schema, "existing": [o.to_dict() for o in existing]})
    # No CASCADE: if something outside the snapshot depends on these objects (a view of
    # the user's, a foreign key from another table), the DROP fails and, with it, the
    # whole restore, instead of silently taking that along.
    for kind in DROP_ORDER:
        dropped = [_drop_name(plan.target_schema, o) for o in existing if o.kind == kind]
        if dropped:
            conn.execute(sql.SQL("DROP {} IF EXISTS {}").format(
                sql.SQL(kind), sql.SQL(", ").join(dropped)))


def _drop_name(schema: str, obj: SchemaObject) -> sql.Composable:
    name = sql.Identifier(schema, obj.name)
    if obj.kind != "ROUTINE":
        return name
    # The arguments come from the target's own catalog (pg_get_function_identity_arguments),
    # already in SQL syntax.
    return sql.Composed([name, sql.SQL("(" + obj.arguments + ")")])


def _existing(conn: psycopg.Connection, schema: str,
              objects: list[SchemaObject]) -> list[SchemaObject]:
    """Objects in ``schema`` named like one of ``objects``, as the target has them.

    Names clash within one of PostgreSQL's name spaces (relations and indexes share one,
    types another); a clash would make the DDL fail, and a replace drops what is there,
    whatever its kind. Routines clash by name: a replace drops every overload.
    """
    namespace = find_schema(conn, schema)
    if namespace is None:
        return []
    wanted = {(o.namespace, o.name) for o in objects}
    return [o for o in read_objects(conn, namespace) if (o.namespace, o.name) in wanted]


def _schema_exists(conn: psycopg.Connection, schema: str) -> bool:
    return conn.execute("SELECT FROM pg_catalog.pg_namespace WHERE nspname = %s",
                        (schema,)).fetchone() is not None


def _rename_schema(conn: psycopg.Connection, old: str, new: str) -> None:
    conn.execute(sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(
        sql.Identifier(old), sql.Identifier(new)))


def _take_source_name(conn: psycopg.Connection, source: str, target: str) -> str | None:
    """Make the schema that will end up as ``target`` answer to ``source`` for now.

    Returns the temporary name of a schema parked to free the source name, if any.
    """
    if source == target:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(source)))
        return None
    parked = None
    if _schema_exists(conn, source):
        parked = f"strongbox_parked_{secrets.token_hex(8)}"
        _rename_schema(conn, source, parked)
    if _schema_exists(conn, target):
        _rename_schema(conn, target, source)
    else:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(source)))
    return parked


def _give_back_source_name(conn: psycopg.Connection, source: str, target: str,
                           parked: str | None) -> None:
    if source == target:
        return
    _rename_schema(conn, source, target)
    if parked is not None:
        _rename_schema(conn, parked, source)


def _execute(conn: psycopg.Connection, script: str) -> None:
    # Without parameters psycopg sends the script as one simple query, which may hold
    # many statements; pg_dump's session SETs in it last until this connection closes.
    conn.execute(script.encode())


def _copy_in(conn: psycopg.Connection, plan: _Plan, table: TableInfo,
             progress: Progress) -> int:
    """COPY the table's stored rows in; returns how many."""
    query = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(plan.source_schema, table.name),
        sql.SQL(", ").join(sql.Identifier(c) for c in table.columns))
    count = 0
    with conn.cursor() as cur, cur.copy(query) as copy:
        # Values are PostgreSQL's own text forms; write_row escapes them for COPY's text
        # format, and each column's input function turns them back into the value.
        for row in plan.reader.rows(table.name):
            copy.write_row(row)
            count += 1
            if count % CANCEL_CHECK_ROWS == 0:
                progress.check_cancelled()
    if count != table.rows:
        raise SourceError(f"table {table.name}: the snapshot holds {count} rows, its "
                          f"metadata says {table.rows} (damaged snapshot)")
    return count


def _set_sequences(conn: psycopg.Connection, plan: _Plan) -> None:
    for name, position in plan.reader.manifest.get("sequences", {}).items():
        conn.execute("SELECT pg_catalog.setval(%s::regclass, %s, %s)",
                     (sql.Identifier(plan.source_schema, name).as_string(conn),
                      position["last_value"], position["is_called"]))
