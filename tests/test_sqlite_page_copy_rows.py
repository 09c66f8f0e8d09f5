"""A full SQLite backup keeps each table once, in the page copy, and still reads it row by row.

The row-level features (selective and merge restores, previews, exports) read a full
backup's tables from its page copy through a scratch file; these tests pin down the layout
and the scratch file's life, and that both layouts give the same rows.
"""

from __future__ import annotations

import gc
import os
import sqlite3
from pathlib import Path

import pytest

from strongbox.demo.app_database import generate
from strongbox.errors import InsufficientStorage, SourceError
from strongbox.repository.repository import Repository
from strongbox.repository.tree import Tree
from strongbox.sources.sqlite.backup import backup_sqlite
from strongbox.sources.sqlite.codec import InvalidText
from strongbox.sources.sqlite.reader import SnapshotReader


@pytest.fixture()
def demo(tmp_path: Path) -> Path:
    path = tmp_path / "app.db"
    generate(path, projects=3, sessions_per_project=4, messages_per_session=10, seed=3)
    return path


@pytest.fixture()
def scratch_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """TMPDIR for this test alone, so its scratch files can be watched."""
    directory = tmp_path / "tmp"
    directory.mkdir()
    monkeypatch.setenv("TMPDIR", str(directory))
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    return directory


def table_nodes(repo: Repository, snapshot_tree: str) -> dict[str, object]:
    root = {n.name: n for n in repo.load_tree(snapshot_tree).nodes}
    subtree = root["tables"].subtree
    assert subtree is not None
    tables: Tree = repo.load_tree(subtree)
    return {n.name: n for n in tables.nodes}


def test_full_backup_stores_each_table_once_in_the_page_copy(repo: Repository,
                                                             demo: Path) -> None:
    snap = backup_sqlite(repo, demo)

    nodes = table_nodes(repo, snap.tree)
    for name, node in nodes.items():
        assert node.content == [], name  # type: ignore[attr-defined]
        assert node.meta["rows_in"] == "database.sqlite"  # type: ignore[attr-defined]
    with SnapshotReader(repo, snap) as reader:
        assert reader.manifest["row_streams"] is False
        # A name of its own: a Strongbox that predates this layout refuses the snapshot
        # (it accepts "strongbox-sqlite") instead of reading its tables as empty.
        assert reader.manifest["format"] == "strongbox-sqlite-pages/1"
        assert reader.table("messages").rows == 120
    with SnapshotReader(repo, backup_sqlite(repo, demo, row_streams=True)) as reader:
        assert reader.manifest["format"] == "strongbox-sqlite/1"


def test_row_streams_layout_and_page_copy_layout_read_the_same(repo: Repository,
                                                               demo: Path) -> None:
    plain = backup_sqlite(repo, demo)
    streamed = backup_sqlite(repo, demo, row_streams=True)

    assert all(n.content or n.meta["rows"] == 0  # type: ignore[attr-defined]
               for n in table_nodes(repo, streamed.tree).values())
    with SnapshotReader(repo, plain) as a, SnapshotReader(repo, streamed) as b:
        assert [t.name for t in a.tables()] == [t.name for t in b.tables()]
        for table in a.tables():
            assert table == b.table(table.name)
            assert list(a.rows(table.name)) == list(b.rows(table.name)), table.name
    # Storing the rows a second time is what row_streams costs.
    assert streamed.summary["bytes_new_raw"] > 0
    assert plain.summary["bytes_new_raw"] >= demo.stat().st_size


def test_scratch_copy_is_made_once_and_removed_on_close(repo: Repository, demo: Path,
                                                        scratch_dir: Path) -> None:
    snap = backup_sqlite(repo, demo)
    reader = SnapshotReader(repo, snap)
    assert os.listdir(scratch_dir) == []  # nothing written until rows are read

    first = list(reader.rows("projects"))
    second = list(reader.rows("messages"))
    made = os.listdir(scratch_dir)

    assert len(first) == 3 and len(second) == 120
    assert len(made) == 1 and made[0].startswith("strongbox-pages-")
    reader.close()
    assert os.listdir(scratch_dir) == []


def test_scratch_copy_goes_when_the_reader_is_dropped(repo: Repository, demo: Path,
                                                      scratch_dir: Path) -> None:
    snap = backup_sqlite(repo, demo)
    reader = SnapshotReader(repo, snap)
    next(iter(reader.rows("sessions")))
    assert os.listdir(scratch_dir)

    del reader
    gc.collect()

    assert os.listdir(scratch_dir) == []


def test_tables_without_their_page_copy_fail_clearly(repo: Repository, demo: Path) -> None:
    snap = backup_sqlite(repo, demo)
    reader = SnapshotReader(repo, snap)
    reader._root.pop("database.sqlite")  # a damaged or hand-made snapshot

    with pytest.raises(SourceError, match="page copy"):
        list(reader.rows("projects"))


def test_full_backup_records_its_date_range_without_reading_rows_back(
        repo: Repository, demo: Path) -> None:
    snap = backup_sqlite(repo, demo)
    with sqlite3.connect(demo) as conn:
        first, last = conn.execute("SELECT min(created_at), max(created_at) "
                                   "FROM sessions").fetchone()

    date_range = SnapshotReader(repo, snap).manifest["date_range"]

    assert date_range["earliest"][:19] == first[:19]
    assert date_range["latest"][:19] == last[:19]


def test_column_rows_are_the_rows_projected_in_both_layouts(repo: Repository,
                                                            tmp_path: Path) -> None:
    db = tmp_path / "mixed.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE notes (body TEXT, n INTEGER)")  # keyed by its rowid
        conn.executemany("INSERT INTO notes (rowid, body, n) VALUES (?, ?, ?)",
                         [(9, "nine", 1), (-2, "minus two", None), (40, "forty", 3)])
    conn.close()
    for row_streams in (False, True):
        snap = backup_sqlite(repo, db, row_streams=row_streams)
        with SnapshotReader(repo, snap) as reader:
            assert list(reader.column_rows("notes", ["n", "rowid"])) == [
                (None, -2), (1, 9), (3, 40)], row_streams
            assert [r[0] for r in reader.rows("notes")] == [-2, 9, 40]


def test_text_that_is_not_utf8_midway_is_read_losslessly_without_losing_rows(
        repo: Repository, tmp_path: Path) -> None:
    db = tmp_path / "bad_text.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"row {i}") for i in range(2500)])
        conn.execute("INSERT INTO t VALUES (2500, CAST(x'61ff62' AS TEXT))")
        conn.executemany("INSERT INTO t VALUES (?, ?)",
                         [(i, f"row {i}") for i in range(2501, 3000)])
    conn.close()

    with SnapshotReader(repo, backup_sqlite(repo, db)) as reader:
        rows = list(reader.rows("t"))
        values = list(reader.column_rows("t", ["v"]))

    assert [r[0] for r in rows] == list(range(3000))  # none lost, none twice
    assert rows[2500] == (2500, InvalidText(b"a\xffb"))
    assert rows[2499] == (2499, "row 2499") and rows[2999] == (2999, "row 2999")
    assert values[2500] == (InvalidText(b"a\xffb"),) and len(values) == 3000


def test_no_room_for_the_scratch_copy_is_a_clear_error_that_leaves_nothing(
        repo: Repository, demo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reader = SnapshotReader(repo, backup_sqlite(repo, demo))
    scratch = tmp_path / "full-disk"
    scratch.mkdir()
    # The scratch copy lands on /dev/full, which answers every write with ENOSPC.
    (scratch / "database.sqlite").symlink_to("/dev/full")
    import tempfile
    monkeypatch.setattr(tempfile, "mkdtemp", lambda **_: str(scratch))

    with pytest.raises(InsufficientStorage, match="TMPDIR needs free space"):
        list(reader.rows("projects"))
    assert not scratch.exists()


def test_repo_diff_names_a_table_whose_row_count_changed(repo: Repository,
                                                         tmp_path: Path) -> None:
    from strongbox.repository.diff import diff_trees

    db = tmp_path / "two.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        conn.execute("CREATE TABLE u (id INTEGER PRIMARY KEY, v TEXT)")
        conn.executemany("INSERT INTO t (v) VALUES (?)", [("a",), ("b",)])
    conn.close()
    before = backup_sqlite(repo, db)
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO u (v) VALUES ('new')")
    conn.close()
    after = backup_sqlite(repo, db)

    changed = {c.path for c in diff_trees(repo, before.tree, after.tree)}

    assert {"database.sqlite", "tables/u"} <= changed
    assert "tables/t" not in changed
