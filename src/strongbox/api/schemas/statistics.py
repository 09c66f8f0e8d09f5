"""Seed 000 section 4.1: backup statistics."""

from __future__ import annotations

from datetime import datetime

from strongbox.api.schemas.common import ApiModel, BackupStatus, BackupType


class StatisticsSummary(ApiModel):
    total_backups: int
    total_size_bytes: int
    average_size_bytes: float
    largest_backup_bytes: int
    oldest_backup: datetime | None = None
    newest_backup: datetime | None = None
    success_rate: float


class TypeStatistics(ApiModel):
    count: int
    total_size_bytes: int
    average_size_bytes: float


class TimelineData(ApiModel):
    date: str
    backups_created: int
    backups_deleted: int
    total_size_bytes: int
    restores_performed: int


class Timeline(ApiModel):
    period: str
    data: list[TimelineData]


class StorageUsage(ApiModel):
    used_bytes: int
    available_bytes: int | None = None
    quota_bytes: int | None = None
    percentage_used: float | None = None


class RestoreStatistics(ApiModel):
    total_restores: int
    successful_restores: int
    failed_restores: int
    average_restore_time_seconds: float


class BackupStatistics(ApiModel):
    summary: StatisticsSummary
    by_type: dict[BackupType, TypeStatistics]
    by_status: dict[BackupStatus, int]
    timeline: Timeline
    storage_usage: StorageUsage
    restore_statistics: RestoreStatistics
