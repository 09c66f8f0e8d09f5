"""Catalog tables. Every row that a tenant owns carries its ``tenant``.

The schema is created and changed only by the Alembic migrations next to this module;
``tests/api/test_catalog.py`` checks that the migrations and these models agree.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, BigInteger, Boolean, Index, Integer, String, Text, UniqueConstraint
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
