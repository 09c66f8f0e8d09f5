"""Seed 000 ``UploadStatus`` made observable: an upload's record goes ``uploading`` (with
the bytes received) -> ``validating`` -> ``ready`` / ``restoring`` / ``failed``, read at
``GET /api/v1/restore/upload/{upload_id}`` while the upload is still being sent."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from strongbox.services.archives import ArchiveService
from tests.api.conftest import Server, running_server
from tests.api.test_backups_contract import HeldExecutor, assert_error

UPLOAD = "/api/v1/restore/upload"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("upload-status"),
                        rate_limit_restore_upload="9999/hour", rate_limit_download="9999/hour",
                        rate_limit_restore="9999/hour") as started:
        yield started


def archive_bytes(server: Server) -> bytes:
    backup = server.backup_and_wait({"name": "to upload", "type": "full"})
    response = server.client.get(f"/api/v1/backups/{backup['backup_id']}/download",
                                 headers=server.headers("viewer"))
    assert response.status_code == 200
    return response.content


def real_upload_id(server: Server) -> str:
    """The id of a completed upload of tenant "default" (for route walks)."""
    response = server.client.post(UPLOAD, headers=server.headers("operator"),
                                  files={"file": ("b.tar.gz", archive_bytes(server))})
    assert response.status_code == 202, response.text
    return str(response.json()["upload_id"])


@pytest.fixture(scope="module")
def archive(server: Server) -> bytes:
    return archive_bytes(server)


def status_of(server: Server, upload_id: str, role: str = "viewer") -> Any:
    return server.client.get(f"{UPLOAD}/{upload_id}", headers=server.headers(role))


def multipart_chunks(data: bytes, pieces: int = 4) -> tuple[list[bytes], str]:
    """A multipart body with one ``file`` part, cut in ``pieces`` chunks."""
    boundary = uuid.uuid4().hex
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"b.tar.gz\"\r\nContent-Type: application/gzip\r\n\r\n").encode()
    body = head + data + f"\r\n--{boundary}--\r\n".encode()
    size = len(body) // pieces + 1
    return [body[i:i + size] for i in range(0, len(body), size)], \
        f"multipart/form-data; boundary={boundary}"


def test_while_the_bytes_arrive_the_upload_is_uploading(server: Server, archive: bytes,
                                                        tmp_path: Any) -> None:
    """The receiving code with a real Starlette request fed chunk by chunk (the test
    client sends a body whole, so the HTTP test below can only catch ``validating``)."""
    from starlette.requests import Request

    from strongbox.api.uploads import receive_upload
    from strongbox.services.principal import Principal, Role

    # The archive service is made on first use of an archive route.
    server.client.get(f"{UPLOAD}/{uuid.uuid4()}", headers=server.headers())
    tracker = server.app.state.archives.uploads
    principal = Principal("test", "test", "default", Role.OPERATOR)
    upload_id = tracker.begin(principal)
    chunks, content_type = multipart_chunks(archive)
    seen: list[tuple[str, int]] = []

    async def receive() -> dict[str, Any]:
        state = tracker.get("default", upload_id)
        seen.append((state.status, state.bytes_received))
        chunk = chunks.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    request = Request({"type": "http", "method": "POST", "path": UPLOAD, "headers": [
        (b"content-type", content_type.encode())]}, receive)
    upload, _ = anyio.run(lambda: receive_upload(
        request, tmp_path, 1 << 30, report_interval=0.0,
        on_progress=lambda n: tracker.received(upload_id, n)))
    assert upload.size_bytes == len(archive)
    assert seen[0] == ("uploading", 0)
    assert all(status == "uploading" for status, _ in seen)
    received = [n for _, n in seen]
    assert received == sorted(received) and 0 < received[-1] < len(archive)


def test_an_upload_is_validating_then_ready(server: Server, archive: bytes,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    upload_id = str(uuid.uuid4())
    release, in_validation = threading.Event(), threading.Event()
    real_register = ArchiveService.register_upload

    def held_register(self: ArchiveService, *args: Any, **kwargs: Any) -> Any:
        in_validation.set()
        release.wait(30)
        return real_register(self, *args, **kwargs)

    monkeypatch.setattr(ArchiveService, "register_upload", held_register)
    result: dict[str, Any] = {}

    def send() -> None:
        result["response"] = server.client.post(
            UPLOAD, params={"upload_id": upload_id}, headers=server.headers("operator"),
            files={"file": ("b.tar.gz", archive)})

    sender = threading.Thread(target=send)
    sender.start()
    try:
        assert in_validation.wait(30)
        validating = status_of(server, upload_id).json()
        assert validating["status"] == "validating"
        assert validating["bytes_received"] == len(archive)
        assert validating["filename"] == "b.tar.gz"
    finally:
        release.set()
        sender.join(60)
    response = result["response"]
    assert response.status_code == 202, response.text
    assert response.json()["upload_id"] == upload_id
    assert response.json()["status"] == "ready"
    ready = status_of(server, upload_id).json()
    assert ready["status"] == "ready"
    assert ready["backup_id"] == response.json()["backup_id"]


def test_a_rejected_upload_is_failed_with_its_error(server: Server) -> None:
    upload_id = str(uuid.uuid4())
    response = server.client.post(UPLOAD, params={"upload_id": upload_id},
                                  headers=server.headers("operator"),
                                  files={"file": ("x.tar.gz", b"not an archive at all")})
    assert response.status_code == 400
    failed = status_of(server, upload_id).json()
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == response.json()["error"]["code"]
    assert "backup_id" not in failed


def test_auto_restore_is_restoring_until_the_restore_ends(server: Server,
                                                          archive: bytes) -> None:
    restores = server.services.restores
    real = restores.executor
    restores.executor = HeldExecutor(server)  # type: ignore[assignment]
    try:
        response = server.client.post(UPLOAD, headers=server.headers("operator"),
                                      data={"auto_restore": "true",
                                            "restore_options": '{"dry_run": true}'},
                                      files={"file": ("b.tar.gz", archive)})
        assert response.status_code == 202, response.text
        body = response.json()
        assert body["status"] == "restoring"
        restoring = status_of(server, body["upload_id"]).json()
        assert restoring["status"] == "restoring"
        assert restoring["restore_job_id"] == body["restore_job_id"]
        server.client.post(f"/api/v1/restore/jobs/{body['restore_job_id']}/cancel",
                           headers=server.headers("operator"))
    finally:
        restores.executor = real
    ended = status_of(server, body["upload_id"]).json()
    assert ended["status"] == "ready" and ended["restore_status"] == "cancelled"


def test_upload_status_errors(server: Server, archive: bytes) -> None:
    upload_id = real_upload_id(server)
    assert status_of(server, upload_id).json()["status"] == "ready"
    assert_error(server.client.get(f"{UPLOAD}/{upload_id}", headers=server.other()), 404,
                 "UPLOAD_NOT_FOUND")
    assert_error(server.client.get(f"{UPLOAD}/{uuid.uuid4()}", headers=server.headers()), 404,
                 "UPLOAD_NOT_FOUND")
    assert_error(server.client.get(f"{UPLOAD}/not-a-uuid", headers=server.headers()), 404,
                 "UPLOAD_NOT_FOUND")
    assert_error(server.client.get(f"{UPLOAD}/{upload_id}"), 401, "UNAUTHORIZED")
    # A job of another kind is not an upload.
    backup = server.backup_and_wait({"name": "not an upload", "type": "full"})
    assert_error(status_of(server, backup["job_id"]), 404, "UPLOAD_NOT_FOUND")
    # A client-chosen id must be a new UUID.
    files = {"file": ("b.tar.gz", archive)}
    assert_error(server.client.post(UPLOAD, params={"upload_id": "nope"}, files=files,
                                    headers=server.headers("operator")), 400,
                 "VALIDATION_FAILED")
    assert_error(server.client.post(UPLOAD, params={"upload_id": upload_id}, files=files,
                                    headers=server.headers("operator")), 409,
                 "UPLOAD_EXISTS")
