"""Notifications below the API: job events → payloads, signed webhooks delivered to a real
local HTTP receiver with retries on a controlled clock, e-mail to a real local SMTP server
(aiosmtpd), and pending deliveries that survive a restart."""

from __future__ import annotations

import email
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from strongbox.catalog.database import Catalog
from strongbox.catalog.models import NotificationDelivery, TenantSettings
from strongbox.jobs.events import COMPLETED, FAILED, STARTED, EventBus, JobEvent
from strongbox.jobs.store import JobView
from strongbox.services.delivery_worker import DeliveryView, DeliveryWorker, RetryPolicy
from strongbox.services.email_sender import EmailSender, SmtpConfig
from strongbox.services.notifications import (
    Notification,
    NotificationService,
    WebhookSpec,
    mask,
    notification_for,
)
from strongbox.services.secret_box import SecretBox
from strongbox.services.webhook_delivery import WebhookSender, sign, signature_matches

TENANT = "acme"
T0 = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)


# --- a real HTTP receiver and a real SMTP server, on loopback ---------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, Any]:
        return dict(json.loads(self.body))

    def signed_with(self, secret: str) -> bool:
        return signature_matches(secret, self.body, self.headers.get("X-Strongbox-Signature"))


class Receiver:
    """A webhook receiver: records every request, answers with the scripted status codes
    (then 200)."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.requests: list[Received] = []
        self.statuses = list(statuses or [])
        self._changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._changed:
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    receiver.requests.append(Received(self.path, dict(self.headers), body))
                    receiver._changed.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def wait_for(self, count: int, timeout: float = 30.0,
                 match: Callable[[Received], bool] = lambda r: True) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while len([r for r in self.requests if match(r)]) < count:
                left = deadline - time.monotonic()
                assert left > 0, f"only {len(self.requests)} requests: {self.requests}"
                self._changed.wait(left)
            return [r for r in self.requests if match(r)]

    def events(self, name: str, count: int = 1, timeout: float = 30.0) -> list[Received]:
        return self.wait_for(count, timeout,
                             lambda r: r.headers.get("X-Strongbox-Event") == name)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


class Mailbox:
    """An aiosmtpd handler keeping every message; ``refuse`` first answers DATA with 451."""

    def __init__(self, refuse: int = 0) -> None:
        self.messages: list[tuple[list[str], Message]] = []
        self.refuse = refuse

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refuse:
            self.refuse -= 1
            return "451 4.3.0 try again later"
        self.messages.append((list(envelope.rcpt_tos),
                              email.message_from_bytes(envelope.content)))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as started:
        yield started


@contextmanager
def smtp_server(mailbox: Mailbox | None = None) -> Iterator[tuple[Mailbox, int]]:
    """A real SMTP server (aiosmtpd) on a free loopback port: (its mailbox, the port)."""
    mailbox = mailbox or Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    with smtp_server() as started:
        yield started


def wait_until(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


# --- the service on a real catalog -----------------------------------------------------------


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Setup:
    catalog: Catalog
    box: SecretBox
    clock: Callable[[], datetime]
    smtp: SmtpConfig | None = None
    policy: RetryPolicy = field(default_factory=lambda: RetryPolicy(4, 60.0, 600.0))

    def service(self) -> NotificationService:
        worker = DeliveryWorker(self.catalog, self.box, WebhookSender(5.0),
                                EmailSender(self.smtp) if self.smtp else None,
                                policy=self.policy, workers=2, lease_seconds=30,
                                clock=self.clock)
        from strongbox.jobs.store import JobStore
        return NotificationService(self.catalog, JobStore(self.catalog), self.box, worker,
                                   email_configured=self.smtp is not None, clock=self.clock)

    def delivery(self, delivery_id: str) -> DeliveryView:
        from strongbox.services.delivery_worker import delivery_view
        with self.catalog.session() as session:
            return delivery_view(session.get_one(NotificationDelivery, delivery_id))

    def set_notifications(self, tenant: str, block: dict[str, Any]) -> None:
        with self.catalog.session() as session:
            session.merge(TenantSettings(tenant=tenant, document={"notifications": block}))


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    catalog.migrate()
    return Setup(catalog, SecretBox(tmp_path / "secret.key"), Clock())


def failed_backup(tenant: str = TENANT) -> Notification:
    return Notification(tenant, "backup.failed", {
        "event": "backup.failed", "timestamp": "2026-03-01T02:00:00Z",
        "data": {"backup_id": "b-1", "job_id": "j-1", "status": "failed",
                 "backup_name": "nightly", "error": {"code": "SOURCE_UNAVAILABLE",
                                                     "message": "gone"}}})


# --- signing ----------------------------------------------------------------------------------


def test_a_signature_is_the_hmac_of_the_exact_body() -> None:
    body = b'{"event":"backup.completed"}'
    signature = sign("s3cret-s3cret-s3cret", body)
    assert signature.startswith("sha256=") and len(signature) == 7 + 64
    assert signature_matches("s3cret-s3cret-s3cret", body, signature)
    assert not signature_matches("s3cret-s3cret-s3cret", body + b" ", signature)
    assert not signature_matches("another-secret-here", body, signature)
    assert not signature_matches("s3cret-s3cret-s3cret", body, None)


def test_secrets_are_masked() -> None:
    assert mask("whsec_abcdefghijklmnopqrstuvwxyz") == "whsec_****wxyz"
    assert mask("short") == "****"


# --- job events → the seed 001 payload ----------------------------------------------------------


def job(kind: str, **params: Any) -> JobView:
    return JobView("j-1", TENANT, kind, "in_progress", params, {}, None, None, "b-1", None,
                   T0, T0, T0, None)


def test_job_events_map_to_the_seed_events() -> None:
    backup = job("backup", type="full")
    started = notification_for(JobEvent(STARTED, "j-1", "backup", "b-1", timestamp=T0),
                               backup, None)
    assert started is not None and started.event == "backup.started"
    assert started.payload == {"event": "backup.started", "timestamp": "2026-03-01T02:00:00Z",
                               "data": {"backup_id": "b-1", "job_id": "j-1", "type": "full",
                                        "status": "in_progress",
                                        "started_at": "2026-03-01T02:00:00Z"}}
    done = notification_for(JobEvent(COMPLETED, "j-1", "backup", "b-1",
                                     result={"size_bytes": 5368709120,
                                             "duration_seconds": 2732.0}), backup, None)
    assert done is not None and done.event == "backup.completed"
    assert done.payload["data"].items() >= {"backup_id": "b-1", "type": "full",
                                            "size_bytes": 5368709120,
                                            "duration_seconds": 2732.0,
                                            "status": "completed"}.items()
    failed = notification_for(JobEvent(FAILED, "j-1", "backup", "b-1",
                                       error={"code": "X", "message": "boom"},
                                       timestamp=T0 + timedelta(seconds=3)), backup, None)
    assert failed is not None and failed.outcome == "failure"
    assert failed.payload["data"]["error"] == {"code": "X", "message": "boom"}
    assert failed.payload["data"]["duration_seconds"] == 3.0

    restore = job("restore", mode="full", source_id="s-1")
    assert notification_for(JobEvent(COMPLETED, "j-1", "restore", "b-1",
                                     result={"total_documents": 7}), restore,
                            None).payload["data"]["documents_restored"] == 7  # type: ignore

    verify = job("verify")
    passed = notification_for(JobEvent(COMPLETED, "j-1", "verify", "b-1",
                                       result={"verified": True, "warnings": ["slow"]}),
                              verify, None)
    assert passed is not None and passed.event == "backup.verified"
    assert passed.payload["data"]["status"] == "passed" and passed.outcome == "warning"
    corrupt = notification_for(JobEvent(COMPLETED, "j-1", "verify", "b-1",
                                        result={"verified": False, "errors": ["pack gone"]}),
                               verify, None)
    assert corrupt is not None and corrupt.outcome == "failure"
    # Nobody is told about progress, a verification's start, or a cancelled verification.
    assert notification_for(JobEvent("progress", "j-1", "backup"), backup, None) is None
    assert notification_for(JobEvent(STARTED, "j-1", "verify"), verify, None) is None
    assert notification_for(JobEvent(FAILED, "j-1", "verify", error={"code": "CANCELLED"}),
                            verify, None) is None
    assert notification_for(JobEvent(COMPLETED, "j-1", "cleanup"), job("cleanup"),
                            None) is None


def test_started_reaches_only_listeners_of_every_job() -> None:
    bus = EventBus()
    one: list[str] = []
    every: list[str] = []
    bus.subscribe("j-1", lambda e: one.append(e.type))
    unsubscribe = bus.subscribe_all(lambda e: every.append(e.type))
    for kind in (STARTED, "progress", COMPLETED):
        bus.publish(JobEvent(kind, "j-1", "backup"))
    bus.publish(JobEvent(STARTED, "j-2", "backup"))
    assert one == ["progress", COMPLETED]
    assert every == [STARTED, "progress", COMPLETED, STARTED]
    unsubscribe()
    bus.publish(JobEvent(COMPLETED, "j-3", "backup"))
    assert len(every) == 4
    assert not JobEvent(STARTED, "j", "backup").final


# --- webhooks: signed, retried with backoff, logged ----------------------------------------------


def test_a_webhook_gets_a_signed_body_and_every_header(setup: Setup,
                                                       receiver: Receiver) -> None:
    service = setup.service()
    hook = service.create(TENANT, WebhookSpec(url=receiver.url, events=["backup.failed"]))
    assert hook.secret.startswith("whsec_") and len(hook.secret) > 40
    assert service.get(TENANT, hook.id).secret == mask(hook.secret)
    service.worker.start()
    try:
        [delivery_id] = service.notify(failed_backup())
        [request] = receiver.events("backup.failed")
    finally:
        service.stop()
    assert request.signed_with(hook.secret)
    assert request.json() == failed_backup().payload
    assert request.headers["X-Strongbox-Delivery"] == delivery_id
    assert request.headers["X-Strongbox-Timestamp"] == str(int(T0.timestamp()))
    assert request.headers["Content-Type"] == "application/json"
    row = setup.delivery(delivery_id)
    assert (row.status, row.attempts, row.last_status_code) == ("delivered", 1, 200)
    assert row.delivered_at == T0 and row.next_attempt_at is None


def test_filters_and_disabled_webhooks_get_nothing(setup: Setup, receiver: Receiver) -> None:
    service = setup.service()
    service.create(TENANT, WebhookSpec(url=receiver.url, events=["backup.completed"]))
    service.create(TENANT, WebhookSpec(url=receiver.url, enabled=False))
    service.create("someone-else", WebhookSpec(url=receiver.url))
    assert service.notify(failed_backup()) == []


def test_retries_back_off_exponentially_until_delivered(setup: Setup) -> None:
    clock = Clock()
    setup.clock = clock
    service = setup.service()
    with Receiver([500, 503, 200]) as receiver:
        hook = service.create(TENANT, WebhookSpec(url=receiver.url))
        service.worker.start()
        try:
            [delivery_id] = service.notify(failed_backup())
            receiver.wait_for(1)
            first = wait_until(lambda: (d := setup.delivery(delivery_id)).attempts == 1 and d)
            assert (first.status, first.last_status_code) == ("pending", 500)
            assert first.next_attempt_at == T0 + timedelta(seconds=60)
            assert first.last_error is not None and first.last_error.startswith("HTTP 500")

            clock.advance(59)  # not due yet: nothing is sent
            service.worker.wake()
            clock.advance(1)
            service.worker.wake()
            receiver.wait_for(2)
            second = wait_until(lambda: (d := setup.delivery(delivery_id)).attempts == 2 and d)
            assert second.next_attempt_at == T0 + timedelta(seconds=60 + 120)

            clock.advance(120)
            service.worker.wake()
            receiver.wait_for(3)
            done = wait_until(lambda: (d := setup.delivery(delivery_id)).status == "delivered"
                              and d)
        finally:
            service.stop()
    assert len(receiver.requests) == 3
    assert all(r.signed_with(hook.secret) for r in receiver.requests)
    assert len({r.headers["X-Strongbox-Delivery"] for r in receiver.requests}) == 1
    assert [h["status_code"] for h in done.history] == [500, 503, 200]
    assert [h["attempt"] for h in done.history] == [1, 2, 3]
    assert done.delivered_at == T0 + timedelta(seconds=180)


def test_a_delivery_fails_after_the_last_try_or_on_a_4xx(setup: Setup) -> None:
    setup.policy = RetryPolicy(2, 0.0, 0.0)
    service = setup.service()
    with Receiver([500, 500, 404]) as receiver:
        service.create(TENANT, WebhookSpec(url=receiver.url))
        service.worker.start()
        try:
            [broken] = service.notify(failed_backup())
            failed = wait_until(lambda: (d := setup.delivery(broken)).status == "failed" and d)
            assert (failed.attempts, failed.last_status_code) == (2, 500)
            [refused] = service.notify(failed_backup())
            refused_row = wait_until(lambda: (d := setup.delivery(refused)).status == "failed"
                                     and d)
            assert (refused_row.attempts, refused_row.last_status_code) == (1, 404)
        finally:
            service.stop()


def test_network_errors_are_retried_and_logged(setup: Setup) -> None:
    setup.policy = RetryPolicy(2, 0.0, 0.0)
    service = setup.service()
    service.create(TENANT, WebhookSpec(url=f"http://127.0.0.1:{free_port()}/nobody"))
    service.worker.start()
    try:
        [delivery_id] = service.notify(failed_backup())
        row = wait_until(lambda: (d := setup.delivery(delivery_id)).status == "failed" and d)
    finally:
        service.stop()
    assert row.attempts == 2 and row.last_status_code is None
    assert row.last_error is not None and "ConnectError" in row.last_error


def test_pending_deliveries_survive_a_restart(setup: Setup, receiver: Receiver) -> None:
    before = setup.service()  # never started: what a server that stopped leaves behind
    hook = before.create(TENANT, WebhookSpec(url=receiver.url))
    [delivery_id] = before.notify(failed_backup())
    assert setup.delivery(delivery_id).status == "pending"
    after = setup.service()
    after.start(EventBus())
    try:
        [request] = receiver.events("backup.failed")
        wait_until(lambda: setup.delivery(delivery_id).status == "delivered")
    finally:
        after.stop()
    assert request.signed_with(hook.secret)


def test_a_deleted_webhook_fails_its_pending_deliveries(setup: Setup,
                                                        receiver: Receiver) -> None:
    service = setup.service()
    hook = service.create(TENANT, WebhookSpec(url=receiver.url))
    [delivery_id] = service.notify(failed_backup())
    service.delete(TENANT, hook.id)
    service.worker.start()
    try:
        row = wait_until(lambda: (d := setup.delivery(delivery_id)).status == "failed" and d)
    finally:
        service.stop()
    assert row.last_error == "the webhook was deleted" and receiver.requests == []


# --- e-mail ------------------------------------------------------------------------------------


def smtp_config(port: int) -> SmtpConfig:
    return SmtpConfig("127.0.0.1", port, "none", "", "", "strongbox@example.test", 5.0)


def test_a_failure_email_arrives(setup: Setup, smtp: tuple[Mailbox, int]) -> None:
    mailbox, port = smtp
    setup.smtp = smtp_config(port)
    setup.set_notifications(TENANT, {"enabled": True, "notify_on": ["failure"],
                                     "email_recipients": ["ops@example.test",
                                                          "dba@example.test"]})
    service = setup.service()
    service.worker.start()
    try:
        ids = service.notify(failed_backup())
        assert len(ids) == 2
        wait_until(lambda: len(mailbox.messages) == 2)
        rows = [wait_until(lambda i=i: (d := setup.delivery(i)).status == "delivered" and d)
                for i in ids]
        # notify_on ["failure"]: a success tells nobody.
        success = Notification(TENANT, "backup.completed", {"event": "backup.completed",
                                                            "data": {}})
        assert service.notify(success) == []
    finally:
        service.stop()
    assert sorted(r.target for r in rows) == ["dba@example.test", "ops@example.test"]
    assert {r.channel for r in rows} == {"email"}
    recipients, message = mailbox.messages[0]
    assert message["Subject"] == "[Strongbox] Backup FAILED: nightly"
    assert message["From"] == "strongbox@example.test"
    assert message["X-Strongbox-Event"] == "backup.failed"
    assert recipients == [message["To"]]
    body = message.get_payload(decode=True).decode()  # type: ignore[union-attr]
    assert "SOURCE_UNAVAILABLE" in body and "b-1" in body


def test_smtp_answering_4xx_is_tried_again(setup: Setup) -> None:
    with smtp_server(Mailbox(refuse=1)) as (mailbox, port):
        setup.smtp = smtp_config(port)
        setup.policy = RetryPolicy(3, 0.0, 0.0)
        setup.set_notifications(TENANT, {"enabled": True, "notify_on": ["failure"],
                                         "email_recipients": ["ops@example.test"]})
        service = setup.service()
        service.worker.start()
        try:
            [delivery_id] = service.notify(failed_backup())
            row = wait_until(lambda: (d := setup.delivery(delivery_id)).status == "delivered"
                             and d)
        finally:
            service.stop()
    assert row.attempts == 2 and [h["status_code"] for h in row.history] == [451, 250]
    assert len(mailbox.messages) == 1


def test_starttls_against_a_server_without_it_fails_at_once(
        smtp: tuple[Mailbox, int]) -> None:
    mailbox, port = smtp
    config = SmtpConfig("127.0.0.1", port, "starttls", "", "", "strongbox@example.test", 5.0)
    outcome = EmailSender(config).send("ops@example.test", failed_backup().payload, "d-1")
    assert not outcome.delivered and not outcome.retry
    assert outcome.error is not None and "STARTTLS" in outcome.error
    assert mailbox.messages == []


def test_without_smtp_email_is_skipped_with_a_clear_log_line(
        setup: Setup, caplog: pytest.LogCaptureFixture, receiver: Receiver) -> None:
    setup.set_notifications(TENANT, {"enabled": True, "notify_on": ["failure"],
                                     "email_recipients": ["ops@example.test"],
                                     "webhook_url": receiver.url})
    service = setup.service()
    with caplog.at_level(logging.WARNING, logger="strongbox.services.notifications"):
        ids = service.notify(failed_backup())
    assert "SMTP is not configured" in caplog.text and "ops@example.test" in caplog.text
    # The settings' webhook_url still gets it (unsigned: the block has no secret).
    [delivery_id] = ids
    service.worker.start()
    try:
        [request] = receiver.events("backup.failed")
    finally:
        service.stop()
    assert "X-Strongbox-Signature" not in request.headers
    assert setup.delivery(delivery_id).webhook_id is None
