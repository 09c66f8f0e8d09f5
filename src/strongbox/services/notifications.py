"""Notifications: job events become webhook and e-mail deliveries (seed 001 "Webhooks").

Every job's lifecycle goes through the :class:`~strongbox.jobs.events.EventBus`; this
service listens to all of them and names the ones people care about:

=================  ===========================================================
job kind           events
=================  ===========================================================
``backup``         ``backup.started``, ``backup.completed``, ``backup.failed``
``restore``        ``restore.started``, ``restore.completed``, ``restore.failed``
``verify``         ``backup.verified`` (``data.status`` ``passed`` or ``failed``)
=================  ===========================================================

Each notification is the seed 001 payload ``{"event", "timestamp", "data"}`` and goes to:

* every enabled webhook of the tenant subscribed to the event (signed, see
  :mod:`strongbox.services.webhook_delivery`);
* the tenant's settings ``notifications`` block, when enabled and its ``notify_on`` covers
  the event (``success``, ``failure``, ``warning``): its ``webhook_url`` (unsigned: the
  block has no secret) and each ``email_recipients`` address (if SMTP is configured);
* for ``backup.*`` events, the backup's own ``notification`` (seed 001, stored as
  ``options.notification`` of the backup and in its job's params): its ``webhook``
  (unsigned) and each ``email`` address, for every event of that backup whatever the
  settings say. A target named twice gets one delivery.

The bus listener only queues the event; the :class:`DeliveryWorker` thread turns it into
delivery rows and sends them, so a job never waits for a receiver.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, select

from strongbox.catalog.database import Catalog, sql_offset
from strongbox.catalog.models import Backup, NotificationDelivery, TenantSettings, Webhook
from strongbox.catalog.types import utcnow
from strongbox.errors import NotFound
from strongbox.jobs.events import COMPLETED, FAILED, STARTED, EventBus, JobEvent
from strongbox.jobs.store import JobStore, JobView
from strongbox.services.backup_settings import default_document
from strongbox.services.delivery_worker import (
    EMAIL,
    PENDING,
    WEBHOOK,
    DeliveryView,
    DeliveryWorker,
    RetryPolicy,
    delivery_view,
)
from strongbox.services.email_sender import EmailSender, SmtpConfig
from strongbox.services.errors import FieldError, ValidationFailed
from strongbox.services.pagination import Page
from strongbox.services.secret_box import SecretBox
from strongbox.services.webhook_delivery import WebhookSender
from strongbox.settings import Settings

log = logging.getLogger(__name__)

EVENTS = ("backup.started", "backup.completed", "backup.failed", "backup.verified",
          "restore.started", "restore.completed", "restore.failed")
PING = "ping"
# The settings block's notify_on words and the events each one covers.
SUCCESS_EVENTS = frozenset({"backup.completed", "restore.completed"})
FAILURE_EVENTS = frozenset({"backup.failed", "restore.failed"})
_VERBS = {STARTED: "started", COMPLETED: "completed", FAILED: "failed"}
_NOT_A_RESULT = frozenset({"CANCELLED", "INTERRUPTED"})
SECRET_PREFIX = "whsec_"
NOTIFYING_KINDS = frozenset({"backup", "restore", "verify"})


class WebhookNotFound(NotFound):
    code = "WEBHOOK_NOT_FOUND"


@dataclass(frozen=True)
class Notification:
    tenant: str
    event: str
    payload: dict[str, Any]

    @property
    def outcome(self) -> str:
        """``success``, ``failure``, ``warning`` or ``info``: what ``notify_on`` matches."""
        data = self.payload.get("data", {})
        if self.event in SUCCESS_EVENTS:
            return "success"
        if self.event in FAILURE_EVENTS:
            return "failure"
        if self.event == "backup.verified":
            if data.get("status") != "passed":
                return "failure"
            return "warning" if data.get("warnings") else "success"
        return "info"


@dataclass(frozen=True)
class WebhookView:
    id: str
    tenant: str
    name: str
    url: str
    events: list[str]
    enabled: bool
    secret: str  # masked, except right after it was made
    created_at: datetime
    updated_at: datetime


@dataclass
class WebhookSpec:
    """Fields of a create or update; None: keep (or on create, the default)."""

    name: str | None = None
    url: str | None = None
    events: Sequence[str] | None = None
    secret: str | None = None
    enabled: bool | None = None
    rotate_secret: bool = False


DeliveryPage = Page[DeliveryView]


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def mask(secret: str) -> str:
    """Enough of a secret to tell two apart, never enough to use it."""
    tail = secret[-4:] if len(secret) >= 16 else ""
    return f"{SECRET_PREFIX if secret.startswith(SECRET_PREFIX) else ''}****{tail}"


def check_url(url: str, field: str = "url") -> str:
    """http(s) URLs with a host only: the worker POSTs to it from the server."""
    url = url.strip()
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError as exc:
        raise ValidationFailed("invalid webhook URL", [FieldError(
            field, f"not a URL: {exc}", "INVALID_URL", url)]) from None
    if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > 2000:
        raise ValidationFailed("invalid webhook URL", [FieldError(
            field, "must be an http:// or https:// URL with a host", "INVALID_URL", url)])
    return url


def check_email(address: str, field: str = "email") -> str:
    """A syntactically valid address (no DNS lookup: the server may not reach DNS), in its
    normalized form. Reserved names such as ``.local`` and ``localhost`` are refused;
    ``.test`` is allowed for test set-ups."""
    try:
        return validate_email(address.strip(), check_deliverability=False,
                              test_environment=True).normalized
    except EmailNotValidError as exc:
        raise ValidationFailed("invalid e-mail address", [FieldError(
            field, f"not a valid e-mail address: {exc}", "INVALID_EMAIL", address)]) from None


def check_backup_notification(value: Any, field: str = "options.notification"
                              ) -> dict[str, Any] | None:
    """A backup's seed 001 ``notification`` block, checked and normalized:
    ``{"email": [addresses], "webhook": "http(s)://..."}`` (both optional)."""
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - {"email", "webhook"}:
        raise ValidationFailed("invalid notification settings", [FieldError(
            field, 'an object {"email": [addresses], "webhook": URL}', "INVALID_FORMAT",
            value)])
    errors: list[FieldError] = []
    result: dict[str, Any] = {}
    emails = value.get("email")
    if isinstance(emails, str):
        emails = [emails]
    if emails is not None:
        if not isinstance(emails, list) or len(emails) > 20:
            errors.append(FieldError(f"{field}.email", "a list of at most 20 addresses",
                                     "INVALID_FORMAT", emails))
        else:
            result["email"] = []
            for n, address in enumerate(emails):
                try:
                    result["email"].append(check_email(str(address), f"{field}.email[{n}]"))
                except ValidationFailed as exc:
                    errors.extend(exc.errors)
    if value.get("webhook") is not None:
        try:
            result["webhook"] = check_url(str(value["webhook"]), f"{field}.webhook")
        except ValidationFailed as exc:
            errors.extend(exc.errors)
    if errors:
        raise ValidationFailed("invalid notification settings", errors)
    if "email" in result:
        result["email"] = list(dict.fromkeys(result["email"])) or None
    return {k: v for k, v in result.items() if v} or None


def check_events(events: Sequence[str]) -> list[str]:
    unknown = [event for event in events if event not in EVENTS]
    if unknown or not events:
        raise ValidationFailed("invalid webhook events", [FieldError(
            "events", f"choose one or more of {', '.join(EVENTS)}", "INVALID_EVENT",
            unknown or list(events))])
    return sorted(set(events), key=EVENTS.index)


# --- job events → notifications -------------------------------------------------------


def event_name(kind: str, event: JobEvent) -> str | None:
    verb = _VERBS.get(event.type)
    if verb is None:
        return None
    if kind in ("backup", "restore"):
        return f"{kind}.{verb}"
    if kind == "verify" and event.type != STARTED:
        error = event.error or {}
        return None if error.get("code") in _NOT_A_RESULT else "backup.verified"
    return None


def _duration(job: JobView, event: JobEvent) -> float | None:
    if job.started_at is None:
        return None
    return round(max(0.0, (event.timestamp - job.started_at).total_seconds()), 3)


def _error(event: JobEvent) -> dict[str, Any]:
    error = event.error or {}
    return {"code": error.get("code", "INTERNAL_ERROR"), "message": error.get("message", "")}


def _backup_fields(backup: Backup | None) -> dict[str, Any]:
    if backup is None:
        return {}
    return {"backup_name": backup.name, "type": backup.type, "source_id": backup.source_id,
            "source_name": backup.source_name, "source_kind": backup.source_kind}


def _backup_data(name: str, job: JobView, event: JobEvent, backup: Backup | None
                 ) -> dict[str, Any]:
    data: dict[str, Any] = {"backup_id": event.backup_id or job.backup_id, "job_id": job.id,
                            "type": job.params.get("type"), **_backup_fields(backup)}
    result = event.result or {}
    if name == "backup.started":
        data["status"] = "in_progress"
        data["started_at"] = iso(job.started_at or event.timestamp)
    elif name == "backup.completed":
        data.update(status="completed", size_bytes=int(result.get("size_bytes", 0)),
                    duration_seconds=result.get("duration_seconds", _duration(job, event)))
    else:
        error = _error(event)
        data.update(status="cancelled" if error["code"] == "CANCELLED" else "failed",
                    error=error, duration_seconds=_duration(job, event))
    return data


def _restore_data(name: str, job: JobView, event: JobEvent, backup: Backup | None
                  ) -> dict[str, Any]:
    params = job.params
    data: dict[str, Any] = {"job_id": job.id, "backup_id": event.backup_id or job.backup_id,
                            "mode": params.get("mode"), "dry_run": bool(params.get("dry_run")),
                            "target_source_id": params.get("source_id")}
    if backup is not None:
        data.update(backup_name=backup.name, source_name=backup.source_name)
    result = event.result or {}
    if name == "restore.started":
        data.update(status="in_progress", started_at=iso(job.started_at or event.timestamp))
    elif name == "restore.completed":
        data.update(status="completed",
                    documents_restored=int(result.get("total_documents", 0)),
                    duration_seconds=result.get("duration_seconds", _duration(job, event)))
    else:
        error = _error(event)
        data.update(status="cancelled" if error["code"] == "CANCELLED" else "failed",
                    error=error, duration_seconds=_duration(job, event))
    return data


def _verified_data(job: JobView, event: JobEvent, backup: Backup | None) -> dict[str, Any]:
    data: dict[str, Any] = {"backup_id": event.backup_id or job.backup_id, "job_id": job.id,
                            **_backup_fields(backup)}
    if event.type == FAILED:  # the verification itself could not run to its end
        data.update(status="failed", is_valid=False, error=_error(event),
                    duration_seconds=_duration(job, event))
        return data
    result = event.result or {}
    valid = bool(result.get("verified", result.get("is_valid", False)))
    data.update(status="passed" if valid else "failed", is_valid=valid,
                mode=result.get("mode"), errors=list(result.get("errors") or []),
                warnings=list(result.get("warnings") or []),
                damaged=list(result.get("damaged") or []),
                duration_seconds=result.get("verification_duration_seconds",
                                            _duration(job, event)))
    return data


def notification_for(event: JobEvent, job: JobView, backup: Backup | None
                     ) -> Notification | None:
    """The notification a job event means, or None (progress; jobs nobody is told about)."""
    name = event_name(job.kind, event)
    if name is None:
        return None
    if job.kind == "backup":
        data = _backup_data(name, job, event, backup)
    elif job.kind == "restore":
        data = _restore_data(name, job, event, backup)
    else:
        data = _verified_data(job, event, backup)
    payload = {"event": name, "timestamp": iso(event.timestamp), "data": data}
    return Notification(job.tenant, name, payload)


def unique_targets(targets: Sequence[tuple[str, str | None, str]]
                   ) -> list[tuple[str, str | None, str]]:
    """One delivery per address or unsigned URL, even when the settings and the backup
    both name it; registered webhooks (signed with their own secret) are never merged."""
    seen: set[tuple[str, str]] = set()
    result = []
    for channel, webhook_id, target in targets:
        if webhook_id is None:
            if (channel, target) in seen:
                continue
            seen.add((channel, target))
        result.append((channel, webhook_id, target))
    return result


def backup_targets(job: JobView, backup: Backup | None
                   ) -> list[tuple[str, str | None, str]]:
    """A backup's own targets (seed 001 ``notification``) for the events of its ``backup``
    and ``verify`` jobs: from the backup job's params, else the backup's options."""
    if job.kind not in ("backup", "verify"):
        return []
    block = (job.params or {}).get("notification") if job.kind == "backup" else None
    if block is None and backup is not None:
        block = (backup.options or {}).get("notification")
    if not isinstance(block, dict):
        return []
    targets: list[tuple[str, str | None, str]] = []
    if isinstance(block.get("webhook"), str) and block["webhook"]:
        targets.append((WEBHOOK, None, block["webhook"]))
    targets += [(EMAIL, None, str(address)) for address in block.get("email") or []
                if address]
    return targets


# --- the service --------------------------------------------------------------------------


def _webhook_view(row: Webhook, secret: str) -> WebhookView:
    return WebhookView(row.id, row.tenant, row.name, row.url, list(row.events), row.enabled,
                       secret, row.created_at, row.updated_at)


class NotificationService:
    def __init__(self, catalog: Catalog, jobs: JobStore, secrets_box: SecretBox,
                 worker: DeliveryWorker, *, email_configured: bool,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.catalog = catalog
        self.jobs = jobs
        self.secrets = secrets_box
        self.worker = worker
        self.email_configured = email_configured
        self.clock = clock
        self._unsubscribe: Callable[[], None] | None = None

    # --- lifecycle --------------------------------------------------------------------

    def start(self, bus: EventBus) -> None:
        """Listen to every job and start sending (pending deliveries of a previous run too)."""
        if self._unsubscribe is None:
            self._unsubscribe = bus.subscribe_all(self.on_job_event)
        self.worker.start()

    def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self.worker.stop()

    def on_job_event(self, event: JobEvent) -> None:
        """Called on the job's thread: hand over and return at once."""
        if event.kind in NOTIFYING_KINDS and (event.type == STARTED or event.final):
            self.worker.enqueue(lambda: self._notify_job_event(event))

    def _notify_job_event(self, event: JobEvent) -> None:
        job = self.jobs.get(event.job_id)
        if job is None:
            return
        backup = None
        backup_id = event.backup_id or job.backup_id
        if backup_id:
            with self.catalog.session() as session:
                backup = session.get(Backup, backup_id)
        notification = notification_for(event, job, backup)
        if notification is not None:
            self.notify(notification, extra=backup_targets(job, backup))

    # --- fan-out ------------------------------------------------------------------------

    def notify(self, notification: Notification,
               extra: Sequence[tuple[str, str | None, str]] = ()) -> list[str]:
        """Record one delivery per target of ``notification`` (the tenant's, plus ``extra``:
        a backup's own targets); the worker sends them."""
        if not self.email_configured and any(t[0] == EMAIL for t in extra):
            log.warning("e-mail notification %s for tenant %s to the backup's addresses "
                        "skipped: SMTP is not configured (set STRONGBOX_SMTP_HOST)",
                        notification.event, notification.tenant)
            extra = [t for t in extra if t[0] != EMAIL]
        targets = unique_targets([*self._webhook_targets(notification),
                                  *self._settings_targets(notification), *extra])
        if not targets:
            return []
        now = self.clock()
        ids = []
        with self.catalog.session() as session:
            for channel, webhook_id, target in targets:
                row = NotificationDelivery(
                    id=str(uuid.uuid4()), tenant=notification.tenant, channel=channel,
                    webhook_id=webhook_id, target=target, event=notification.event,
                    payload=notification.payload, status=PENDING, attempts=0,
                    next_attempt_at=now, created_at=now, history=[])
                session.add(row)
                ids.append(row.id)
        log.info("%s for tenant %s: %d deliveries queued", notification.event,
                 notification.tenant, len(ids))
        self.worker.wake()
        return ids

    def _webhook_targets(self, notification: Notification
                         ) -> list[tuple[str, str | None, str]]:
        query = select(Webhook).where(Webhook.tenant == notification.tenant,
                                      Webhook.enabled.is_(True))
        with self.catalog.session() as session:
            return [(WEBHOOK, row.id, row.url) for row in session.scalars(query)
                    if notification.event in row.events]

    def _settings_targets(self, notification: Notification
                          ) -> list[tuple[str, str | None, str]]:
        block = self.settings_block(notification.tenant)
        if not block.get("enabled") or notification.outcome not in (block.get("notify_on")
                                                                    or []):
            return []
        targets: list[tuple[str, str | None, str]] = []
        if block.get("webhook_url"):
            targets.append((WEBHOOK, None, str(block["webhook_url"])))
        recipients = [str(r) for r in block.get("email_recipients") or [] if r]
        if recipients and not self.email_configured:
            log.warning("e-mail notification %s for tenant %s to %s skipped: SMTP is not "
                        "configured (set STRONGBOX_SMTP_HOST)", notification.event,
                        notification.tenant, ", ".join(recipients))
        elif recipients:
            targets += [(EMAIL, None, recipient) for recipient in dict.fromkeys(recipients)]
        return targets

    def check_backup_targets(self, options: dict[str, Any] | None) -> None:
        """Refuse a backup's ``notification.email`` this server cannot send (no SMTP),
        rather than accept it and mail nobody."""
        block = (options or {}).get("notification") or {}
        if block.get("email") and not self.email_configured:
            raise ValidationFailed("e-mail notifications are not available", [FieldError(
                "options.notification.email", "this server has no SMTP server configured "
                "(STRONGBOX_SMTP_HOST)", "NOT_SUPPORTED", block["email"])])

    def settings_block(self, tenant: str) -> dict[str, Any]:
        """The tenant's settings ``notifications`` block (seed 000 ``BackupSettings``)."""
        block = default_document()["notifications"]
        with self.catalog.session() as session:
            row = session.get(TenantSettings, tenant)
            if row is not None:
                block.update((row.document or {}).get("notifications") or {})
        return dict(block)

    # --- webhooks ---------------------------------------------------------------------

    def _row(self, session: Any, tenant: str, webhook_id: str) -> Webhook:
        row = session.get(Webhook, webhook_id)
        if row is None or row.tenant != tenant:
            raise WebhookNotFound(f"webhook {webhook_id} not found")
        return row

    def _masked(self, row: Webhook) -> WebhookView:
        return _webhook_view(row, mask(self.secrets.open(row.secret)))

    def create(self, tenant: str, spec: WebhookSpec) -> WebhookView:
        """A new webhook; the view carries the secret in full, this once."""
        if not spec.url:
            raise ValidationFailed("a webhook needs a url", [FieldError(
                "url", "required", "REQUIRED")])
        url = check_url(spec.url)
        events = check_events(spec.events if spec.events is not None else EVENTS)
        secret = spec.secret or new_secret()
        now = self.clock()
        row = Webhook(id=str(uuid.uuid4()), tenant=tenant,
                      name=(spec.name or urlsplit(url).hostname or "webhook")[:100], url=url,
                      secret=self.secrets.seal(secret), events=events,
                      enabled=True if spec.enabled is None else spec.enabled,
                      created_at=now, updated_at=now)
        with self.catalog.session() as session:
            session.add(row)
        return _webhook_view(row, secret)

    def list(self, tenant: str) -> list[WebhookView]:
        query = select(Webhook).where(Webhook.tenant == tenant).order_by(Webhook.created_at)
        with self.catalog.session() as session:
            return [self._masked(row) for row in session.scalars(query)]

    def get(self, tenant: str, webhook_id: str) -> WebhookView:
        with self.catalog.session() as session:
            return self._masked(self._row(session, tenant, webhook_id))

    def update(self, tenant: str, webhook_id: str, spec: WebhookSpec) -> WebhookView:
        """Change fields; a new secret (given or rotated) is shown in full, this once."""
        secret = spec.secret or (new_secret() if spec.rotate_secret else None)
        with self.catalog.session() as session:
            row = self._row(session, tenant, webhook_id)
            if spec.name is not None:
                row.name = spec.name
            if spec.url is not None:
                row.url = check_url(spec.url)
            if spec.events is not None:
                row.events = check_events(spec.events)
            if spec.enabled is not None:
                row.enabled = spec.enabled
            if secret is not None:
                row.secret = self.secrets.seal(secret)
            row.updated_at = self.clock()
            session.flush()
            return _webhook_view(row, secret) if secret else self._masked(row)

    def delete(self, tenant: str, webhook_id: str) -> WebhookView:
        """Remove a webhook; its pending deliveries fail (their log stays)."""
        with self.catalog.session() as session:
            row = self._row(session, tenant, webhook_id)
            view = self._masked(row)
            session.delete(row)
        return view

    def test(self, tenant: str, webhook_id: str) -> DeliveryView:
        """Send a ``ping`` now, once, and answer how it went."""
        hook = self.get(tenant, webhook_id)
        now = self.clock()
        payload = {"event": PING, "timestamp": iso(now),
                   "data": {"webhook_id": hook.id, "name": hook.name,
                            "message": "Strongbox webhook test"}}
        row = NotificationDelivery(
            id=str(uuid.uuid4()), tenant=tenant, channel=WEBHOOK, webhook_id=hook.id,
            target=hook.url, event=PING, payload=payload, status=PENDING, attempts=0,
            next_attempt_at=None, created_at=now, history=[])
        with self.catalog.session() as session:
            session.add(row)
        return self.worker.attempt_now(row.id)

    # --- the delivery log -------------------------------------------------------------

    def deliveries(self, tenant: str, *, page: int = 1, size: int = 20,
                   status: str | None = None, event: str | None = None,
                   channel: str | None = None, webhook_id: str | None = None
                   ) -> DeliveryPage:
        conditions = [NotificationDelivery.tenant == tenant]
        for column, value in ((NotificationDelivery.status, status),
                              (NotificationDelivery.event, event),
                              (NotificationDelivery.channel, channel),
                              (NotificationDelivery.webhook_id, webhook_id)):
            if value is not None:
                conditions.append(column == value)
        with self.catalog.session() as session:
            total = session.scalar(select(func.count()).select_from(NotificationDelivery)
                                   .where(*conditions)) or 0
            rows = session.scalars(
                select(NotificationDelivery).where(*conditions)
                .order_by(NotificationDelivery.created_at.desc(), NotificationDelivery.id)
                .offset(sql_offset(page, size)).limit(size))
            return DeliveryPage([delivery_view(row) for row in rows], total, page, size)


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def build_notifications(settings: Settings, catalog: Catalog, jobs: JobStore
                        ) -> NotificationService:
    """The service and its worker as the settings describe them (not started)."""
    box = SecretBox(settings.data_dir / "secret.key",
                    settings.secret_key.get_secret_value() if settings.secret_key else None)
    smtp = SmtpConfig.from_settings(settings)
    timeout = settings.notification_timeout_seconds
    worker = DeliveryWorker(
        catalog, box, WebhookSender(timeout), EmailSender(smtp) if smtp else None,
        policy=RetryPolicy(settings.notification_max_attempts,
                           settings.notification_retry_base_seconds,
                           settings.notification_retry_max_seconds),
        workers=settings.notification_workers, lease_seconds=2 * timeout + 60)
    return NotificationService(catalog, jobs, box, worker, email_configured=smtp is not None)
