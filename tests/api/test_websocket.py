"""``/ws/backups/{job_id}`` (seed 000 section 7): live events, late clients, refusals —
through the in-process client and through a real uvicorn server."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import uvicorn
import websockets

from strongbox.api.app import create_app
from tests.api.conftest import Server, settings_for
from tests.api.test_backups_contract import HeldExecutor

PROGRESS_KEYS = {"percentage", "current_operation", "documents_processed", "bytes_written"}


def check_event(event: dict[str, Any], job_id: str) -> None:
    assert event["job_id"] == job_id
    datetime.fromisoformat(event["timestamp"])
    if event["type"] == "backup.progress":
        assert set(event) <= {"type", "job_id", "backup_id", "progress", "timestamp"}
        assert set(event["progress"]) == PROGRESS_KEYS
        assert 0 <= event["progress"]["percentage"] <= 100
    elif event["type"] == "backup.completed":
        assert set(event) == {"type", "job_id", "backup_id", "size_bytes",
                              "duration_seconds", "timestamp"}
        assert event["size_bytes"] > 0
    else:
        assert event["type"] == "backup.failed"
        assert set(event) == {"type", "job_id", "error", "timestamp"}
        assert set(event["error"]) == {"code", "message"}


def test_a_client_follows_a_backup_from_start_to_end(server: Server) -> None:
    backups = server.services.backups
    real, held = backups.executor, HeldExecutor(server)
    backups.executor = held  # type: ignore[assignment]
    try:
        created = server.create_backup({"name": "watched", "type": "full"})
    finally:
        backups.executor = real
    job_id = created["job_id"]
    url = f"/ws/backups/{job_id}?api_key={server.keys['viewer']}"
    with server.client.websocket_connect(url) as ws:
        first = ws.receive_json()
        assert first["type"] == "backup.progress"
        assert first["progress"]["percentage"] == 0
        runner = threading.Thread(target=server.services.runner.run, args=(job_id,))
        runner.start()
        events = [first]
        while events[-1]["type"] == "backup.progress":
            events.append(ws.receive_json())
        runner.join()
    for event in events:
        check_event(event, job_id)
    assert events[-1]["type"] == "backup.completed"
    assert events[-1]["backup_id"] == created["backup_id"]
    percentages = [e["progress"]["percentage"] for e in events[:-1]]
    assert percentages == sorted(percentages)
    assert len(events) >= 4  # queued, opening, backing up, recording, ...
    assert {e["progress"]["current_operation"] for e in events[1:-1]} >= {"backing up",
                                                                          "recording"}


def test_a_late_client_gets_the_final_state_at_once(server: Server) -> None:
    created = server.backup_and_wait({"name": "watched late", "type": "full"})
    headers = {"X-API-Key": server.keys["viewer"]}
    with server.client.websocket_connect(f"/ws/backups/{created['job_id']}",
                                         headers=headers) as ws:
        event = ws.receive_json()
    check_event(event, created["job_id"])
    assert event["type"] == "backup.completed"


def test_a_failed_backup_ends_with_backup_failed(server: Server, tmp_path: Path) -> None:
    broken = tmp_path / "broken.sqlite"
    broken.write_bytes(b"this is not a database" * 100)
    source = server.client.post("/api/v1/sources", headers=server.headers(), json={
        "name": "broken db", "kind": "sqlite", "path": str(broken)}).json()
    created = server.create_backup({"name": "will fail", "type": "full",
                                    "source_id": source["_id"]})
    status = server.wait_for_job(created["job_id"])
    assert status["status"] == "failed"
    assert status["error"]["code"] == "SOURCE_ERROR"
    with server.client.websocket_connect(
            f"/ws/backups/{created['job_id']}?api_key={server.keys['viewer']}") as ws:
        event = ws.receive_json()
    check_event(event, created["job_id"])
    assert event["error"]["code"] == "SOURCE_ERROR"
    detail = server.client.get(f"/api/v1/backups/{created['backup_id']}",
                               headers=server.headers()).json()
    assert detail["status"] == "failed" and detail["can_restore"] is False
    assert "SOURCE_ERROR" in detail["error_message"]


# --- through a real server -------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A uvicorn server on a loopback port: (base URL, admin key)."""
    app = create_app(settings_for(tmp_path_factory.mktemp("live")))
    port = _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"127.0.0.1:{port}", app.state.start_report.demo.token
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_real_server_streams_events(live: tuple[str, str]) -> None:
    import httpx

    base, key = live
    response = httpx.post(f"http://{base}/api/v1/backups", headers={"X-API-Key": key},
                          json={"name": "over the wire", "type": "full"})
    assert response.status_code == 202
    job_id = response.json()["job_id"]

    async def follow() -> list[dict[str, Any]]:
        events = []
        async with websockets.connect(f"ws://{base}/ws/backups/{job_id}",
                                      additional_headers={"X-API-Key": key}) as ws:
            async for message in ws:
                events.append(json.loads(message))
        return events

    events = asyncio.run(asyncio.wait_for(follow(), 60))
    for event in events:
        check_event(event, job_id)
    assert events[-1]["type"] == "backup.completed"


def test_real_server_refuses_with_the_error_envelope(live: tuple[str, str]) -> None:
    base, _key = live

    async def connect() -> None:
        async with websockets.connect(f"ws://{base}/ws/backups/some-job?api_key=sbk_bad"):
            pass

    with pytest.raises(websockets.InvalidStatus) as refused:
        asyncio.run(connect())
    assert refused.value.response.status_code == 401
    body = json.loads(refused.value.response.body)
    assert body["error"]["code"] == "UNAUTHORIZED"
