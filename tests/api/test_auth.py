"""Every route of the OpenAPI schema: 401 without a key, 403 below its role, 404 across
tenants; rate limits per key (section 8); the audit log of mutating calls."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import Server, running_server
from tests.api.test_backups_contract import assert_error
from tests.api.test_upload_status import real_upload_id

# The least role each operation needs. A new route must be added here, which is the point:
# nobody adds an endpoint without deciding who may call it.
REQUIRED_ROLE = {
    ("POST", "/api/v1/backups"): "operator",
    ("GET", "/api/v1/backups"): "viewer",
    ("GET", "/api/v1/backups/statistics"): "viewer",
    ("GET", "/api/v1/backups/jobs/{job_id}"): "viewer",
    ("GET", "/api/v1/backups/{backup_id}"): "viewer",
    ("DELETE", "/api/v1/backups/{backup_id}"): "admin",
    ("POST", "/api/v1/restore"): "operator",
    ("GET", "/api/v1/restore/jobs/{job_id}"): "viewer",
    ("POST", "/api/v1/restore/jobs/{job_id}/cancel"): "operator",
    ("GET", "/api/v1/restore/preview/{backup_id}"): "viewer",
    ("GET", "/api/v1/backups/{backup_id}/download"): "viewer",
    ("POST", "/api/v1/restore/upload"): "operator",
    ("GET", "/api/v1/restore/upload/{upload_id}"): "viewer",
    ("POST", "/api/v1/sources"): "admin",
    ("GET", "/api/v1/sources"): "viewer",
    ("GET", "/api/v1/sources/{source_id}"): "viewer",
    ("PATCH", "/api/v1/sources/{source_id}"): "admin",
    ("DELETE", "/api/v1/sources/{source_id}"): "admin",
    ("GET", "/api/v1/settings/backup"): "viewer",
    ("PUT", "/api/v1/settings/backup"): "admin",
    ("GET", "/api/v1/audit"): "viewer+admin",
    ("POST", "/api/v1/notifications/webhooks"): "admin",
    ("GET", "/api/v1/notifications/webhooks"): "viewer",
    ("GET", "/api/v1/notifications/webhooks/{webhook_id}"): "viewer",
    ("PATCH", "/api/v1/notifications/webhooks/{webhook_id}"): "admin",
    ("DELETE", "/api/v1/notifications/webhooks/{webhook_id}"): "admin",
    ("POST", "/api/v1/notifications/webhooks/{webhook_id}/test"): "admin",
    ("GET", "/api/v1/notifications/deliveries"): "viewer",
    ("POST", "/api/v1/backups/{backup_id}/protect"): "operator",
    ("POST", "/api/v1/backups/{backup_id}/unprotect"): "admin",
    ("POST", "/api/v1/backups/cleanup"): "operator",
    ("POST", "/api/v1/backups/cleanup/execute"): "admin",
    ("GET", "/api/v1/backups/cleanup/plans/{plan_id}"): "viewer",
    ("GET", "/api/v1/backups/cleanup/jobs/{job_id}"): "viewer",
    ("GET", "/api/v1/backups/cleanup/policy"): "viewer",
    ("PUT", "/api/v1/backups/cleanup/policy"): "admin",
    ("GET", "/api/v1/recovery/recovery-points"): "viewer",
    ("GET", "/api/v1/recovery/plan"): "viewer",
    ("POST", "/api/v1/recovery/test"): "operator",
    ("GET", "/api/v1/recovery/tests"): "viewer",
    ("GET", "/api/v1/recovery/tests/{test_id}"): "viewer",
    ("GET", "/api/v1/recovery/preview/{backup_id}"): "viewer",
    ("POST", "/api/v1/recovery/initiate"): "admin",
    ("GET", "/api/v1/status"): "viewer",
    ("GET", "/api/v1/statistics/overview"): "viewer",
    ("POST", "/api/v1/snapshots"): "operator",
    ("GET", "/api/v1/snapshots"): "viewer",
    ("GET", "/api/v1/snapshots/jobs/{job_id}"): "viewer",
    ("GET", "/api/v1/snapshots/{snapshot_id}"): "viewer",
    ("POST", "/api/v1/snapshots/{snapshot_id}/restore"): "operator",
    ("DELETE", "/api/v1/snapshots/{snapshot_id}"): "admin",
    ("POST", "/api/v1/backups/{backup_id}/verify"): "operator",
    ("GET", "/api/v1/backups/verify/jobs/{job_id}"): "viewer",
    ("GET", "/api/v1/backups/{backup_id}/verification"): "viewer",
    ("POST", "/api/v1/schedules"): "operator",
    ("GET", "/api/v1/schedules"): "viewer",
    ("GET", "/api/v1/schedules/{schedule_id}"): "viewer",
    ("PUT", "/api/v1/schedules/{schedule_id}"): "operator",
    ("PATCH", "/api/v1/schedules/{schedule_id}"): "operator",
    ("DELETE", "/api/v1/schedules/{schedule_id}"): "admin",
    ("POST", "/api/v1/schedules/{schedule_id}/toggle"): "operator",
    ("POST", "/api/v1/schedules/{schedule_id}/run"): "operator",
    ("GET", "/api/v1/schedules/{schedule_id}/runs"): "viewer",
    ("GET", "/api/v1/policies"): "viewer",
    ("GET", "/api/v1/policies/{source_id}"): "viewer",
    ("PUT", "/api/v1/policies/{source_id}"): "admin",
    ("DELETE", "/api/v1/policies/{source_id}"): "admin",
    ("GET", "/api/v1/jobs"): "viewer",
    ("GET", "/api/v1/jobs/{job_id}"): "viewer",
    ("POST", "/api/v1/jobs/{job_id}/cancel"): "operator",
}
WEAKER = {"viewer": [], "operator": ["viewer"], "admin": ["viewer", "operator"],
          "viewer+admin": ["viewer", "operator"]}
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/v1/backups"): {"name": "auth walk", "type": "full"},
    ("POST", "/api/v1/restore"): {"backup_id": "00000000-0000-4000-8000-000000000000",
                                  "mode": "full"},
    ("POST", "/api/v1/sources"): {"name": "auth walk", "kind": "files", "path": "/tmp"},
    ("PATCH", "/api/v1/sources/{source_id}"): {"name": "renamed"},
    ("PUT", "/api/v1/settings/backup"): {"compression": {"level": 5}},
    ("POST", "/api/v1/notifications/webhooks"): {"url": "http://127.0.0.1:9/auth-walk"},
    ("PATCH", "/api/v1/notifications/webhooks/{webhook_id}"): {"name": "renamed"},
    ("POST", "/api/v1/backups/{backup_id}/protect"): {"reason": "auth walk"},
    ("POST", "/api/v1/backups/cleanup"): {"keep_last": 1000},
    ("POST", "/api/v1/backups/cleanup/execute"): {
        "cleanup_plan_id": "00000000-0000-4000-8000-000000000000", "confirmation": True},
    ("PUT", "/api/v1/backups/cleanup/policy"): {"enabled": False},
    ("POST", "/api/v1/recovery/initiate"): {
        "backup_id": "00000000-0000-4000-8000-000000000000", "confirmation": True,
        "confirmation_text": "RECOVER 00000000-0000-4000-8000-000000000000"},
    ("POST", "/api/v1/snapshots"): {"name": "auth walk", "sources": ["Demo files"]},
    ("POST", "/api/v1/snapshots/{snapshot_id}/restore"): {"reason": "auth walk"},
    ("POST", "/api/v1/schedules"): {"name": "auth walk", "cron": "0 0 1 1 *",
                                    "enabled": False},
    ("PUT", "/api/v1/schedules/{schedule_id}"): {"name": "auth walk put", "cron": "0 0 1 1 *",
                                                 "enabled": False},
    ("PATCH", "/api/v1/schedules/{schedule_id}"): {"description": "auth walk"},
    ("PUT", "/api/v1/policies/{source_id}"): {"backup": {"cron": "0 0 1 1 *"}},
}


def operations(server: Server) -> Iterator[tuple[str, str]]:
    for path, item in server.app.openapi()["paths"].items():
        for method in item:
            yield method.upper(), path


def fill(path: str, ids: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: ids[m.group(1)], path)


@pytest.fixture(scope="module")
def ids(server: Server) -> dict[str, str]:
    """Ids of real resources of tenant "default"."""
    created = server.backup_and_wait({"name": "auth target", "type": "full"})
    plan = server.client.post("/api/v1/backups/cleanup", headers=server.headers(),
                              json={"keep_last": 1000})
    assert plan.status_code == 200, plan.text
    dr_test = server.client.post("/api/v1/recovery/test", headers=server.headers())
    assert dr_test.status_code == 202, dr_test.text
    snapshot = server.client.post("/api/v1/snapshots", headers=server.headers(),
                                  json={"name": "auth snapshot", "sources": ["Demo files"]})
    assert snapshot.status_code == 202, snapshot.text
    return {"backup_id": created["backup_id"], "job_id": created["job_id"],
            "source_id": server.sources["files"], "webhook_id": webhook_id(server),
            "plan_id": plan.json()["cleanup_plan_id"], "test_id": dr_test.json()["test_id"],
            "snapshot_id": snapshot.json()["snapshot_id"], "schedule_id": schedule_id(server),
            "upload_id": real_upload_id(server)}


def schedule_id(server: Server) -> str:
    """A disabled schedule of tenant "default" (never fires)."""
    response = server.client.post("/api/v1/schedules", headers=server.headers(), json={
        "name": "auth target", "cron": "0 0 1 1 *", "enabled": False})
    assert response.status_code == 201, response.text
    return str(response.json()["_id"])


def webhook_id(server: Server) -> str:
    """A disabled webhook of tenant "default" (to a closed loopback port: never sent to)."""
    response = server.client.post("/api/v1/notifications/webhooks", headers=server.headers(),
                                  json={"url": "http://127.0.0.1:9/auth", "enabled": False})
    assert response.status_code == 201, response.text
    return str(response.json()["_id"])


def test_the_role_table_covers_every_route(server: Server) -> None:
    assert set(operations(server)) == set(REQUIRED_ROLE)


def test_every_route_needs_a_key(server: Server, ids: dict[str, str]) -> None:
    for method, path in operations(server):
        url = fill(path, ids)
        body = BODIES.get((method, path))
        for headers in ({}, {"X-API-Key": "sbk_not-a-real-key"},
                        {"Authorization": "Bearer sbk_not-a-real-key"},
                        {"Authorization": f"Basic {server.keys['admin']}"}):
            response = server.client.request(method, url, json=body, headers=headers)
            assert_error(response, 401, "UNAUTHORIZED")


def test_bearer_tokens_are_accepted(server: Server) -> None:
    response = server.client.get("/api/v1/backups",
                                 headers={"Authorization": f"Bearer {server.keys['viewer']}"})
    assert response.status_code == 200


def test_revoked_keys_stop_working(server: Server) -> None:
    info, token = server.services.keys.create("default", "viewer", "short-lived")
    assert server.client.get("/api/v1/sources", headers={"X-API-Key": token}).status_code == 200
    server.services.keys.revoke(info.id)
    assert_error(server.client.get("/api/v1/sources", headers={"X-API-Key": token}), 401,
                 "UNAUTHORIZED")


def test_weaker_roles_are_forbidden(server: Server, ids: dict[str, str]) -> None:
    for (method, path), needed in REQUIRED_ROLE.items():
        for role in WEAKER[needed]:
            response = server.client.request(method, fill(path, ids),
                                             json=BODIES.get((method, path)),
                                             headers=server.headers(role))
            assert_error(response, 403, "FORBIDDEN")


def test_viewers_cannot_read_the_audit_log(server: Server) -> None:
    assert_error(server.client.get("/api/v1/audit", headers=server.headers("viewer")), 403,
                 "FORBIDDEN")


def test_other_tenants_ids_are_not_found(server: Server, ids: dict[str, str]) -> None:
    expected = {"backup_id": "BACKUP_NOT_FOUND", "job_id": "JOB_NOT_FOUND",
                "plan_id": "CLEANUP_PLAN_NOT_FOUND",
                "test_id": "DR_TEST_NOT_FOUND",
                "source_id": "SOURCE_NOT_FOUND", "webhook_id": "WEBHOOK_NOT_FOUND",
                "snapshot_id": "SNAPSHOT_NOT_FOUND", "schedule_id": "SCHEDULE_NOT_FOUND",
                "upload_id": "UPLOAD_NOT_FOUND"}
    checked = 0
    for method, path in operations(server):
        names = re.findall(r"\{(\w+)\}", path)
        if not names:
            continue
        response = server.client.request(method, fill(path, ids), headers=server.other(),
                                         json=BODIES.get((method, path)))
        assert_error(response, 404, expected[names[0]])
        checked += 1
    assert checked >= 6
    # ...and a body naming another tenant's source is no better.
    response = server.client.post("/api/v1/backups", headers=server.other(), json={
        "name": "cross tenant", "type": "full", "source_id": ids["source_id"]})
    assert_error(response, 404, "SOURCE_NOT_FOUND")


def test_lists_show_only_the_tenants_own_resources(server: Server, ids: dict[str, str]
                                                    ) -> None:
    other = server.other()
    assert server.client.get("/api/v1/backups", headers=other).json()["items"] == []
    assert server.client.get("/api/v1/sources", headers=other).json()["items"] == []
    own = server.client.get("/api/v1/backups", headers=server.headers("viewer")).json()
    assert any(item["_id"] == ids["backup_id"] for item in own["items"])


def test_websocket_needs_a_key_and_the_right_tenant(server: Server,
                                                    ids: dict[str, str]) -> None:
    from starlette.testclient import WebSocketDenialResponse

    url = f"/ws/backups/{ids['job_id']}"
    for query, code, status in (("", "UNAUTHORIZED", 401),
                                ("?api_key=sbk_wrong", "UNAUTHORIZED", 401),
                                (f"?api_key={server.other_admin}", "JOB_NOT_FOUND", 404)):
        with (pytest.raises(WebSocketDenialResponse) as denied,
              server.client.websocket_connect(url + query)):
            pass
        assert denied.value.status_code == status
        assert denied.value.json()["error"]["code"] == code


# --- rate limits ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(Path(tmp_path_factory.mktemp("limited")),
                        rate_limit_create_backup="2/hour",
                        rate_limit_default="5/minute") as started:
        yield started


def test_create_backup_is_limited_per_key(limited: Server) -> None:
    body = {"name": "limited", "type": "full"}
    for _ in range(2):
        assert limited.client.post("/api/v1/backups", headers=limited.headers("operator"),
                                   json=body).status_code == 202
    response = limited.client.post("/api/v1/backups", headers=limited.headers("operator"),
                                   json=body)
    assert_error(response, 429, "RATE_LIMIT_EXCEEDED")
    assert 1 <= int(response.headers["Retry-After"]) <= 3600
    # Another key has its own window.
    assert limited.client.post("/api/v1/backups", headers=limited.headers("admin"),
                               json=body).status_code == 202


def test_other_endpoints_share_the_default_limit(limited: Server) -> None:
    headers = limited.headers("viewer")
    statuses = [limited.client.get("/api/v1/sources", headers=headers).status_code
                for _ in range(6)]
    assert statuses == [200] * 5 + [429]
    response = limited.client.get("/api/v1/backups", headers=headers)
    assert_error(response, 429, "RATE_LIMIT_EXCEEDED")
    assert int(response.headers["Retry-After"]) <= 60


def test_successful_calls_report_the_remaining_budget(limited: Server) -> None:
    _info, token = limited.services.keys.create("default", "viewer", "fresh")
    response = limited.client.get("/api/v1/sources", headers={"X-API-Key": token})
    assert response.headers["X-RateLimit-Limit"] == "5"
    assert response.headers["X-RateLimit-Remaining"] == "4"


# --- audit log ------------------------------------------------------------------------------


def test_mutating_calls_are_audited(server: Server) -> None:
    marker = f"audited {uuid.uuid4().hex[:8]}"
    server.client.post("/api/v1/sources", headers=server.headers(),
                       json={"name": marker, "kind": "files", "path": "/nonexistent/x"})
    server.client.post("/api/v1/backups", headers=server.headers("viewer"),
                       json={"name": "not allowed", "type": "full"})
    server.client.get("/api/v1/sources", headers=server.headers())  # reads are not audited
    entries = server.client.get("/api/v1/audit?size=10", headers=server.headers()).json()
    latest = entries["items"][:2]
    assert [(e["method"], e["path"], e["status_code"], e["result"], e["role"])
            for e in latest] == [
        ("POST", "/api/v1/backups", 403, "failure", "viewer"),
        ("POST", "/api/v1/sources", 400, "failure", "admin"),
    ]
    assert latest[1]["action"] == "create_source"
    assert all(e["tenant"] == "default" and e["key_id"] for e in latest)
    assert entries["pagination"]["total_items"] >= 2
    other = server.client.get("/api/v1/audit", headers=server.other()).json()
    assert all(e["tenant"] == "other" for e in other["items"])
