"""PostgreSQL backups and full restores, against a real server started for the session.

Expectations come from PostgreSQL itself: a restored row must have the same text form
(``t::text``, every column through its own output function) as the source row, the
restored schema must describe itself the same way, and sequences must go on from where
they were.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from psycopg import sql

from strongbox.errors import Cancelled, InvalidRequest, SourceError
from strongbox.progress import Progress
from strongbox.repository.repository import Repository
from strongbox.repository.snapshot import Snapshot
from strongbox.sources.postgres import backup_postgres, restore_postgres_full
from strongbox.sources.sqlite.reader import SnapshotReader

if TYPE_CHECKING:
    from tests.pg_server import PostgresServer


Row = tuple[Any, ...]

SOURCE_DDL = """
CREATE TABLE parent (id serial PRIMARY KEY, name text NOT NULL UNIQUE);
CREATE TABLE item (
    id bigserial PRIMARY KEY,
    parent_id integer NOT NULL REFERENCES parent (id),
    amount numeric(30, 10),
    big numeric,
    raw bytea,
    doc json,
    docb jsonb,
    at timestamptz,
    day date,
    span interval,
    labels text[],
    counts integer[],
    ref uuid,
    flag boolean,
    ratio double precision,
    note text
);
CREATE INDEX item_at_idx ON item (at);
CREATE SEQUENCE fresh_seq START 100;
CREATE VIEW item_summary AS SELECT parent_id, count(*) AS items FROM item GROUP BY parent_id;
CREATE FUNCTION parent_label(p_id integer) RETURNS text LANGUAGE sql STABLE
    AS $$ SELECT name FROM public.parent WHERE id = p_id $$;
"""

ITEM_COLUMNS = ("parent_id", "amount", "big", "raw", "doc", "docb", "at", "day", "span",
                "labels", "counts", "ref", "flag", "ratio", "note")
ITEM_CASTS = ("integer", "numeric", "numeric", "bytea", "json", "jsonb", "timestamptz", "date",
              "interval", "text[]", "integer[]", "uuid", "boolean", "float8", "text")
# Each value goes in through its type's text input, as an application's would.
ITEMS: list[Row] = [
    (1, "12345678901234567890.0123456789", "NaN", bytes(range(256)),
     '{"b": 1,  "a": [1, 2.50], "a": 3}',
     '{"k": "välue 😀", "n": 1.000000000000000000001, "nested": {"x": [null, true]}}',
     "2024-03-10 02:30:00-08", "2024-02-29", "1 year 2 mons 3 days 04:05:06.789",
     ["plain", None, 'quote "x"', "back\\slash", "comma,brace}", "", "NULL"], [1, None, 3],
     "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "true", "NaN",
     "tab\there\nnewline \\N backslash\\ \r end"),
    (2, "-0.0000000001", "Infinity", b"", "null", "[]", "infinity", "0044-03-15 BC",
     "-1 days +02:00:00", "{}", "{{1,2},{3,4}}", None, "false", "Infinity", ""),
    (2, None, "-Infinity", None, None, None, "1999-12-31 23:59:59.999999+14", "infinity",
     "-178000000 years", [None], "[0:1]={7,8}", "00000000-0000-0000-0000-000000000000", None,
     "-Infinity", None),
    (3, "0", "0.000000000000000000000000000000000000001", b"\\x00\n\t",
     '"just a string"', '{"a": {"b": {"c": [1, "2", 3.0e10]}}}',
     "2024-06-01 12:00:00 Asia/Kolkata", "-infinity", "00:00:00.000001",
     ["{", "}", " spaced ", "a\tb"], "{-2147483648,2147483647}",
     "ffffffff-ffff-ffff-ffff-ffffffffffff", "true", "-0", "unicode 😀 ñ 中文"),
    (1, "1", "1e-50", None, None, None, "2000-01-01 00:00:00+00", "2000-01-01", "0", None,
     None, None, "false", "5e-324", None),
    (1, "-99999999999999999999.9999999999", "123456789012345678901234567890.5", None, None,
     None, "2024-12-31 23:59:59.5-03:30", "1970-01-01", "1 mon -1 day", None, None, None,
     None, "1.7976931348623157e308", None),
    (3, "0.1", "0.1", None, None, None, "2024-07-01 00:00:00 America/New_York", "2024-07-01",
     "-00:00:01", None, None, None, None, "0.1", None),
]
BULK_ITEMS = 3000  # more than one batch of the row codec

_names = itertools.count()


# --- helpers ------------------------------------------------------------------------------


def fresh_database(server: PostgresServer, prefix: str) -> str:
    return server.create_database(f"{prefix}_{next(_names)}")


def execute(dsn: str, statement: str | sql.Composed, params: Sequence[Any] = ()) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(statement, params or None)


def query(dsn: str, statement: str | sql.Composed, params: Sequence[Any] = ()) -> list[Row]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(statement, params or None).fetchall()


def populate(dsn: str) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute(SOURCE_DDL)
        conn.execute("INSERT INTO parent (name) VALUES ('alpha'), ('beta'), ('gamma')")
        # Advance the sequence past the rows, as deleted rows and rollbacks do.
        conn.execute("SELECT nextval('parent_id_seq') FROM generate_series(1, 10)")
        placeholders = sql.SQL(", ").join(
            sql.SQL("%s::" + cast) for cast in ITEM_CASTS)  # casts are fixed strings
        insert = sql.SQL("INSERT INTO item ({}) VALUES ({})").format(
            sql.SQL(", ").join(map(sql.Identifier, ITEM_COLUMNS)), placeholders)
        for item in ITEMS:
            conn.execute(insert, item)
        conn.execute(
            "INSERT INTO item (parent_id, amount, note, ratio, at) "
            "SELECT 1 + i %% 3, i * 1.5, repeat('x', i %% 50), i / 7.0, "
            "'2020-01-01'::timestamptz + i * interval '1 hour' "
            "FROM generate_series(1, %s) AS i", (BULK_ITEMS,))


@pytest.fixture()
def source(postgres_server: PostgresServer) -> str:
    dsn = fresh_database(postgres_server, "source")
    populate(dsn)
    return dsn


def table_rows(dsn: str, schema: str, table: str) -> list[str]:
    """Every row's text form, in key order: each column through its output function."""
    return [row for (row,) in query(dsn, sql.SQL("SELECT t::text FROM {} AS t ORDER BY 1")
                                    .format(sql.Identifier(schema, table)))]


def describe(dsn: str, schema: str) -> dict[str, Any]:
    """The schema as PostgreSQL describes it, with names relative to the schema itself."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(schema)))
        qualifier = conn.execute("SELECT quote_ident(%s)", (schema,)).fetchone()[0]  # type: ignore[index]

        def rows(statement: str) -> list[Row]:
            return conn.execute(statement, (schema,)).fetchall()

        return {
            "columns": rows(
                "SELECT c.relname, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod), "
                "a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated "
                "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
                "WHERE n.nspname = %s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY 1, 2"),
            "relations": rows(
                "SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n "
                "ON n.oid = c.relnamespace WHERE n.nspname = %s ORDER BY 1"),
            # pg_indexes qualifies the table whatever the search path is.
            "indexes": [(name, definition.replace(f" ON {qualifier}.", " ON "))
                        for name, definition in rows(
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %s ORDER BY 1")],
            "constraints": rows(
                "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(c.oid) "
                "FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace "
                "WHERE n.nspname = %s ORDER BY 1, 2"),
            "views": rows(
                "SELECT viewname, definition FROM pg_views WHERE schemaname = %s ORDER BY 1"),
            "routines": rows(
                "SELECT proname, pg_get_function_identity_arguments(p.oid), prosrc "
                "FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                "WHERE n.nspname = %s ORDER BY 1"),
        }


def next_value(dsn: str, schema: str, sequence: str) -> int:
    """What ``nextval`` would return, read without moving the sequence."""
    last, called = query(dsn, sql.SQL("SELECT last_value, is_called FROM {}").format(
        sql.Identifier(schema, sequence)))[0]
    return int(last) + 1 if called else int(last)


def call_nextval(dsn: str, schema: str, sequence: str) -> int:
    name = sql.Identifier(schema, sequence).as_string(None)
    return int(query(dsn, "SELECT nextval(%s::regclass)", (name,))[0][0])


def fingerprint(dsn: str) -> dict[str, Any]:
    """Everything a failed restore must leave as it was: schemas, objects, rows."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        schemas = conn.execute(
            "SELECT nspname, obj_description(oid, 'pg_namespace') FROM pg_namespace "
            "WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema' "
            "ORDER BY 1").fetchall()
        objects = conn.execute(
            "SELECT n.nspname, c.relname, c.relkind FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE n.nspname NOT LIKE 'pg\\_%' "
            "AND n.nspname <> 'information_schema' ORDER BY 1, 2").fetchall()
        routines = conn.execute(
            "SELECT n.nspname, p.proname FROM pg_proc p JOIN pg_namespace n "
            "ON n.oid = p.pronamespace WHERE n.nspname NOT LIKE 'pg\\_%' "
            "AND n.nspname <> 'information_schema' ORDER BY 1, 2").fetchall()
    tables = {(schema, name): table_rows(dsn, schema, name)
              for schema, name, kind in objects if kind == "r"}
    return {"schemas": schemas, "objects": objects, "routines": routines, "rows": tables}


def assert_same_schema(source: str, source_schema: str, target: str,
                       target_schema: str) -> None:
    assert describe(target, target_schema) == describe(source, source_schema)
    for table in ("parent", "item"):
        assert table_rows(target, target_schema, table) == table_rows(source, source_schema,
                                                                        table)
    for sequence in ("parent_id_seq", "item_id_seq", "fresh_seq"):
        assert next_value(target, target_schema, sequence) == next_value(
            source, source_schema, sequence)


# --- backup -------------------------------------------------------------------------------


def test_backup_stores_rows_schema_and_sequences(repo: Repository, source: str) -> None:
    snap = backup_postgres(repo, source, tags=["nightly"])
    assert snap.kind == "postgres"
    assert snap.tags == ["nightly"]
    assert snap.summary["tables"] == {"parent": 3, "item": len(ITEMS) + BULK_ITEMS}
    assert snap.summary["contents"]["total_documents"] == 3 + len(ITEMS) + BULK_ITEMS

    reader = SnapshotReader(repo, repo.load_snapshot(snap.id))
    assert [t.name for t in reader.tables()] == ["parent", "item"]  # parents first
    item = reader.table("item")
    assert item.primary_key == ("id",)
    assert item.columns == ["id", *ITEM_COLUMNS]
    node_meta = next(n for _, n in repo.iter_tree(snap.tree) if n.name == "item").meta
    assert node_meta is not None
    assert node_meta["types"][:4] == ["bigint", "integer", "numeric(30,10)", "numeric"]

    rows = list(reader.rows("item"))
    assert [int(r[0]) for r in rows] == sorted(int(r[0]) for r in rows)
    first = rows[0]
    assert bytes.fromhex(first[4][2:]) == bytes(range(256))
    assert first[5] == ITEMS[0][4]  # json keeps its text exactly: spaces, duplicate keys
    assert first[-1] == ITEMS[0][-1]
    assert rows[1][-1] == "" and rows[2][-1] is None  # empty text is not NULL

    manifest = reader.manifest
    assert manifest["format"] == "strongbox-postgres/1"
    assert manifest["schema"] == "public"
    assert manifest["links"] == [{"child_table": "item", "child_columns": ["parent_id"],
                                  "parent_table": "parent", "parent_columns": ["id"]}]
    assert manifest["sequences"]["parent_id_seq"] == {"last_value": 13, "is_called": True}
    assert manifest["sequences"]["fresh_seq"] == {"last_value": 100, "is_called": False}
    assert {i["name"] for i in manifest["indexes"]} >= {"item_at_idx", "item_pkey",
                                                        "parent_name_key"}
    ddl = {entry["section"]: entry["sql"] for entry in reader.schema()}
    assert "CREATE TABLE public.item" in ddl["pre-data"]
    assert "CREATE INDEX item_at_idx" in ddl["post-data"]
    assert "\\restrict" not in ddl["pre-data"] + ddl["post-data"]


def test_missing_schema_is_a_clear_error(repo: Repository, source: str) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        backup_postgres(repo, source, schema="nope")
    assert repo.list_snapshots() == []


def test_password_is_never_stored(repo: Repository, postgres_server: PostgresServer,
                                  source: str) -> None:
    server = postgres_server
    dbname = query(source, "SELECT current_database()")[0][0]
    uri = (f"postgresql://{server.user}:{server.password}@{server.host}:{server.port}/"
           f"{dbname}")
    for dsn in (uri, source):
        snap = backup_postgres(repo, dsn)
        assert server.password not in snap.to_bytes().decode()
        stored = [b"".join(repo.read_stream(node.content))
                  for _, node in repo.iter_tree(snap.tree) if node.type == "stream"]
        assert all(server.password.encode() not in data for data in stored)
        manifest = SnapshotReader(repo, snap).manifest
        assert "password" not in manifest["source"]
        assert f"dbname={dbname}" in manifest["source"]


# --- consistency --------------------------------------------------------------------------

LEDGER_DDL = """
CREATE TABLE account (id integer PRIMARY KEY, balance numeric NOT NULL);
CREATE TABLE transfer (id bigserial PRIMARY KEY, src integer NOT NULL REFERENCES account,
                       dst integer NOT NULL REFERENCES account, amount numeric NOT NULL);
CREATE TABLE tally (id integer PRIMARY KEY, transfers bigint NOT NULL);
INSERT INTO account SELECT i, 1000 FROM generate_series(1, 50) AS i;
INSERT INTO tally VALUES (1, 0);
"""
ACCOUNTS = 50
TOTAL = Decimal(ACCOUNTS * 1000)


class TransferWriter(threading.Thread):
    """Commits transfers that keep the invariants, as fast as it can, until stopped."""

    def __init__(self, dsn: str) -> None:
        super().__init__(daemon=True)
        self.dsn = dsn
        self.committed = 0
        self.changed = threading.Condition()
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with psycopg.connect(self.dsn) as conn:
                for n in itertools.count():
                    if self.stop.is_set():
                        return
                    self._transfer(conn, n)
        except BaseException as exc:  # reported by the test thread
            self.error = exc
            with self.changed:
                self.changed.notify_all()

    def _transfer(self, conn: psycopg.Connection, n: int) -> None:
        src, dst, amount = 1 + n % ACCOUNTS, 1 + (n * 7 + 3) % ACCOUNTS, Decimal(n % 13) + 1
        with conn.transaction():
            conn.execute("UPDATE account SET balance = balance - %s WHERE id = %s",
                         (amount, src))
            conn.execute("INSERT INTO transfer (src, dst, amount) VALUES (%s, %s, %s)",
                         (src, dst, amount))
            conn.execute("UPDATE account SET balance = balance + %s WHERE id = %s",
                         (amount, dst))
            conn.execute("UPDATE tally SET transfers = transfers + 1")
        with self.changed:
            self.committed += 1
            self.changed.notify_all()

    def wait_for(self, count: int) -> None:
        with self.changed:
            assert self.changed.wait_for(
                lambda: self.committed >= count or self.error is not None, timeout=30)
        assert self.error is None, self.error


class WritesBetweenTables(Progress):
    """Lets the writer commit more transfers after each table the backup reads."""

    def __init__(self, writer: TransferWriter) -> None:
        super().__init__()
        self.writer = writer
        self.tables_done = 0

    def advance(self, *, items: int = 0, nbytes: int = 0) -> None:
        super().advance(items=items, nbytes=nbytes)
        if items:
            self.tables_done += 1
            self.writer.wait_for(self.writer.committed + 5)


def test_backup_is_one_snapshot_while_a_writer_commits(
        repo: Repository, postgres_server: PostgresServer) -> None:
    dsn = fresh_database(postgres_server, "ledger")
    execute(dsn, LEDGER_DDL)
    writer = TransferWriter(dsn)
    writer.start()
    try:
        writer.wait_for(20)
        progress = WritesBetweenTables(writer)
        snap = backup_postgres(repo, dsn, progress=progress)
    finally:
        writer.stop.set()
        writer.join(timeout=30)
    assert writer.error is None
    assert progress.tables_done == 3
    reader = SnapshotReader(repo, snap)
    accounts = {int(i): Decimal(b) for i, b in reader.rows("account")}
    transfers = [(int(s), int(d), Decimal(a)) for _, s, d, a in reader.rows("transfer")]
    tally = [int(t) for _, t in reader.rows("tally")]
    assert sum(accounts.values()) == TOTAL
    assert tally == [len(transfers)]
    for account, balance in accounts.items():
        moved = sum(a for _, d, a in transfers if d == account) - sum(
            a for s, _, a in transfers if s == account)
        assert balance == 1000 + moved
    # The writer went on while the backup ran, and the backup did not see that.
    assert int(query(dsn, "SELECT transfers FROM tally")[0][0]) > len(transfers)
    # The restored sequence is at or past every stored id.
    target = fresh_database(postgres_server, "ledger_copy")
    restore_postgres_full(repo, snap, target)
    assert call_nextval(target, "public", "transfer_id_seq") > max(
        [0, *(int(r[0]) for r in reader.rows("transfer"))])
    assert query(target, "SELECT sum(balance) FROM account")[0][0] == TOTAL


# --- restore ------------------------------------------------------------------------------


def test_restore_into_a_fresh_database(repo: Repository, postgres_server: PostgresServer,
                                       source: str) -> None:
    snap = backup_postgres(repo, source)
    target = fresh_database(postgres_server, "target")
    result = restore_postgres_full(repo, snap, target)
    assert result["tables"] == {"parent": 3, "item": len(ITEMS) + BULK_ITEMS}
    assert result["schema"] == "public"
    assert_same_schema(source, "public", target, "public")
    assert call_nextval(target, "public", "parent_id_seq") == 14
    assert call_nextval(target, "public", "fresh_seq") == 100
    assert query(target, "SELECT * FROM item_summary ORDER BY 1") == query(
        source, "SELECT * FROM item_summary ORDER BY 1")
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        execute(target, "INSERT INTO item (parent_id) VALUES (999)")


def test_restore_into_another_schema_of_the_source_database(repo: Repository,
                                                           source: str) -> None:
    before = fingerprint(source)
    snap = backup_postgres(repo, source)
    restore_postgres_full(repo, snap, source, target_schema="restored")
    assert_same_schema(source, "public", source, "restored")
    # Defaults, views and foreign keys point into the restored schema, not the source.
    assert call_nextval(source, "restored", "parent_id_seq") == 14
    assert next_value(source, "public", "parent_id_seq") == 14
    execute(source, "INSERT INTO restored.parent (name) VALUES ('delta')")
    assert query(source, "SELECT count(*) FROM public.parent")[0][0] == 3
    assert query(source, "SELECT count(*) FROM restored.item_summary")[0][0] == 3
    # The source schema is as it was; nothing else was left behind.
    after = fingerprint(source)
    assert after["rows"] | before["rows"] == after["rows"]
    assert {s for s, _ in after["schemas"]} == {"public", "restored"}
    assert [o for o in after["objects"] if o[0] == "public"] == before["objects"]


QUOTED_DDL = """
CREATE SCHEMA "Sales-2024";
CREATE TYPE "Sales-2024".mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN "Sales-2024".positive AS integer CHECK (VALUE > 0);
CREATE TABLE "Sales-2024"."Order" (
    id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    mood "Sales-2024".mood NOT NULL,
    qty "Sales-2024".positive NOT NULL,
    doubled integer GENERATED ALWAYS AS (qty * 2) STORED,
    label text DEFAULT 'Sales-2024.literal'
);
CREATE TABLE "Sales-2024".line ("order" integer REFERENCES "Sales-2024"."Order",
                                "Pos" integer, PRIMARY KEY ("order", "Pos"));
INSERT INTO "Sales-2024"."Order" (mood, qty) VALUES ('happy', 2), ('sad', 5);
INSERT INTO "Sales-2024".line VALUES (1, 1), (1, 2), (2, 1);
"""


def test_quoted_schema_with_types_identity_and_generated_columns(
        repo: Repository, postgres_server: PostgresServer) -> None:
    source = fresh_database(postgres_server, "quoted")
    execute(source, QUOTED_DDL)
    snap = backup_postgres(repo, source, schema="Sales-2024")
    assert SnapshotReader(repo, snap).table("Order").columns == ["id", "mood", "qty", "label"]
    assert SnapshotReader(repo, snap).table("line").primary_key == ("order", "Pos")

    same_name = fresh_database(postgres_server, "quoted_copy")
    restore_postgres_full(repo, snap, same_name)
    # Into "public", which a fresh database already has (empty).
    renamed = fresh_database(postgres_server, "quoted_renamed")
    restore_postgres_full(repo, snap, renamed, target_schema="public")
    for target, schema in ((same_name, "Sales-2024"), (renamed, "public")):
        assert describe(target, schema) == describe(source, "Sales-2024")
        for table in ("Order", "line"):
            assert table_rows(target, schema, table) == table_rows(source, "Sales-2024", table)
        execute(target, sql.SQL("INSERT INTO {} (mood, qty) VALUES ('ok', 4)").format(
            sql.Identifier(schema, "Order")))
        assert query(target, sql.SQL("SELECT id, doubled FROM {} WHERE qty = 4").format(
            sql.Identifier(schema, "Order"))) == [(3, 8)]
    assert {s for (s,) in query(renamed, "SELECT nspname FROM pg_namespace "
                                         "WHERE nspname !~ '^(pg_|information_schema)'")} \
        == {"public"}


def test_existing_objects_are_refused_unless_replaced(
        repo: Repository, postgres_server: PostgresServer, source: str) -> None:
    snap = backup_postgres(repo, source)
    target = fresh_database(postgres_server, "twice")
    restore_postgres_full(repo, snap, target)
    execute(target, "INSERT INTO parent (name) VALUES ('added later')")
    execute(target, "CREATE TABLE unrelated (x integer)")
    before = fingerprint(target)

    with pytest.raises(InvalidRequest, match="already has") as refused:
        restore_postgres_full(repo, snap, target)
    assert {"kind": "TABLE", "name": "parent", "arguments": ""} in refused.value.details[
        "existing"]
    assert fingerprint(target) == before

    restore_postgres_full(repo, snap, target, replace=True)
    assert query(target, "SELECT count(*) FROM unrelated") == [(0,)]  # not the snapshot's
    execute(target, "DROP TABLE unrelated")
    assert_same_schema(source, "public", target, "public")


def test_replace_refuses_to_drop_what_others_depend_on(
        repo: Repository, postgres_server: PostgresServer, source: str) -> None:
    snap = backup_postgres(repo, source)
    target = fresh_database(postgres_server, "depended")
    restore_postgres_full(repo, snap, target)
    execute(target, "CREATE VIEW mine AS SELECT name FROM parent")
    before = fingerprint(target)
    with pytest.raises(SourceError, match="unchanged"):
        restore_postgres_full(repo, snap, target, replace=True)
    assert fingerprint(target) == before


class CancelAfterTables(Progress):
    def __init__(self, tables: int) -> None:
        super().__init__()
        self.tables = tables

    def advance(self, *, items: int = 0, nbytes: int = 0) -> None:
        super().advance(items=items, nbytes=nbytes)
        if self.state.items_done >= self.tables:
            self.cancel()


def test_cancelled_restore_leaves_the_target_unchanged(
        repo: Repository, postgres_server: PostgresServer, source: str) -> None:
    snap = backup_postgres(repo, source)
    target = fresh_database(postgres_server, "cancelled")
    execute(target, "CREATE SCHEMA restored; CREATE TABLE restored.keep (x text);"
                    "INSERT INTO restored.keep VALUES ('mine'); CREATE TABLE public.p (y int);")
    before = fingerprint(target)
    with pytest.raises(Cancelled):
        restore_postgres_full(repo, snap, target, target_schema="restored",
                              progress=CancelAfterTables(1))
    assert fingerprint(target) == before


def test_restore_failing_midway_leaves_the_target_unchanged(
        repo: Repository, postgres_server: PostgresServer, source: str) -> None:
    snap = backup_postgres(repo, source)
    target = fresh_database(postgres_server, "failing")
    # An event trigger that refuses CREATE INDEX: the restore fails at its last step, after
    # schemas were renamed, tables created and every row loaded.
    execute(target, "CREATE TABLE public.keep (x text); INSERT INTO keep VALUES ('mine');"
                    "CREATE FUNCTION no_index() RETURNS event_trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN RAISE EXCEPTION 'no indexes today'; END $$;"
                    "CREATE EVENT TRIGGER no_index ON ddl_command_start "
                    "WHEN TAG IN ('CREATE INDEX') EXECUTE FUNCTION no_index()")
    before = fingerprint(target)
    with pytest.raises(SourceError, match="no indexes today") as failed:
        restore_postgres_full(repo, snap, target, target_schema="restored")
    assert "unchanged" in failed.value.message
    assert fingerprint(target) == before
    execute(target, "DROP EVENT TRIGGER no_index")
    restore_postgres_full(repo, snap, target, target_schema="restored")
    assert_same_schema(source, "public", target, "restored")


def test_restore_refuses_other_snapshots(repo: Repository, postgres_server: PostgresServer,
                                         source: str) -> None:
    snap = backup_postgres(repo, source)
    not_postgres = Snapshot(tree=snap.tree, kind="files", id=snap.id)
    with pytest.raises(InvalidRequest):
        restore_postgres_full(repo, not_postgres, source)
    with pytest.raises(InvalidRequest, match="not a valid PostgreSQL name"):
        restore_postgres_full(repo, snap, source, target_schema="x" * 64)


def test_missing_server_binaries_fail_with_instructions(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests import pg_server

    monkeypatch.setattr(pg_server, "BIN_GLOB", "/nonexistent/*/bin")
    with pytest.raises(pytest.fail.Exception, match="scripts/install --test"), \
            pg_server.running_postgres():
        pass


class CancelOnFirstBytes(Progress):
    def advance(self, *, items: int = 0, nbytes: int = 0) -> None:
        super().advance(items=items, nbytes=nbytes)
        if nbytes:
            self.cancel()


def test_cancelled_backup_stores_nothing_and_lets_go_of_the_database(
        repo: Repository, postgres_server: PostgresServer) -> None:
    dsn = fresh_database(postgres_server, "big")
    # Several MiB, so the chunker cuts (and the backup is cancelled) in the middle of COPY.
    execute(dsn, "CREATE TABLE big (id integer PRIMARY KEY, data text);"
                 "INSERT INTO big SELECT i, repeat(md5(i::text), 100) "
                 "FROM generate_series(1, 2000) AS i")
    with pytest.raises(Cancelled):
        backup_postgres(repo, dsn, progress=CancelOnFirstBytes())
    assert repo.list_snapshots() == []
    # No session of the backup is left holding the table's lock or a transaction.
    execute(dsn, "SET lock_timeout = '5s'; DROP TABLE big")
    assert query(dsn, "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                      "current_database() AND pid <> pg_backend_pid()") == [(0,)]


PARTITIONED_DDL = """
CREATE TABLE event (id integer NOT NULL, at date NOT NULL, what text,
                    PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE event_2023 PARTITION OF event FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');
CREATE TABLE event_2024 PARTITION OF event FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
INSERT INTO event VALUES (1, '2023-05-01', 'a'), (2, '2024-05-01', 'b'), (3, '2024-06-01', 'c');
CREATE TABLE animal (name text);
CREATE TABLE dog (barks boolean) INHERITS (animal);
INSERT INTO animal VALUES ('generic'), ('generic'), (NULL);
INSERT INTO dog VALUES ('rex', true);
"""


def test_partitions_inheritance_and_tables_without_a_key(
        repo: Repository, postgres_server: PostgresServer) -> None:
    source = fresh_database(postgres_server, "parts")
    execute(source, PARTITIONED_DDL)
    snap = backup_postgres(repo, source)
    # Partitions' rows are stored once, under the partitioned table; a child table's
    # rows are its own, not its parent's too.
    assert snap.summary["tables"] == {"animal": 3, "dog": 1, "event": 3}
    assert SnapshotReader(repo, snap).table("animal").primary_key == ()
    target = fresh_database(postgres_server, "parts_copy")
    restore_postgres_full(repo, snap, target, target_schema="copy")
    for table in ("event", "event_2023", "event_2024", "animal", "dog"):
        assert table_rows(target, "copy", table) == table_rows(source, "public", table)
    assert query(target, "SELECT count(*) FROM copy.animal") == [(4,)]  # with the dog
