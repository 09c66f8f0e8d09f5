"""How a SQLite backup reads its source: in place for WAL databases, else from a copy.

A WAL database is read in place by two read transactions pinned to the same commit (one
for the row streams, one for the page copy); the page copy must then show exactly the
moment the row streams show, even while the application commits. Rollback-journal
databases, and WAL databases whose write lock cannot be had for an instant, are read from
a private copy, as before.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from strongbox.repository.repository import Repository
from strongbox.repository.snapshot import Snapshot
from strongbox.sources.sqlite import backup as backup_module
from strongbox.sources.sqlite.backup import backup_sqlite
from tests.test_sqlite_backup import (
    LedgerWriter,
    connect,
    make_ledger,
    restore_page_copy,
    snapshot_rows,
)


@pytest.fixture
def copies(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Records each database read through a private copy."""
    made: list[Path] = []
    real = backup_module.consistent_copy

    def spy(db_path: Path) -> Any:
        made.append(db_path)
        return real(db_path)

    monkeypatch.setattr(backup_module, "consistent_copy", spy)
    return made


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[LedgerWriter]:
    path = tmp_path / "ledger.db"
    make_ledger(path)
    ledger = LedgerWriter(path)
    ledger.start()
    yield ledger
    ledger.stop.set()
    ledger.join(timeout=30)


def ledger_state(conn: sqlite3.Connection) -> tuple[int, int, int]:
    """(totals.value, totals.entries, sum of the log) of one database."""
    value, entries = conn.execute("SELECT value, entries FROM totals").fetchone()
    (logged,) = conn.execute("SELECT COALESCE(SUM(amount), 0) FROM accounts_log").fetchone()
    return value, entries, logged


def page_copy_state(repo: Repository, snap: Snapshot, target: Path) -> tuple[int, int, int]:
    restore_page_copy(repo, snap, target)
    conn = connect(target)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        return ledger_state(conn)
    finally:
        conn.close()


def test_wal_page_copy_shows_the_moment_of_the_row_streams_while_a_writer_commits(
    repo: Repository, writer: LedgerWriter, copies: list[Path], tmp_path: Path
) -> None:
    for round_no in range(4):
        writer.wait_beyond(writer.committed)
        snap = backup_sqlite(repo, writer.path)
        [(_, value, entries)] = snapshot_rows(repo, snap, "totals")
        log = snapshot_rows(repo, snap, "accounts_log")

        assert sum(amount for _, amount, _ in log) == value
        assert page_copy_state(repo, snap, tmp_path / f"pages{round_no}.db") == (
            value, entries, value)
    writer.wait_beyond(writer.committed)  # the writer was never stopped by the backups

    assert writer.error is None
    assert copies == []  # read in place, no private copy


def test_wal_source_whose_write_lock_is_held_is_read_from_a_copy(
    repo: Repository, tmp_path: Path, copies: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ledger.db"
    make_ledger(path)
    monkeypatch.setattr(backup_module, "WRITE_LOCK_WAIT", 0.05)
    holder = connect(path)
    holder.execute("BEGIN IMMEDIATE")  # an application transaction that does not end
    holder.execute("UPDATE totals SET value = 99")
    try:
        snap = backup_sqlite(repo, path)
    finally:
        holder.execute("ROLLBACK")
        holder.close()

    assert copies == [path]
    assert snapshot_rows(repo, snap, "totals") == [(1, 0, 0)]  # the last commit only
    assert page_copy_state(repo, snap, tmp_path / "pages.db") == (0, 0, 0)


def test_rollback_journal_source_is_read_from_a_copy(
    repo: Repository, tmp_path: Path, copies: list[Path]
) -> None:
    path = tmp_path / "plain.db"
    conn = connect(path)
    conn.execute("CREATE TABLE t (v TEXT)")
    conn.executemany("INSERT INTO t VALUES (?)", [("a",), ("b",)])
    conn.close()

    snap = backup_sqlite(repo, path)

    assert copies == [path]
    assert snapshot_rows(repo, snap, "t") == [(1, "a"), (2, "b")]


def test_wal_source_with_an_empty_wal_stores_the_database_file_itself(
    repo: Repository, tmp_path: Path, copies: list[Path]
) -> None:
    path = tmp_path / "ledger.db"
    make_ledger(path)  # closed: the WAL is checkpointed into the file

    snap = backup_sqlite(repo, path)

    restore_page_copy(repo, snap, tmp_path / "pages.db")
    assert (tmp_path / "pages.db").read_bytes() == path.read_bytes()
    assert copies == []


def test_wal_source_with_commits_still_in_the_wal_has_them_in_the_page_copy(
    repo: Repository, tmp_path: Path, copies: list[Path]
) -> None:
    path = tmp_path / "ledger.db"
    make_ledger(path)
    app = connect(path)
    app.execute("PRAGMA wal_autocheckpoint=0")  # the commit below stays in the WAL
    app.execute("UPDATE totals SET value = 7, entries = 1")
    app.execute("INSERT INTO accounts_log (amount, note) VALUES (7, x'00')")
    try:
        snap = backup_sqlite(repo, path)
    finally:
        app.close()

    assert snapshot_rows(repo, snap, "totals") == [(1, 7, 1)]
    assert page_copy_state(repo, snap, tmp_path / "pages.db") == (7, 1, 7)
    assert copies == []
