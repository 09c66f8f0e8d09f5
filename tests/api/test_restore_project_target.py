"""Seed 000 ``RestoreTarget.project_id`` / ``project_name`` against the demo database:
restore a project's subtree into another (existing) project, or as a new project with a
name of its own; and the requests that cannot mean anything."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import Server, running_server
from tests.api.test_backups_contract import assert_error
from tests.api.test_restore import (
    demo_db,
    post_restore,
    query,
    start_restore,
    state,
    wait_for_restore,
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("project-target"),
                        rate_limit_restore="10000/hour") as started:
        yield started


@pytest.fixture(scope="module")
def backup(server: Server) -> dict[str, Any]:
    made = server.backup_and_wait({"name": "projects", "type": "full"})
    return {**made, "projects": [row[0] for row in query(
        demo_db(server), "SELECT id FROM projects ORDER BY id")]}


def two_projects(db: Path, backup: dict[str, Any]) -> tuple[str, str]:
    """Two projects the backup holds (tests add projects with random ids, which may sort
    anywhere)."""
    rows = [row[0] for row in query(db, "SELECT id FROM projects ORDER BY id")
            if row[0] in backup["projects"]]
    return rows[0], rows[1]


def subtree(db: Path, project: str) -> tuple[int, int]:
    sessions = query(db, "SELECT COUNT(*) FROM sessions WHERE project_id = ?", (project,))
    messages = query(db, "SELECT COUNT(*) FROM messages m JOIN sessions s ON "
                         "m.session_id = s.id WHERE s.project_id = ?", (project,))
    return sessions[0][0], messages[0][0]


def done(server: Server, body: dict[str, Any]) -> dict[str, Any]:
    created = start_restore(server, body)
    status = wait_for_restore(server, created["job_id"])
    assert status["status"] == "completed", status
    return {"created": created, **status}


def test_project_id_restores_a_projects_content_into_another_project(
        server: Server, backup: dict[str, Any]) -> None:
    db = demo_db(server)
    source, target = two_projects(db, backup)
    source_tree, target_tree = subtree(db, source), subtree(db, target)
    projects = query(db, "SELECT COUNT(*) FROM projects")[0][0]
    target_row = query(db, "SELECT * FROM projects WHERE id = ?", (target,))
    body = {"backup_id": backup["backup_id"], "mode": "merge",
            "selections": {"projects": [source]}, "target": {"project_id": target}}
    dry = done(server, {**body, "options": {"dry_run": True}})
    status = done(server, body)
    results = status["results"]
    assert results["projects_restored"] == 0  # the project row itself is not restored
    assert results["sessions_restored"] == source_tree[0]
    assert results["messages_restored"] == source_tree[1]
    assert dry["results"]["total_documents"] == results["total_documents"]
    assert status["created"]["estimated_documents"] == results["total_documents"]
    # The target project now also holds copies (new ids) of the source project's subtree.
    assert subtree(db, target) == (target_tree[0] + source_tree[0],
                                   target_tree[1] + source_tree[1])
    assert subtree(db, source) == source_tree  # the original is untouched
    assert query(db, "SELECT COUNT(*) FROM projects")[0][0] == projects
    assert query(db, "SELECT * FROM projects WHERE id = ?", (target,)) == target_row
    assert results["id_mappings_by_table"]["projects"] == {source: target}
    new_sessions = set(results["id_mappings_by_table"]["sessions"].values())
    under_target = {row[0] for row in query(db, "SELECT id FROM sessions WHERE "
                                                "project_id = ?", (target,))}
    assert new_sessions <= under_target
    assert query(db, "PRAGMA foreign_key_check") == []


def test_project_name_restores_a_project_as_a_new_one(server: Server,
                                                     backup: dict[str, Any]) -> None:
    db = demo_db(server)
    source, _ = two_projects(db, backup)
    tree = subtree(db, source)
    status = done(server, {"backup_id": backup["backup_id"], "mode": "selective",
                           "selections": {"projects": [source]},
                           "options": {"on_conflict": "rename"},
                           "target": {"project_name": "Recovered project"}})
    results = status["results"]
    assert results["projects_restored"] == 1
    new = results["id_mappings_by_table"]["projects"][source]
    assert new != source
    assert query(db, "SELECT name FROM projects WHERE id = ?", (new,)) == [
        ("Recovered project",)]
    assert subtree(db, new)[0] == tree[0]
    assert subtree(db, new)[1] == tree[1]
    assert query(db, "PRAGMA foreign_key_check") == []


def test_project_target_errors(server: Server, backup: dict[str, Any]) -> None:
    db = demo_db(server)
    source, target = two_projects(db, backup)
    name = query(db, "SELECT name FROM projects WHERE id = ?", (target,))[0][0]
    before = state(db)
    backup_id = backup["backup_id"]
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"mode": "merge", "target": {"project_id": "no-such-project"}},
         "target.project_id", "NOT_FOUND"),
        ({"mode": "full", "target": {"project_id": target}}, "target.project_id",
         "NOT_APPLICABLE"),
        ({"mode": "merge", "target": {"project_id": target, "project_name": "x"}},
         "target.project_name", "NOT_APPLICABLE"),
        ({"mode": "merge", "target": {"project_name": "New"}}, "selections.projects",
         "AMBIGUOUS"),
        ({"mode": "selective", "selections": {"projects": [source]},
          "target": {"project_name": name}}, "target.project_name", "ALREADY_EXISTS"),
        ({"mode": "selective", "selections": {"projects": [source]},
          "options": {"maintain_ids": True}, "target": {"project_name": "Fresh"}},
         "options.maintain_ids", "CONFLICT"),
        ({"mode": "selective", "selections": {"projects": ["nope"]},
          "target": {"project_id": target}}, "selections.projects", "NOT_FOUND"),
    ]
    for body, field, code in cases:
        error = assert_error(post_restore(server, {**body, "backup_id": backup_id}), 400,
                             "VALIDATION_FAILED")
        assert (field, code) in {(e["field"], e["code"]) for e in error["validation_errors"]}, \
            (body, error)
    assert state(db) == before
