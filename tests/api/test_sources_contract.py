"""``/api/v1/sources``: sqlite, files and postgres sources, per tenant, secrets masked."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import pytest

from strongbox.catalog.models import Source
from strongbox.services.secret_box import SecretBox, SecretUnreadable
from tests.api.conftest import Server
from tests.api.test_backups_contract import assert_error

URL = "/api/v1/sources"


def create(server: Server, body: dict[str, object], role: str = "admin") -> object:
    return server.client.post(URL, headers=server.headers(role), json=body)


def test_demo_sources_are_registered(server: Server) -> None:
    listing = server.client.get(URL, headers=server.headers("viewer")).json()
    kinds = {item["kind"]: item for item in listing["items"]}
    assert listing["total"] == len(listing["items"])
    assert Path(kinds["sqlite"]["path"]).is_file()
    assert Path(kinds["files"]["path"]).is_dir()
    assert kinds["files"]["include_patterns"] == []


def test_sqlite_source_lifecycle(server: Server, tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    sqlite3.connect(db).close()
    response = create(server, {"name": "App DB", "kind": "sqlite", "path": str(db)})
    assert response.status_code == 201, response.text
    source = response.json()
    assert source["kind"] == "sqlite" and source["path"] == str(db)
    url = f"{URL}/{source['_id']}"
    assert server.client.get(url, headers=server.headers("viewer")).json() == source
    patched = server.client.patch(url, headers=server.headers(), json={"name": "App DB 2"})
    assert patched.status_code == 200
    assert patched.json()["name"] == "App DB 2"
    assert patched.json()["path"] == str(db)
    deleted = server.client.delete(url, headers=server.headers())
    assert deleted.status_code == 200
    assert deleted.json()["source_id"] == source["_id"]
    assert_error(server.client.get(url, headers=server.headers()), 404, "SOURCE_NOT_FOUND")


def test_files_source_keeps_its_patterns(server: Server, tmp_path: Path) -> None:
    response = create(server, {"name": "Uploads", "kind": "files", "path": str(tmp_path),
                               "include_patterns": ["*.pdf"], "exclude_patterns": ["tmp/*"]})
    assert response.status_code == 201
    body = response.json()
    assert (body["include_patterns"], body["exclude_patterns"]) == (["*.pdf"], ["tmp/*"])
    patched = server.client.patch(f"{URL}/{body['_id']}", headers=server.headers(),
                                  json={"exclude_patterns": []}).json()
    assert (patched["include_patterns"], patched["exclude_patterns"]) == (["*.pdf"], [])


@pytest.mark.parametrize(("dsn", "masked"), [
    ("postgresql://app:s3cret@db.example:5432/app",
     "postgresql://app:********@db.example:5432/app"),
    ("host=db user=app password=s3cret dbname=app",
     "host=db user=app password=******** dbname=app"),
    ("postgresql://db/app?user=app&password=s3cret",
     "postgresql://db/app?user=app&password=********"),
])
def test_postgres_passwords_are_never_returned(server: Server, dsn: str, masked: str) -> None:
    response = create(server, {"name": f"pg {uuid.uuid4().hex[:6]}", "kind": "postgres",
                               "dsn": dsn})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["dsn"] == masked
    assert body["schema_name"] == "public"
    for shown in (server.client.get(f"{URL}/{body['_id']}", headers=server.headers()).text,
                  server.client.get(URL, headers=server.headers()).text):
        assert "s3cret" not in shown
    # ...while the server keeps the real one to connect with.
    stored = server.services.sources.get("default", body["_id"])
    assert stored.config["dsn"] == dsn
    # ...sealed in the catalog, not readable from a copy of it.
    with server.services.catalog.session() as session:
        row = session.get(Source, body["_id"])
        assert row is not None
        assert "s3cret" not in str(row.config) and row.config["dsn"].startswith("sealed:v1:")


def test_a_wrong_secret_key_is_a_clear_error(tmp_path: Path) -> None:
    box = SecretBox(tmp_path / "secret.key")
    sealed = box.seal("postgresql://app:s3cret@db/app")
    assert (tmp_path / "secret.key").stat().st_mode & 0o777 == 0o600
    assert SecretBox(tmp_path / "secret.key").open(sealed) == "postgresql://app:s3cret@db/app"
    assert box.open("host=db") == "host=db"  # stored before sealing: read as is
    with pytest.raises(SecretUnreadable, match="re-enter it"):
        SecretBox(tmp_path / "other.key").open(sealed)


@pytest.mark.parametrize(("body", "field"), [
    ({"name": "x", "kind": "mysql", "path": "/tmp"}, "kind"),
    ({"kind": "files", "path": "/tmp"}, "name"),
    ({"name": "x", "kind": "sqlite"}, "path"),
    ({"name": "x", "kind": "sqlite", "path": "/no/such/file.db"}, "path"),
    ({"name": "x", "kind": "files", "path": "/no/such/folder"}, "path"),
    ({"name": "x", "kind": "postgres"}, "dsn"),
    ({"name": "x", "kind": "files", "path": "/tmp", "dsn": "host=db"}, "dsn"),
    ({"name": "x", "kind": "files", "path": "/tmp", "row_streams": True}, "row_streams"),
])
def test_invalid_sources_are_rejected(server: Server, body: dict[str, object],
                                      field: str) -> None:
    assert_error(create(server, body), 400, "VALIDATION_FAILED", fields={field})


def test_names_are_unique_per_tenant(server: Server, tmp_path: Path) -> None:
    body = {"name": "Twice", "kind": "files", "path": str(tmp_path)}
    assert create(server, body).status_code == 201
    assert_error(create(server, body), 400, "VALIDATION_FAILED", fields={"name"})
    other = server.client.post(URL, headers=server.other(), json=body)
    assert other.status_code == 201


def test_kind_cannot_change(server: Server, tmp_path: Path) -> None:
    source = create(server, {"name": "Fixed kind", "kind": "files",
                             "path": str(tmp_path)}).json()
    response = server.client.patch(f"{URL}/{source['_id']}", headers=server.headers(),
                                   json={"dsn": "host=db"})
    assert_error(response, 400, "VALIDATION_FAILED", fields={"dsn"})


def test_backups_of_a_files_source(server: Server) -> None:
    created = server.backup_and_wait({"name": "files backup", "type": "full",
                                      "source_id": server.sources["files"]})
    detail = server.client.get(f"/api/v1/backups/{created['backup_id']}",
                               headers=server.headers()).json()
    tree = Path(server.services.sources.get("default", server.sources["files"]).config["path"])
    files = [p for p in tree.rglob("*") if p.is_file() and not p.is_symlink()]
    assert detail["contents"]["total_documents"] == len(files)
    assert detail["size_bytes"] == sum(p.stat().st_size for p in files)
    selective = server.backup_and_wait({
        "name": "only notes", "type": "selective", "source_id": server.sources["files"],
        "filters": {"include_patterns": ["*.txt"]}})
    notes = server.client.get(f"/api/v1/backups/{selective['backup_id']}",
                              headers=server.headers()).json()
    assert notes["contents"]["total_documents"] == len([p for p in files if p.suffix == ".txt"])
    assert notes["filters"] == {"include_patterns": ["*.txt"]}


def test_row_streams_option_of_a_sqlite_source_reaches_its_full_backups(
        server: Server, tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        conn.executemany("INSERT INTO t (v) VALUES (?)", [("a",), ("b",)])
    conn.close()
    plain = create(server, {"name": "plain", "kind": "sqlite", "path": str(db)}).json()
    streamed = create(server, {"name": "streamed", "kind": "sqlite", "path": str(db),
                               "row_streams": True}).json()
    assert "row_streams" not in plain and streamed["row_streams"] is True

    for source, expect_stream in ((plain, False), (streamed, True)):
        created = server.backup_and_wait({"name": source["name"], "type": "full",
                                          "source_id": source["_id"]})
        snapshot_id = server.services.backups.get("default", created["backup_id"]).snapshot_id
        assert snapshot_id
        repo = server.services.storage.open()
        paths = dict(repo.iter_tree(repo.load_snapshot(snapshot_id).tree))
        assert bool(paths["tables/t"].content) is expect_stream, source["name"]
        assert paths["tables/t"].meta["rows"] == 2
