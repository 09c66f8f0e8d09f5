"""Backup verification through the API and the CLI: green for good backups (quick, deep,
test restore), red and ``corrupted`` for a damaged or deleted pack, naming the damaged
tables and files.

Damage is done to the real pack files of the server's repository, as a failing disk would.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from strongbox.catalog.models import Backup
from strongbox.cli.main import app as cli_app
from strongbox.repository.repository import Repository
from strongbox.services.principal import Principal, Role
from strongbox.services.verification import KIND, VerifyOptions
from tests.api.conftest import Server, live_server, running_server
from tests.api.test_backups_contract import assert_error


def verify(server: Server, backup_id: str, body: dict[str, Any] | None = None,
           role: str = "operator") -> dict[str, Any]:
    response = server.client.post(f"/api/v1/backups/{backup_id}/verify",
                                  headers=server.headers(role), json=body)
    assert response.status_code == 202, response.text
    return dict(response.json())


def wait_verified(server: Server, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        response = server.client.get(f"/api/v1/backups/verify/jobs/{job_id}",
                                     headers=server.headers("viewer"))
        assert response.status_code == 200, response.text
        status = response.json()
        if status["status"] in ("completed", "failed"):
            return dict(status)
        assert time.monotonic() < deadline, f"verify job {job_id} did not finish: {status}"
        time.sleep(0.05)


def verify_and_wait(server: Server, backup_id: str, **body: Any) -> dict[str, Any]:
    started = verify(server, backup_id, body)
    status = wait_verified(server, started["job_id"])
    assert status["status"] == "completed", status
    result: dict[str, Any] = status["result"]
    return result


def detail(server: Server, backup_id: str) -> dict[str, Any]:
    response = server.client.get(f"/api/v1/backups/{backup_id}", headers=server.headers("viewer"))
    assert response.status_code == 200, response.text
    return dict(response.json())


def files_backup(server: Server) -> str:
    created = server.backup_and_wait({"name": "tree", "type": "full",
                                      "source_id": server.sources["files"]})
    return str(created["backup_id"])


def open_repo(server: Server) -> Repository:
    return server.services.storage.open()


def tree_paths(repo: Repository, snapshot_id: str) -> dict[str, Any]:
    return dict(repo.iter_tree(repo.load_snapshot(snapshot_id).tree))


def pack_file(repo: Repository, blob_hex: str) -> tuple[Path, Any]:
    found = repo.index.lookup(bytes.fromhex(blob_hex))
    assert found is not None
    pack_id, blob = found
    return Path(repo.backend.location) / "data" / pack_id[:2] / pack_id, blob


def flip_bytes(repo: Repository, blob_hex: str) -> None:
    path, blob = pack_file(repo, blob_hex)
    data = bytearray(path.read_bytes())
    middle = blob.offset + blob.length // 2
    data[middle:middle + 8] = bytes(b ^ 0xA5 for b in data[middle:middle + 8])
    os.chmod(path, 0o600)
    path.write_bytes(bytes(data))


def check_states(result: dict[str, Any]) -> dict[str, str]:
    return dict(result["checks_performed"])


# --- good backups ------------------------------------------------------------------------------


def test_quick_verification_of_a_good_backup_is_green(server: Server) -> None:
    backup_id = server.backup_and_wait()["backup_id"]
    started = verify(server, backup_id)
    assert started["status"] in ("pending", "in_progress", "completed")
    assert (started["deep_verification"], started["test_restore"]) == (False, False)

    status = wait_verified(server, started["job_id"])
    result = status["result"]
    assert status["backup_id"] == backup_id
    assert status["progress"]["percentage"] == 100.0
    assert result["verification_status"] == "passed" and result["verified"] is True
    assert result["mode"] == "quick"
    assert set(check_states(result).values()) == {"passed"}
    assert result["damaged"] == [] and result["errors"] == []
    assert 0 < result["blobs_checked"] <= result["blobs_total"]
    assert result["components_verified"]["database"]["checksum_match"] is True

    shown = detail(server, backup_id)
    assert shown["status"] == "completed"
    assert shown["validation_status"]["is_valid"] is True
    assert shown["validation_status"]["errors"] == []
    assert shown["validation_status"]["validated_at"].startswith(result["verified_at"][:19])

    last = server.client.get(f"/api/v1/backups/{backup_id}/verification",
                             headers=server.headers("viewer")).json()
    assert last["validation_status"]["mode"] == "quick"
    assert {c["name"] for c in last["validation_status"]["checks"]} >= {
        "checksum", "metadata", "completeness", "decryption", "decompression",
        "file_integrity"}
    assert last["last_job"]["job_id"] == started["job_id"]
    assert last["verified_at"]


def test_deep_verification_with_test_restore_of_a_database(server: Server) -> None:
    backup_id = server.backup_and_wait()["backup_id"]
    result = verify_and_wait(server, backup_id, deep_verification=True, test_restore=True)

    assert result["verified"] is True, result["errors"]
    assert result["mode"] == "deep"
    assert result["blobs_checked"] == result["blobs_total"]
    assert check_states(result)["test_restore"] == "passed"
    scratch = result["test_restore_result"]
    assert scratch["ok"] is True and scratch["source_kind"] == "sqlite"
    assert {c["name"] for c in scratch["checks"]} >= {"integrity_check", "row_counts"}
    assert scratch["rows_restored"] == detail(server, backup_id)["contents"]["total_documents"]
    scratch_dir = server.data_dir / "scratch"
    assert not scratch_dir.exists() or list(scratch_dir.iterdir()) == []


def test_deep_verification_with_test_restore_of_a_file_tree(server: Server) -> None:
    backup_id = files_backup(server)
    result = verify_and_wait(server, backup_id, deep_verification=True, test_restore=True)

    assert result["verified"] is True, result["errors"]
    assert result["test_restore_result"]["source_kind"] == "files"
    assert {c["name"]: c["ok"] for c in result["test_restore_result"]["checks"]} == {
        "restore": True, "file_hashes": True, "file_count": True}
    files = result["components_verified"]["files"]
    assert files["status"] == "passed" and files["files_verified"] > 0


# --- refusals ------------------------------------------------------------------------------------


def test_unknown_and_foreign_backups_are_not_found(server: Server) -> None:
    backup_id = server.backup_and_wait()["backup_id"]
    for target, headers in (("00000000-0000-4000-8000-000000000000", server.headers()),
                            ("not-a-uuid", server.headers()),
                            (backup_id, server.other())):
        response = server.client.post(f"/api/v1/backups/{target}/verify", headers=headers,
                                      json={})
        assert_error(response, 404, "BACKUP_NOT_FOUND")
    response = server.client.get("/api/v1/backups/verify/jobs/nope",
                                 headers=server.headers("viewer"))
    assert_error(response, 404, "JOB_NOT_FOUND")
    # A backup job's id is not a verify job's.
    backup_job = server.create_backup()["job_id"]
    response = server.client.get(f"/api/v1/backups/verify/jobs/{backup_job}",
                                 headers=server.headers("viewer"))
    assert_error(response, 404, "JOB_NOT_FOUND")
    server.wait_for_job(backup_job)


def test_viewers_cannot_verify_and_bodies_are_validated(server: Server) -> None:
    backup_id = server.backup_and_wait()["backup_id"]
    response = server.client.post(f"/api/v1/backups/{backup_id}/verify",
                                  headers=server.headers("viewer"), json={})
    assert_error(response, 403, "FORBIDDEN")
    response = server.client.post(f"/api/v1/backups/{backup_id}/verify",
                                  headers=server.headers("operator"),
                                  json={"deep_verification": "very"})
    assert_error(response, 400, "VALIDATION_FAILED")


def test_backups_that_are_not_completed_or_busy_are_refused(server: Server) -> None:
    backup_id = server.backup_and_wait()["backup_id"]
    with server.services.catalog.session() as session:
        session.execute(update(Backup).where(Backup.id == backup_id).values(status="failed"))
    response = server.client.post(f"/api/v1/backups/{backup_id}/verify",
                                  headers=server.headers(), json={})
    assert_error(response, 409, "BACKUP_NOT_COMPLETED")

    with server.services.catalog.session() as session:
        session.execute(update(Backup).where(Backup.id == backup_id)
                        .values(status="completed"))
    # A verification already queued for the backup (created, never run).
    pending = server.services.jobs.create("default", KIND, {"deep": False},
                                          backup_id=backup_id)
    response = server.client.post(f"/api/v1/backups/{backup_id}/verify",
                                  headers=server.headers(), json={})
    assert_error(response, 409, "VERIFICATION_IN_PROGRESS")
    server.services.runner.cancel_pending(pending.id)


def test_verify_latest_starts_one_job_per_source(server: Server) -> None:
    db_backup = server.backup_and_wait()["backup_id"]
    tree_backup = files_backup(server)
    service = server.services.verification

    jobs = service.verify_latest("default", options=VerifyOptions(deep=True))
    assert sorted(j.backup_id or "" for j in jobs) == sorted([db_backup, tree_backup])
    for job in jobs:
        assert wait_verified(server, job.id)["result"]["mode"] == "deep"
    # Verified just now: a schedule asking for "not verified since an hour ago" skips them.
    since = detail(server, db_backup)["validation_status"]["validated_at"]
    from datetime import datetime, timedelta
    moment = datetime.fromisoformat(since.replace("Z", "+00:00")) - timedelta(hours=1)
    assert service.verify_latest("default", not_verified_since=moment) == []
    only = service.verify_latest("default", source_ids=[server.sources["files"]])
    assert [j.backup_id for j in only] == [tree_backup]
    wait_verified(server, only[0].id)


# --- damage ------------------------------------------------------------------------------------


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Server]:
    """A server of its own: these tests damage its repository."""
    with running_server(tmp_path / "server") as started:
        yield started


def test_flipped_bytes_in_a_pack_turn_verification_red_naming_the_table(fresh: Server) -> None:
    # Row streams name the table they hold (a default full backup keeps its rows in the
    # page copy only: see the test below).
    response = fresh.client.patch(f"/api/v1/sources/{fresh.sources['sqlite']}",
                                  headers=fresh.headers(), json={"row_streams": True})
    assert response.status_code == 200, response.text
    assert response.json()["row_streams"] is True
    backup_id = fresh.backup_and_wait()["backup_id"]
    snapshot_id = fresh.services.backups.get("default", backup_id).snapshot_id
    assert snapshot_id
    repo = open_repo(fresh)
    messages = tree_paths(repo, snapshot_id)["tables/messages"]
    flip_bytes(repo, messages.content[-1])

    result = verify_and_wait(fresh, backup_id, deep_verification=True)

    assert result["verified"] is False
    assert result["verification_status"] == "failed"
    assert "messages" in result["damaged"]
    assert check_states(result)["encryption_validation"] == "failed"
    assert any("messages" in e for e in result["errors"])
    shown = detail(fresh, backup_id)
    assert shown["status"] == "corrupted"
    assert "messages" in shown["error_message"]
    assert shown["validation_status"]["is_valid"] is False
    assert any("messages" in e for e in shown["validation_status"]["errors"])


def test_damaged_page_copy_of_a_full_backup_is_named_by_a_deep_verification(
        fresh: Server) -> None:
    backup_id = fresh.backup_and_wait()["backup_id"]
    snapshot_id = fresh.services.backups.get("default", backup_id).snapshot_id
    assert snapshot_id
    repo = open_repo(fresh)
    paths = tree_paths(repo, snapshot_id)
    assert not paths["tables/messages"].content  # the rows are in the page copy
    flip_bytes(repo, paths["database.sqlite"].content[-1])

    result = verify_and_wait(fresh, backup_id, deep_verification=True)

    assert result["verified"] is False
    assert "database.sqlite" in result["damaged"]
    assert detail(fresh, backup_id)["status"] == "corrupted"


def test_damaged_page_copy_fails_the_test_restore_too(fresh: Server) -> None:
    backup_id = fresh.backup_and_wait()["backup_id"]
    snapshot_id = fresh.services.backups.get("default", backup_id).snapshot_id
    assert snapshot_id
    repo = open_repo(fresh)
    flip_bytes(repo, tree_paths(repo, snapshot_id)["database.sqlite"].content[0])

    result = verify_and_wait(fresh, backup_id, test_restore=True)

    assert result["verified"] is False
    assert "database.sqlite" in result["damaged"]
    assert detail(fresh, backup_id)["status"] == "corrupted"


def test_deleted_pack_is_found_by_a_quick_verification(fresh: Server) -> None:
    backup_id = files_backup(fresh)
    snapshot_id = fresh.services.backups.get("default", backup_id).snapshot_id
    assert snapshot_id
    repo = open_repo(fresh)
    paths = tree_paths(repo, snapshot_id)
    victim = next(p for p, node in sorted(paths.items()) if node.type == "file" and node.content)
    path, _blob = pack_file(repo, paths[victim].content[0])
    path.unlink()

    result = verify_and_wait(fresh, backup_id)

    assert result["verified"] is False
    assert check_states(result)["component_completeness"] == "failed"
    assert victim in result["damaged"]
    assert result["components_verified"]["files"]["missing_files"] >= 1
    shown = detail(fresh, backup_id)
    assert shown["status"] == "corrupted"
    # The pack held the chunks of many small files: the message names the first 20.
    assert shown["error_message"].startswith("verification found damaged data; damaged "
                                             "files: " + ", ".join(result["damaged"][:3]))


def test_a_corrupted_backup_that_verifies_clean_again_is_completed(fresh: Server) -> None:
    backup_id = files_backup(fresh)
    snapshot_id = fresh.services.backups.get("default", backup_id).snapshot_id
    assert snapshot_id
    repo = open_repo(fresh)
    paths = tree_paths(repo, snapshot_id)
    victim = next(p for p, node in sorted(paths.items()) if node.type == "file" and node.content)
    path, _blob = pack_file(repo, paths[victim].content[0])
    saved = path.read_bytes()
    path.unlink()
    assert verify_and_wait(fresh, backup_id)["verified"] is False
    assert detail(fresh, backup_id)["status"] == "corrupted"

    path.write_bytes(saved)  # the pack is put back (from another copy, say)
    assert verify_and_wait(fresh, backup_id)["verified"] is True
    shown = detail(fresh, backup_id)
    assert shown["status"] == "completed"
    assert "error_message" not in shown


def test_the_verification_service_runs_without_http(fresh: Server) -> None:
    backup_id = fresh.backup_and_wait()["backup_id"]
    principal = Principal(key_id="k", key_name="t", tenant="default", role=Role.OPERATOR)
    job = fresh.services.verification.start(principal, backup_id, VerifyOptions())
    assert job.kind == KIND and job.backup_id == backup_id
    assert wait_verified(fresh, job.id)["result"]["verified"] is True


# --- CLI ----------------------------------------------------------------------------------------


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[str, str, Any]]:
    """A uvicorn server on a loopback port: (URL, admin key, app)."""
    with live_server(tmp_path / "live") as started:
        yield started.url, started.key, started.app


def test_cli_verifies_and_waits(live: tuple[str, str, Any]) -> None:
    import httpx

    url, key, app = live
    created = httpx.post(f"{url}/api/v1/backups", headers={"X-API-Key": key},
                         json={"name": "cli", "type": "full"}).json()
    deadline = time.monotonic() + 60
    while httpx.get(f"{url}/api/v1/backups/jobs/{created['job_id']}",
                    headers={"X-API-Key": key}).json()["status"] != "completed":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    runner = CliRunner()
    env = {"STRONGBOX_URL": url, "STRONGBOX_API_KEY": key}

    done = runner.invoke(cli_app, ["verify", created["backup_id"], "--deep", "--test-restore",
                                   "--wait"], env=env)
    assert done.exit_code == 0, done.output
    assert "deep verification passed" in done.output
    assert "integrity_check" in done.output

    started = runner.invoke(cli_app, ["verify", created["backup_id"], "--json"], env=env)
    assert started.exit_code == 0, started.output
    assert '"job_id"' in started.output

    # Damage the backup: --wait now exits 3 and names the damaged part (a full backup
    # keeps its rows in the page copy).
    repo = app.state.services.storage.open()
    snapshot_id = app.state.services.backups.get("default", created["backup_id"]).snapshot_id
    flip_bytes(repo, tree_paths(repo, snapshot_id)["database.sqlite"].content[-1])
    failed = _retry_busy(runner, ["verify", created["backup_id"], "--deep", "--wait"], env)
    assert failed.exit_code == 3, failed.output
    assert "database.sqlite" in failed.output

    missing = runner.invoke(cli_app, ["verify", "00000000-0000-4000-8000-000000000000"],
                            env=env)
    assert missing.exit_code == 1
    assert "BACKUP_NOT_FOUND" in missing.output


def _retry_busy(runner: CliRunner, args: list[str], env: dict[str, str]) -> Any:
    """Run the CLI again while an earlier verification of the backup is still running."""
    deadline = time.monotonic() + 30
    while True:
        result = runner.invoke(cli_app, args, env=env)
        if "VERIFICATION_IN_PROGRESS" not in result.output or time.monotonic() > deadline:
            return result
        time.sleep(0.1)


# --- PostgreSQL ---------------------------------------------------------------------------------


def test_postgres_test_restore_uses_a_scratch_schema_and_drops_it(
        fresh: Server, postgres_server: Any) -> None:
    import psycopg

    dsn = postgres_server.create_database("verify_app")
    with psycopg.connect(dsn) as conn:
        conn.execute("CREATE SCHEMA app")
        conn.execute("CREATE TABLE app.authors (id serial PRIMARY KEY, name text UNIQUE)")
        conn.execute("CREATE TABLE app.books (id serial PRIMARY KEY, note text, "
                     "author_id int REFERENCES app.authors(id))")
        conn.execute("INSERT INTO app.authors (name) SELECT 'author ' || n "
                     "FROM generate_series(1, 20) n")
        conn.execute("INSERT INTO app.books (note, author_id) SELECT 'book ' || n, "
                     "1 + n % 20 FROM generate_series(1, 200) n")
    source = fresh.client.post("/api/v1/sources", headers=fresh.headers(), json={
        "name": "pg app", "kind": "postgres", "dsn": dsn, "schema_name": "app"})
    assert source.status_code == 201, source.text
    backup_id = fresh.backup_and_wait({"name": "pg app", "type": "full",
                                       "source_id": source.json()["_id"]})["backup_id"]

    result = verify_and_wait(fresh, backup_id, deep_verification=True, test_restore=True)

    assert result["verified"] is True, result["errors"]
    scratch = result["test_restore_result"]
    assert scratch["source_kind"] == "postgres"
    assert scratch["target"].startswith("schema strongbox_scratch_")
    assert scratch["rows_restored"] == 220
    with psycopg.connect(dsn) as conn:
        left = conn.execute("SELECT nspname FROM pg_namespace "
                            "WHERE nspname LIKE 'strongbox\\_%'").fetchall()
        books = conn.execute("SELECT count(*) FROM app.books").fetchone()
    assert left == []
    assert books == (200,)


def test_a_deleted_snapshot_document_is_named(fresh: Server) -> None:
    backup_id = fresh.backup_and_wait()["backup_id"]
    snapshot_id = fresh.services.backups.get("default", backup_id).snapshot_id
    repo = open_repo(fresh)
    (Path(repo.backend.location) / "snapshots" / str(snapshot_id)).unlink()

    result = verify_and_wait(fresh, backup_id, deep_verification=True, test_restore=True)

    assert result["verified"] is False
    assert check_states(result)["checksum_validation"] == "failed"
    assert result["damaged"] == ["snapshot"]
    assert check_states(result)["test_restore"] == "skipped"
    shown = detail(fresh, backup_id)
    assert shown["status"] == "corrupted"
    assert "snapshot" in shown["error_message"]
