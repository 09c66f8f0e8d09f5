"""Test restores into scratch targets: SQLite, file trees and PostgreSQL, good and damaged.

Backups are made with the real engines into the real (encrypted) repository; damage is
done to the pack files on disk, as a failing disk would.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from strongbox.demo.app_database import generate
from strongbox.repository.repository import Repository
from strongbox.repository.snapshot import Snapshot
from strongbox.services.backup_metadata import describe
from strongbox.services.backups import BackupView
from strongbox.services.scratch_restore import test_restore as scratch_test_restore
from strongbox.services.storage import RepositoryInfo
from strongbox.sources.files.archiver import backup_files
from strongbox.sources.sqlite.backup import DatabaseFilters, backup_sqlite
from strongbox.sources.sqlite.reader import SnapshotReader
from tests.pg_server import PostgresServer


def view_of(repo: Repository, snapshot: Snapshot, *, source_id: str | None = None,
            tenant: str = "t1") -> BackupView:
    """The catalog record a completed backup of ``snapshot`` would have."""
    info = RepositoryInfo(repo.backend.location, True, repo.key_slot, 3)
    meta = describe(repo, snapshot, info)
    return BackupView(
        id="b-" + snapshot.id[:8], tenant=tenant, name="test", description=None, type="full",
        status="completed", source_id=source_id, source_name="src", source_kind=snapshot.kind,
        job_id="j", filters=None, options=None, created_at=datetime.now(UTC), created_by=None,
        completed_at=datetime.now(UTC), snapshot_id=snapshot.id,
        storage_location=repo.backend.location, size_bytes=meta["size_bytes"],
        compressed_size_bytes=meta["compressed_size_bytes"], added_bytes=0,
        contents=meta["contents"], checksum=meta["checksum"], encryption=meta["encryption"],
        compression=meta["compression"], validation=None, error_message=None)


def damage_blob(repo: Repository, blob_hex: str) -> str:
    """Flip bytes in the middle of one blob inside its pack file; returns the pack id."""
    found = repo.index.lookup(bytes.fromhex(blob_hex))
    assert found is not None
    pack_id, blob = found
    path = Path(repo.backend.location) / "data" / pack_id[:2] / pack_id
    data = bytearray(path.read_bytes())
    middle = blob.offset + blob.length // 2
    data[middle:middle + 4] = bytes(b ^ 0xFF for b in data[middle:middle + 4])
    os.chmod(path, 0o600)
    path.write_bytes(bytes(data))
    return pack_id


def node_at(repo: Repository, snapshot: Snapshot, path: str) -> Any:
    for found, node in repo.iter_tree(snapshot.tree):
        if found == path:
            return node
    raise AssertionError(f"{path} not in snapshot")


def checks(result: Any) -> dict[str, bool]:
    return {c.name: c.ok for c in result.checks}


@pytest.fixture
def app_db(tmp_path: Path) -> Path:
    path = tmp_path / "app.db"
    generate(path, projects=2, sessions_per_project=3, messages_per_session=4)
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    (root / "docs" / "deep").mkdir(parents=True)
    (root / "docs" / "a.txt").write_text("alpha\n" * 100)
    (root / "docs" / "deep" / "b.bin").write_bytes(os.urandom(300_000))
    (root / "empty").mkdir()
    (root / "link").symlink_to("docs/a.txt")
    return root


def leftovers(scratch: Path) -> list[str]:
    return sorted(p.name for p in scratch.iterdir()) if scratch.exists() else []


def test_sqlite_backup_restores_clean_and_scratch_is_removed(repo: Repository, app_db: Path,
                                                             tmp_path: Path) -> None:
    snapshot = backup_sqlite(repo, app_db)
    backup = view_of(repo, snapshot)
    scratch = tmp_path / "scratch"

    result = scratch_test_restore(repo, backup, scratch)

    assert result.ok, result.checks
    assert result.source_kind == "sqlite"
    assert checks(result) == {"restore": True, "integrity_check": True,
                              "foreign_key_check": True, "row_counts": True, "contents": True}
    assert result.damaged == []
    assert result.rows_restored == backup.contents["total_documents"]
    assert result.duration_seconds > 0
    assert leftovers(scratch) == []


def test_selective_sqlite_backup_restores_from_its_row_streams(repo: Repository, app_db: Path,
                                                               tmp_path: Path) -> None:
    with contextlib.closing(sqlite3.connect(app_db)) as conn:
        first = conn.execute("SELECT id FROM projects ORDER BY id LIMIT 1").fetchone()[0]
    snapshot = backup_sqlite(repo, app_db,
                             filters=DatabaseFilters(records={"projects": [first]}))
    backup = view_of(repo, snapshot)
    assert SnapshotReader(repo, snapshot).page_copy() is None

    result = scratch_test_restore(repo, backup, tmp_path / "scratch")

    assert result.ok, result.checks
    assert 0 < result.rows_restored < sum(
        t.rows for t in SnapshotReader(repo, backup_sqlite(repo, app_db)).tables())
    assert leftovers(tmp_path / "scratch") == []


def test_files_backup_restores_clean_with_matching_hashes(repo: Repository, tree: Path,
                                                         tmp_path: Path) -> None:
    snapshot = backup_files(repo, [tree])
    result = scratch_test_restore(repo, view_of(repo, snapshot), tmp_path / "scratch")

    assert result.ok, result.checks
    assert checks(result) == {"restore": True, "file_hashes": True, "file_count": True}
    assert result.files_restored == 2
    assert leftovers(tmp_path / "scratch") == []


def test_damaged_page_copy_fails_and_names_it(repo: Repository, app_db: Path,
                                              tmp_path: Path) -> None:
    snapshot = backup_sqlite(repo, app_db)
    backup = view_of(repo, snapshot)
    damage_blob(repo, node_at(repo, snapshot, "database.sqlite").content[0])

    result = scratch_test_restore(repo, backup, tmp_path / "scratch")

    assert not result.ok
    assert checks(result)["restore"] is False
    assert "database.sqlite" in result.damaged
    assert any("authentication failed" in e for e in result.errors)
    assert leftovers(tmp_path / "scratch") == []


def test_damaged_file_chunk_fails_and_names_the_file(repo: Repository, tree: Path,
                                                     tmp_path: Path) -> None:
    snapshot = backup_files(repo, [tree])
    backup = view_of(repo, snapshot)
    path = next(p for p, n in repo.iter_tree(snapshot.tree) if p.endswith("deep/b.bin"))
    damage_blob(repo, node_at(repo, snapshot, path).content[-1])

    result = scratch_test_restore(repo, backup, tmp_path / "scratch")

    assert not result.ok
    assert result.damaged == [path]
    assert leftovers(tmp_path / "scratch") == []


def test_deleted_pack_fails_the_restore(repo: Repository, tree: Path, tmp_path: Path) -> None:
    snapshot = backup_files(repo, [tree])
    backup = view_of(repo, snapshot)
    path = next(p for p, n in repo.iter_tree(snapshot.tree) if p.endswith("docs/a.txt"))
    found = repo.index.lookup(bytes.fromhex(node_at(repo, snapshot, path).content[0]))
    assert found is not None
    (Path(repo.backend.location) / "data" / found[0][:2] / found[0]).unlink()

    result = scratch_test_restore(repo, backup, tmp_path / "scratch")

    assert not result.ok
    assert path in result.damaged


def test_recorded_contents_that_disagree_fail_the_contents_check(
        repo: Repository, app_db: Path, tmp_path: Path) -> None:
    snapshot = backup_sqlite(repo, app_db)
    good = view_of(repo, snapshot)
    wrong = BackupView(**{**good.__dict__, "contents": {**(good.contents or {}),
                                                        "messages_count": 1}})

    result = scratch_test_restore(repo, wrong, tmp_path / "scratch")

    assert not result.ok
    assert checks(result)["contents"] is False
    assert checks(result)["integrity_check"] is True


POSTGRES_SCHEMA = """
CREATE TABLE parent (id serial PRIMARY KEY, name text NOT NULL UNIQUE);
CREATE TABLE child (id serial PRIMARY KEY, parent_id int NOT NULL REFERENCES parent(id),
                    note text);
INSERT INTO parent (name) SELECT 'p' || g FROM generate_series(1, 5) g;
INSERT INTO child (parent_id, note) SELECT 1 + g % 5, 'n' || g FROM generate_series(1, 40) g;
"""


def test_postgres_backup_restores_into_a_dropped_scratch_schema(
        repo: Repository, postgres_server: PostgresServer, tmp_path: Path) -> None:
    from strongbox.catalog.database import Catalog
    from strongbox.services.secret_box import SecretBox
    from strongbox.services.sources import SourceService, SourceSpec
    from strongbox.sources.postgres.backup import backup_postgres

    dsn = postgres_server.create_database("scratch_ok")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(POSTGRES_SCHEMA.encode())
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    catalog.migrate()
    sources = SourceService(catalog, SecretBox(tmp_path / "secret.key"))
    source = sources.create("t1", SourceSpec(name="pg", kind="postgres", dsn=dsn))
    snapshot = backup_postgres(repo, dsn)
    backup = view_of(repo, snapshot, source_id=source.id)

    result = scratch_test_restore(repo, backup, tmp_path / "scratch", sources=sources)

    assert result.ok, result.checks
    assert checks(result)["row_counts"] is True
    assert result.rows_restored == 45
    with psycopg.connect(dsn) as conn:
        schemas = [r[0] for r in conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'strongbox_%'")]
        parents = conn.execute("SELECT count(*) FROM public.parent").fetchone()
    assert schemas == []
    assert parents == (5,)
    catalog.dispose()
