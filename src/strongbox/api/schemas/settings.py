"""Seed 000 section 3: backup settings."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from strongbox.api.schemas.backups import BackupFilters, BackupOptions
from strongbox.api.schemas.common import ApiModel, BackupType
from strongbox.services.backup_settings import valid_cron

StorageBackend = Literal["filesystem", "s3", "azure"]
CompressionAlgorithm = Literal["gzip", "brotli", "zstd"]
EncryptionAlgorithm = Literal["aes-256-gcm", "aes-256-cbc"]
KeyManagement = Literal["local", "vault", "kms"]


def _cron(value: str | None) -> str | None:
    if value is not None and not valid_cron(value):
        raise PydanticCustomError("invalid_cron", "not a valid cron expression")
    return value


class FilesystemStorage(ApiModel):
    base_directory: str
    max_size_gb: float | None = None
    current_usage_gb: float


class S3Storage(ApiModel):
    bucket: str
    region: str
    prefix: str | None = None


class Storage(ApiModel):
    backend: StorageBackend
    filesystem: FilesystemStorage | None = None
    s3: S3Storage | None = None


class Retention(ApiModel):
    enabled: bool
    max_backups: int | None = None
    max_age_days: int | None = None
    max_total_size_gb: float | None = None
    auto_cleanup: bool
    cleanup_schedule: str | None = None


class CompressionSettings(ApiModel):
    enabled: bool
    algorithm: CompressionAlgorithm
    level: int


class EncryptionSettings(ApiModel):
    enabled: bool
    algorithm: EncryptionAlgorithm | None = None
    key_management: KeyManagement | None = None


class BackupSchedule(ApiModel):
    id: str = Field(alias="_id")
    name: str
    enabled: bool
    schedule: str
    type: BackupType
    filters: BackupFilters | None = None
    options: BackupOptions | None = None
    last_run: datetime | None = None
    next_run: datetime | None = None


class Scheduling(ApiModel):
    enabled: bool
    schedules: list[BackupSchedule]


class Notifications(ApiModel):
    enabled: bool
    email_recipients: list[str] | None = None
    webhook_url: str | None = None
    notify_on: list[str]


class BackupSettings(ApiModel):
    storage: Storage
    retention: Retention
    compression: CompressionSettings
    encryption: EncryptionSettings
    scheduling: Scheduling
    notifications: Notifications


# --- partial updates (PUT) ----------------------------------------------------------------


class FilesystemStoragePatch(ApiModel):
    base_directory: str | None = None
    max_size_gb: float | None = Field(None, gt=0)
    current_usage_gb: float | None = Field(None, description="Read-only; ignored")


class StoragePatch(ApiModel):
    backend: StorageBackend | None = None
    filesystem: FilesystemStoragePatch | None = None
    s3: S3Storage | None = None


class RetentionPatch(ApiModel):
    enabled: bool | None = None
    max_backups: int | None = Field(None, ge=1)
    max_age_days: int | None = Field(None, ge=1)
    max_total_size_gb: float | None = Field(None, gt=0)
    auto_cleanup: bool | None = None
    cleanup_schedule: str | None = None

    _check_cron = field_validator("cleanup_schedule")(_cron)


class CompressionPatch(ApiModel):
    enabled: bool | None = None
    algorithm: CompressionAlgorithm | None = None
    level: int | None = Field(None, ge=1, le=9)


class EncryptionPatch(ApiModel):
    enabled: bool | None = None
    algorithm: EncryptionAlgorithm | None = None
    key_management: KeyManagement | None = None


class BackupScheduleIn(ApiModel):
    id: str | None = Field(None, alias="_id")
    name: str = Field(min_length=1, max_length=100)
    enabled: bool = True
    schedule: str
    type: BackupType
    filters: BackupFilters | None = None
    options: BackupOptions | None = None

    _check_cron = field_validator("schedule")(_cron)


class SchedulingPatch(ApiModel):
    enabled: bool | None = None
    schedules: list[BackupScheduleIn] | None = None


class NotificationsPatch(ApiModel):
    enabled: bool | None = None
    email_recipients: list[str] | None = None
    webhook_url: str | None = Field(None, max_length=2000)
    notify_on: list[Literal["success", "failure", "warning"]] | None = None


class UpdateBackupSettingsRequest(ApiModel):
    storage: StoragePatch | None = None
    retention: RetentionPatch | None = None
    compression: CompressionPatch | None = None
    encryption: EncryptionPatch | None = None
    scheduling: SchedulingPatch | None = None
    notifications: NotificationsPatch | None = None


class UpdateBackupSettingsResponse(ApiModel):
    message: str
    updated_fields: list[str]
    settings: BackupSettings
    validation_warnings: list[str] | None = None
