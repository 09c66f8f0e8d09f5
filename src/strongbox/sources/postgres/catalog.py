"""What a PostgreSQL schema holds, read from pg_catalog: tables, keys, links, sequences.

Every query runs in the caller's transaction, so a backup reads the catalog as of the same
snapshot as its rows. The DDL itself comes from pg_dump (see ddl.py); these facts are what
Strongbox needs to stream, order, select and later restore the rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from strongbox.errors import SourceError
from strongbox.sources.sqlite.foreign_keys import ForeignKey

# Relation kinds DDL creates by name, and the DROP that removes each (see restore.py).
RELATION_KINDS = {
    "r": "TABLE", "p": "TABLE", "v": "VIEW", "m": "MATERIALIZED VIEW", "S": "SEQUENCE",
    "f": "FOREIGN TABLE", "i": "INDEX", "I": "INDEX",
}
TYPE_KINDS = ("TYPE", "DOMAIN")


@dataclass(frozen=True)
class TableDef:
    name: str
    oid: int
    partitioned: bool
    columns: list[str]  # the stored ones, in declaration order
    types: list[str]  # format_type() of each stored column
    generated: list[str] = field(default_factory=list)  # computed again on restore
    primary_key: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SchemaObject:
    """A named object pg_dump's DDL creates, which a restore may find already there."""

    kind: str  # a DROP keyword: TABLE, VIEW, SEQUENCE, INDEX, TYPE, DOMAIN, ROUTINE, ...
    name: str
    arguments: str = ""  # a routine's identity arguments, which DROP needs

    @property
    def namespace(self) -> str:
        """Which of PostgreSQL's name spaces within a schema the name lives in."""
        if self.kind in TYPE_KINDS:
            return "type"
        return "routine" if self.kind == "ROUTINE" else "relation"

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "name": self.name, "arguments": self.arguments}


def find_schema(conn: psycopg.Connection, schema: str) -> int | None:
    row = conn.execute("SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = %s",
                       (schema,)).fetchone()
    return None if row is None else int(row[0])


def schema_oid(conn: psycopg.Connection, schema: str) -> int:
    namespace = find_schema(conn, schema)
    if namespace is None:
        raise SourceError(f"schema {schema!r} does not exist in this database")
    return namespace


def read_tables(conn: psycopg.Connection, namespace: int) -> list[TableDef]:
    """Tables with data of their own, by name.

    Partitions are left out: their rows are read (and restored) through the partitioned
    table, which routes each row to its partition.
    """
    rows = conn.execute(
        "SELECT c.oid, c.relname, c.relkind = 'p' FROM pg_catalog.pg_class c "
        "WHERE c.relnamespace = %s AND c.relkind IN ('r', 'p') AND NOT c.relispartition "
        "ORDER BY c.relname", (namespace,)).fetchall()
    return [_table(conn, int(oid), name, bool(partitioned)) for oid, name, partitioned in rows]


def _table(conn: psycopg.Connection, oid: int, name: str, partitioned: bool) -> TableDef:
    attributes = conn.execute(
        "SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), "
        "a.attgenerated <> '' FROM pg_catalog.pg_attribute a "
        "WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        (oid,)).fetchall()
    stored = [(column, type_name) for column, type_name, generated in attributes
              if not generated]
    return TableDef(
        name=name, oid=oid, partitioned=partitioned,
        columns=[column for column, _ in stored], types=[t for _, t in stored],
        generated=[column for column, _, generated in attributes if generated],
        primary_key=read_primary_key(conn, oid))


def read_primary_key(conn: psycopg.Connection, oid: int) -> list[str]:
    rows = conn.execute(
        "SELECT a.attname FROM pg_catalog.pg_index i "
        "CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, position) "
        "JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
        "WHERE i.indrelid = %s AND i.indisprimary ORDER BY k.position", (oid,)).fetchall()
    return [name for (name,) in rows]


def read_foreign_keys(conn: psycopg.Connection, namespace: int) -> list[ForeignKey]:
    """FOREIGN KEY constraints between tables of the schema, columns in constraint order.

    Links to tables in other schemas are not followed: those rows are not in the backup.
    """
    rows = conn.execute(
        "SELECT child.relname, "
        "  ARRAY(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(n, o) "
        "        JOIN pg_catalog.pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n "
        "        ORDER BY k.o)::text[], "
        "  parent.relname, "
        "  ARRAY(SELECT a.attname FROM unnest(c.confkey) WITH ORDINALITY k(n, o) "
        "        JOIN pg_catalog.pg_attribute a ON a.attrelid = c.confrelid "
        "        AND a.attnum = k.n ORDER BY k.o)::text[] "
        "FROM pg_catalog.pg_constraint c "
        "JOIN pg_catalog.pg_class child ON child.oid = c.conrelid "
        "JOIN pg_catalog.pg_class parent ON parent.oid = c.confrelid "
        "WHERE c.contype = 'f' AND child.relnamespace = %(ns)s "
        "AND parent.relnamespace = %(ns)s AND NOT child.relispartition "
        "AND NOT parent.relispartition AND c.conparentid = 0 "
        "ORDER BY child.relname, c.conname", {"ns": namespace}).fetchall()
    return [ForeignKey(child, tuple(child_columns), parent, tuple(parent_columns))
            for child, child_columns, parent, parent_columns in rows]


def read_sequences(conn: psycopg.Connection, schema: str,
                   namespace: int) -> dict[str, dict[str, Any]]:
    """Each sequence's position: ``last_value`` and whether it was handed out yet.

    A sequence is not transactional, so this reads its current position, not the one at
    the snapshot. That is safe: it only moves forward, so it is at or past every value
    the snapshot's rows hold, and a restored sequence never hands out a value in use.
    """
    names = [name for (name,) in conn.execute(
        "SELECT relname FROM pg_catalog.pg_class WHERE relnamespace = %s AND relkind = 'S' "
        "ORDER BY relname", (namespace,))]
    sequences = {}
    for name in names:
        query = sql.SQL("SELECT last_value, is_called FROM {}").format(
            sql.Identifier(schema, name))
        row = conn.execute(query).fetchone()
        assert row is not None  # a sequence relation always has its one row
        sequences[name] = {"last_value": int(row[0]), "is_called": bool(row[1])}
    return sequences


def read_indexes(conn: psycopg.Connection, namespace: int) -> list[dict[str, str]]:
    """Index definitions, for people and previews; the restore creates them from the DDL."""
    rows = conn.execute(
        "SELECT t.relname, i.relname, pg_catalog.pg_get_indexdef(i.oid) "
        "FROM pg_catalog.pg_index x JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid "
        "JOIN pg_catalog.pg_class t ON t.oid = x.indrelid "
        "WHERE t.relnamespace = %s ORDER BY t.relname, i.relname", (namespace,)).fetchall()
    return [{"table": table, "name": name, "definition": definition}
            for table, name, definition in rows]


_NOT_IN_EXTENSION = (
    "AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend d WHERE d.classid = "
    "'pg_catalog.{catalog}'::regclass AND d.objid = {alias}.oid AND d.deptype = 'e') ")


def read_objects(conn: psycopg.Connection, namespace: int) -> list[SchemaObject]:
    """Relations, indexes, types and routines in the schema: what its DDL creates by name.

    A backup records them so a restore can find clashes in its target; the restore reads
    its target the same way. Objects that belong to an extension are left out: pg_dump
    does not dump them either.
    """
    relations = conn.execute(
        "SELECT c.relkind::text, c.relname FROM pg_catalog.pg_class c "
        "WHERE c.relnamespace = %s AND c.relkind::text = ANY(%s) "
        + _NOT_IN_EXTENSION.format(catalog="pg_class", alias="c") + "ORDER BY c.relname",
        (namespace, list(RELATION_KINDS))).fetchall()
    # Types of their own: enums, domains, ranges and standalone composites (not the row
    # types every table has, nor array types, which come and go with their element type).
    types = conn.execute(
        "SELECT CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, t.typname "
        "FROM pg_catalog.pg_type t WHERE t.typnamespace = %s AND t.typtype IN ('e', 'd', "
        "'r', 'c') AND (t.typrelid = 0 OR (SELECT relkind FROM pg_catalog.pg_class "
        "WHERE oid = t.typrelid) = 'c') "
        + _NOT_IN_EXTENSION.format(catalog="pg_type", alias="t") + "ORDER BY t.typname",
        (namespace,)).fetchall()
    routines = conn.execute(
        "SELECT p.proname, pg_catalog.pg_get_function_identity_arguments(p.oid) "
        "FROM pg_catalog.pg_proc p WHERE p.pronamespace = %s "
        + _NOT_IN_EXTENSION.format(catalog="pg_proc", alias="p") + "ORDER BY 1, 2",
        (namespace,)).fetchall()
    return ([SchemaObject(RELATION_KINDS[kind], name) for kind, name in relations]
            + [SchemaObject(kind, name) for kind, name in types]
            + [SchemaObject("ROUTINE", name, arguments) for name, arguments in routines])
