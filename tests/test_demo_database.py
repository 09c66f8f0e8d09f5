"""The demo application database: seed-000 shaped, deterministic, and consistent."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from strongbox.demo.app_database import HISTORY, REFERENCE_TIME, generate

TABLES = ("projects", "sessions", "messages", "prompts", "ai_settings")


def content_hash(path: Path) -> str:
    """A digest of schema and rows, independent of how the file happens to be laid out."""
    conn = sqlite3.connect(path)
    try:
        digest = hashlib.sha256()
        for line in conn.iterdump():
            digest.update(line.encode())
        return digest.hexdigest()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    path = tmp_path_factory.mktemp("demo") / "app.db"
    counts = generate(path, projects=4, sessions_per_project=6, messages_per_session=12, seed=7)
    return path, counts


@pytest.fixture
def conn(demo: tuple[Path, dict[str, int]]) -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(demo[0])
    yield connection
    connection.close()


def test_same_seed_gives_same_content_and_another_seed_does_not(tmp_path: Path) -> None:
    first = generate(tmp_path / "a.db", seed=3)
    second = generate(tmp_path / "b.db", seed=3)
    other = generate(tmp_path / "c.db", seed=4)

    assert first == second == other
    assert content_hash(tmp_path / "a.db") == content_hash(tmp_path / "b.db")
    assert content_hash(tmp_path / "a.db") != content_hash(tmp_path / "c.db")


def test_counts_are_returned_and_true(
    demo: tuple[Path, dict[str, int]], conn: sqlite3.Connection
) -> None:
    _, counts = demo
    assert counts == {
        "projects": 4,
        "sessions": 24,
        "messages": 4 * 6 * 12,
        "prompts": 20,
        "ai_settings": 8,
    }
    for table in TABLES:
        assert conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] == counts[table]


def test_sessions_vary_in_size_and_record_their_message_count(conn: sqlite3.Connection) -> None:
    rows = conn.execute(
        "SELECT s.message_count, COUNT(m.id) FROM sessions s "
        "LEFT JOIN messages m ON m.session_id = s.id GROUP BY s.id"
    ).fetchall()
    assert all(recorded == actual for recorded, actual in rows)
    sizes = {actual for _, actual in rows}
    assert len(sizes) > 1  # so "sessions with N to M messages" has something to choose
    assert min(sizes) >= 12 - 12 // 2


def test_database_is_consistent(conn: sqlite3.Connection) -> None:
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_foreign_keys_are_enforced_and_cascade(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    generate(path, projects=2, sessions_per_project=3, messages_per_session=4)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA foreign_keys=ON")
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("INSERT INTO sessions (id, project_id) VALUES ('s', 'no-such-project')")
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("INSERT INTO messages (session_id, type) VALUES ('no-such-session', 'user')")

    (project,) = conn.execute("SELECT id FROM projects ORDER BY id LIMIT 1").fetchone()
    (kept,) = conn.execute(
        "SELECT COUNT(*) FROM messages m JOIN sessions s ON s.id = m.session_id "
        "WHERE s.project_id != ?",
        (project,),
    ).fetchone()
    conn.execute("DELETE FROM projects WHERE id = ?", (project,))
    assert conn.execute("SELECT COUNT(*) FROM sessions").fetchone() == (3,)
    assert conn.execute("SELECT COUNT(*) FROM messages").fetchone() == (kept,)
    assert kept < 2 * 3 * 4
    conn.close()


def test_message_type_is_checked(conn: sqlite3.Connection) -> None:
    (session,) = conn.execute("SELECT id FROM sessions LIMIT 1").fetchone()
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("INSERT INTO messages (session_id, type) VALUES (?, 'robot')", (session,))
    types = {kind for (kind,) in conn.execute("SELECT DISTINCT type FROM messages")}
    assert types == {"user", "assistant", "system"}


def test_timestamps_are_iso_utc_within_the_history(conn: sqlite3.Connection) -> None:
    earliest = REFERENCE_TIME - HISTORY
    for table in ("projects", "sessions", "messages", "prompts"):
        for (stamp,) in conn.execute(f"SELECT created_at FROM {table}"):
            assert stamp.endswith("Z")
            assert earliest <= datetime.fromisoformat(stamp) <= REFERENCE_TIME


def test_times_follow_the_hierarchy(conn: sqlite3.Connection) -> None:
    """Sessions start after their project, messages after their session; updated_at is the
    newest child's time."""
    late_sessions = conn.execute(
        "SELECT COUNT(*) FROM sessions s JOIN projects p ON p.id = s.project_id "
        "WHERE s.created_at < p.created_at"
    ).fetchone()
    early_messages = conn.execute(
        "SELECT COUNT(*) FROM messages m JOIN sessions s ON s.id = m.session_id "
        "WHERE m.created_at < s.created_at"
    ).fetchone()
    assert late_sessions == early_messages == (0,)
    stale = conn.execute(
        "SELECT COUNT(*) FROM sessions s WHERE s.updated_at != "
        "(SELECT MAX(created_at) FROM messages WHERE session_id = s.id)"
    ).fetchone()
    assert stale == (0,)
    stale = conn.execute(
        "SELECT COUNT(*) FROM projects p WHERE p.updated_at != "
        "(SELECT MAX(updated_at) FROM sessions WHERE project_id = p.id)"
    ).fetchone()
    assert stale == (0,)


def test_ids_are_uuids_and_project_names_unique(conn: sqlite3.Connection) -> None:
    ids = [
        row[0] for row in conn.execute("SELECT id FROM projects UNION ALL SELECT id FROM sessions")
    ]
    assert all(len(value) == 36 and value[14] == "4" for value in ids)
    assert len(set(ids)) == len(ids)
    names = [name for (name,) in conn.execute("SELECT name FROM projects")]
    assert len(set(names)) == len(names)


def test_some_messages_carry_a_binary_attachment(conn: sqlite3.Connection) -> None:
    attachments = [blob for (blob,) in conn.execute("SELECT attachment FROM messages")]
    present = [blob for blob in attachments if blob is not None]
    assert 0 < len(present) < len(attachments) / 2
    assert all(isinstance(blob, bytes) and 4 <= len(blob) <= 64 for blob in present)


def test_prompt_tags_are_json_lists(conn: sqlite3.Connection) -> None:
    for (tags,) in conn.execute("SELECT tags FROM prompts"):
        parsed = json.loads(tags)
        assert isinstance(parsed, list)
        assert all(isinstance(tag, str) for tag in parsed)


def test_an_existing_file_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    path.write_bytes(b"precious")
    with pytest.raises(FileExistsError):
        generate(path)
    assert path.read_bytes() == b"precious"
