"""E-mail notifications over SMTP (``smtplib`` and ``email.message``).

The server's SMTP account comes from the settings (``STRONGBOX_SMTP_*``); who gets which
events is each tenant's ``notifications`` settings block. Without ``smtp_host`` nothing is
sent and each skipped notification says so in the log.
"""

from __future__ import annotations

import json
import smtplib
import socket
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from strongbox.services.delivery_attempt import Outcome
from strongbox.settings import Settings

SUBJECTS = {
    "backup.started": "Backup started",
    "backup.completed": "Backup completed",
    "backup.failed": "Backup FAILED",
    "backup.verified": "Backup verified",
    "restore.started": "Restore started",
    "restore.completed": "Restore completed",
    "restore.failed": "Restore FAILED",
    "ping": "Test notification",
}


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    security: str  # starttls | ssl | none
    username: str
    password: str
    sender: str
    timeout: float

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpConfig | None:
        if not settings.smtp_host:
            return None
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else ""
        sender = settings.smtp_from or f"strongbox@{socket.getfqdn()}"
        return cls(settings.smtp_host, settings.smtp_port, settings.smtp_security,
                   settings.smtp_username, password, sender,
                   settings.notification_timeout_seconds)


def compose(sender: str, recipient: str, payload: dict[str, Any],
            delivery_id: str) -> EmailMessage:
    """A plain-text mail: a subject a person can triage by, then every field."""
    event = str(payload.get("event", "notification"))
    data: dict[str, Any] = payload.get("data") or {}
    about = data.get("backup_name") or data.get("source_name") or data.get("backup_id") or ""
    if data.get("status") == "failed" and event == "backup.verified":
        title = "Backup verification FAILED"
    else:
        title = SUBJECTS.get(event, event)
    message = EmailMessage()
    message["Subject"] = f"[Strongbox] {title}" + (f": {about}" if about else "")
    message["From"] = sender
    message["To"] = recipient
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(idstring=delivery_id.replace("-", ""))
    message["X-Strongbox-Event"] = event
    message["X-Strongbox-Delivery"] = delivery_id
    lines = [f"{title}", "", f"event:     {event}", f"timestamp: {payload.get('timestamp')}"]
    lines += [f"{key}: {_text(value)}" for key, value in data.items()]
    lines += ["", "The full notification (JSON):", json.dumps(payload, indent=2)]
    message.set_content("\n".join(lines) + "\n")
    return message


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


class EmailSender:
    def __init__(self, config: SmtpConfig) -> None:
        self.config = config

    def send(self, recipient: str, payload: dict[str, Any], delivery_id: str) -> Outcome:
        message = compose(self.config.sender, recipient, payload, delivery_id)
        try:
            with self._connect() as smtp:
                if self.config.username:
                    smtp.login(self.config.username, self.config.password)
                smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            error = f"recipient refused: {exc.recipients}"
            if all(code >= 500 for code in codes):
                return Outcome.permanent(error, max(codes))
            return Outcome.transient(error, max(codes, default=None))
        except smtplib.SMTPResponseException as exc:
            error = f"SMTP {exc.smtp_code}: {_decode(exc.smtp_error)}"
            # 5xx is a definite no (bad login, mailbox unknown); 4xx asks to try later.
            if exc.smtp_code >= 500:
                return Outcome.permanent(error, exc.smtp_code)
            return Outcome.transient(error, exc.smtp_code)
        except smtplib.SMTPNotSupportedError as exc:  # e.g. no STARTTLS: a setting to fix
            return Outcome.permanent(f"the SMTP server does not support this: {exc}")
        except (smtplib.SMTPException, OSError) as exc:
            return Outcome.transient(f"{type(exc).__name__}: {exc}")
        return Outcome.ok(250)

    def _connect(self) -> smtplib.SMTP:
        config = self.config
        if config.security == "ssl":
            return smtplib.SMTP_SSL(config.host, config.port, timeout=config.timeout,
                                    context=ssl.create_default_context())
        smtp = smtplib.SMTP(config.host, config.port, timeout=config.timeout)
        if config.security == "starttls":
            try:
                smtp.starttls(context=ssl.create_default_context())
            except BaseException:
                smtp.close()
                raise
        return smtp


def _decode(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value
