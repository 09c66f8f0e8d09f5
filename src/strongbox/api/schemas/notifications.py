"""Webhooks and the notification delivery log (seed 001 "Webhooks"; extension to seed 000)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field

from strongbox.api.schemas.common import ApiModel, Pagination


class WebhookEvent(StrEnum):
    BACKUP_STARTED = "backup.started"
    BACKUP_COMPLETED = "backup.completed"
    BACKUP_FAILED = "backup.failed"
    BACKUP_VERIFIED = "backup.verified"
    RESTORE_STARTED = "restore.started"
    RESTORE_COMPLETED = "restore.completed"
    RESTORE_FAILED = "restore.failed"


SECRET = Field(None, min_length=16, max_length=64, pattern=r"^[\x21-\x7e]+$",
               description="HMAC-SHA256 key for X-Strongbox-Signature (16-64 printable ASCII "
                           "characters); omitted: one is generated. Shown only in this "
                           "answer.")


class WebhookCreate(ApiModel):
    url: str = Field(min_length=1, max_length=2000, description="http:// or https:// URL")
    name: str | None = Field(None, min_length=1, max_length=100,
                             description="default: the URL's host")
    events: list[WebhookEvent] | None = Field(
        None, min_length=1, description="events to send; default: all seven")
    secret: str | None = SECRET
    enabled: bool = True


class WebhookUpdate(ApiModel):
    url: str | None = Field(None, min_length=1, max_length=2000)
    name: str | None = Field(None, min_length=1, max_length=100)
    events: list[WebhookEvent] | None = Field(None, min_length=1)
    enabled: bool | None = None
    secret: str | None = SECRET
    rotate_secret: bool = Field(False, description="make a new secret (shown in this answer)")


class WebhookResponse(ApiModel):
    id: str = Field(alias="_id")
    name: str
    url: str
    events: list[str]
    enabled: bool
    secret: str = Field(description="masked (e.g. whsec_****Ab3x), except in the answer "
                                    "that created or changed it")
    created_at: datetime
    updated_at: datetime
    message: str | None = None


class WebhookList(ApiModel):
    items: list[WebhookResponse]
    total: int


class DeleteWebhookResponse(ApiModel):
    message: str
    webhook_id: str
    deleted_at: datetime


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class DeliveryChannel(StrEnum):
    WEBHOOK = "webhook"
    EMAIL = "email"


class DeliveryAttempt(ApiModel):
    attempt: int
    at: datetime
    status_code: int | None = None
    error: str | None = None
    duration_ms: float | None = None


class DeliveryResponse(ApiModel):
    id: str = Field(alias="_id")
    channel: DeliveryChannel
    webhook_id: str | None = None
    target: str = Field(description="the URL or e-mail address")
    event: str
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None = None
    last_error: str | None = None
    next_attempt_at: datetime | None = None
    last_attempt_at: datetime | None = None
    delivered_at: datetime | None = None
    created_at: datetime
    payload: dict[str, Any]
    history: list[DeliveryAttempt]


class DeliveryPageResponse(ApiModel):
    items: list[DeliveryResponse]
    pagination: Pagination
