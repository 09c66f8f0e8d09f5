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


# --- GET /api/v1/statistics/overview (seeds 001 and 004; an extension) ----------------------


class OverviewWindow(ApiModel):
    start: datetime
    end: datetime
    days: int


class OverviewSummary(ApiModel):
    total_backups: int
    successful_backups: int
    failed_backups: int
    success_rate: float
    total_size_bytes: int
    average_size_bytes: float
    average_duration_seconds: float
    storage_used_bytes: int
    storage_growth_bytes_per_day: float


class OverviewGroup(ApiModel):
    count: int
    successful: int
    failed: int
    success_rate: float
    total_size_bytes: int
    average_size_bytes: float
    average_duration_seconds: float


class OverviewDay(ApiModel):
    date: str
    backups_created: int
    successful: int
    failed: int
    total_size_bytes: int
    added_bytes: int


class GrowthPoint(ApiModel):
    date: str
    cumulative_added_bytes: int


class StorageGrowth(ApiModel):
    added_bytes: int
    bytes_per_day: float
    bytes_per_week: float
    series: list[GrowthPoint]


class StatisticsOverview(ApiModel):
    window: OverviewWindow
    summary: OverviewSummary
    by_type: dict[str, OverviewGroup]
    by_status: dict[str, int]
    timeline: list[OverviewDay]
    storage_growth: StorageGrowth
