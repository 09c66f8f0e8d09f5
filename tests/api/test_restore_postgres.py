"""Restoring a PostgreSQL source through ``/api/v1/restore``: full, selective and merge,
server started by the project's own script (tests/pg_server.py)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.api.conftest import Server, running_server
from tests.api.test_restore import start_restore, wait_for_restore
from tests.pg_server import running_postgres


@dataclass
class Setup:
    server: Server
    dsn: str
    source_id: str


def rows(dsn: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return list(conn.execute(
            "SELECT a.id, a.name, b.id, b.note FROM app.authors a "
            "LEFT JOIN app.books b ON b.author_id = a.id ORDER BY a.id, b.id").fetchall())


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    with running_postgres() as postgres:
        dsn = postgres.create_database("app")
        with psycopg.connect(dsn) as conn:
            conn.execute("CREATE SCHEMA app")
            conn.execute("CREATE TABLE app.authors (id serial PRIMARY KEY, name text UNIQUE)")
            conn.execute("CREATE TABLE app.books (id serial PRIMARY KEY, note text, "
                         "author_id int REFERENCES app.authors(id))")
            conn.execute("INSERT INTO app.authors (name) SELECT 'author ' || n "
                         "FROM generate_series(1, 20) n")
            conn.execute("INSERT INTO app.books (note, author_id) SELECT 'book ' || n, "
                         "1 + n % 20 FROM generate_series(1, 200) n")
        with running_server(Path(tmp_path_factory.mktemp("restore-pg")),
                            rate_limit_restore="10000/hour") as server:
            source = server.client.post("/api/v1/sources", headers=server.headers(), json={
                "name": "pg app", "kind": "postgres", "dsn": dsn, "schema_name": "app"})
            assert source.status_code == 201, source.text
            yield Setup(server, dsn, source.json()["_id"])


def test_a_full_restore_replaces_the_schema(setup: Setup) -> None:
    server, dsn = setup.server, setup.dsn
    before = rows(dsn)
    backup = server.backup_and_wait({"name": "pg before", "type": "full",
                                     "source_id": setup.source_id})
    preview = server.client.get(f"/api/v1/restore/preview/{backup['backup_id']}",
                                headers=server.headers()).json()
    assert preview["restore_analysis"]["can_restore"] is True
    assert {t["name"]: t["rows"] for t in preview["contents"]["tables"]} == {
        "authors": 20, "books": 200}
    assert preview["contents"]["projects"] == []

    with psycopg.connect(dsn) as conn:
        conn.execute("DELETE FROM app.books WHERE id > 100")
        conn.execute("UPDATE app.authors SET name = 'renamed' WHERE id = 1")
    assert rows(dsn) != before

    # Without overwrite the existing tables make the job fail, and nothing changes.
    changed = rows(dsn)
    refused = start_restore(server, {"backup_id": backup["backup_id"], "mode": "full"})
    status = wait_for_restore(server, refused["job_id"])
    assert status["status"] == "failed"
    assert status["errors"][0]["error_code"] == "INVALID_REQUEST"
    assert rows(dsn) == changed

    created = start_restore(server, {"backup_id": backup["backup_id"], "mode": "full",
                                     "options": {"on_conflict": "overwrite"}})
    assert created["estimated_documents"] == 220
    status = wait_for_restore(server, created["job_id"])
    assert status["status"] == "completed", status
    assert status["results"]["total_documents"] == 220
    assert status["results"]["tables"]["books"]["inserted"] == 200
    assert status["progress"]["collections_remaining"] == []
    assert rows(dsn) == before


def test_a_selective_restore_with_new_ids(setup: Setup) -> None:
    """One author and their books copied back beside the originals with new ids, after a
    dry run that predicts it exactly and writes nothing."""
    server, dsn = setup.server, setup.dsn
    backup = server.backup_and_wait({"name": "pg again", "type": "full",
                                     "source_id": setup.source_id})
    before = rows(dsn)
    author = before[-1][0]
    with psycopg.connect(dsn) as conn:
        books = conn.execute("SELECT count(*) FROM app.books WHERE author_id = %s",
                             (author,)).fetchone()[0]
    body = {"backup_id": backup["backup_id"], "mode": "selective",
            "selections": {"records": {"authors": [str(author)]}},
            "options": {"on_conflict": "rename", "maintain_ids": False}}

    dry = wait_for_restore(server, start_restore(
        server, {**body, "options": {**body["options"], "dry_run": True}})["job_id"])
    assert dry["status"] == "completed", dry
    assert rows(dsn) == before

    done = wait_for_restore(server, start_restore(server, body)["job_id"])
    assert done["status"] == "completed", done
    assert done["results"]["tables"] == dry["results"]["tables"]
    assert done["results"]["tables"]["authors"]["inserted"] == 1
    assert done["results"]["tables"]["books"]["inserted"] == books
    new_author = int(done["results"]["id_mappings_by_table"]["authors"][str(author)])
    assert new_author != author
    with psycopg.connect(dsn) as conn:
        copied = conn.execute("SELECT count(*) FROM app.books WHERE author_id = %s",
                              (new_author,)).fetchone()[0]
        # The sequences were moved past the restored ids: the application can insert.
        conn.execute("INSERT INTO app.authors (name) VALUES ('after restore')")
    assert copied == books
    assert [r for r in rows(dsn) if r[0] != new_author and r[1] != "after restore"] == before
