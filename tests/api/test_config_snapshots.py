"""Configuration snapshots (seed 004 section 3): create, list by tag, restore with a
pre-restore snapshot, on a real server with a real repository."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import URL

from strongbox.services.config_snapshots import remove_unheld
from strongbox.sources.files.patterns import PathFilter
from tests.api.conftest import Server, running_server
from tests.api.test_backups_contract import assert_error
from tests.pg_server import running_postgres

SNAPSHOTS = "/api/v1/snapshots"


def wait_snapshot(server: Server, snapshot_id: str, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        response = server.client.get(f"{SNAPSHOTS}/{snapshot_id}",
                                     headers=server.headers("viewer"))
        assert response.status_code == 200, response.text
        body = dict(response.json())
        if body["status"] not in ("pending", "in_progress"):
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.05)


def wait_restore(server: Server, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        response = server.client.get(f"{SNAPSHOTS}/jobs/{job_id}",
                                     headers=server.headers("viewer"))
        assert response.status_code == 200, response.text
        body = dict(response.json())
        if body["status"] in ("completed", "failed", "cancelled"):
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.05)


def take(server: Server, body: dict[str, Any], role: str = "admin") -> dict[str, Any]:
    response = server.client.post(SNAPSHOTS, headers=server.headers(role), json=body)
    assert response.status_code == 202, response.text
    created = response.json()
    snapshot = wait_snapshot(server, created["snapshot_id"])
    assert snapshot["status"] == "active", snapshot
    return snapshot


def restore(server: Server, snapshot_id: str, body: dict[str, Any] | None = None
            ) -> tuple[dict[str, Any], dict[str, Any]]:
    response = server.client.post(f"{SNAPSHOTS}/{snapshot_id}/restore",
                                  headers=server.headers("operator"), json=body or {})
    assert response.status_code == 202, response.text
    started = response.json()
    assert started["status"] == "restore_started"
    assert started["progress_url"] == f"{SNAPSHOTS}/jobs/{started['restore_job_id']}"
    final = wait_restore(server, started["restore_job_id"])
    assert final["status"] == "completed", final
    return started, final


@pytest.fixture()
def config_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "app-config"
    (folder / "conf.d").mkdir(parents=True)
    (folder / "app.toml").write_text("mode = 'original'\n")
    (folder / "conf.d" / "zones.toml").write_text("zones = 3\n")
    return folder


def test_a_path_snapshot_restores_old_content_after_a_pre_restore_snapshot(
        server: Server, config_dir: Path) -> None:
    snapshot = take(server, {"name": "Pre_ACS_Update", "description": "before the update",
                             "tags": ["ACS", "Zoning"], "paths": [str(config_dir)]})
    assert snapshot["tags"] == ["ACS", "Zoning"] and snapshot["can_restore"] is True
    [component] = snapshot["components"]
    assert component["source_kind"] == "files" and component["target"] == str(config_dir)
    assert component["source_name"] == f"path:{config_dir}"

    # The configuration changes (different sizes: no reliance on timestamps).
    (config_dir / "app.toml").write_text("mode = 'broken by the update'\n")
    (config_dir / "conf.d" / "zones.toml").unlink()
    (config_dir / "conf.d" / "new.toml").write_text("added = true\n")

    started, final = restore(server, snapshot["_id"], {"reason": "rollback"})
    assert (config_dir / "app.toml").read_text() == "mode = 'original'\n"
    assert (config_dir / "conf.d" / "zones.toml").read_text() == "zones = 3\n"
    assert final["result"]["components"][0]["files_restored"] == 2
    # By default what the snapshot does not hold stays.
    assert (config_dir / "conf.d" / "new.toml").exists()

    # The pre-restore snapshot holds the state just before: restoring it brings that back.
    pre = wait_snapshot(server, started["pre_restore_snapshot_id"])
    assert pre["tags"] == ["pre-restore"] and pre["pre_restore_of"] == snapshot["_id"]
    assert "rollback" in pre["description"]
    restore(server, pre["_id"], {"create_backup": False})
    assert (config_dir / "app.toml").read_text() == "mode = 'broken by the update'\n"


def test_remove_new_files_makes_the_tree_exactly_as_captured(server: Server,
                                                              config_dir: Path) -> None:
    snapshot = take(server, {"name": "exact", "paths": [str(config_dir)]})
    (config_dir / "conf.d" / "new.toml").write_text("added = true\n")
    (config_dir / "plugins" / "deep").mkdir(parents=True)
    (config_dir / "plugins" / "deep" / "p.toml").write_text("p = 1\n")
    (config_dir / "link").symlink_to(config_dir.parent)
    _started, final = restore(server, snapshot["_id"], {"remove_new_files": True})
    assert sorted(str(p.relative_to(config_dir)) for p in config_dir.rglob("*")) == [
        "app.toml", "conf.d", "conf.d/zones.toml"]
    assert final["result"]["components"][0]["entries_removed"] == 5
    assert config_dir.parent.is_dir()  # the link was removed, not followed


def test_the_same_path_reuses_its_source(server: Server, config_dir: Path) -> None:
    first = take(server, {"name": "reuse one", "paths": [str(config_dir)]})
    second = take(server, {"name": "reuse two", "paths": [str(config_dir) + "/"]})
    assert first["components"][0]["source_id"] == second["components"][0]["source_id"]


def test_a_sqlite_snapshot_restores_the_database(server: Server) -> None:
    source_id = server.sources["sqlite"]
    path = server.services.sources.get("default", source_id).config["path"]
    with sqlite3.connect(path) as conn:
        before = conn.execute("SELECT count(*) FROM messages").fetchone()[0]
    snapshot = take(server, {"name": "db before cleanup", "tags": ["db"],
                             "sources": [source_id]}, role="operator")
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM messages")
    started, final = restore(server, snapshot["_id"])
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM messages").fetchone()[0] == before
    assert final["result"]["components"][0]["kind"] == "sqlite"
    pre = wait_snapshot(server, started["pre_restore_snapshot_id"])
    assert pre["status"] == "active" and pre["components"][0]["source_id"] == source_id


def test_list_filters_by_tag_and_pages(server: Server, config_dir: Path) -> None:
    take(server, {"name": "tagged alpha", "tags": ["Alpha"], "paths": [str(config_dir)]})
    take(server, {"name": "tagged beta", "tags": ["beta"], "sources": ["Demo files"]})
    viewer = server.headers("viewer")
    alpha = server.client.get(SNAPSHOTS, params={"tag": "alpha"}, headers=viewer).json()
    assert [s["name"] for s in alpha["items"]] == ["tagged alpha"]
    assert alpha["pagination"]["total_items"] == 1
    everything = server.client.get(SNAPSHOTS, params={"size": 1}, headers=viewer).json()
    assert everything["pagination"]["total_items"] >= 2
    assert everything["pagination"]["has_next"] is True
    assert len(everything["items"]) == 1
    # Snapshots are backups too: they appear in the backup list.
    names = {b["name"] for b in server.client.get(
        "/api/v1/backups", params={"size": 100}, headers=viewer).json()["items"]}
    assert {"tagged alpha", "tagged beta"} <= names
    # Another tenant sees none of them.
    assert server.client.get(SNAPSHOTS, headers=server.other()).json()["items"] == []


def test_errors(server: Server, config_dir: Path) -> None:
    admin = server.headers()
    assert_error(server.client.post(SNAPSHOTS, headers=admin, json={"name": "empty"}),
                 400, "VALIDATION_FAILED")
    assert_error(server.client.post(SNAPSHOTS, headers=admin,
                                    json={"name": "relative", "paths": ["etc/app"]}),
                 400, "VALIDATION_FAILED")
    assert_error(server.client.post(SNAPSHOTS, headers=admin,
                                    json={"name": "missing", "sources": ["no such source"]}),
                 400, "VALIDATION_FAILED")
    # Capturing server paths needs the admin role.
    assert_error(server.client.post(SNAPSHOTS, headers=server.headers("operator"),
                                    json={"name": "paths", "paths": [str(config_dir)]}),
                 403, "FORBIDDEN")
    unknown = "00000000-0000-4000-8000-000000000000"
    assert_error(server.client.get(f"{SNAPSHOTS}/{unknown}", headers=admin), 404,
                 "SNAPSHOT_NOT_FOUND")
    assert_error(server.client.get(f"{SNAPSHOTS}/not-a-uuid", headers=admin), 404,
                 "SNAPSHOT_NOT_FOUND")
    snapshot = take(server, {"name": "errors", "paths": [str(config_dir)]})
    assert_error(server.client.post(f"{SNAPSHOTS}/{snapshot['_id']}/restore", headers=admin,
                                    json={"components": [unknown]}), 400, "VALIDATION_FAILED")
    assert_error(server.client.get(f"{SNAPSHOTS}/{snapshot['_id']}", headers=server.other()),
                 404, "SNAPSHOT_NOT_FOUND")


def test_delete_removes_every_backup(server: Server, config_dir: Path) -> None:
    snapshot = take(server, {"name": "to delete", "paths": [str(config_dir)]})
    response = server.client.delete(f"{SNAPSHOTS}/{snapshot['_id']}", headers=server.headers())
    assert response.status_code == 200, response.text
    assert response.json()["backups_deleted"] == 1
    assert_error(server.client.get(f"{SNAPSHOTS}/{snapshot['_id']}", headers=server.headers()),
                 404, "SNAPSHOT_NOT_FOUND")


def test_paths_must_be_inside_the_allowed_folders(server: Server, config_dir: Path) -> None:
    admin = server.headers()
    response = server.client.post(SNAPSHOTS, headers=admin, json={"name": "root",
                                                                  "paths": ["/"]})
    assert_error(response, 400, "VALIDATION_FAILED")
    assert response.json()["validation_errors"][0]["code"] == "NOT_SUPPORTED"
    service = server.services.config_snapshots
    saved = service.allowed_paths
    try:
        service.allowed_paths = [config_dir.resolve()]
        escape = server.client.post(SNAPSHOTS, headers=admin, json={
            "name": "escape", "paths": [f"{config_dir}/conf.d/../.."]})
        assert_error(escape, 400, "VALIDATION_FAILED")
        assert escape.json()["validation_errors"][0]["code"] == "NOT_SUPPORTED"
        take(server, {"name": "allowed", "paths": [str(config_dir / "conf.d")]})
    finally:
        service.allowed_paths = saved


def test_snapshots_status_and_overview_on_a_postgres_catalog(tmp_path: Path,
                                                             config_dir: Path) -> None:
    with running_postgres() as postgres:
        postgres.create_database("snapshots_catalog")
        url = URL.create("postgresql+psycopg", username=postgres.user,
                         password=postgres.password, host=postgres.host, port=postgres.port,
                         database="snapshots_catalog")
        with running_server(tmp_path / "pg", database_url=url.render_as_string(
                hide_password=False)) as pg:
            snapshot = take(pg, {"name": "on postgres", "tags": ["pg"],
                                 "paths": [str(config_dir)]})
            listed = pg.client.get(SNAPSHOTS, params={"tag": "PG"},
                                   headers=pg.headers("viewer")).json()
            assert [s["_id"] for s in listed["items"]] == [snapshot["_id"]]
            (config_dir / "app.toml").write_text("changed on postgres\n")
            restore(pg, snapshot["_id"])
            assert (config_dir / "app.toml").read_text() == "mode = 'original'\n"
            status = pg.client.get("/api/v1/status", headers=pg.headers("viewer"))
            assert status.status_code == 200, status.text
            overview = pg.client.get("/api/v1/statistics/overview",
                                     headers=pg.headers("viewer")).json()
            assert overview["summary"]["successful_backups"] == 2  # snapshot + pre-restore
            metrics = pg.client.get("/metrics", headers=pg.headers("viewer"))
            assert metrics.status_code == 200


def test_remove_unheld_leaves_what_the_patterns_never_captured(tmp_path: Path) -> None:
    root = tmp_path / "conf"
    (root / "cache" / "sub").mkdir(parents=True)
    (root / "cache" / "sub" / "x.bin").write_text("cached")
    (root / "keep.conf").write_text("held")
    (root / "new.conf").write_text("new")
    (root / "notes.txt").write_text("not included")
    held = {"conf", "conf/keep.conf"}
    removed = remove_unheld(root, held, PathFilter(include=("*.conf",), exclude=("cache",)))
    assert removed == 1
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*")) == [
        "cache", "cache/sub", "cache/sub/x.bin", "keep.conf", "notes.txt"]


def test_a_postgres_snapshot_replaces_the_schema(tmp_path: Path) -> None:
    def names(dsn: str) -> list[str]:
        with psycopg.connect(dsn) as conn:
            return [r[0] for r in conn.execute("SELECT name FROM cfg.settings ORDER BY id")]

    with running_postgres() as postgres:
        dsn = postgres.create_database("cfg_app")
        with psycopg.connect(dsn) as conn:
            conn.execute("CREATE SCHEMA cfg")
            conn.execute("CREATE TABLE cfg.settings (id serial PRIMARY KEY, name text)")
            conn.execute("INSERT INTO cfg.settings (name) VALUES ('alpha'), ('beta')")
        with running_server(tmp_path / "server") as server:
            source = server.client.post("/api/v1/sources", headers=server.headers(), json={
                "name": "pg config", "kind": "postgres", "dsn": dsn, "schema_name": "cfg"})
            assert source.status_code == 201, source.text
            snapshot = take(server, {"name": "pg settings", "sources": ["pg config"]},
                            role="operator")
            with psycopg.connect(dsn) as conn:
                conn.execute("UPDATE cfg.settings SET name = 'changed'")
            started, final = restore(server, snapshot["_id"])
            assert names(dsn) == ["alpha", "beta"]
            assert final["result"]["components"][0]["rows_restored"] == 2
            pre = wait_snapshot(server, started["pre_restore_snapshot_id"])
            assert pre["components"][0]["source_kind"] == "postgres"


def test_a_restore_waits_for_a_snapshot_restore_of_the_same_source(server: Server) -> None:
    source_id = server.sources["sqlite"]
    backup = server.backup_and_wait({"name": "before snapshot restore", "type": "full",
                                     "source_id": source_id})
    # A snapshot restore writing to this source (its job record, as the service makes it).
    job = server.services.jobs.create("default", "snapshot_restore",
                                      {"components": [{"source_id": source_id}]})
    try:
        error = assert_error(server.client.post(
            "/api/v1/restore", headers=server.headers(),
            json={"backup_id": backup["backup_id"], "mode": "full"}), 409,
            "RESTORE_IN_PROGRESS")
        assert error["error"]["details"]["job_id"] == job.id
    finally:
        server.services.jobs.finish(job.id, "failed")
