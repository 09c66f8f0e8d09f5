"""Restoring SQLite snapshots: full, selective and merge; conflicts; dry runs; atomicity.

Expected contents are computed with independent SQL over the source database, never with
the code under test.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from strongbox.demo.app_database import SCHEMA, generate
from strongbox.errors import Cancelled, InvalidRequest
from strongbox.progress import Progress
from strongbox.repository.repository import Repository
from strongbox.repository.snapshot import Snapshot
from strongbox.sources.sqlite import restore as restore_module
from strongbox.sources.sqlite.backup import DatabaseFilters, backup_sqlite
from strongbox.sources.sqlite.restore import (
    ConstraintViolation,
    RestoreConflict,
    RestoreRequest,
    plan_restore,
    request_for_import,
    restore_sqlite,
)

Dump = dict[str, list[tuple[Any, ...]]]


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    path = tmp_path / "app.db"
    generate(path, projects=3, sessions_per_project=4, messages_per_session=5)
    return path


@pytest.fixture
def snapshot(repo: Repository, demo: Path) -> Snapshot:
    return backup_sqlite(repo, demo)


@contextlib.contextmanager
def connect(path: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        yield conn
    finally:
        conn.close()


def query(path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with connect(path) as conn:
        return conn.execute(sql, params).fetchall()


def scalar(path: Path, sql: str, params: tuple[Any, ...] = ()) -> Any:
    return query(path, sql, params)[0][0]


def dump(path: Path) -> Dump:
    """Every table's rows in rowid order, and the schema: the whole content of a database."""
    with connect(path) as conn:
        schema = conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
        tables = [name for type_, name, _ in schema
                  if type_ == "table" and not name.startswith("sqlite_")]
        rows = {t: conn.execute(f'SELECT rowid, * FROM "{t}" ORDER BY rowid').fetchall()
                for t in tables}
    return {"schema": schema, **rows}


def counts(path: Path) -> dict[str, int]:
    return {t: len(rows) for t, rows in dump(path).items() if t != "schema"}


def integrity(path: Path) -> str:
    return str(scalar(path, "PRAGMA integrity_check"))


def first_project(path: Path) -> str:
    return str(scalar(path, "SELECT id FROM projects ORDER BY name LIMIT 1"))


def subtree(path: Path, project: str) -> dict[str, list[tuple[Any, ...]]]:
    """One project's rows, with independent SQL joins."""
    return {
        "projects": query(path, "SELECT * FROM projects WHERE id = ?", (project,)),
        "sessions": query(path, "SELECT * FROM sessions WHERE project_id = ? ORDER BY id",
                          (project,)),
        "messages": query(path, "SELECT m.* FROM messages m JOIN sessions s "
                                "ON m.session_id = s.id WHERE s.project_id = ? ORDER BY m.id",
                          (project,)),
    }


class CancelAfter(Progress):
    """Cancels once ``items`` rows have been reported."""

    def __init__(self, items: int) -> None:
        super().__init__()
        self.items = items

    def changed(self) -> None:
        if self.state.items_done >= self.items:
            self.cancel()


# --- full -------------------------------------------------------------------------------


def test_full_restore_gives_back_the_database_row_for_row(
        repo: Repository, demo: Path, snapshot: Snapshot) -> None:
    original = dump(demo)
    with connect(demo) as conn:
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("DELETE FROM projects WHERE id = ?", (first_project(demo),))
        conn.execute("UPDATE messages SET content = 'changed' WHERE id = 59")
        conn.execute("CREATE TABLE extra (x)")
    modified = dump(demo)

    result = restore_sqlite(repo, snapshot, demo, RestoreRequest(mode="full"))

    assert dump(demo) == original
    assert integrity(demo) == "ok"
    assert result.safety_snapshot is not None
    safety = repo.load_snapshot(result.safety_snapshot)
    assert safety.tags == ["safety"]
    # The safety snapshot holds the state the restore replaced.
    restore_sqlite(repo, safety, demo.with_name("before.db"), RestoreRequest(mode="full"))
    assert dump(demo.with_name("before.db")) == modified
    assert result.rows_restored == sum(counts(demo).values())
    assert "extra" in " ".join(result.plan.warnings)


def test_full_restore_creates_a_missing_target(
        repo: Repository, demo: Path, snapshot: Snapshot, tmp_path: Path) -> None:
    target = tmp_path / "new" / "copy.db"
    target.parent.mkdir()
    result = restore_sqlite(repo, snapshot, target, RestoreRequest(mode="full"))
    assert dump(target) == dump(demo)
    assert result.safety_snapshot is None
    assert sorted(p.name for p in target.parent.iterdir()) == ["copy.db"]


def test_full_restore_of_a_selective_snapshot_replaces_only_with_overwrite(
        repo: Repository, demo: Path, tmp_path: Path) -> None:
    project = first_project(demo)
    partial = backup_sqlite(repo, demo, filters=DatabaseFilters(records={"projects": [project]}))
    expected = subtree(demo, project)

    fresh = tmp_path / "fresh.db"
    restore_sqlite(repo, partial, fresh, RestoreRequest(mode="full"))
    assert subtree(fresh, project) == expected
    assert counts(fresh)["projects"] == 1

    before = dump(demo)
    with pytest.raises(InvalidRequest, match="overwrite"):
        restore_sqlite(repo, partial, demo, RestoreRequest(mode="full"))
    assert dump(demo) == before
    result = restore_sqlite(repo, partial, demo,
                            RestoreRequest(mode="full", on_conflict="overwrite"))
    assert subtree(demo, project) == expected
    assert counts(demo)["projects"] == 1
    assert counts(demo)["prompts"] == 0  # not in the partial snapshot: replaced by nothing
    assert result.safety_snapshot is not None


def test_full_restore_of_some_tables_replaces_only_those(
        repo: Repository, demo: Path, snapshot: Snapshot) -> None:
    original = dump(demo)
    _edit_live(demo, first_project(demo))
    edited = dump(demo)
    restore_sqlite(repo, snapshot, demo,
                   RestoreRequest(mode="full", tables=["prompts"], on_conflict="overwrite"))
    after = dump(demo)
    assert after["prompts"] == original["prompts"]
    assert after["messages"] == edited["messages"]


# --- selective ----------------------------------------------------------------------------


def test_selecting_one_project_restores_exactly_its_subtree(
        repo: Repository, demo: Path, snapshot: Snapshot, tmp_path: Path) -> None:
    project = first_project(demo)
    target = tmp_path / "one.db"
    result = restore_sqlite(repo, snapshot, target,
                            RestoreRequest(mode="selective", selections={"projects": [project]}))

    assert subtree(target, project) == subtree(demo, project)
    assert counts(target) == {"projects": 1, "sessions": 4,
                              "messages": len(subtree(demo, project)["messages"]),
                              "prompts": 0, "ai_settings": 0}
    assert result.rows_restored == sum(counts(target).values())
    assert integrity(target) == "ok"
    assert query(target, "PRAGMA foreign_key_check") == []


def test_selecting_a_message_brings_its_parents_but_not_its_siblings(
        repo: Repository, demo: Path, snapshot: Snapshot, tmp_path: Path) -> None:
    target = tmp_path / "one.db"
    # As JSON would give it: a string for an integer key.
    restore_sqlite(repo, snapshot, target,
                   RestoreRequest(mode="selective", selections={"messages": ["7"]}))
    assert query(target, "SELECT id FROM messages") == [(7,)]
    session = scalar(demo, "SELECT session_id FROM messages WHERE id = 7")
    assert query(target, "SELECT id FROM sessions") == [(session,)]
    assert counts(target)["projects"] == 1


def test_excluding_a_session_leaves_out_its_messages(
        repo: Repository, demo: Path, snapshot: Snapshot, tmp_path: Path) -> None:
    project = first_project(demo)
    excluded = scalar(demo, "SELECT id FROM sessions WHERE project_id = ? ORDER BY id LIMIT 1",
                      (project,))
    target = tmp_path / "some.db"
    restore_sqlite(repo, snapshot, target, RestoreRequest(
        mode="selective", selections={"projects": [project]},
        exclude={"sessions": [excluded]}))
    expected = query(demo, "SELECT m.id FROM messages m JOIN sessions s ON m.session_id = s.id "
                           "WHERE s.project_id = ? AND s.id != ? ORDER BY m.id",
                     (project, excluded))
    assert query(target, "SELECT id FROM messages ORDER BY id") == expected
    assert excluded not in {s for (s,) in query(target, "SELECT id FROM sessions")}


def test_unknown_keys_are_reported_not_fatal(
        repo: Repository, demo: Path, snapshot: Snapshot, tmp_path: Path) -> None:
    result = restore_sqlite(repo, snapshot, tmp_path / "x.db", RestoreRequest(
        mode="selective", selections={"projects": [first_project(demo), "no-such-project"]}))
    assert any("no-such-project" in w for w in result.plan.warnings)
    with pytest.raises(InvalidRequest, match="nope"):
        restore_sqlite(repo, snapshot, tmp_path / "y.db",
                       RestoreRequest(mode="selective", selections={"nope": [1]}))


# --- merge and conflicts ------------------------------------------------------------------


def test_rename_copies_a_project_with_every_foreign_key_following(
        repo: Repository, demo: Path, snapshot: Snapshot) -> None:
    project = first_project(demo)
    name = scalar(demo, "SELECT name FROM projects WHERE id = ?", (project,))
    original = subtree(demo, project)
    before = counts(demo)

    result = restore_sqlite(repo, snapshot, demo, RestoreRequest(
        mode="merge", selections={"projects": [project]}, on_conflict="rename"))

    after = counts(demo)
    assert after["projects"] == before["projects"] + 1
    assert after["sessions"] == before["sessions"] + len(original["sessions"])
    assert after["messages"] == before["messages"] + len(original["messages"])
    copy = result.id_mappings["projects"][project]
    assert copy != project
    assert scalar(demo, "SELECT name FROM projects WHERE id = ?", (copy,)) == f"{name}_restored"
    sessions = result.id_mappings["sessions"]
    assert set(sessions) == {row[0] for row in original["sessions"]}
    for old in original["sessions"]:
        new = query(demo, "SELECT * FROM sessions WHERE id = ?", (sessions[old[0]],))[0]
        assert new[1] == copy  # project_id points at the copy
        assert new[2:] == old[2:]
    messages = result.id_mappings["messages"]
    for old in original["messages"]:
        new = query(demo, "SELECT * FROM messages WHERE id = ?", (int(messages[str(old[0])]),))[0]
        assert new[1] == sessions[old[1]]  # session_id points at the copied session
        assert new[2:] == old[2:]
    assert subtree(demo, project) == original  # the original is untouched
    assert query(demo, "PRAGMA foreign_key_check") == []
    assert all(c.resolution == "rename" for c in result.plan.conflicts())

    again = restore_sqlite(repo, snapshot, demo, RestoreRequest(
        mode="merge", selections={"projects": [project]}, on_conflict="rename"))
    second = again.id_mappings["projects"][project]
    assert scalar(demo, "SELECT name FROM projects WHERE id = ?",
                  (second,)) == f"{name}_restored_2"


def test_maintain_ids_false_gives_every_row_a_new_key(
        repo: Repository, demo: Path, snapshot: Snapshot, tmp_path: Path) -> None:
    target = tmp_path / "other.db"
    generate(target, projects=2, sessions_per_project=2, messages_per_session=10, seed=9)
    project = first_project(demo)
    original = subtree(demo, project)

    result = restore_sqlite(repo, snapshot, target, RestoreRequest(
        mode="merge", selections={"projects": [project]}, maintain_ids=False))

    maps = result.id_mappings
    assert len(maps["projects"]) == 1
    assert len(maps["sessions"]) == len(original["sessions"])
    assert len(maps["messages"]) == len(original["messages"])
    assert all(old != new for m in maps.values() for old, new in m.items())
    new_project = maps["projects"][project]
    assert query(target, "SELECT * FROM projects WHERE id = ?",
                 (new_project,))[0][1:] == original["projects"][0][1:]
    for old in original["sessions"]:
        new = query(target, "SELECT * FROM sessions WHERE id = ?", (maps["sessions"][old[0]],))
        assert new[0][1] == new_project and new[0][2:] == old[2:]
    for old in original["messages"]:
        new = query(target, "SELECT * FROM messages WHERE id = ?",
                    (int(maps["messages"][str(old[0])]),))
        assert new[0][1] == maps["sessions"][old[1]] and new[0][2:] == old[2:]
    assert query(target, "PRAGMA foreign_key_check") == []


def _edit_live(path: Path, project: str) -> None:
    """Change a project and a message, delete another message, add a prompt."""
    with connect(path) as conn:
        conn.execute("UPDATE projects SET description = 'edited', name = 'Edited' WHERE id = ?",
                     (project,))
        conn.execute("UPDATE messages SET content = 'edited', attachment = x'01' WHERE id = 2")
        conn.execute("DELETE FROM messages WHERE id = 3")
        conn.execute("INSERT OR IGNORE INTO prompts (id, name) VALUES ('new-prompt', 'New')")


def test_skip_keeps_live_rows_and_brings_back_missing_ones(
        repo: Repository, demo: Path, snapshot: Snapshot) -> None:
    project = first_project(demo)
    name = scalar(demo, "SELECT name FROM projects WHERE id = ?", (project,))
    _edit_live(demo, project)

    result = restore_sqlite(repo, snapshot, demo, RestoreRequest(mode="merge"))

    assert scalar(demo, "SELECT name FROM projects WHERE id = ?", (project,)) == "Edited"
    assert scalar(demo, "SELECT content FROM messages WHERE id = 2") == "edited"
    assert scalar(demo, "SELECT count(*) FROM messages WHERE id = 3") == 1
    plan = {t.table: t for t in result.plan.tables}
    assert plan["messages"].insert == 1
    assert [(c.key, c.kind, c.resolution) for c in plan["messages"].conflicts] == [
        ("2", "primary_key", "skip")]
    assert [(c.existing_name, c.backup_name) for c in plan["projects"].conflicts] == [
        ("Edited", name)]
    assert plan["messages"].duplicates == plan["messages"].skip - 1
    assert result.safety_snapshot is None  # only additions: nothing to save first


def test_overwrite_puts_back_the_backup_values(
        repo: Repository, demo: Path, snapshot: Snapshot) -> None:
    project = first_project(demo)
    original = dump(demo)
    _edit_live(demo, project)

    result = restore_sqlite(repo, snapshot, demo,
                            RestoreRequest(mode="merge", on_conflict="overwrite"))

    restored = dump(demo)
    assert restored["projects"] == original["projects"]
    assert restored["messages"] == original["messages"]
    assert len(restored["prompts"]) == len(original["prompts"]) + 1  # merge deletes nothing
    plan = {t.table: t for t in result.plan.tables}
    assert (plan["projects"].update, plan["messages"].update, plan["messages"].insert) == (1, 1, 1)
    assert result.safety_snapshot is not None


def test_merge_updates_only_columns_the_backup_has(
        repo: Repository, demo: Path, snapshot: Snapshot) -> None:
    backed_up = query(demo, "SELECT content, attachment FROM messages WHERE id = 2")[0]
    assert backed_up[1] is None
    _edit_live(demo, first_project(demo))
    result = restore_sqlite(repo, snapshot, demo,
                            RestoreRequest(mode="merge", on_conflict="merge"))
    content, attachment = query(demo, "SELECT content, attachment FROM messages WHERE id = 2")[0]
    assert content == backed_up[0]  # the backup's value
    assert attachment == b"\x01"  # NULL in the backup: the live value stays
    assert {t.table: t.update for t in result.plan.tables}["messages"] == 1


def test_unique_conflict_skip_leaves_the_row_and_its_children_out(
        repo: Repository, demo: Path, snapshot: Snapshot, tmp_path: Path) -> None:
    project = first_project(demo)
    name = scalar(demo, "SELECT name FROM projects WHERE id = ?", (project,))
    target = tmp_path / "other.db"
    with connect(target) as conn:
        for statement in SCHEMA:
            conn.execute(statement)
        conn.execute("INSERT INTO projects (id, name) VALUES ('someone-else', ?)", (name,))

    result = restore_sqlite(repo, snapshot, target, RestoreRequest(
        mode="merge", selections={"projects": [project]}))

    assert counts(target)["sessions"] == 0
    plan = {t.table: t for t in result.plan.tables}
    assert [(c.kind, c.existing_key) for c in plan["projects"].conflicts] == [
        ("unique:name", "someone-else")]
    assert plan["sessions"].skip == 4
    assert any("skipped because a row they refer to was skipped" in w
               for w in result.plan.warnings)

    # Overwrite takes the holder of the name as the same project and hangs the rest off it.
    result = restore_sqlite(repo, snapshot, target, RestoreRequest(
        mode="merge", selections={"projects": [project]}, on_conflict="overwrite"))
    assert result.id_mappings["projects"] == {project: "someone-else"}
    assert set(query(target, "SELECT DISTINCT project_id FROM sessions")) == {("someone-else",)}
    assert query(target, "PRAGMA foreign_key_check") == []


def test_fail_resolution_stops_at_the_first_conflict(
        repo: Repository, demo: Path, snapshot: Snapshot) -> None:
    _edit_live(demo, first_project(demo))
    before = dump(demo)
    request = RestoreRequest(mode="merge", on_conflict="fail")
    plan = plan_restore(repo, snapshot, demo, request)
    assert any("would fail" in w for w in plan.warnings)
    with pytest.raises(RestoreConflict, match="projects"):
        restore_sqlite(repo, snapshot, demo, request)
    assert dump(demo) == before


def test_import_modes(repo: Repository, demo: Path, snapshot: Snapshot) -> None:
    project = first_project(demo)
    original = dump(demo)
    _edit_live(demo, project)

    restore_sqlite(repo, snapshot, demo, request_for_import("update_only"))
    assert scalar(demo, "SELECT name FROM projects WHERE id = ?", (project,)) != "Edited"
    assert scalar(demo, "SELECT count(*) FROM messages WHERE id = 3") == 0  # not inserted

    restore_sqlite(repo, snapshot, demo, request_for_import("insert_only"))
    assert scalar(demo, "SELECT count(*) FROM messages WHERE id = 3") == 1

    _edit_live(demo, project)
    result = restore_sqlite(repo, snapshot, demo, request_for_import("replace"))
    assert dump(demo) == original  # the added prompt is gone, every edit undone
    assert {t.table: t.delete for t in result.plan.tables}["prompts"] == 1

    _edit_live(demo, project)
    restore_sqlite(repo, snapshot, demo, request_for_import("upsert"))
    assert dump(demo)["messages"] == original["messages"]
    assert len(dump(demo)["prompts"]) == len(original["prompts"]) + 1


def test_replace_of_parents_does_not_cascade_into_rows_that_come_back(
        repo: Repository, demo: Path, snapshot: Snapshot) -> None:
    before = counts(demo)
    restore_sqlite(repo, snapshot, demo, RestoreRequest(
        mode="merge", tables=["projects"], on_conflict="overwrite", replace_tables=True))
    assert counts(demo) == before  # sessions still there despite ON DELETE CASCADE


# --- dry run ------------------------------------------------------------------------------


DRY_RUN_CASES = {
    "rename": RestoreRequest(mode="merge", on_conflict="rename"),
    "overwrite": RestoreRequest(mode="merge", on_conflict="overwrite"),
    "merge-new-ids": RestoreRequest(mode="merge", maintain_ids=False),
    "replace": request_for_import("replace"),
    "full": RestoreRequest(mode="full"),
}


@pytest.mark.parametrize("case", sorted(DRY_RUN_CASES))
def test_dry_run_changes_nothing_and_predicts_the_real_run(
        repo: Repository, demo: Path, snapshot: Snapshot, case: str) -> None:
    _edit_live(demo, first_project(demo))
    request = DRY_RUN_CASES[case]
    before = demo.read_bytes()
    snapshots = len(repo.list_snapshots())

    planned = plan_restore(repo, snapshot, demo, request)
    dry = restore_sqlite(repo, snapshot, demo, RestoreRequest(**{**request.__dict__,
                                                                 "dry_run": True}))

    assert demo.read_bytes() == before
    assert len(repo.list_snapshots()) == snapshots  # no safety backup either
    real = restore_sqlite(repo, snapshot, demo, request)
    assert planned.to_dict() == real.plan.to_dict()
    assert dry.tables == real.tables
    assert set(dry.id_mappings) == set(real.id_mappings)
    assert {t: set(m) for t, m in dry.id_mappings.items()} == {
        t: set(m) for t, m in real.id_mappings.items()}


def test_dry_run_into_a_new_file_leaves_no_file(
        repo: Repository, demo: Path, snapshot: Snapshot, tmp_path: Path) -> None:
    target = tmp_path / "later.db"
    plan = plan_restore(repo, snapshot, target, RestoreRequest(
        mode="selective", selections={"projects": [first_project(demo)]}))
    assert not target.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.db", "repo"]
    assert plan.totals()["will_insert"] == plan.total_rows
    json.dumps(plan.to_dict())


# --- atomicity ----------------------------------------------------------------------------


def test_cancel_midway_leaves_the_target_unchanged(
        repo: Repository, demo: Path, snapshot: Snapshot,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(restore_module, "CHECK_EVERY", 5)
    before, before_bytes = dump(demo), demo.read_bytes()
    progress = CancelAfter(40)
    with pytest.raises(Cancelled):
        restore_sqlite(repo, snapshot, demo, RestoreRequest(mode="merge", on_conflict="rename"),
                       progress)
    total = progress.state.items_total or 0
    assert 40 <= progress.state.items_done < total  # it stopped midway
    assert dump(demo) == before
    assert demo.read_bytes() == before_bytes


def test_cancel_during_full_restore_leaves_the_target_unchanged(
        repo: Repository, demo: Path, snapshot: Snapshot,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(restore_module, "PAGES_PER_STEP", 2)
    with connect(demo) as conn:
        conn.execute("DELETE FROM messages WHERE id > 10")
    before = dump(demo)

    class CancelOnReplace(Progress):
        def changed(self) -> None:
            if self.state.operation == "replacing database":
                self.cancel()

    with pytest.raises(Cancelled):
        restore_sqlite(repo, snapshot, demo, RestoreRequest(mode="full"), CancelOnReplace())
    assert dump(demo) == before
    assert integrity(demo) == "ok"
    assert [p.name for p in demo.parent.iterdir() if p.name.startswith(".")] == []


def test_foreign_key_violation_names_table_key_and_parent(
        repo: Repository, snapshot: Snapshot, tmp_path: Path) -> None:
    target = tmp_path / "small.db"
    generate(target, projects=1, sessions_per_project=2, messages_per_session=5, seed=3)
    before = dump(target)
    # Messages 1-10 exist (conflicts, skipped); message 11 points at a session the target
    # does not have.
    with pytest.raises(ConstraintViolation) as caught:
        restore_sqlite(repo, snapshot, target, RestoreRequest(mode="merge", tables=["messages"]))
    error = caught.value
    assert error.code == "CONSTRAINT_VIOLATION"
    assert "messages row 11" in error.message and "sessions" in error.message
    assert error.details["table"] == "messages" and error.details["key"] == "11"
    assert dump(target) == before


def test_check_violation_names_table_and_key(
        repo: Repository, demo: Path, snapshot: Snapshot, tmp_path: Path) -> None:
    target = tmp_path / "strict.db"
    with connect(target) as conn:
        for statement in SCHEMA:
            conn.execute(statement.replace("('user', 'assistant', 'system')", "('user')"))
        conn.execute("INSERT INTO prompts (id, name) VALUES ('keep', 'me')")
    before = dump(target)
    first_other = scalar(demo, "SELECT min(id) FROM messages WHERE type != 'user'")
    with pytest.raises(ConstraintViolation, match=f"messages row {first_other}: CHECK"):
        restore_sqlite(repo, snapshot, target, RestoreRequest(mode="merge"))
    assert dump(target) == before


def test_violation_inside_a_foreign_key_cycle_names_the_row(
        repo: Repository, tmp_path: Path) -> None:
    db = tmp_path / "cycle.db"
    schema = ("CREATE TABLE a (id TEXT PRIMARY KEY, b_id INTEGER REFERENCES b(id))",
              "CREATE TABLE b (id INTEGER PRIMARY KEY, a_id TEXT REFERENCES a(id))")
    with connect(db) as conn:
        for statement in schema:
            conn.execute(statement)
        conn.execute("INSERT INTO a VALUES ('x', 2), ('y', NULL)")
        conn.execute("INSERT INTO b VALUES (1, 'y'), (2, 'x')")
    snap = backup_sqlite(repo, db)
    target = tmp_path / "half.db"
    with connect(target) as conn:
        for statement in schema:
            conn.execute(statement)
    before = target.read_bytes()
    with pytest.raises(ConstraintViolation, match="a row x: FOREIGN KEY") as caught:
        restore_sqlite(repo, snap, target, RestoreRequest(mode="merge", tables=["a"]))
    assert caught.value.details["key"] == "x"
    assert target.read_bytes() == before
    # Both tables together satisfy each other, whichever is written first.
    restore_sqlite(repo, snap, target, RestoreRequest(mode="merge"))
    assert query(target, "SELECT * FROM a ORDER BY id") == [("x", 2), ("y", None)]
    assert query(target, "PRAGMA foreign_key_check") == []


def test_rollback_journal_target_gets_a_safety_backup(
        repo: Repository, demo: Path, snapshot: Snapshot) -> None:
    with connect(demo) as conn:
        conn.execute("PRAGMA journal_mode = DELETE")
        conn.execute("UPDATE prompts SET name = 'edited'")
    edited = dump(demo)
    result = restore_sqlite(repo, snapshot, demo, request_for_import("upsert"))
    assert result.safety_snapshot is not None
    safety = repo.load_snapshot(result.safety_snapshot)
    restore_sqlite(repo, safety, demo.with_name("safety.db"), RestoreRequest(mode="full"))
    assert dump(demo.with_name("safety.db"))["prompts"] == edited["prompts"]
    assert {t.table: t.update for t in result.plan.tables}["prompts"] == 20


KILL_SCRIPT = """
import sys, time
from strongbox.progress import Progress
from strongbox.repository.backend import LocalBackend
from strongbox.repository.repository import Repository
from strongbox.sources.sqlite import restore
from strongbox.sources.sqlite.restore import RestoreRequest, restore_sqlite

class Slow(Progress):
    # Says when a good part is written, and goes slowly so the kill lands mid-write.
    checks = 0
    def check_cancelled(self):
        self.checks += 1
        if self.checks == 30:
            print("writing", flush=True)
        time.sleep(0.01)

connect = restore._connect
def small_cache(path):
    # A tiny page cache makes SQLite spill uncommitted pages to disk early, so the kill
    # leaves a half-written transaction on disk for recovery to undo.
    conn = connect(path)
    conn.execute("PRAGMA cache_size = 8")
    return conn

restore._connect = small_cache
restore.CHECK_EVERY = 50
restore.PAGES_PER_STEP = 4
repo = Repository.open(LocalBackend(sys.argv[1]), "secret")
request = (RestoreRequest(mode="full", safety_backup=False) if sys.argv[3] == "full"
           else RestoreRequest(mode="merge", on_conflict="rename"))
restore_sqlite(repo, sys.argv[4], sys.argv[2], request, Slow())
print("finished", flush=True)
"""


@pytest.mark.parametrize("journal", ["wal", "delete"])
@pytest.mark.parametrize("mode", ["merge", "full"])
def test_sigkill_midway_leaves_the_target_unchanged(
        repo: Repository, tmp_path: Path, mode: str, journal: str) -> None:
    db = tmp_path / "big.db"
    generate(db, projects=4, sessions_per_project=10, messages_per_session=60)
    snap = backup_sqlite(repo, db)
    with connect(db) as conn:
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("DELETE FROM projects WHERE id = ?", (first_project(db),))
        conn.execute(f"PRAGMA journal_mode = {journal}")
    before = dump(db)

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, str(tmp_path / "repo"), str(db), mode, snap.id],
        env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert "finished" not in proc.stdout.read()
    # The kill left uncommitted pages on disk: a hot journal, or frames in the WAL.
    leftover = db.with_name(db.name + ("-wal" if journal == "wal" else "-journal"))
    assert leftover.exists() and leftover.stat().st_size > 0

    assert integrity(db) == "ok"
    assert dump(db) == before


def test_full_restore_under_an_open_connection(
        repo: Repository, demo: Path, snapshot: Snapshot) -> None:
    original = dump(demo)
    with connect(demo) as live:
        live.execute("DELETE FROM messages")
        restore_sqlite(repo, snapshot, demo, RestoreRequest(mode="full"))
        # The application's connection sees the restored database at its next read.
        assert live.execute("SELECT count(*) FROM messages").fetchone()[0] == 60
    assert dump(demo) == original


# --- values and shapes ----------------------------------------------------------------------


def test_odd_values_survive_byte_for_byte(repo: Repository, tmp_path: Path) -> None:
    source = tmp_path / "odd.db"
    with connect(source) as conn:
        conn.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v)")
        conn.execute("INSERT INTO t VALUES ('a', CAST(x'ff00fe' AS TEXT))")
        conn.execute("INSERT INTO t VALUES (CAST(x'c3' AS TEXT), x'00ff')")
        conn.execute("INSERT INTO t VALUES ('c', 1.5), ('d', NULL), ('e', 9223372036854775807)")
        conn.execute("CREATE TABLE plain (v)")  # rowid-keyed, no declared key
        conn.execute("INSERT INTO plain (rowid, v) VALUES (5, 'five'), (9, 'nine')")
    snap = backup_sqlite(repo, source)
    shape = ("SELECT typeof(k), hex(k), typeof(v), hex(v) FROM t ORDER BY hex(k)")

    target = tmp_path / "copy.db"
    restore_sqlite(repo, snap, target, RestoreRequest(mode="merge"))
    assert query(target, shape) == query(source, shape)
    assert query(target, "SELECT rowid, v FROM plain") == [(5, "five"), (9, "nine")]

    again = restore_sqlite(repo, snap, target, RestoreRequest(mode="merge"))
    assert again.rows_restored == 0 and again.rows_skipped == 7  # all duplicates
    assert query(target, shape) == query(source, shape)


def test_self_referencing_rows_follow_their_renamed_parents(
        repo: Repository, tmp_path: Path) -> None:
    db = tmp_path / "tree.db"
    with connect(db) as conn:
        conn.execute("CREATE TABLE nodes (id INTEGER PRIMARY KEY, name TEXT UNIQUE, "
                     "parent_id INTEGER REFERENCES nodes(id))")
        # Children stored before their parents, so parents are written after children.
        conn.execute("INSERT INTO nodes VALUES (1, 'leaf', 2), (2, 'branch', 3), (3, 'root', NULL)")
    snap = backup_sqlite(repo, db)

    result = restore_sqlite(repo, snap, db, RestoreRequest(mode="merge", on_conflict="rename"))

    ids = result.id_mappings["nodes"]
    rows = {name: (id_, parent) for id_, name, parent in query(db, "SELECT * FROM nodes")}
    assert rows["leaf_restored"] == (int(ids["1"]), int(ids["2"]))
    assert rows["branch_restored"] == (int(ids["2"]), int(ids["3"]))
    assert rows["root_restored"] == (int(ids["3"]), None)
    assert query(db, "PRAGMA foreign_key_check") == []


def test_a_table_missing_from_the_target_is_created_with_its_indexes(
        repo: Repository, demo: Path, snapshot: Snapshot, tmp_path: Path) -> None:
    target = tmp_path / "partial.db"
    with connect(target) as conn:
        conn.execute("CREATE TABLE unrelated (x)")
    restore_sqlite(repo, snapshot, target, RestoreRequest(mode="merge", tables=["prompts",
                                                                                "ai_settings"]))
    assert counts(target) == {"unrelated": 0, "prompts": 20, "ai_settings": 8}
    assert query(demo, "SELECT sql FROM sqlite_master WHERE name = 'ai_settings'") == query(
        target, "SELECT sql FROM sqlite_master WHERE name = 'ai_settings'")


def test_invalid_requests_are_refused(repo: Repository, snapshot: Snapshot,
                                      tmp_path: Path) -> None:
    target = tmp_path / "x.db"
    for request in (RestoreRequest(mode="partial"), RestoreRequest(on_conflict="ask"),
                    RestoreRequest(mode="selective"),
                    RestoreRequest(mode="full", selections={"projects": ["p"]}),
                    RestoreRequest(mode="merge", tables=["nope"])):
        with pytest.raises(InvalidRequest):
            restore_sqlite(repo, snapshot, target, request)
    with pytest.raises(InvalidRequest):
        request_for_import("sideways")
    assert not target.exists()
