"""Catalog tables. Every row that a tenant owns carries its ``tenant``.

The schema is created and changed only by the Alembic migrations next to this module;
``tests/api/test_catalog.py`` checks that the migrations and these models agree.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from strongbox.catalog.types import UTCDateTime, utcnow

ID = String(36)  # UUIDs in their text form, the same on every database


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(), dict[str, Any]: JSON()}


class ApiKey(Base):
    """An API key: only the SHA-256 of the token is kept; the token is shown once."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant: Mapped[str] = mapped_column(String(100), index=True)
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(20))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class Source(Base):
    """Something to protect: a SQLite database, a file tree, a PostgreSQL database."""

    __tablename__ = "sources"
    __table_args__ = (UniqueConstraint("tenant", "name", name="uq_sources_tenant_name"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant: Mapped[str] = mapped_column(String(100), index=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(20))
    config: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Job(Base):
    """A unit of asynchronous work and its last known progress (durable across restarts)."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant: Mapped[str] = mapped_column(String(100), index=True)
    kind: Mapped[str] = mapped_column(String(30))
    status: Mapped[str] = mapped_column(String(20), index=True)
    params: Mapped[dict[str, Any]]
    progress: Mapped[dict[str, Any]]
    result: Mapped[dict[str, Any] | None]
    error: Mapped[dict[str, Any] | None]
    backup_id: Mapped[str | None] = mapped_column(ID, index=True)
    created_by: Mapped[str | None] = mapped_column(String(100))
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None]


class Backup(Base):
    """The catalog's record of one backup (seed 000 ``BackupMetadata``) and its snapshot."""

    __tablename__ = "backups"
    __table_args__ = (Index("ix_backups_tenant_created", "tenant", "created_at"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant: Mapped[str] = mapped_column(String(100), index=True)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(String(500))
    type: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), index=True)
    source_id: Mapped[str | None] = mapped_column(ID)
    source_name: Mapped[str] = mapped_column(String(100))
    source_kind: Mapped[str] = mapped_column(String(20))
    job_id: Mapped[str] = mapped_column(ID)
    filters: Mapped[dict[str, Any] | None]
    options: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(100))
    completed_at: Mapped[datetime | None]
    deleted_at: Mapped[datetime | None]
    snapshot_id: Mapped[str | None] = mapped_column(String(64))
    storage_location: Mapped[str] = mapped_column(Text)
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    compressed_size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    added_bytes: Mapped[int | None] = mapped_column(BigInteger)
    contents: Mapped[dict[str, Any] | None]
    checksum: Mapped[str | None] = mapped_column(String(64))
    encryption: Mapped[dict[str, Any] | None]
    compression: Mapped[dict[str, Any] | None]
    validation: Mapped[dict[str, Any] | None]
    error_message: Mapped[str | None] = mapped_column(Text)
    # Operations (issue 5): the backup an incremental/differential one builds on, pinning,
    # labels of configuration snapshots, the schedule that made it, the last verification.
    parent_id: Mapped[str | None] = mapped_column(ID)
    protected: Mapped[bool] = mapped_column(Boolean, default=False)
    protected_reason: Mapped[str | None] = mapped_column(String(500))
    tags: Mapped[list[str] | None] = mapped_column(JSON)
    schedule_id: Mapped[str | None] = mapped_column(ID, index=True)
    verified_at: Mapped[datetime | None]


class AuditEntry(Base):
    """One mutating API call: who, what, when, and how it ended."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    tenant: Mapped[str | None] = mapped_column(String(100), index=True)
    key_id: Mapped[str | None] = mapped_column(ID)
    key_name: Mapped[str | None] = mapped_column(String(100))
    role: Mapped[str | None] = mapped_column(String(20))
    method: Mapped[str] = mapped_column(String(10))
    path: Mapped[str] = mapped_column(Text)
    action: Mapped[str | None] = mapped_column(String(100))
    status_code: Mapped[int] = mapped_column(Integer)
    result: Mapped[str] = mapped_column(String(20))
    request_id: Mapped[str | None] = mapped_column(String(36))
    client: Mapped[str | None] = mapped_column(String(100))


class TenantSettings(Base):
    """A tenant's backup settings document (seed 000 ``BackupSettings``, stored fields)."""

    __tablename__ = "tenant_settings"

    tenant: Mapped[str] = mapped_column(String(100), primary_key=True)
    document: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


# --- schedules (issue 5 item 2) -------------------------------------------------------


class Schedule(Base):
    """A recurring action (a backup, a verification, a cleanup) and its run counters."""

    __tablename__ = "schedules"
    __table_args__ = (UniqueConstraint("tenant", "name", name="uq_schedules_tenant_name"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant: Mapped[str] = mapped_column(String(100), index=True)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(String(500))
    # "api": made with /api/v1/schedules; "settings": mirrored from the tenant's settings
    # (scheduling.schedules, retention.cleanup_schedule) and changed only there.
    origin: Mapped[str] = mapped_column(String(20), default="api")  # api, settings, policy
    created_by: Mapped[str | None] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(20), default="backup")
    cron: Mapped[str] = mapped_column(String(100))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    spec: Mapped[dict[str, Any] | None]
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    backup_type: Mapped[str] = mapped_column(String(20), default="full")
    source_ids: Mapped[list[str] | None] = mapped_column(JSON)
    filters: Mapped[dict[str, Any] | None]
    options: Mapped[dict[str, Any] | None]
    retention: Mapped[dict[str, Any] | None]
    next_run_at: Mapped[datetime | None]
    last_run_at: Mapped[datetime | None]
    last_status: Mapped[str | None] = mapped_column(String(20))
    last_error: Mapped[str | None] = mapped_column(Text)
    running_since: Mapped[datetime | None]
    total_runs: Mapped[int] = mapped_column(Integer, default=0)
    successful_runs: Mapped[int] = mapped_column(Integer, default=0)
    failed_runs: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ScheduleRun(Base):
    """One firing of a schedule: when it was due, when it ran, how it ended."""

    __tablename__ = "schedule_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    schedule_id: Mapped[str] = mapped_column(ID, index=True)
    tenant: Mapped[str] = mapped_column(String(100), index=True)
    scheduled_for: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(20))
    trigger: Mapped[str] = mapped_column(String(20), default="schedule")  # or "manual"
    catch_up: Mapped[bool] = mapped_column(Boolean, default=False)
    job_ids: Mapped[list[str] | None] = mapped_column(JSON)
    backup_ids: Mapped[list[str] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)


# --- cleanup (issue 5 item 3) ---------------------------------------------------------


class CleanupPlan(Base):
    """A cleanup dry run's list of backups; executing it deletes exactly these."""

    __tablename__ = "cleanup_plans"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant: Mapped[str] = mapped_column(String(100), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    created_by: Mapped[str | None] = mapped_column(String(100))
    criteria: Mapped[dict[str, Any]]
    backup_ids: Mapped[list[str]] = mapped_column(JSON)
    estimated_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    executed_at: Mapped[datetime | None]
    result: Mapped[dict[str, Any] | None]
    # Every backup considered, with the reasons it is kept or deleted; the execute job.
    analysis: Mapped[dict[str, Any] | None]
    job_id: Mapped[str | None] = mapped_column(ID)


# --- notifications (issue 5 item 7) ---------------------------------------------------


class Webhook(Base):
    """A URL told about backup and restore events, each body signed with its secret."""

    __tablename__ = "webhooks"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant: Mapped[str] = mapped_column(String(100), index=True)
    name: Mapped[str] = mapped_column(String(100))
    url: Mapped[str] = mapped_column(Text)
    secret: Mapped[str] = mapped_column(String(200))
    events: Mapped[list[str]] = mapped_column(JSON)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class NotificationDelivery(Base):
    """One notification to one target (a webhook or an e-mail address) and its attempts."""

    __tablename__ = "notification_deliveries"
    __table_args__ = (Index("ix_deliveries_tenant_created", "tenant", "created_at"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant: Mapped[str] = mapped_column(String(100))
    channel: Mapped[str] = mapped_column(String(20))
    webhook_id: Mapped[str | None] = mapped_column(ID, index=True)
    target: Mapped[str] = mapped_column(Text)
    event: Mapped[str] = mapped_column(String(50))
    payload: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(20), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]
    last_attempt_at: Mapped[datetime | None]
    # One entry per try: {at, status_code, error, duration_ms}, the newest last.
    history: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)


# --- disaster recovery (issue 5 item 6) -----------------------------------------------


class DrTest(Base):
    """A disaster-recovery test: every source restored into scratch, verified, timed."""

    __tablename__ = "dr_tests"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant: Mapped[str] = mapped_column(String(100), index=True)
    job_id: Mapped[str | None] = mapped_column(ID)
    status: Mapped[str] = mapped_column(String(20))
    passed: Mapped[bool | None] = mapped_column(Boolean)  # every tested source verified
    created_by: Mapped[str | None] = mapped_column(String(100))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None]
    duration_seconds: Mapped[float | None] = mapped_column(Float)
    results: Mapped[dict[str, Any] | None]
