"""``/ws/restore/{job_id}`` (seed 000 section 7): a restore followed live, a late client,
a failed restore, refusals."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from starlette.testclient import WebSocketDenialResponse

from tests.api.conftest import Server, running_server
from tests.api.test_backups_contract import HeldExecutor
from tests.api.test_restore import start_restore, wait_for_restore

PROGRESS_KEYS = {"percentage", "current_collection", "documents_restored",
                 "documents_skipped"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("restore-ws"),
                        rate_limit_restore="10000/hour") as started:
        yield started


@pytest.fixture(scope="module")
def backup(server: Server) -> dict[str, Any]:
    return server.backup_and_wait({"name": "to restore", "type": "full"})


def check_event(event: dict[str, Any], job_id: str) -> None:
    assert event["job_id"] == job_id
    datetime.fromisoformat(event["timestamp"])
    if event["type"] == "restore.progress":
        assert set(event) == {"type", "job_id", "progress", "timestamp"}
        assert set(event["progress"]) == PROGRESS_KEYS
        assert 0 <= event["progress"]["percentage"] <= 100
    elif event["type"] == "restore.completed":
        assert set(event) == {"type", "job_id", "documents_restored", "duration_seconds",
                              "timestamp"}
    else:
        assert event["type"] == "restore.failed"
        assert set(event) == {"type", "job_id", "error", "timestamp"}
        assert set(event["error"]) == {"code", "message"}


def test_a_client_follows_a_restore_from_start_to_end(server: Server,
                                                      backup: dict[str, Any]) -> None:
    restores = server.services.restores
    real = restores.executor
    restores.executor = HeldExecutor(server)  # type: ignore[assignment]
    try:
        created = start_restore(server, {"backup_id": backup["backup_id"], "mode": "merge",
                                         "options": {"on_conflict": "rename"}})
    finally:
        restores.executor = real
    job_id = created["job_id"]
    with server.client.websocket_connect(
            f"/ws/restore/{job_id}?api_key={server.keys['viewer']}") as ws:
        first = ws.receive_json()
        assert first["type"] == "restore.progress"
        assert first["progress"]["percentage"] == 0
        runner = threading.Thread(target=server.services.runner.run, args=(job_id,))
        runner.start()
        events = [first]
        while events[-1]["type"] == "restore.progress":
            events.append(ws.receive_json())
        runner.join()
    for event in events:
        check_event(event, job_id)
    final = events[-1]
    assert final["type"] == "restore.completed"
    status = wait_for_restore(server, job_id)
    assert final["documents_restored"] == status["results"]["total_documents"] > 0
    collections = {e["progress"]["current_collection"] for e in events[1:-1]}
    assert {"projects", "sessions", "messages"} <= collections
    percentages = [e["progress"]["percentage"] for e in events[:-1]]
    assert percentages == sorted(percentages)


def test_a_late_client_gets_the_final_state(server: Server, backup: dict[str, Any]) -> None:
    created = start_restore(server, {"backup_id": backup["backup_id"], "mode": "merge",
                                     "options": {"dry_run": True}})
    wait_for_restore(server, created["job_id"])
    with server.client.websocket_connect(f"/ws/restore/{created['job_id']}",
                                         headers=server.headers("viewer")) as ws:
        event = ws.receive_json()
    check_event(event, created["job_id"])
    assert event["type"] == "restore.completed"


def test_a_failed_restore_ends_with_restore_failed(server: Server,
                                                   backup: dict[str, Any]) -> None:
    created = start_restore(server, {"backup_id": backup["backup_id"], "mode": "merge",
                                     "options": {"dry_run": True}})
    wait_for_restore(server, created["job_id"])
    # The same restore of a snapshot that is gone from the repository.
    params = server.services.restores.job("default", created["job_id"]).params
    job = server.services.jobs.create("default", "restore",
                                      {**params, "snapshot_id": "0" * 64},
                                      backup_id=backup["backup_id"])
    server.services.runner.run(job.id)
    status = wait_for_restore(server, job.id)
    assert status["status"] == "failed"
    assert status["errors"][0]["error_code"]
    with server.client.websocket_connect(f"/ws/restore/{job.id}",
                                         headers=server.headers("viewer")) as ws:
        event = ws.receive_json()
    check_event(event, job.id)
    assert event["type"] == "restore.failed"
    assert event["error"]["code"] == status["errors"][0]["error_code"]


def test_refusals(server: Server, backup: dict[str, Any]) -> None:
    created = start_restore(server, {"backup_id": backup["backup_id"], "mode": "merge",
                                     "options": {"dry_run": True}})
    wait_for_restore(server, created["job_id"])
    cases = [(f"/ws/restore/{created['job_id']}", {}, 401, "UNAUTHORIZED"),
             (f"/ws/restore/{created['job_id']}", {"X-API-Key": "sbk_bad"}, 401,
              "UNAUTHORIZED"),
             (f"/ws/restore/{created['job_id']}", server.other(), 404, "JOB_NOT_FOUND"),
             (f"/ws/restore/{uuid.uuid4()}", server.headers(), 404, "JOB_NOT_FOUND"),
             # A backup job is not followed on the restore channel.
             (f"/ws/restore/{backup['job_id']}", server.headers(), 404, "JOB_NOT_FOUND")]
    for path, headers, status, code in cases:
        with pytest.raises(WebSocketDenialResponse) as refused, \
                server.client.websocket_connect(path, headers=headers):
            pass
        assert refused.value.status_code == status
        assert refused.value.json()["error"]["code"] == code
