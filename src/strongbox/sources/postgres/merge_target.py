"""The target side of a PostgreSQL merge restore: how a table looks (columns, types, keys,
unique constraints, the sequences feeding its columns), and the SQL fragments and error
texts the restore builds from it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from strongbox.sources.postgres import catalog

__all__ = ["INTEGER_TYPES", "TEXT_TYPES", "TargetTable", "assignments", "detail_key",
           "error_message", "key_match"]

TEXT_TYPES = ("text", "citext", "character varying", "character", "uuid")
INTEGER_TYPES = ("smallint", "integer", "bigint")
COPY_LINE = re.compile(r"COPY [^,]+, line (\d+)")
KEY_DETAIL = re.compile(r"Key \((.+?)\)=\((.*)\) (?:is not present|already exists)")


def error_message(exc: psycopg.Error) -> str:
    diag = exc.diag
    text = diag.message_primary or str(exc).strip()
    return f"{text} ({diag.message_detail})" if diag.message_detail else text


def detail_key(detail: str | None) -> str:
    match = KEY_DETAIL.search(detail or "")
    return match.group(2) if match else "(unknown)"


@dataclass
class TargetTable:
    """A table as the target has it: columns and their types, keys, where new keys come from."""

    name: str
    oid: int
    columns: list[str]  # stored columns (not generated), in declaration order
    types: dict[str, str]
    nullable: set[str]
    primary_key: tuple[str, ...]
    unique: list[tuple[str, ...]] = field(default_factory=list)
    sequences: dict[str, int] = field(default_factory=dict)  # column -> sequence oid

    @classmethod
    def read(cls, conn: psycopg.Connection, namespace: int, name: str) -> TargetTable | None:
        row = conn.execute("SELECT oid FROM pg_catalog.pg_class WHERE relnamespace = %s AND "
                           "relname = %s AND relkind IN ('r', 'p')", (namespace, name)).fetchone()
        if row is None:
            return None
        oid = int(row[0])
        attributes = conn.execute(
            "SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull "
            "FROM pg_catalog.pg_attribute a WHERE a.attrelid = %s AND a.attnum > 0 "
            "AND NOT a.attisdropped AND a.attgenerated = '' ORDER BY a.attnum",
            (oid,)).fetchall()
        unique = conn.execute(
            "SELECT ARRAY(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY k(n, o) "
            "  JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n "
            "  WHERE k.o <= i.indnkeyatts ORDER BY k.o)::text[] "
            "FROM pg_catalog.pg_index i WHERE i.indrelid = %s AND i.indisunique "
            "AND NOT i.indisprimary AND i.indpred IS NULL AND i.indexprs IS NULL "
            "ORDER BY i.indexrelid", (oid,)).fetchall()
        return cls(name=name, oid=oid, columns=[a for a, _, _ in attributes],
                   types={a: t for a, t, _ in attributes},
                   nullable={a for a, _, not_null in attributes if not not_null},
                   primary_key=tuple(catalog.read_primary_key(conn, oid)),
                   unique=[tuple(columns) for (columns,) in unique if columns],
                   sequences=_sequences(conn, oid))

    def key_source(self) -> str | None:
        """Where a new key comes from: "sequence", "uuid", "max" (an integer key without
        a sequence: past the largest value, as SQLite does for rowids), or None."""
        if len(self.primary_key) != 1:
            return None  # composite keys are usually made of foreign keys
        column = self.primary_key[0]
        if column in self.sequences:
            return "sequence"
        if self.types[column] in INTEGER_TYPES:
            return "max"
        return "uuid" if self.types[column].startswith(TEXT_TYPES) else None


def _sequences(conn: psycopg.Connection, oid: int) -> dict[str, int]:
    """Columns fed by a sequence: identity, serial, or a ``nextval()`` default."""
    rows = conn.execute(
        "SELECT a.attname, COALESCE("
        "  (SELECT d.objid FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_class s "
        "   ON s.oid = d.objid AND s.relkind = 'S' WHERE d.refclassid = 'pg_class'::regclass "
        "   AND d.refobjid = a.attrelid AND d.refobjsubid = a.attnum "
        "   AND d.classid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') LIMIT 1), "
        "  (SELECT d.refobjid FROM pg_catalog.pg_attrdef ad JOIN pg_catalog.pg_depend d "
        "   ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid "
        "   AND d.refclassid = 'pg_class'::regclass JOIN pg_catalog.pg_class s "
        "   ON s.oid = d.refobjid AND s.relkind = 'S' "
        "   WHERE ad.adrelid = a.attrelid AND ad.adnum = a.attnum LIMIT 1)) "
        "FROM pg_catalog.pg_attribute a WHERE a.attrelid = %s AND a.attnum > 0 "
        "AND NOT a.attisdropped", (oid,)).fetchall()
    return {column: int(seq) for column, seq in rows if seq is not None}


def assignments(target: TargetTable, columns: tuple[str, ...] | list[str]) -> sql.Composable:
    return sql.SQL(", ").join(
        sql.SQL("{} = %s::{}").format(sql.Identifier(c), sql.SQL(target.types[c]))
        for c in columns)


def key_match(target: TargetTable) -> sql.Composable:
    return sql.SQL(" AND ").join(
        sql.SQL("{} = %s::{}").format(sql.Identifier(c), sql.SQL(target.types[c]))
        for c in target.primary_key)

