"""Foreign keys, the table graph, and row selections that follow it.

Expected selections are computed with independent SQL joins over the demo database, not
with the code under test.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from strongbox.demo.app_database import generate
from strongbox.errors import InvalidRequest
from strongbox.sources.sqlite.foreign_keys import (
    ForeignKey,
    ForeignKeyGraph,
    list_tables,
    primary_key,
    read_foreign_keys,
)
from strongbox.sources.sqlite.selection import (
    MAX_PARAMETERS,
    child_count_filter,
    detect_timestamp_column,
    filter_by_date,
    select_closure,
)

SESSION_TO_PROJECT = ForeignKey("sessions", ("project_id",), "projects", ("id",))
MESSAGE_TO_SESSION = ForeignKey("messages", ("session_id",), "sessions", ("id",))


@pytest.fixture(scope="module")
def demo_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "app.db"
    generate(path, projects=4, sessions_per_project=5, messages_per_session=8, seed=11)
    return path


@pytest.fixture
def conn(demo_path: Path) -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(demo_path)
    yield connection
    connection.close()


@pytest.fixture
def graph(conn: sqlite3.Connection) -> ForeignKeyGraph:
    return ForeignKeyGraph.from_connection(conn)


def memory_db(*statements: str) -> sqlite3.Connection:
    connection = sqlite3.connect(":memory:")
    for statement in statements:
        connection.execute(statement)
    return connection


def keys(conn: sqlite3.Connection, sql: str, *params: object) -> set[tuple]:
    return set(conn.execute(sql, params))


def first_project(conn: sqlite3.Connection) -> str:
    return conn.execute("SELECT id FROM projects ORDER BY name LIMIT 1").fetchone()[0]


# --- reading the schema -----------------------------------------------------------------


def test_demo_foreign_keys_are_read(conn: sqlite3.Connection) -> None:
    assert sorted(read_foreign_keys(conn), key=ForeignKey.describe) == [
        MESSAGE_TO_SESSION,
        SESSION_TO_PROJECT,
    ]


def test_list_tables_leaves_out_sqlite_internals(conn: sqlite3.Connection) -> None:
    # The demo ran ANALYZE, so sqlite_stat1 exists; AUTOINCREMENT adds sqlite_sequence.
    conn.execute("CREATE TEMP TABLE scratch (x)")
    assert list_tables(conn) == ["ai_settings", "messages", "projects", "prompts", "sessions"]
    auto = memory_db("CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT)")
    auto.execute("INSERT INTO t DEFAULT VALUES")
    assert list_tables(auto) == ["t"]


def test_primary_keys() -> None:
    conn = memory_db(
        "CREATE TABLE plain (a, b)",
        "CREATE TABLE pair (a TEXT, b INTEGER, c, PRIMARY KEY (b, a))",
        "CREATE TABLE numbered (id INTEGER PRIMARY KEY, x)",
        "CREATE TABLE keyed (k TEXT PRIMARY KEY, v) WITHOUT ROWID",
    )
    assert primary_key(conn, "plain") == ("rowid",)
    assert primary_key(conn, "pair") == ("b", "a")  # key order, not column order
    assert primary_key(conn, "numbered") == ("id",)
    assert primary_key(conn, "keyed") == ("k",)


def test_references_without_columns_mean_the_parent_key_and_names_are_canonical() -> None:
    conn = memory_db(
        "CREATE TABLE Owner (a TEXT, b INTEGER, PRIMARY KEY (a, b))",
        "CREATE TABLE pet (id INTEGER PRIMARY KEY, oa, ob, FOREIGN KEY (OA, ob) REFERENCES owner)",
        "CREATE TABLE toy (id, pet_id REFERENCES PET(ID))",
    )
    assert sorted(read_foreign_keys(conn), key=ForeignKey.describe) == [
        ForeignKey("pet", ("oa", "ob"), "Owner", ("a", "b")),
        ForeignKey("toy", ("pet_id",), "pet", ("id",)),
    ]


def test_a_link_must_pair_columns() -> None:
    with pytest.raises(InvalidRequest):
        ForeignKey("a", ("x", "y"), "b", ("id",))
    with pytest.raises(InvalidRequest):
        ForeignKey("a", (), "b", ())


# --- the graph --------------------------------------------------------------------------


def test_demo_graph(graph: ForeignKeyGraph) -> None:
    assert graph.children("projects") == (SESSION_TO_PROJECT,)
    assert graph.parents("sessions") == (SESSION_TO_PROJECT,)
    assert graph.children("sessions") == (MESSAGE_TO_SESSION,)
    assert graph.parents("projects") == ()
    assert graph.children("prompts") == graph.parents("prompts") == ()
    order = graph.topological_order()
    assert sorted(order) == sorted(graph.tables)
    assert order.index("projects") < order.index("sessions") < order.index("messages")
    assert graph.cycles == ()
    assert graph.broken_links == ()


def test_unknown_table_is_a_clear_error(graph: ForeignKeyGraph) -> None:
    with pytest.raises(InvalidRequest, match="unknown table 'nope'"):
        graph.children("nope")


def test_order_is_deterministic_and_follows_table_order_on_ties() -> None:
    links = [
        ForeignKey("c", ("a_id",), "a", ("id",)),
        ForeignKey("d", ("c_id",), "c", ("id",)),
        ForeignKey("d", ("b_id",), "b", ("id",)),
    ]
    assert ForeignKeyGraph(["d", "c", "b", "a"], links).topological_order() == ["b", "a", "c", "d"]
    assert ForeignKeyGraph(["a", "b", "c", "d"], links).topological_order() == ["a", "b", "c", "d"]


def test_cycles_and_self_references_are_broken_and_reported() -> None:
    # root → (alpha ⇄ beta) → leaf, and tree references itself (a parent comment).
    alpha_to_beta = ForeignKey("alpha", ("beta_id",), "beta", ("id",))
    beta_to_alpha = ForeignKey("beta", ("alpha_id",), "alpha", ("id",))
    tree_to_tree = ForeignKey("tree", ("parent_id",), "tree", ("id",))
    links = [
        ForeignKey("alpha", ("root_id",), "root", ("id",)),
        alpha_to_beta,
        beta_to_alpha,
        ForeignKey("leaf", ("beta_id",), "beta", ("id",)),
        tree_to_tree,
    ]
    graph = ForeignKeyGraph(["leaf", "beta", "alpha", "tree", "root"], links)

    order = graph.topological_order()
    # Free tables first by rank, then the ring (entered at its earliest table), then leaf.
    assert order == ["tree", "root", "beta", "alpha", "leaf"]
    assert graph.cycles == (("beta", "alpha"), ("tree",))
    # Entering the ring at beta places it before its parent alpha: that one link is broken.
    assert graph.broken_links == (beta_to_alpha, tree_to_tree)
    assert ForeignKeyGraph(graph.tables, links).topological_order() == order


def test_extra_links_must_name_known_tables_and_dangling_constraints_are_set_aside() -> None:
    with pytest.raises(InvalidRequest, match="unknown table 'ghost'"):
        ForeignKeyGraph(["a"], [], [ForeignKey("a", ("g",), "ghost", ("id",))])
    conn = memory_db("CREATE TABLE a (id, gone_id REFERENCES gone(id))")
    graph = ForeignKeyGraph.from_connection(conn)
    assert graph.dangling == (ForeignKey("a", ("gone_id",), "gone", ("id",)),)
    assert graph.links == ()
    assert graph.topological_order() == ["a"]


# --- closure ----------------------------------------------------------------------------


def test_closure_of_a_project_is_exactly_its_sessions_and_messages(
    conn: sqlite3.Connection, graph: ForeignKeyGraph
) -> None:
    project = first_project(conn)
    selection = select_closure(conn, graph, {"projects": [(project,)]})

    assert selection == {
        "projects": {(project,)},
        "sessions": keys(conn, "SELECT id FROM sessions WHERE project_id = ?", project),
        "messages": keys(
            conn,
            "SELECT m.id FROM messages m JOIN sessions s ON s.id = m.session_id "
            "WHERE s.project_id = ?",
            project,
        ),
    }
    assert len(selection["sessions"]) == 5


def test_selecting_a_message_brings_its_session_and_project_but_no_siblings(
    conn: sqlite3.Connection, graph: ForeignKeyGraph
) -> None:
    message, session, project = conn.execute(
        "SELECT m.id, s.id, s.project_id FROM messages m JOIN sessions s ON s.id = m.session_id "
        "ORDER BY m.id DESC LIMIT 1"
    ).fetchone()
    selection = select_closure(conn, graph, {"messages": [message]})
    assert selection == {
        "messages": {(message,)},
        "sessions": {(session,)},
        "projects": {(project,)},
    }


def test_directions_can_be_turned_off(conn: sqlite3.Connection, graph: ForeignKeyGraph) -> None:
    project = first_project(conn)
    only_project = select_closure(conn, graph, {"projects": [project]}, include_children=False)
    assert only_project == {"projects": {(project,)}}
    (message,) = conn.execute("SELECT MIN(id) FROM messages").fetchone()
    lone = select_closure(conn, graph, {"messages": [message]}, include_parents=False)
    assert lone == {"messages": {(message,)}}


def test_roots_that_match_nothing_are_dropped_and_bad_roots_rejected(
    conn: sqlite3.Connection, graph: ForeignKeyGraph
) -> None:
    assert select_closure(conn, graph, {"projects": ["no-such-project"]}) == {}
    with pytest.raises(InvalidRequest, match="unknown table"):
        select_closure(conn, graph, {"nope": [1]})
    with pytest.raises(InvalidRequest, match="does not fit"):
        select_closure(conn, graph, {"projects": [("a", "b")]})


def test_a_self_referencing_thread_is_followed_both_ways() -> None:
    conn = memory_db(
        "CREATE TABLE comments (id INTEGER PRIMARY KEY, parent_id REFERENCES comments(id))",
        "INSERT INTO comments VALUES (1, NULL), (2, 1), (3, 2), (4, 1), (5, NULL), (6, 5)",
    )
    graph = ForeignKeyGraph.from_connection(conn)
    assert graph.cycles == (("comments",),)
    assert select_closure(conn, graph, {"comments": [1]}) == {"comments": {(1,), (2,), (3,), (4,)}}
    assert select_closure(conn, graph, {"comments": [3]}) == {"comments": {(1,), (2,), (3,)}}


def test_composite_keys_are_matched_as_row_values_across_batches() -> None:
    conn = memory_db(
        "CREATE TABLE shelf (room TEXT, number INTEGER, PRIMARY KEY (room, number))",
        "CREATE TABLE book (id INTEGER PRIMARY KEY, room TEXT, number INTEGER, "
        "FOREIGN KEY (room, number) REFERENCES shelf)",
    )
    shelves = [(room, number) for room in ("east", "west") for number in range(400)]
    conn.executemany("INSERT INTO shelf VALUES (?, ?)", shelves)
    conn.executemany(
        "INSERT INTO book (room, number) VALUES (?, ?)", [s for s in shelves for _ in range(2)]
    )
    graph = ForeignKeyGraph.from_connection(conn)
    east = [shelf for shelf in shelves if shelf[0] == "east"]
    assert len(east) * 2 > MAX_PARAMETERS  # forces more than one batch

    selection = select_closure(conn, graph, {"shelf": east})
    assert selection["shelf"] == set(east)
    assert selection["book"] == keys(conn, "SELECT id FROM book WHERE room = 'east'")

    books = select_closure(conn, graph, {"book": [1, 2, 3]})
    assert books["shelf"] == {("east", 0), ("east", 1)}


def test_extra_links_work_where_the_schema_declares_none(
    conn: sqlite3.Connection, graph: ForeignKeyGraph, demo_path: Path, tmp_path: Path
) -> None:
    """The same data without REFERENCES clauses, linked by hand, selects the same rows."""
    bare_path = tmp_path / "bare.db"
    bare = sqlite3.connect(bare_path)
    bare.execute("CREATE TABLE projects (id TEXT PRIMARY KEY, name TEXT)")
    bare.execute("CREATE TABLE sessions (id TEXT PRIMARY KEY, project_id TEXT)")
    bare.execute("CREATE TABLE messages (id INTEGER PRIMARY KEY, session_id TEXT)")
    bare.execute("ATTACH DATABASE ? AS demo", (str(demo_path),))
    bare.execute("INSERT INTO projects SELECT id, name FROM demo.projects")
    bare.execute("INSERT INTO sessions SELECT id, project_id FROM demo.sessions")
    bare.execute("INSERT INTO messages SELECT id, session_id FROM demo.messages")
    bare.commit()
    bare.execute("DETACH DATABASE demo")

    assert read_foreign_keys(bare) == []
    linked = ForeignKeyGraph.from_connection(
        bare, extra_links=[MESSAGE_TO_SESSION, SESSION_TO_PROJECT]
    )
    assert linked.topological_order() == ["projects", "sessions", "messages"]
    project = first_project(conn)
    assert select_closure(bare, linked, {"projects": [project]}) == select_closure(
        conn, graph, {"projects": [project]}
    )
    bare.close()


def test_extra_links_duplicating_declared_ones_are_counted_once(
    conn: sqlite3.Connection,
) -> None:
    graph = ForeignKeyGraph.from_connection(conn, extra_links=[SESSION_TO_PROJECT])
    assert graph.children("projects") == (SESSION_TO_PROJECT,)


@pytest.mark.slow
def test_closure_at_scale(tmp_path: Path) -> None:
    path = tmp_path / "big.db"
    counts = generate(path, projects=10, sessions_per_project=100, messages_per_session=200)
    assert counts["messages"] == 200_000
    conn = sqlite3.connect(path)
    graph = ForeignKeyGraph.from_connection(conn)
    projects = [row[0] for row in conn.execute("SELECT id FROM projects ORDER BY id LIMIT 3")]

    selection = select_closure(conn, graph, {"projects": projects})

    marks = ", ".join(["?"] * len(projects))
    expected_messages = keys(
        conn,
        "SELECT m.id FROM messages m JOIN sessions s ON s.id = m.session_id "
        f"WHERE s.project_id IN ({marks})",
        *projects,
    )
    assert len(expected_messages) == 60_000
    assert selection["messages"] == expected_messages
    assert len(selection["sessions"]) == 300
    assert selection["projects"] == {(p,) for p in projects}

    everything = select_closure(conn, graph, {"sessions": keys(conn, "SELECT id FROM sessions")})
    assert len(everything["messages"]) == 200_000
    assert len(everything["projects"]) == 10
    conn.close()


# --- filters ----------------------------------------------------------------------------


def test_child_count_filter_matches_a_group_by(
    conn: sqlite3.Connection, graph: ForeignKeyGraph
) -> None:
    sizes = dict(conn.execute("SELECT session_id, COUNT(*) FROM messages GROUP BY session_id"))
    low, high = 6, 9
    assert child_count_filter(conn, graph, "sessions", "messages", low, high) == {
        (session,) for session, size in sizes.items() if low <= size <= high
    }
    assert child_count_filter(conn, graph, "sessions", "messages", min_count=9) == {
        (session,) for session, size in sizes.items() if size >= 9
    }
    everything = child_count_filter(conn, graph, "projects", "sessions", 5, 5)
    assert everything == keys(conn, "SELECT id FROM projects")


def test_child_count_filter_counts_zero_for_childless_parents() -> None:
    conn = memory_db(
        "CREATE TABLE parent (id INTEGER PRIMARY KEY)",
        "CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id REFERENCES parent)",
        "INSERT INTO parent VALUES (1), (2), (3)",
        "INSERT INTO child (parent_id) VALUES (1), (1), (2)",
    )
    graph = ForeignKeyGraph.from_connection(conn)
    assert child_count_filter(conn, graph, "parent", "child", 0, 0) == {(3,)}
    assert child_count_filter(conn, graph, "parent", "child", 1, 1) == {(2,)}
    assert child_count_filter(conn, graph, "parent", "child") == {(1,), (2,), (3,)}


def test_child_count_filter_rejects_bad_requests(
    conn: sqlite3.Connection, graph: ForeignKeyGraph
) -> None:
    with pytest.raises(InvalidRequest, match="exceed"):
        child_count_filter(conn, graph, "sessions", "messages", 5, 4)
    with pytest.raises(InvalidRequest, match="negative"):
        child_count_filter(conn, graph, "sessions", "messages", -1, 4)
    with pytest.raises(InvalidRequest, match="exactly one link"):
        child_count_filter(conn, graph, "projects", "messages", 1, 4)


def test_filter_by_date_matches_parsed_timestamps(conn: sqlite3.Connection) -> None:
    start = datetime(2024, 9, 1, tzinfo=UTC)
    end = datetime(2024, 11, 15, 12, 30, tzinfo=UTC)
    expected = {
        (message,)
        for message, stamp in conn.execute("SELECT id, created_at FROM messages")
        if start <= datetime.fromisoformat(stamp) <= end
    }
    assert 0 < len(expected) < conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
    assert filter_by_date(conn, "messages", "created_at", start, end) == expected
    # The same range given as text, in another offset, means the same instants.
    berlin = timezone(timedelta(hours=1))
    as_text = filter_by_date(
        conn,
        "messages",
        "created_at",
        start.astimezone(berlin).isoformat(),
        end.isoformat().replace("+00:00", "Z"),
    )
    assert as_text == expected


def test_filter_by_date_with_open_ends(conn: sqlite3.Connection) -> None:
    cut = datetime(2024, 10, 1, tzinfo=UTC)
    before = filter_by_date(conn, "sessions", "created_at", None, cut)
    after = filter_by_date(conn, "sessions", "created_at", cut + timedelta(microseconds=1), None)
    assert before | after == keys(conn, "SELECT id FROM sessions")
    assert not before & after


def test_filter_by_date_reads_unix_times_and_skips_non_times() -> None:
    moment = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
    conn = memory_db("CREATE TABLE log (at)")
    conn.executemany(
        "INSERT INTO log VALUES (?)",
        [
            (int(moment.timestamp()),),
            (moment.timestamp() * 1000,),
            ("2024-06-01 14:00:00+02:00",),
            ("2023-01-01T00:00:00Z",),
            (None,),
            ("not a time",),
        ],
    )
    window = (moment - timedelta(minutes=1), moment + timedelta(minutes=1))
    assert filter_by_date(conn, "log", "at", *window) == {(1,), (2,), (3,)}
    assert filter_by_date(conn, "log", "at", None, None) == {(1,), (2,), (3,), (4,)}


def test_filter_by_date_rejects_bad_requests(conn: sqlite3.Connection) -> None:
    with pytest.raises(InvalidRequest, match="starts after it ends"):
        filter_by_date(conn, "messages", "created_at", "2024-10-02", "2024-10-01")
    with pytest.raises(InvalidRequest, match="not an ISO 8601"):
        filter_by_date(conn, "messages", "created_at", "yesterday", None)
    with pytest.raises(InvalidRequest, match="no column 'made_at'"):
        filter_by_date(conn, "messages", "made_at", None, None)
    with pytest.raises(InvalidRequest, match="unknown table"):
        filter_by_date(conn, "nope", "created_at", None, None)


def test_detect_timestamp_column(conn: sqlite3.Connection) -> None:
    assert detect_timestamp_column(conn, "messages") == "created_at"
    assert detect_timestamp_column(conn, "ai_settings") == "updated_at"
    other = memory_db(
        "CREATE TABLE a (id, Timestamp, note)",
        "CREATE TABLE b (id, logged_on, note)",
        "CREATE TABLE c (id, seen DATETIME)",
        "CREATE TABLE d (id, note)",
    )
    assert detect_timestamp_column(other, "a") == "Timestamp"
    assert detect_timestamp_column(other, "b") == "logged_on"
    assert detect_timestamp_column(other, "c") == "seen"
    assert detect_timestamp_column(other, "d") is None
