"""SQLite backups: lossless rows, an exact page copy, consistency under writes, selection.

Every expectation is computed from the source database with its own SQL, never from the
code under test, so a backup is checked against what SQLite itself says is there.
"""

from __future__ import annotations

import sqlite3
import struct
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from strongbox.demo.app_database import generate
from strongbox.errors import SourceError
from strongbox.repository.backend import LocalBackend
from strongbox.repository.repository import Repository
from strongbox.repository.snapshot import Snapshot
from strongbox.sources.sqlite.backup import DatabaseFilters, backup_sqlite
from strongbox.sources.sqlite.codec import InvalidText
from strongbox.sources.sqlite.reader import SnapshotReader

Row = tuple[Any, ...]
DEMO_TABLES = ("projects", "sessions", "messages", "prompts", "ai_settings")
STORAGE_CLASS: dict[type, str] = {
    type(None): "null",
    int: "integer",
    float: "real",
    str: "text",
    InvalidText: "text",
    bytes: "blob",
}

# --- helpers ------------------------------------------------------------------------------


def connect(path: Path) -> sqlite3.Connection:
    """A plain connection to a source database, committing each statement itself."""
    return sqlite3.connect(path, isolation_level=None)


def query(path: Path, sql: str, params: Sequence[Any] = ()) -> list[Row]:
    conn = connect(path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def snapshot_rows(repo: Repository, snap: Snapshot, table: str) -> list[Row]:
    return list(SnapshotReader(repo, snap).rows(table))


def stored_tables(repo: Repository, snap: Snapshot) -> dict[str, int]:
    """Table name → number of rows, as the snapshot holds them."""
    return {t.name: t.rows for t in SnapshotReader(repo, snap).tables()}


def same_value(a: Any, b: Any) -> bool:
    """Equal with the same type; floats by their bits, so -0.0 differs from 0.0."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return struct.pack("<d", a) == struct.pack("<d", b)
    return bool(a == b)


def text_bytes(value: str | InvalidText) -> bytes:
    return value.raw if isinstance(value, InvalidText) else value.encode("utf-8")


def is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# --- every storage class, lossless (property-based) ---------------------------------------

COLUMNS = ("a", "b", "c")

invalid_utf8 = st.builds(
    lambda head, bad, tail: InvalidText(head + bad + tail),
    st.binary(max_size=8),
    # Invalid wherever they stand: 0xff/0xfe, an overlong NUL, an encoded surrogate, and a
    # lone lead byte (the filter drops the cases where the tail happens to complete it).
    st.sampled_from([b"\xff", b"\xfe\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xe2\x82"]),
    st.binary(max_size=8),
).filter(lambda text: not is_utf8(text.raw))
sqlite_values = st.one_of(
    st.none(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    # NaN is left out: SQLite stores NaN as NULL, so it cannot round-trip by design.
    st.floats(allow_nan=False, allow_subnormal=True),
    st.text(),  # any code point but surrogates, NUL included
    st.binary(),
    invalid_utf8,
)
table_rows = st.lists(st.tuples(*[sqlite_values] * len(COLUMNS)), min_size=1, max_size=25)

EDGE_ROW = (
    InvalidText(b"\xff\xfe"),
    float("-inf"),
    -0.0,
)


def make_untyped_table(path: Path, rows: list[Row]) -> None:
    """A table whose columns have no declared type, so each value keeps its class."""
    conn = connect(path)
    try:
        conn.execute(f"CREATE TABLE anything ({', '.join(COLUMNS)})")
        conn.execute("BEGIN")
        for row in rows:
            marks = ", ".join("CAST(? AS TEXT)" if isinstance(v, InvalidText) else "?"
                              for v in row)
            values = [v.raw if isinstance(v, InvalidText) else v for v in row]
            conn.execute(f"INSERT INTO anything VALUES ({marks})", values)
        conn.execute("COMMIT")
    finally:
        conn.close()


def source_cells(path: Path) -> list[tuple[int, list[tuple[str, Any, bytes | None]]]]:
    """Per row: rowid, and per column its typeof(), value and CAST(column AS BLOB)."""
    selects = ", ".join(f"typeof({c}), {c}, CAST({c} AS BLOB)" for c in COLUMNS)
    conn = connect(path)
    conn.text_factory = bytes  # raw TEXT bytes: this side must not depend on the codec
    try:
        rows = conn.execute(f"SELECT rowid, {selects} FROM anything ORDER BY rowid").fetchall()
    finally:
        conn.close()
    cells = [(row[0], [row[1 + 3 * i: 4 + 3 * i] for i in range(len(COLUMNS))]) for row in rows]
    return [(rowid, [(kind.decode(), value, as_blob) for kind, value, as_blob in columns])
            for rowid, columns in cells]


def assert_cell_matches(stored: Any, kind: str, value: Any, as_blob: bytes | None) -> None:
    assert STORAGE_CLASS[type(stored)] == kind, (stored, kind)
    if kind == "text":
        assert as_blob is not None
        assert text_bytes(stored) == as_blob
        # InvalidText is for bytes that are not UTF-8, and only for those.
        assert isinstance(stored, InvalidText) == (not is_utf8(as_blob))
    else:
        assert same_value(stored, value), (stored, value)


@pytest.fixture(scope="module")
def shared_repo(tmp_path_factory: pytest.TempPathFactory) -> Repository:
    """One repository for all examples of a property test (function fixtures would be
    shared across examples anyway, which hypothesis rightly warns about)."""
    path = tmp_path_factory.mktemp("shared") / "repo"
    return Repository.init(LocalBackend(path), "secret", pack_size=64 * 1024)


# Both layouts of a full backup: rows read from the page copy (the default) and rows also
# stored as typed row streams (row_streams=True) must give back the same values and types.
LAYOUTS = pytest.mark.parametrize("row_streams", [False, True],
                                  ids=["rows-in-page-copy", "row-streams"])


@LAYOUTS
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=table_rows)
@example(rows=[EDGE_ROW, (2**63 - 1, -(2**63), 5e-324), ("a\x00b", b"", None),
               (float("inf"), b"\x00\xff", "")])
def test_every_storage_class_survives_byte_for_byte(
    shared_repo: Repository, rows: list[Row], row_streams: bool
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "values.db"
        make_untyped_table(db, rows)
        expected = source_cells(db)
        snap = backup_sqlite(shared_repo, db, row_streams=row_streams)

    stored = snapshot_rows(shared_repo, snap, "anything")
    assert len(stored) == len(expected) == len(rows)
    for (rowid, cells), stored_row, inserted in zip(expected, stored, rows, strict=True):
        assert stored_row[0] == rowid  # rowid-keyed table: the rowid comes first
        for (kind, value, as_blob), cell, original in zip(cells, stored_row[1:], inserted,
                                                          strict=True):
            assert_cell_matches(cell, kind, value, as_blob)
            assert same_value(cell, original)  # untyped columns store values as given


@LAYOUTS
def test_invalid_utf8_text_literal_keeps_text_class_and_bytes(
        repo: Repository, tmp_path: Path, row_streams: bool) -> None:
    db = tmp_path / "bad.db"
    conn = connect(db)
    conn.execute("CREATE TABLE t (v)")
    conn.execute("INSERT INTO t VALUES (CAST(x'fffe' AS TEXT)), (CAST(x'61ff62' AS TEXT))")
    conn.close()

    rows = snapshot_rows(repo, backup_sqlite(repo, db, row_streams=row_streams), "t")

    assert rows == [(1, InvalidText(b"\xff\xfe")), (2, InvalidText(b"a\xffb"))]
    assert query(db, "SELECT typeof(v), CAST(v AS BLOB) FROM t ORDER BY rowid") == [
        ("text", b"\xff\xfe"), ("text", b"a\xffb")]


@LAYOUTS
def test_rowids_of_a_table_without_declared_key_are_kept(
        repo: Repository, tmp_path: Path, row_streams: bool) -> None:
    db = tmp_path / "rowids.db"
    conn = connect(db)
    conn.execute("CREATE TABLE notes (body TEXT, weight REAL)")
    for rowid in (-7, 3, 1000, 2**62):
        conn.execute("INSERT INTO notes (rowid, body, weight) VALUES (?, ?, ?)",
                     (rowid, f"note {rowid}", rowid / 3))
    conn.execute("DELETE FROM notes WHERE rowid = 3")  # leave a gap
    conn.close()

    snap = backup_sqlite(repo, db, row_streams=row_streams)
    info = SnapshotReader(repo, snap).table("notes")

    assert info.has_rowid_key and info.primary_key == ("rowid",)
    assert snapshot_rows(repo, snap, "notes") == query(
        db, "SELECT rowid, body, weight FROM notes ORDER BY rowid")


@LAYOUTS
def test_without_rowid_table_with_composite_key_in_key_order(
        repo: Repository, tmp_path: Path, row_streams: bool) -> None:
    db = tmp_path / "composite.db"
    conn = connect(db)
    conn.execute("CREATE TABLE grants (tenant TEXT, user_id INTEGER, role TEXT, extra, "
                 "PRIMARY KEY (tenant, user_id)) WITHOUT ROWID")
    conn.executemany("INSERT INTO grants VALUES (?, ?, ?, ?)", [
        ("zeta", 2, "admin", None), ("alpha", 9, "reader", b"\x01"),
        ("alpha", -1, "writer", 1.5), ("mu", 0, "owner", "x")])
    conn.close()

    snap = backup_sqlite(repo, db, row_streams=row_streams)
    info = SnapshotReader(repo, snap).table("grants")

    assert info.primary_key == ("tenant", "user_id") and not info.has_rowid_key
    assert snapshot_rows(repo, snap, "grants") == query(
        db, "SELECT * FROM grants ORDER BY tenant, user_id")


@LAYOUTS
def test_a_row_larger_than_64_mib_reads_back(repo: Repository, tmp_path: Path,
                                             row_streams: bool) -> None:
    db = tmp_path / "big.db"
    conn = connect(db)
    conn.execute("CREATE TABLE files (name TEXT, data BLOB)")
    conn.execute("INSERT INTO files VALUES ('big', zeroblob(70 * 1024 * 1024))")
    conn.close()

    snap = backup_sqlite(repo, db, row_streams=row_streams)
    [(rowid, name, data)] = snapshot_rows(repo, snap, "files")

    assert (rowid, name, len(data), data.count(0)) == (1, "big", 70 << 20, 70 << 20)


def test_file_name_with_uri_characters_is_backed_up_itself(repo: Repository,
                                                           tmp_path: Path) -> None:
    # "#", "?" and "%" mean something in a file: URI; the backup must still open this file.
    db = tmp_path / "odd #1?mode=rwc%20.db"
    conn = connect(db)
    conn.execute("CREATE TABLE t (v)")
    conn.execute("INSERT INTO t VALUES ('here')")
    conn.close()
    before = sorted(p.name for p in tmp_path.iterdir())

    snap = backup_sqlite(repo, db)

    assert snapshot_rows(repo, snap, "t") == [(1, "here")]
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no stray file made


# --- the demo database ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "app.db"
    generate(path, projects=6, sessions_per_project=8, messages_per_session=12, seed=11)
    return path


def table_names(path: Path) -> list[str]:
    return [name for (name,) in query(
        path, "SELECT name FROM sqlite_master WHERE type = 'table' "
              "AND name NOT LIKE 'sqlite_%' ORDER BY name")]


def all_rows(conn: sqlite3.Connection, table: str) -> list[Row]:
    """Every row in storage order: by rowid, or by key for a WITHOUT ROWID table."""
    try:
        return conn.execute(f'SELECT rowid, * FROM "{table}" ORDER BY rowid').fetchall()
    except sqlite3.OperationalError:  # WITHOUT ROWID: a plain scan is in key order
        return conn.execute(f'SELECT * FROM "{table}"').fetchall()


def restore_page_copy(repo: Repository, snap: Snapshot, target: Path) -> None:
    node = SnapshotReader(repo, snap).page_copy()
    assert node is not None
    with target.open("wb") as out:
        for chunk in repo.read_stream(node.content):
            out.write(chunk)


def test_page_copy_is_an_intact_identical_database(repo: Repository, demo: Path,
                                                   tmp_path: Path) -> None:
    restored = tmp_path / "restored.db"
    restore_page_copy(repo, backup_sqlite(repo, demo), restored)

    source, copy = connect(demo), connect(restored)
    try:
        assert copy.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert copy.execute("PRAGMA foreign_key_check").fetchall() == []
        schema = "SELECT type, name, sql FROM sqlite_master ORDER BY name"
        assert copy.execute(schema).fetchall() == source.execute(schema).fetchall()
        for table in table_names(demo):
            assert all_rows(copy, table) == all_rows(source, table), table
    finally:
        source.close()
        copy.close()


@LAYOUTS
def test_row_streams_equal_the_source_and_tables_come_parents_first(
    repo: Repository, demo: Path, row_streams: bool) -> None:
    snap = backup_sqlite(repo, demo, row_streams=row_streams)
    reader = SnapshotReader(repo, snap)

    order = [t.name for t in reader.tables()]
    assert sorted(order) == sorted(DEMO_TABLES)
    assert order.index("projects") < order.index("sessions") < order.index("messages")
    for table in DEMO_TABLES:
        assert list(reader.rows(table)) == query(demo, f"SELECT * FROM {table} ORDER BY id")


def test_contents_counters_match_the_source(repo: Repository, demo: Path) -> None:
    snap = backup_sqlite(repo, demo)
    counts = {t: query(demo, f"SELECT COUNT(*) FROM {t}")[0][0] for t in DEMO_TABLES}

    assert snap.summary["tables"] == counts
    assert snap.summary["contents"] == {
        "projects_count": counts["projects"], "sessions_count": counts["sessions"],
        "messages_count": counts["messages"], "prompts_count": counts["prompts"],
        "ai_settings_count": counts["ai_settings"], "total_documents": sum(counts.values())}
    assert not snap.summary["selective"]


# --- consistency while the application writes ----------------------------------------------


class LedgerWriter(threading.Thread):
    """Keeps appending to ``accounts_log`` and adding the amount to ``totals`` in one
    transaction each, so sum(log) == totals.value holds at every commit."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.stop = threading.Event()
        self.committed = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            conn = connect(self.path)
            conn.execute("PRAGMA synchronous=OFF")
            while not self.stop.is_set():
                self._one_transaction(conn)
            conn.close()
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.error = exc

    def _one_transaction(self, conn: sqlite3.Connection) -> None:
        amount = self.committed % 97 + 1
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO accounts_log (amount, note) VALUES (?, randomblob(512))",
                     (amount,))
        conn.execute("UPDATE totals SET value = value + ?, entries = entries + 1 WHERE id = 1",
                     (amount,))
        conn.execute("COMMIT")
        self.committed += 1

    def wait_beyond(self, count: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while self.committed <= count and time.monotonic() < deadline and self.is_alive():
            self.stop.wait(0.005)
        assert self.committed > count, f"writer stalled ({self.error!r})"


def make_ledger(path: Path) -> None:
    """The ledger, with some history so a copy of it takes a while."""
    conn = connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE totals (id INTEGER PRIMARY KEY, value INTEGER, entries INTEGER)")
    conn.execute("CREATE TABLE accounts_log (id INTEGER PRIMARY KEY, amount INTEGER, note BLOB)")
    conn.execute("INSERT INTO totals VALUES (1, 0, 0)")
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO accounts_log (amount, note) VALUES (0, randomblob(512))",
                     [()] * 2000)
    conn.execute("COMMIT")
    conn.close()


@pytest.fixture
def ledger_writer(tmp_path: Path) -> Iterator[LedgerWriter]:
    path = tmp_path / "ledger.db"
    make_ledger(path)
    writer = LedgerWriter(path)
    writer.start()
    yield writer
    writer.stop.set()
    writer.join(timeout=30)


@LAYOUTS
def test_each_backup_is_one_consistent_moment_while_a_writer_commits(
    repo: Repository, ledger_writer: LedgerWriter, row_streams: bool) -> None:
    seen: list[int] = []
    for _ in range(6):
        ledger_writer.wait_beyond(seen[-1] if seen else 0)
        snap = backup_sqlite(repo, ledger_writer.path, row_streams=row_streams)
        log = snapshot_rows(repo, snap, "accounts_log")
        [(_, value, entries)] = snapshot_rows(repo, snap, "totals")
        assert sum(amount for _, amount, _ in log) == value
        assert entries == sum(1 for _, amount, _ in log if amount > 0)
        seen.append(entries)
    ledger_writer.wait_beyond(seen[-1])  # still writing after the last backup

    assert ledger_writer.error is None
    assert seen == sorted(seen) and len(set(seen)) == len(seen)  # each saw a later moment


# --- selective backups ---------------------------------------------------------------------


def ids(rows: list[Row]) -> set[Any]:
    return {row[0] for row in rows}


def assert_selected(repo: Repository, snap: Snapshot, demo: Path,
                    expected: dict[str, list[Row]]) -> None:
    """The snapshot holds exactly ``expected`` rows per table, and is marked selective."""
    reader = SnapshotReader(repo, snap)
    assert reader.selective and reader.page_copy() is None
    for table in DEMO_TABLES:
        assert sorted(reader.rows(table)) == sorted(expected.get(table, [])), table
    contents = snap.summary["contents"]
    assert contents["projects_count"] == len(expected.get("projects", []))
    assert contents["sessions_count"] == len(expected.get("sessions", []))
    assert contents["messages_count"] == len(expected.get("messages", []))


def subtree_of_sessions(demo: Path, session_ids: set[str]) -> dict[str, list[Row]]:
    """The sessions, their messages and the projects they belong to, by plain SQL."""
    marks = ", ".join("?" * len(session_ids))
    sessions = query(demo, f"SELECT * FROM sessions WHERE id IN ({marks})", list(session_ids))
    messages = query(demo, f"SELECT * FROM messages WHERE session_id IN ({marks})",
                     list(session_ids))
    owners = sorted({row[1] for row in sessions})
    projects = query(demo, f"SELECT * FROM projects WHERE id IN ({', '.join('?' * len(owners))})",
                     owners)
    return {"projects": projects, "sessions": sessions, "messages": messages}


def test_records_filter_takes_exactly_one_project_subtree(repo: Repository,
                                                          demo: Path) -> None:
    project = query(demo, "SELECT id FROM projects ORDER BY name LIMIT 1 OFFSET 2")[0][0]
    sessions = {sid for (sid,) in query(demo, "SELECT id FROM sessions WHERE project_id = ?",
                                        [project])}

    snap = backup_sqlite(repo, demo, filters=DatabaseFilters(records={"projects": [project]}))

    expected = subtree_of_sessions(demo, sessions)
    assert ids(expected["projects"]) == {project}
    assert len(expected["messages"]) == query(
        demo, "SELECT COUNT(*) FROM messages JOIN sessions ON sessions.id = session_id "
              "WHERE project_id = ?", [project])[0][0]
    assert_selected(repo, snap, demo, expected)


def parse_stamp(text: str) -> datetime:
    return datetime.fromisoformat(text)


def rows_in_range(demo: Path, table: str, column: str, start: datetime,
                  end: datetime) -> list[Row]:
    position = [row[1] for row in query(demo, f"PRAGMA table_info({table})")].index(column)
    return [row for row in query(demo, f"SELECT * FROM {table}")
            if start <= parse_stamp(row[position]) <= end]


def test_date_range_takes_root_rows_made_in_range_with_their_subtrees(
    repo: Repository, demo: Path
) -> None:
    created = sorted(parse_stamp(t) for (t,) in query(demo, "SELECT created_at FROM projects"))
    start, end = created[1] - timedelta(seconds=1), created[3] + timedelta(seconds=1)

    snap = backup_sqlite(repo, demo, filters=DatabaseFilters(date_start=start, date_end=end))

    projects = rows_in_range(demo, "projects", "created_at", start, end)
    assert len(projects) == 3
    marks = ", ".join("?" * len(projects))
    sessions = {sid for (sid,) in query(
        demo, f"SELECT id FROM sessions WHERE project_id IN ({marks})", list(ids(projects)))}
    expected = subtree_of_sessions(demo, sessions)
    expected["prompts"] = rows_in_range(demo, "prompts", "created_at", start, end)
    expected["ai_settings"] = rows_in_range(demo, "ai_settings", "updated_at", start, end)
    assert_selected(repo, snap, demo, expected)


@pytest.mark.parametrize(("low", "high"), [(10, 14), (None, 9), (15, None)])
def test_message_count_range_takes_matching_sessions(
    repo: Repository, demo: Path, low: int | None, high: int | None
) -> None:
    bounds = (low or 0, high if high is not None else 10**9)
    sessions = {sid for (sid,) in query(
        demo, "SELECT s.id FROM sessions s LEFT JOIN messages m ON m.session_id = s.id "
              "GROUP BY s.id HAVING COUNT(m.id) BETWEEN ? AND ?", bounds)}
    assert 0 < len(sessions) < query(demo, "SELECT COUNT(*) FROM sessions")[0][0]

    filters = DatabaseFilters(min_children=low, max_children=high,
                              count_parent="sessions", count_child="messages")
    snap = backup_sqlite(repo, demo, filters=filters)

    assert_selected(repo, snap, demo, subtree_of_sessions(demo, sessions))


@pytest.mark.parametrize(("include", "exclude", "tables"), [
    (["p*"], [], {"projects", "prompts"}),
    ([], ["messages", "ai_*"], {"projects", "sessions", "prompts"}),
    (["*s"], ["ai_settings", "sess*"], {"projects", "messages", "prompts"}),
])
def test_table_globs_choose_whole_tables(
    repo: Repository, demo: Path, include: list[str], exclude: list[str], tables: set[str]
) -> None:
    filters = DatabaseFilters(include_tables=include, exclude_tables=exclude)
    snap = backup_sqlite(repo, demo, filters=filters)

    counts = {t: query(demo, f"SELECT COUNT(*) FROM {t}")[0][0] for t in tables}
    assert stored_tables(repo, snap) == counts
    assert SnapshotReader(repo, snap).page_copy() is None
    contents = snap.summary["contents"]
    assert contents["messages_count"] == counts.get("messages", 0)
    assert contents["total_documents"] == sum(counts.values())


# --- errors and deduplication --------------------------------------------------------------


@pytest.mark.parametrize(("name", "content", "message"), [
    ("missing.db", None, "no such SQLite database"),
    ("notes.txt", b"these are not the pages you are looking for\n" * 200, "cannot read as SQLite"),
    ("folder", "dir", "no such SQLite database"),
])
def test_unreadable_source_fails_clearly_and_stores_nothing(
    repo: Repository, tmp_path: Path, name: str, content: bytes | str | None, message: str
) -> None:
    path = tmp_path / name
    if content == "dir":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)

    with pytest.raises(SourceError, match=message) as failure:
        backup_sqlite(repo, path)

    assert str(path) in failure.value.message
    assert repo.list_snapshots() == []
    assert list(repo.backend.list("data")) == []


def test_second_backup_of_an_unchanged_database_adds_almost_nothing(
    repo: Repository, tmp_path: Path
) -> None:
    db = tmp_path / "steady.db"
    generate(db, projects=4, sessions_per_project=10, messages_per_session=60, seed=5)

    first = backup_sqlite(repo, db)
    second = backup_sqlite(repo, db)

    assert first.summary["bytes_new_raw"] >= db.stat().st_size  # the page copy
    assert second.summary["bytes_new_raw"] <= first.summary["bytes_new_raw"] // 100
    assert second.id != first.id and len(repo.list_snapshots()) == 2
