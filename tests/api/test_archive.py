"""Download and upload of backups as portable archives (seed 000 sections 1.4 and 2.2)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import sqlite3
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zstandard

from strongbox.catalog.models import Backup
from strongbox.services.archive_format import MANIFEST
from strongbox.services.archives import part_of
from strongbox.sources.sqlite.reader import SnapshotReader
from tests.api.conftest import Server, running_server

UPLOAD_LIMIT = 8 * 1024 * 1024
UPLOAD = "/api/v1/restore/upload"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("archive")
    with running_server(root / "data", upload_max_bytes=UPLOAD_LIMIT,
                        rate_limit_download="9999/hour",
                        rate_limit_restore_upload="9998/hour",
                        rate_limit_restore="10000/hour") as started:
        yield started


@pytest.fixture(scope="module")
def backup_id(server: Server) -> str:
    return str(server.backup_and_wait({"name": "archive source", "type": "full",
                                       "source_id": server.sources["sqlite"]})["backup_id"])


def download(server: Server, backup_id: str, role: str = "viewer", **params: Any) -> Any:
    return server.client.get(f"/api/v1/backups/{backup_id}/download",
                             headers=server.headers(role), params=params)


def upload(server: Server, data: bytes, role: str = "operator", filename: str = "b.tar.gz",
           **fields: str) -> Any:
    return server.client.post(UPLOAD, headers=server.headers(role), data=fields,
                              files={"file": (filename, data, "application/gzip")})


def read_tar(data: bytes) -> tuple[dict[str, Any], dict[str, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
        members = tar.getmembers()
        assert members[0].name == MANIFEST
        files = {m.name: tar.extractfile(m).read() for m in members}  # type: ignore[union-attr]
    return json.loads(files.pop(MANIFEST)), files


def sqlite_dump(path: str | Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


# --- download ------------------------------------------------------------------------------


def test_download_headers_and_contents(server: Server, backup_id: str) -> None:
    response = download(server, backup_id)
    assert response.status_code == 200, response.text
    body = response.content
    assert response.headers["content-type"] == "application/gzip"
    assert re.fullmatch(r'attachment; filename="backup-\d{8}T\d{6}Z\.tar\.gz"',
                        response.headers["content-disposition"])
    assert int(response.headers["content-length"]) == len(body)
    assert response.headers["x-checksum"] == hashlib.sha256(body).hexdigest()
    assert response.headers["x-total-parts"] == "1"
    assert response.headers["x-ratelimit-limit"] == "9999"  # the download bucket
    manifest, files = read_tar(body)
    assert manifest["format"] == "strongbox-archive" and manifest["version"] == "1.0"
    assert manifest["backup"]["_id"] == backup_id
    assert manifest["snapshot"]["kind"] == "sqlite"
    assert not any(t.startswith(("backup=", "tenant=")) for t in manifest["snapshot"]["tags"])
    data_entries = [e for e in manifest["entries"] if e["type"] in ("file", "stream")]
    assert sorted(files) == sorted("data/" + e["path"] for e in data_entries)
    for entry in data_entries:
        content = files["data/" + entry["path"]]
        assert len(content) == entry["size"]
        assert hashlib.sha256(content).hexdigest() == entry["sha256"]
    assert {"manifest.json", "schema.sql", "database.sqlite"} <= {
        e["path"] for e in manifest["entries"]}


def test_download_is_deterministic(server: Server, backup_id: str) -> None:
    first = download(server, backup_id).content
    for cached in (server.data_dir / "archives").iterdir():
        cached.unlink()
    assert download(server, backup_id).content == first


def test_range_requests_resume_a_download(server: Server, backup_id: str) -> None:
    whole = download(server, backup_id).content
    size = len(whole)
    head = server.client.get(f"/api/v1/backups/{backup_id}/download",
                             headers={**server.headers("viewer"), "Range": "bytes=0-999"})
    assert head.status_code == 206
    assert head.headers["content-range"] == f"bytes 0-999/{size}"
    assert head.headers["content-length"] == "1000"
    tail = server.client.get(f"/api/v1/backups/{backup_id}/download",
                             headers={**server.headers("viewer"), "Range": "bytes=1000-"})
    assert tail.status_code == 206
    assert tail.headers["content-range"] == f"bytes 1000-{size - 1}/{size}"
    assert head.content + tail.content == whole
    suffix = server.client.get(f"/api/v1/backups/{backup_id}/download",
                               headers={**server.headers("viewer"), "Range": "bytes=-10"})
    assert suffix.status_code == 206 and suffix.content == whole[-10:]
    bad = server.client.get(f"/api/v1/backups/{backup_id}/download",
                            headers={**server.headers("viewer"), "Range": f"bytes={size}-"})
    assert bad.status_code == 416
    assert bad.headers["content-range"] == f"bytes */{size}"
    assert bad.json()["error"]["code"] == "RANGE_NOT_SATISFIABLE"


def test_parts(server: Server, backup_id: str) -> None:
    whole = download(server, backup_id).content
    one = download(server, backup_id, part=1, split_size_mb=1)
    assert one.status_code == 200 and one.content == whole
    assert one.headers["x-total-parts"] == "1"
    assert one.headers["content-disposition"].endswith('.tar.gz.part001"')
    assert download(server, backup_id, part=2).json()["error"]["code"] == "VALIDATION_FAILED"
    assert part_of(25, 10, 3).start == 20 and part_of(25, 10, 3).end == 25
    assert part_of(25, 10, 1).total == 3
    assert part_of(25, None, None).end == 25


def test_download_zstd(server: Server, backup_id: str) -> None:
    response = download(server, backup_id, compression="zstd")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zstd"
    assert response.headers["content-disposition"].endswith('.tar.zst"')
    plain = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(response.content)).read()
    gz = gzip.decompress(download(server, backup_id).content)
    assert plain == gz  # the same tar, compressed differently


def test_download_errors_and_auth(server: Server, backup_id: str) -> None:
    url = f"/api/v1/backups/{backup_id}/download"
    assert server.client.get(url).status_code == 401
    assert server.client.get(url, headers={"X-API-Key": "nope"}).status_code == 401
    other = server.client.get(url, headers=server.other())
    assert other.status_code == 404 and other.json()["error"]["code"] == "BACKUP_NOT_FOUND"
    missing = download(server, "00000000-0000-4000-8000-000000000000")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "BACKUP_NOT_FOUND"
    assert download(server, "not-a-uuid").status_code == 404


def test_download_of_a_forgotten_snapshot_is_gone(server: Server) -> None:
    created = server.backup_and_wait({"name": "to be lost", "type": "full",
                                      "source_id": server.sources["sqlite"]})
    with server.services.catalog.session() as session:
        snapshot_id = session.get_one(Backup, created["backup_id"]).snapshot_id
    assert snapshot_id
    server.services.storage.open().delete_snapshot(snapshot_id)
    response = download(server, created["backup_id"])
    assert response.status_code == 410
    assert response.json()["error"]["code"] == "BACKUP_FILE_MISSING"


# --- upload: the round trip -----------------------------------------------------------------


def test_download_upload_download_gives_the_same_bytes(server: Server, backup_id: str
                                                        ) -> None:
    original = download(server, backup_id).content
    response = upload(server, original, filename="mine.tar.gz")
    assert response.status_code == 202, response.text
    body = response.json()
    assert set(body) == {"upload_id", "backup_id", "status", "file_info", "validation"}
    assert body["status"] == "ready"
    assert response.headers["x-ratelimit-limit"] == "9998"  # the upload bucket
    assert body["file_info"] == {"filename": "mine.tar.gz", "size_bytes": len(original),
                                 "mime_type": "application/gzip",
                                 "checksum": hashlib.sha256(original).hexdigest()}
    validation = body["validation"]
    assert validation["format_valid"] is True
    assert validation["version"] == "1.0" and validation["compatibility"] == "compatible"
    assert validation["contents_summary"]["total_documents"] > 0
    new_id = body["backup_id"]
    assert new_id != backup_id
    detail = server.client.get(f"/api/v1/backups/{new_id}", headers=server.headers("viewer"))
    assert detail.status_code == 200
    assert detail.json()["status"] == "completed" and detail.json()["can_restore"] is True
    assert detail.json()["source_id"] == server.sources["sqlite"]
    again = download(server, new_id).content
    assert again == original
    assert not list((server.data_dir / "uploads").iterdir())


def test_uploaded_backup_restores_the_same_database(server: Server, backup_id: str,
                                                    tmp_path: Path) -> None:
    response = upload(server, download(server, backup_id, compression="zstd").content)
    assert response.status_code == 202, response.text
    with server.services.catalog.session() as session:
        snapshot_id = session.get_one(Backup, response.json()["backup_id"]).snapshot_id
    assert snapshot_id
    repo = server.services.storage.open()
    snapshot = repo.load_snapshot(snapshot_id)
    page_copy = repo.load_tree(snapshot.tree).get("database.sqlite")
    assert page_copy is not None
    restored = tmp_path / "restored.sqlite"
    with restored.open("wb") as f:
        for chunk in repo.read_stream(page_copy.content):
            f.write(chunk)
    source = server.services.sources.get("default", server.sources["sqlite"])
    assert sqlite_dump(restored) == sqlite_dump(source.config["path"])
    # Row by row too: the uploaded tables still point into the page copy.
    with SnapshotReader(repo, snapshot) as reader, sqlite3.connect(restored) as conn:
        messages = list(reader.rows("messages"))
        assert reader.table("messages").rows == len(messages) > 0
        assert messages == conn.execute("SELECT * FROM messages ORDER BY id").fetchall()
    conn.close()


def test_auto_restore(server: Server, backup_id: str) -> None:
    """download → upload with auto_restore → the live database is the backed-up one."""
    original = download(server, backup_id).content
    database = server.services.sources.get("default", server.sources["sqlite"]).config["path"]
    before = sqlite_dump(database)
    conn = sqlite3.connect(database)
    with conn:
        conn.execute("CREATE TABLE scratch (x)")
        conn.execute("INSERT INTO scratch VALUES (1)")
    conn.close()
    assert sqlite_dump(database) != before
    response = upload(server, original, auto_restore="true",
                      restore_options=json.dumps({"on_conflict": "skip"}))
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "restoring", body
    job_id = body["restore_job_id"]
    deadline = time.monotonic() + 60
    while True:
        job = server.services.jobs.get(job_id)
        assert job is not None
        if job.status in ("completed", "failed", "cancelled"):
            break
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert job.status == "completed", job.error
    assert job.backup_id == body["backup_id"]
    assert sqlite_dump(database) == before


def test_upload_form_validation(server: Server, backup_id: str) -> None:
    original = download(server, backup_id).content
    bad_flag = upload(server, original, auto_restore="maybe")
    assert bad_flag.status_code == 400
    assert bad_flag.json()["validation_errors"][0]["field"] == "auto_restore"
    bad_options = upload(server, original, restore_options="{not json")
    assert bad_options.status_code == 400
    assert bad_options.json()["validation_errors"][0]["field"] == "restore_options"
    no_file = server.client.post(UPLOAD, headers=server.headers("operator"),
                                 data={"auto_restore": "false"},
                                 files={"other": ("x", b"x")})
    assert no_file.status_code == 400
    assert no_file.json()["validation_errors"][0]["field"] == "file"


def test_upload_auth(server: Server, backup_id: str) -> None:
    data = download(server, backup_id).content
    assert server.client.post(UPLOAD, files={"file": ("b", data)}).status_code == 401
    viewer = upload(server, data, role="viewer")
    assert viewer.status_code == 403 and viewer.json()["error"]["code"] == "FORBIDDEN"
    # A backup uploaded by one tenant is invisible to another.
    mine = upload(server, data).json()["backup_id"]
    other = server.client.get(f"/api/v1/backups/{mine}/download", headers=server.other())
    assert other.status_code == 404


# --- upload: hostile archives ------------------------------------------------------------------


def entry(path: str, data: bytes | None = None, kind: str = "file", **extra: Any
          ) -> dict[str, Any]:
    doc: dict[str, Any] = {"path": path, "type": kind, "size": len(data or b""),
                           "sha256": hashlib.sha256(data or b"").hexdigest()
                           if kind in ("file", "stream") else None,
                           "mode": 0o644, "mtime_ns": 0, "link_target": None, "meta": None}
    doc.update(extra)
    return doc


def manifest(entries: list[dict[str, Any]], version: str = "1.0") -> dict[str, Any]:
    return {"format": "strongbox-archive", "version": version,
            "backup": {"name": "hostile", "type": "full"},
            "snapshot": {"kind": "files", "paths": ["/x"], "time": "2026-01-01T00:00:00+00:00",
                         "tags": [], "summary": {}},
            "contents": {}, "entries": entries}


def make_archive(doc: dict[str, Any], members: list[tarfile.TarInfo | tuple[str, bytes]],
                 ) -> bytes:
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w|") as tar:
        body = json.dumps(doc).encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                tar.addfile(member)
                continue
            name, data = member
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def zeros_bomb() -> bytes:
    size = 64 * 1024 * 1024
    digest = hashlib.sha256(bytes(size)).hexdigest()
    doc = manifest([entry("zeros", kind="file", size=size, sha256=digest)])
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, compresslevel=9) as gz, \
            tarfile.open(fileobj=gz, mode="w|") as tar:
        body = json.dumps(doc).encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
        info = tarfile.TarInfo("data/zeros")
        info.size = size
        tar.addfile(info, io.BytesIO(bytes(size)))
    return out.getvalue()


GOOD = b"harmless"
HOSTILE: dict[str, tuple[Any, int, str]] = {
    "traversal in manifest": (lambda: make_archive(
        manifest([entry("../../evil", GOOD)]), [("data/../../evil", GOOD)]),
        400, "UNSAFE_ARCHIVE_ENTRY"),
    "traversal member": (lambda: make_archive(
        manifest([entry("ok", GOOD)]), [("../../evil", GOOD)]), 400, "UNSAFE_ARCHIVE_ENTRY"),
    "absolute member": (lambda: make_archive(
        manifest([entry("ok", GOOD)]), [("/tmp/strongbox-evil", GOOD)]),
        400, "UNSAFE_ARCHIVE_ENTRY"),
    "absolute path in manifest": (lambda: make_archive(
        manifest([entry("/etc/evil", GOOD)]), []), 400, "UNSAFE_ARCHIVE_ENTRY"),
    "symlink member": (lambda: make_archive(
        manifest([entry("ok", GOOD)]), [link("data/ok", "/etc/passwd")]),
        400, "UNSAFE_ARCHIVE_ENTRY"),
    "hardlink member": (lambda: make_archive(
        manifest([entry("ok", GOOD)]), [link("data/ok", "/etc/passwd", tarfile.LNKTYPE)]),
        400, "UNSAFE_ARCHIVE_ENTRY"),
    "device member": (lambda: make_archive(
        manifest([entry("ok", GOOD)]), [link("data/ok", "", tarfile.CHRTYPE)]),
        400, "UNSAFE_ARCHIVE_ENTRY"),
    "NUL in name": (lambda: make_archive(
        manifest([entry("a\x00b", GOOD)]), []), 400, "UNSAFE_ARCHIVE_ENTRY"),
    "member not in manifest": (lambda: make_archive(
        manifest([entry("ok", GOOD)]), [("data/ok", GOOD), ("data/extra", GOOD)]),
        400, "INVALID_ARCHIVE"),
    "checksum mismatch": (lambda: make_archive(
        manifest([entry("ok", GOOD)]), [("data/ok", b"tampered")]),
        400, "CHECKSUM_MISMATCH"),
    "member missing": (lambda: make_archive(
        manifest([entry("ok", GOOD), entry("two", GOOD)]), [("data/ok", GOOD)]),
        400, "ARCHIVE_TRUNCATED"),
    "wrong version": (lambda: make_archive(
        manifest([entry("ok", GOOD)], version="2.0"), [("data/ok", GOOD)]),
        422, "INCOMPATIBLE_VERSION"),
    "old version": (lambda: make_archive(
        manifest([entry("ok", GOOD)], version="0.9"), [("data/ok", GOOD)]),
        422, "INCOMPATIBLE_VERSION"),
    "not an archive": (lambda: os.urandom(4096), 400, "INVALID_ARCHIVE"),
    "no manifest": (lambda: gzip.compress(b"\x00" * 1024, mtime=0), 400, "INVALID_ARCHIVE"),
    "oversized": (lambda: os.urandom(UPLOAD_LIMIT + 1), 413, "FILE_TOO_LARGE"),
    "gzip bomb": (zeros_bomb, 413, "COMPRESSION_RATIO_EXCEEDED"),
}


def tree_state(root: Path, skip: tuple[str, ...] = ("catalog.sqlite",)) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")
            if not p.name.startswith(skip)}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_uploads_are_rejected_cleanly(server: Server, case: str) -> None:
    build, status, code = HOSTILE[case]
    data = build()
    root = server.data_dir.parent
    before = tree_state(root)
    backups_before = server.client.get("/api/v1/backups", headers=server.headers("viewer")
                                       ).json()["pagination"]["total_items"]
    response = upload(server, data)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert tree_state(root) - before <= {"data/uploads"}  # nothing new anywhere
    assert before - tree_state(root) == set()
    assert not list((server.data_dir / "uploads").iterdir())
    assert not Path("/tmp/strongbox-evil").exists()
    backups_after = server.client.get("/api/v1/backups", headers=server.headers("viewer")
                                      ).json()["pagination"]["total_items"]
    assert backups_after == backups_before


def test_truncated_upload_is_rejected(server: Server, backup_id: str) -> None:
    whole = download(server, backup_id).content
    root = server.data_dir.parent
    before = tree_state(root)
    for cut in (len(whole) // 2, len(whole) - 4):
        response = upload(server, whole[:cut])
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "ARCHIVE_TRUNCATED"
    assert tree_state(root) == before
    assert not list((server.data_dir / "uploads").iterdir())


def test_auto_restore_seam_without_a_restore_service(server: Server, backup_id: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    original = download(server, backup_id).content
    archives = server.app.state.archives
    monkeypatch.setattr(archives, "restore_starter", None)
    body = upload(server, original, auto_restore="true").json()
    assert body["status"] == "ready" and "restore_job_id" not in body
    assert any("auto_restore is not available" in w for w in body["validation"]["warnings"])


def test_files_backup_round_trip_keeps_dirs_and_links(server: Server) -> None:
    source = server.services.sources.get("default", server.sources["files"])
    tree = Path(source.config["path"])
    (tree / "archive-test").mkdir(exist_ok=True)
    (tree / "archive-test" / "empty-dir").mkdir(exist_ok=True)
    (tree / "archive-test" / "note.txt").write_text("hello")
    link_path = tree / "archive-test" / "outside"
    if not link_path.is_symlink():
        link_path.symlink_to("../../../../etc/passwd")  # stored as metadata only
    hard = tree / "archive-test" / "note-hardlink.txt"
    if not hard.exists():
        os.link(tree / "archive-test" / "note.txt", hard)
    created = server.backup_and_wait({"name": "files archive", "type": "full",
                                      "source_id": server.sources["files"]})
    original = download(server, created["backup_id"]).content
    manifest_doc, files = read_tar(original)
    kinds = {e["type"] for e in manifest_doc["entries"]}
    assert {"dir", "file", "symlink", "hardlink"} <= kinds
    assert not any(name.endswith("outside") for name in files)  # links: manifest only
    root = server.data_dir.parent
    before = tree_state(root)
    response = upload(server, original)
    assert response.status_code == 202, response.text
    assert download(server, response.json()["backup_id"]).content == original
    with server.services.catalog.session() as session:
        old = session.get_one(Backup, created["backup_id"]).snapshot_id
        new = session.get_one(Backup, response.json()["backup_id"]).snapshot_id
    repo = server.services.storage.open()
    assert old and new
    # Same repository, same chunker: the rebuilt tree is the very same tree.
    assert repo.load_snapshot(old).tree == repo.load_snapshot(new).tree
    added = {p for p in tree_state(root) - before if not p.startswith("data/repository/")}
    assert added <= {"data/archives", "data/uploads"} | {
        p for p in added if p.startswith("data/archives/")}


# --- encryption ---------------------------------------------------------------------------------


def test_encrypted_download_and_upload(server: Server, backup_id: str) -> None:
    plain = download(server, backup_id).content
    url = f"/api/v1/backups/{backup_id}/download"
    secret = {**server.headers("viewer"), "X-Archive-Passphrase": "correct horse"}
    first = server.client.get(url, headers=secret)
    assert first.status_code == 200
    sealed = first.content
    assert sealed.startswith(b"SBXAENC1") and plain not in sealed
    assert first.headers["content-type"] == "application/octet-stream"
    assert first.headers["content-disposition"].endswith('.tar.gz.enc"')
    assert first.headers["x-checksum"] == hashlib.sha256(sealed).hexdigest()
    # Deterministic, so an interrupted encrypted download can be resumed.
    tail = server.client.get(url, headers={**secret, "Range": "bytes=100-"})
    assert tail.status_code == 206 and sealed[:100] + tail.content == sealed
    assert not [p for p in (server.data_dir / "archives").iterdir()
                if p.name.startswith(".")]

    root = server.data_dir.parent
    before = tree_state(root)
    for passphrase, code in ((None, "WRONG_PASSPHRASE"), ("wrong", "WRONG_PASSPHRASE")):
        fields = {"passphrase": passphrase} if passphrase else {}
        refused = upload(server, sealed, **fields)
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["code"] == code
    cut = upload(server, sealed[:-20], passphrase="correct horse")
    assert cut.status_code == 400 and cut.json()["error"]["code"] == "ARCHIVE_TRUNCATED"
    assert tree_state(root) == before
    assert not list((server.data_dir / "uploads").iterdir())

    accepted = upload(server, sealed, passphrase="correct horse")
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["file_info"]["checksum"] == hashlib.sha256(sealed).hexdigest()
    assert download(server, accepted.json()["backup_id"]).content == plain


def test_download_of_an_unfinished_backup_is_refused(server: Server) -> None:
    created = server.backup_and_wait({"name": "marked failed", "type": "full",
                                      "source_id": server.sources["sqlite"]})
    with server.services.catalog.session() as session:
        session.get_one(Backup, created["backup_id"]).status = "failed"
    response = download(server, created["backup_id"])
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "BACKUP_NOT_COMPLETED"


def test_a_declared_oversized_body_is_refused_before_reading(server: Server) -> None:
    response = server.client.post(
        UPLOAD, headers={**server.headers("operator"),
                         "Content-Type": "multipart/form-data; boundary=x",
                         "Content-Length": str(UPLOAD_LIMIT * 2)},
        content=b"--x\r\n" + b"a" * 10)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "FILE_TOO_LARGE"
