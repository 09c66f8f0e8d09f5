"""``/api/v1/notifications`` on a real server: webhooks a real local receiver verifies
(HMAC-SHA256 over the body) for backups that really fail and complete, restores, retries
with backoff, the delivery log, a real SMTP server (aiosmtpd) receiving the failure mail,
and the ``strongbox notifications`` CLI over HTTP."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from strongbox.cli.main import app as cli_app
from tests.api.conftest import Server, running_server, serving
from tests.api.test_backups_contract import assert_error
from tests.test_notifications import Mailbox, Receiver, smtp_server, wait_until

BASE = "/api/v1/notifications"
RECIPIENT = "oncall@example.test"


@pytest.fixture(scope="module")
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    with smtp_server() as started:
        yield started


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory,
           mailbox: tuple[Mailbox, int]) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("notify"), notification_max_attempts=3,
                        notification_retry_base_seconds=0.05,
                        notification_retry_max_seconds=0.2, smtp_host="127.0.0.1",
                        smtp_port=mailbox[1], smtp_security="none",
                        smtp_from="strongbox@example.test") as started:
        yield started


def create_hook(server: Server, url: str, **fields: Any) -> dict[str, Any]:
    response = server.client.post(f"{BASE}/webhooks", headers=server.headers(),
                                  json={"url": url, **fields})
    assert response.status_code == 201, response.text
    return dict(response.json())


@pytest.fixture
def hooked(server: Server) -> Iterator[tuple[Receiver, dict[str, Any]]]:
    """A receiver and a webhook of tenant "default" pointing at it (removed afterwards)."""
    with Receiver() as receiver:
        hook = create_hook(server, receiver.url, name="test receiver")
        yield receiver, hook
        server.client.delete(f"{BASE}/webhooks/{hook['_id']}", headers=server.headers())


def broken_source(server: Server, tmp_path: Path) -> str:
    """A SQLite source whose database file is gone by the time it is backed up."""
    db = tmp_path / "vanishing.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    conn.close()
    response = server.client.post("/api/v1/sources", headers=server.headers(), json={
        "name": f"vanishing {tmp_path.name}", "kind": "sqlite", "path": str(db)})
    assert response.status_code == 201, response.text
    db.unlink()
    return str(response.json()["_id"])


def deliveries(server: Server, **params: Any) -> dict[str, Any]:
    response = server.client.get(f"{BASE}/deliveries", headers=server.headers("viewer"),
                                 params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


def delivered(server: Server, delivery_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        for item in deliveries(server, size=100)["items"]:
            if item["_id"] == delivery_id and item["status"] != "pending":
                return dict(item)
        return None
    return dict(wait_until(done))


# --- webhooks: the resource ---------------------------------------------------------------------


def test_a_webhooks_secret_is_shown_once_then_masked(server: Server) -> None:
    created = create_hook(server, "https://hooks.example.test/strongbox",
                          events=["backup.failed", "restore.failed"])
    secret = created["secret"]
    assert secret.startswith("whsec_") and len(secret) >= 40
    assert created["message"].startswith("store the secret now")
    assert created["name"] == "hooks.example.test" and created["enabled"] is True
    assert created["events"] == ["backup.failed", "restore.failed"]
    url = f"{BASE}/webhooks/{created['_id']}"

    shown = server.client.get(url, headers=server.headers("viewer")).json()
    assert shown["secret"] == "whsec_****" + secret[-4:] and "message" not in shown
    listed = server.client.get(f"{BASE}/webhooks", headers=server.headers("viewer")).json()
    assert created["_id"] in [h["_id"] for h in listed["items"]]
    assert secret not in json.dumps(listed)

    changed = server.client.patch(url, headers=server.headers(), json={
        "enabled": False, "events": ["backup.completed"], "name": "renamed"}).json()
    assert (changed["enabled"], changed["events"], changed["name"]) == (
        False, ["backup.completed"], "renamed")
    assert changed["secret"] == shown["secret"]
    rotated = server.client.patch(url, headers=server.headers(),
                                  json={"rotate_secret": True}).json()
    assert rotated["secret"] != secret and rotated["secret"].startswith("whsec_")
    given = server.client.patch(url, headers=server.headers(),
                                json={"secret": "my-own-secret-0123456789"}).json()
    assert given["secret"] == "my-own-secret-0123456789"
    assert server.client.get(url, headers=server.headers()).json()["secret"] == "****6789"

    removed = server.client.delete(url, headers=server.headers())
    assert removed.status_code == 200 and removed.json()["webhook_id"] == created["_id"]
    assert_error(server.client.get(url, headers=server.headers()), 404, "WEBHOOK_NOT_FOUND")


@pytest.mark.parametrize("url", ["ftp://example.test/x", "not a url", "http://", "file:///etc",
                                 "http://example.test:99999/"])
def test_only_http_urls_are_accepted(server: Server, url: str) -> None:
    response = server.client.post(f"{BASE}/webhooks", headers=server.headers(),
                                  json={"url": url})
    body = assert_error(response, 400, "VALIDATION_FAILED")
    assert body["validation_errors"][0]["field"] == "url"


def test_bad_events_and_secrets_are_refused(server: Server) -> None:
    for body in ({"url": "https://x.test", "events": ["backup.exploded"]},
                 {"url": "https://x.test", "events": []},
                 {"url": "https://x.test", "secret": "short"}):
        assert_error(server.client.post(f"{BASE}/webhooks", headers=server.headers(),
                                         json=body), 400, "VALIDATION_FAILED")


def test_changes_need_an_admin_and_tenants_stay_apart(server: Server) -> None:
    assert_error(server.client.post(f"{BASE}/webhooks", headers=server.headers("operator"),
                                    json={"url": "https://x.test"}), 403, "FORBIDDEN")
    hook = create_hook(server, "https://x.test/one")
    url = f"{BASE}/webhooks/{hook['_id']}"
    for method in ("GET", "PATCH", "DELETE"):
        assert_error(server.client.request(method, url, headers=server.other(), json={}),
                     404, "WEBHOOK_NOT_FOUND")
    assert_error(server.client.post(f"{url}/test", headers=server.other()), 404,
                 "WEBHOOK_NOT_FOUND")
    others = server.client.get(f"{BASE}/webhooks", headers=server.other()).json()
    assert others == {"items": [], "total": 0}
    server.client.delete(url, headers=server.headers())


# --- events from real jobs ----------------------------------------------------------------------


def test_a_failing_backup_sends_a_signed_webhook_and_an_email(
        server: Server, hooked: tuple[Receiver, dict[str, Any]], mailbox: tuple[Mailbox, int],
        tmp_path: Path) -> None:
    receiver, hook = hooked
    box, _port = mailbox
    settings = server.client.put("/api/v1/settings/backup", headers=server.headers(), json={
        "notifications": {"enabled": True, "email_recipients": [RECIPIENT],
                          "notify_on": ["failure"]}})
    assert settings.status_code == 200, settings.text
    try:
        source_id = broken_source(server, tmp_path)
        created = server.create_backup({"name": "doomed", "type": "full",
                                        "source_id": source_id})
        assert server.wait_for_job(created["job_id"])["status"] == "failed"

        [started] = receiver.events("backup.started")
        [failed] = receiver.events("backup.failed")
        mail = wait_until(lambda: [m for r, m in box.messages if RECIPIENT in r])
    finally:
        server.client.put("/api/v1/settings/backup", headers=server.headers(),
                          json={"notifications": {"enabled": False}})

    # What a receiver does: recompute the HMAC of the raw body with the secret it was given.
    for request in (started, failed):
        assert request.signed_with(hook["secret"])
        assert not request.signed_with("whsec_some-other-secret-entirely")
    body = failed.json()
    assert set(body) == {"event", "timestamp", "data"} and body["event"] == "backup.failed"
    data = body["data"]
    assert (data["backup_id"], data["job_id"]) == (created["backup_id"], created["job_id"])
    assert data["status"] == "failed" and data["type"] == "full"
    assert data["backup_name"] == "doomed" and data["error"]["code"]
    assert started.json()["data"]["status"] == "in_progress"

    message = mail[0]
    assert message["Subject"] == "[Strongbox] Backup FAILED: doomed"
    assert created["backup_id"] in message.get_payload(decode=True).decode()

    log = deliveries(server, event="backup.failed", size=100)["items"]
    mine = [d for d in log if d["payload"]["data"]["job_id"] == created["job_id"]]
    assert sorted(d["channel"] for d in mine) == ["email", "webhook"]
    email_row = next(d for d in mine if d["channel"] == "email")
    assert delivered(server, email_row["_id"])["target"] == RECIPIENT
    hook_row = delivered(server, next(d for d in mine if d["channel"] == "webhook")["_id"])
    assert (hook_row["status"], hook_row["attempts"], hook_row["last_status_code"]) == (
        "delivered", 1, 200)
    assert hook_row["webhook_id"] == hook["_id"] and hook_row["target"] == receiver.url
    assert failed.headers["X-Strongbox-Delivery"] == hook_row["_id"]


def test_a_completed_backup_and_a_restore_are_announced(
        server: Server, hooked: tuple[Receiver, dict[str, Any]]) -> None:
    receiver, hook = hooked
    created = server.backup_and_wait({"name": "announced", "type": "full"})
    [done] = receiver.events("backup.completed")
    assert done.signed_with(hook["secret"])
    data = done.json()["data"]
    assert data["backup_id"] == created["backup_id"] and data["status"] == "completed"
    assert data["size_bytes"] > 0 and data["duration_seconds"] >= 0
    assert data["source_id"] == server.sources["sqlite"]

    restore = server.client.post("/api/v1/restore", headers=server.headers("operator"), json={
        "backup_id": created["backup_id"], "mode": "merge",
        "options": {"on_conflict": "skip", "dry_run": True}})
    assert restore.status_code == 202, restore.text
    [began] = receiver.events("restore.started")
    [ended] = receiver.events("restore.completed")
    assert ended.signed_with(hook["secret"])
    assert ended.json()["data"]["job_id"] == restore.json()["job_id"]
    assert ended.json()["data"]["dry_run"] is True
    assert began.json()["data"]["backup_id"] == created["backup_id"]


def test_a_verification_is_announced(server: Server,
                                     hooked: tuple[Receiver, dict[str, Any]]) -> None:
    receiver, hook = hooked
    created = server.backup_and_wait({"name": "to verify", "type": "full"})
    response = server.client.post(f"/api/v1/backups/{created['backup_id']}/verify",
                                  headers=server.headers("operator"), json={})
    assert response.status_code == 202, response.text
    [verified] = receiver.events("backup.verified")
    assert verified.signed_with(hook["secret"])
    data = verified.json()["data"]
    assert (data["backup_id"], data["job_id"]) == (created["backup_id"],
                                                   response.json()["job_id"])
    assert (data["status"], data["is_valid"], data["errors"]) == ("passed", True, [])
    assert data["backup_name"] == "to verify"


def test_a_receiver_answering_500_gets_the_delivery_again(server: Server) -> None:
    with Receiver([500, 200]) as receiver:
        hook = create_hook(server, receiver.url, events=["backup.completed"])
        try:
            created = server.backup_and_wait({"name": "retried", "type": "full"})
            first, second = receiver.events("backup.completed", 2)
        finally:
            server.client.delete(f"{BASE}/webhooks/{hook['_id']}", headers=server.headers())
    assert first.body == second.body and second.signed_with(hook["secret"])
    assert first.headers["X-Strongbox-Delivery"] == second.headers["X-Strongbox-Delivery"]
    row = delivered(server, second.headers["X-Strongbox-Delivery"])
    assert (row["status"], row["attempts"], row["last_status_code"]) == ("delivered", 2, 200)
    assert [h["status_code"] for h in row["history"]] == [500, 200]
    assert row["history"][0]["error"].startswith("HTTP 500")
    assert row["payload"]["data"]["backup_id"] == created["backup_id"]


def test_the_test_endpoint_sends_a_signed_ping(server: Server,
                                               hooked: tuple[Receiver, dict[str, Any]]) -> None:
    receiver, hook = hooked
    response = server.client.post(f"{BASE}/webhooks/{hook['_id']}/test",
                                  headers=server.headers())
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["status"], result["event"], result["attempts"]) == ("delivered", "ping", 1)
    [ping] = receiver.events("ping")
    assert ping.signed_with(hook["secret"])
    assert ping.json()["data"]["webhook_id"] == hook["_id"]

    with Receiver([503]) as refusing:
        server.client.patch(f"{BASE}/webhooks/{hook['_id']}", headers=server.headers(),
                            json={"url": refusing.url})
        failed = server.client.post(f"{BASE}/webhooks/{hook['_id']}/test",
                                    headers=server.headers()).json()
    assert (failed["status"], failed["last_status_code"], failed["attempts"]) == (
        "failed", 503, 1)


def test_the_delivery_log_pages_and_filters(server: Server,
                                            hooked: tuple[Receiver, dict[str, Any]]) -> None:
    _receiver, hook = hooked
    for _ in range(3):
        server.client.post(f"{BASE}/webhooks/{hook['_id']}/test", headers=server.headers())
    page = deliveries(server, event="ping", webhook_id=hook["_id"], size=2)
    assert page["pagination"] == {"total_items": 3, "total_pages": 2, "current_page": 1,
                                       "page_size": 2, "has_next": True,
                                       "has_previous": False}
    assert len(page["items"]) == 2
    assert deliveries(server, event="ping", webhook_id=hook["_id"], size=2,
                      page=2)["pagination"]["has_previous"] is True
    assert all(d["status"] == "delivered"
               for d in deliveries(server, status="delivered", size=100)["items"])
    assert deliveries(server, channel="email", event="ping")["items"] == []
    assert deliveries(server, event="ping", webhook_id=hook["_id"])["items"][0]["history"]
    assert_error(server.client.get(f"{BASE}/deliveries", headers=server.headers(),
                                   params={"status": "lost"}), 400, "VALIDATION_FAILED")
    assert server.client.get(f"{BASE}/deliveries", headers=server.other()).json()[
        "items"] == []


# --- the CLI, over real HTTP ------------------------------------------------------------------


@pytest.fixture(scope="module")
def live_url(server: Server) -> Iterator[str]:
    """The same app served by uvicorn on a loopback port (its services are already up)."""
    with serving(server.app, lifespan="off") as url:
        yield url


def cli(live_url: str, key: str, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli_app, ["notifications", *args],
                                env={"STRONGBOX_URL": live_url, "STRONGBOX_API_KEY": key})
    return result.exit_code, result.output


def test_the_cli_manages_webhooks_and_shows_deliveries(server: Server, live_url: str) -> None:
    key = server.keys["admin"]
    with Receiver() as receiver:
        code, output = cli(live_url, key, "webhooks", "add", receiver.url, "--name", "cli",
                           "--event", "backup.failed", "--json")
        assert code == 0, output
        hook = json.loads(output)
        assert hook["secret"].startswith("whsec_") and hook["events"] == ["backup.failed"]

        code, output = cli(live_url, key, "webhooks", "list")
        assert code == 0 and hook["_id"] in output and hook["secret"] not in output

        code, output = cli(live_url, key, "webhooks", "test", hook["_id"])
        assert code == 0 and "delivered" in output and "ping" in output
        [ping] = receiver.events("ping")
        assert ping.signed_with(hook["secret"])

        code, output = cli(live_url, key, "webhooks", "update", hook["_id"], "--disable",
                           "--json")
        assert code == 0 and json.loads(output)["enabled"] is False

        code, output = cli(live_url, key, "deliveries", "--event", "ping", "--status",
                           "delivered", "--json")
        assert code == 0
        assert any(d["webhook_id"] == hook["_id"] for d in json.loads(output)["items"])
        code, output = cli(live_url, key, "deliveries", "--webhook", hook["_id"])
        assert code == 0 and "delivered" in output and "page 1 of 1" in output

        code, output = cli(live_url, key, "webhooks", "remove", hook["_id"])
        assert code == 0 and "removed" in output
    code, output = cli(live_url, key, "webhooks", "test", hook["_id"])
    assert code == 1 and "WEBHOOK_NOT_FOUND" in output
    code, output = cli(live_url, key, "webhooks", "add", "ftp://nope.test")
    assert code == 1 and "VALIDATION_FAILED" in output
