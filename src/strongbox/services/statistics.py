"""Backup statistics (seed 000 section 4.1) for one tenant.

``summary``, ``by_type`` and ``by_status`` cover the backups that exist (created within
``from``/``to`` when given); ``timeline`` buckets created and deleted backups and restores
by ``period`` over the window (default: the last 30 days, 12 weeks, 12 months or 5 years);
``storage_usage`` is the repository's real size on disk, shared by all tenants.

:class:`OverviewStatistics` adds what seeds 001 and 004 show on a dashboard (success rate
and average duration by type, a daily timeline, storage growth) without changing seed
000's response.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from strongbox.catalog.database import Catalog
from strongbox.catalog.models import Backup, Job
from strongbox.catalog.types import utcnow
from strongbox.services.backup_settings import BackupSettingsService
from strongbox.services.backups import BACKUP_STATUSES, BACKUP_TYPES
from strongbox.services.errors import FieldError, InvalidDateRangeFields, ValidationFailed
from strongbox.services.storage import RepositoryProvider

PERIODS = ("day", "week", "month", "year")
DEFAULT_BUCKETS = {"day": 30, "week": 12, "month": 12, "year": 5}


def bucket_start(moment: datetime, period: str) -> datetime:
    day = moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return day
    if period == "week":
        return day - timedelta(days=day.weekday())
    if period == "month":
        return day.replace(day=1)
    return day.replace(month=1, day=1)


def next_bucket(start: datetime, period: str) -> datetime:
    if period == "day":
        return start + timedelta(days=1)
    if period == "week":
        return start + timedelta(weeks=1)
    if period == "month":
        return start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
    return start.replace(year=start.year + 1)


def _label(start: datetime, period: str) -> str:
    if period == "month":
        return start.strftime("%Y-%m")
    if period == "year":
        return start.strftime("%Y")
    return start.strftime("%Y-%m-%d")


@dataclass
class _Window:
    start: datetime
    end: datetime


class StatisticsService:
    def __init__(self, catalog: Catalog, storage: RepositoryProvider,
                 settings: BackupSettingsService) -> None:
        self.catalog = catalog
        self.storage = storage
        self.settings = settings

    def compute(self, tenant: str, period: str = "month", start: datetime | None = None,
                end: datetime | None = None) -> dict[str, Any]:
        if period not in PERIODS:
            raise ValidationFailed("invalid period", [FieldError(
                "period", "period must be day, week, month or year", "INVALID_VALUE", period)])
        if start and end and start >= end:
            raise InvalidDateRangeFields("invalid date range", [FieldError(
                "from", "from must be before to", "INVALID_DATE_RANGE", start.isoformat())])
        with self.catalog.session() as session:
            backups = list(session.scalars(select(Backup).where(Backup.tenant == tenant)))
            restores = [job for job in session.scalars(
                select(Job).where(Job.tenant == tenant, Job.kind == "restore"))
                if not job.params.get("dry_run")]  # a dry run restored nothing
        existing = [b for b in backups if b.deleted_at is None
                    and (start is None or b.created_at >= start)
                    and (end is None or b.created_at <= end)]
        window_end = end or utcnow()
        window_start = start or self._default_start(window_end, period)
        return {
            "summary": self._summary(existing),
            "by_type": self._by_type(existing),
            "by_status": {status: sum(1 for b in existing if b.status == status)
                          for status in BACKUP_STATUSES},
            "timeline": {"period": period,
                         "data": self._timeline(backups, restores, period,
                                                _Window(window_start, window_end))},
            "storage_usage": self._storage(tenant),
            "restore_statistics": self._restores(restores),
        }

    @staticmethod
    def _default_start(end: datetime, period: str) -> datetime:
        start = bucket_start(end, period)
        for _ in range(DEFAULT_BUCKETS[period] - 1):
            try:
                start = bucket_start(start - timedelta(days=1), period)
            except OverflowError:  # an end date in year 1: the window starts at the earliest date
                break
        return start

    @staticmethod
    def _summary(backups: list[Backup]) -> dict[str, Any]:
        sizes = [b.size_bytes for b in backups]
        finished = [b for b in backups if b.status in ("completed", "failed", "corrupted")]
        completed = sum(1 for b in finished if b.status == "completed")
        summary: dict[str, Any] = {
            "total_backups": len(backups),
            "total_size_bytes": sum(sizes),
            "average_size_bytes": round(sum(sizes) / len(sizes), 1) if sizes else 0,
            "largest_backup_bytes": max(sizes, default=0),
            "success_rate": round(completed / len(finished) * 100, 2) if finished else 0.0,
        }
        if backups:
            summary["oldest_backup"] = min(b.created_at for b in backups)
            summary["newest_backup"] = max(b.created_at for b in backups)
        return summary

    @staticmethod
    def _by_type(backups: list[Backup]) -> dict[str, Any]:
        result = {}
        for kind in BACKUP_TYPES:
            sizes = [b.size_bytes for b in backups if b.type == kind]
            result[kind] = {"count": len(sizes), "total_size_bytes": sum(sizes),
                            "average_size_bytes": round(sum(sizes) / len(sizes), 1)
                            if sizes else 0}
        return result

    @staticmethod
    def _timeline(backups: list[Backup], restores: list[Job], period: str,
                  window: _Window) -> list[dict[str, Any]]:
        data = []
        start = bucket_start(window.start, period)
        while start <= window.end:
            end = next_bucket(start, period)

            def within(moment: datetime | None, lo: datetime = start,
                       hi: datetime = end) -> bool:
                return moment is not None and lo <= moment < hi

            created = [b for b in backups if within(b.created_at)]
            data.append({
                "date": _label(start, period),
                "backups_created": len(created),
                "backups_deleted": sum(1 for b in backups if within(b.deleted_at)),
                "total_size_bytes": sum(b.size_bytes for b in created),
                "restores_performed": sum(1 for r in restores if within(r.completed_at)),
            })
            start = end
        return data

    def _storage(self, tenant: str) -> dict[str, Any]:
        used = self.storage.used_bytes()
        usage: dict[str, Any] = {"used_bytes": used}
        available = self.storage.available_bytes()
        if available is not None:
            usage["available_bytes"] = available
        quota = self.settings.quota_bytes(tenant)
        if quota:
            usage["quota_bytes"] = quota
            usage["percentage_used"] = round(used / quota * 100, 2)
        elif available is not None and used + available:
            usage["percentage_used"] = round(used / (used + available) * 100, 2)
        return usage

    @staticmethod
    def _restores(restores: list[Job]) -> dict[str, Any]:
        finished = [r for r in restores if r.status in ("completed", "failed")]
        durations = [(r.completed_at - r.started_at).total_seconds() for r in finished
                     if r.completed_at and r.started_at]
        return {
            "total_restores": len(finished),
            "successful_restores": sum(1 for r in finished if r.status == "completed"),
            "failed_restores": sum(1 for r in finished if r.status == "failed"),
            "average_restore_time_seconds": round(sum(durations) / len(durations), 3)
            if durations else 0.0,
        }


# --- the dashboard overview (seeds 001 and 004 statistics; GET /api/v1/statistics/overview) ---

MAX_OVERVIEW_DAYS = 366


def _rate(successful: int, failed: int) -> float:
    finished = successful + failed
    return round(successful / finished * 100, 2) if finished else 0.0


def _mean(values: list[float]) -> float:
    return round(sum(values) / len(values), 3) if values else 0.0


@dataclass
class _Activity:
    """One backup as the overview counts it."""

    type: str
    status: str
    created_at: datetime
    size_bytes: int
    added_bytes: int
    duration: float | None


class OverviewStatistics:
    """Backup activity over the last ``days`` days: what seed 000's statistics do not
    cover. Every backup created in the window counts, deleted ones too (they happened);
    ``duration`` is its job's run time (start to end, queueing left out)."""

    def __init__(self, catalog: Catalog, storage: RepositoryProvider) -> None:
        self.catalog = catalog
        self.storage = storage

    def compute(self, tenant: str, days: int = 30, now: datetime | None = None
                ) -> dict[str, Any]:
        if not 1 <= days <= MAX_OVERVIEW_DAYS:
            raise ValidationFailed("invalid window", [FieldError(
                "days", f"days must be between 1 and {MAX_OVERVIEW_DAYS}", "OUT_OF_RANGE",
                days)])
        end = now or utcnow()
        first_day = bucket_start(end, "day") - timedelta(days=days - 1)
        activity = self._activity(tenant, first_day, end)
        return {
            "window": {"start": first_day, "end": end, "days": days},
            "summary": self._summary(activity, days),
            "by_type": self._grouped(activity, BACKUP_TYPES, lambda a: a.type),
            "by_status": {s: sum(1 for a in activity if a.status == s)
                          for s in sorted({*BACKUP_STATUSES, *(a.status for a in activity)})},
            "timeline": self._timeline(activity, first_day, days),
            "storage_growth": self._growth(activity, first_day, days),
        }

    def _activity(self, tenant: str, since: datetime, until: datetime) -> list[_Activity]:
        with self.catalog.session() as session:
            rows = list(session.execute(
                select(Backup.type, Backup.status, Backup.created_at, Backup.size_bytes,
                       Backup.added_bytes, Job.started_at, Job.completed_at)
                .join(Job, Job.id == Backup.job_id, isouter=True)
                .where(Backup.tenant == tenant, Backup.created_at >= since,
                       Backup.created_at <= until)))
        result = []
        for row in rows:
            duration = None
            if row.started_at and row.completed_at and row.status != "failed":
                duration = (row.completed_at - row.started_at).total_seconds()
            result.append(_Activity(row.type, row.status, row.created_at, row.size_bytes or 0,
                                    row.added_bytes or 0, duration))
        return result

    @staticmethod
    def _counts(items: list[_Activity]) -> dict[str, Any]:
        successful = sum(1 for a in items if a.status == "completed")
        failed = sum(1 for a in items if a.status in ("failed", "corrupted"))
        sizes = [a.size_bytes for a in items if a.status == "completed"]
        return {
            "count": len(items), "successful": successful, "failed": failed,
            "success_rate": _rate(successful, failed),
            "total_size_bytes": sum(sizes),
            "average_size_bytes": round(sum(sizes) / len(sizes), 1) if sizes else 0,
            "average_duration_seconds": _mean([a.duration for a in items
                                               if a.duration is not None]),
        }

    def _summary(self, activity: list[_Activity], days: int) -> dict[str, Any]:
        counts = self._counts(activity)
        added = sum(a.added_bytes for a in activity if a.status == "completed")
        return {
            "total_backups": counts["count"], "successful_backups": counts["successful"],
            "failed_backups": counts["failed"], "success_rate": counts["success_rate"],
            "total_size_bytes": counts["total_size_bytes"],
            "average_size_bytes": counts["average_size_bytes"],
            "average_duration_seconds": counts["average_duration_seconds"],
            "storage_used_bytes": self.storage.used_bytes(),
            "storage_growth_bytes_per_day": round(added / days, 1),
        }

    def _grouped(self, activity: list[_Activity], known: tuple[str, ...],
                 key: Callable[[_Activity], str]) -> dict[str, Any]:
        names = sorted({*known, *(key(a) for a in activity)})
        return {name: self._counts([a for a in activity if key(a) == name])
                for name in names}

    @staticmethod
    def _timeline(activity: list[_Activity], first_day: datetime, days: int
                  ) -> list[dict[str, Any]]:
        buckets: dict[datetime, list[_Activity]] = {
            first_day + timedelta(days=i): [] for i in range(days)}
        for item in activity:
            day = bucket_start(item.created_at, "day")
            if day in buckets:
                buckets[day].append(item)
        data = []
        for day in sorted(buckets):
            items = buckets[day]
            data.append({
                "date": day.strftime("%Y-%m-%d"),
                "backups_created": len(items),
                "successful": sum(1 for a in items if a.status == "completed"),
                "failed": sum(1 for a in items if a.status in ("failed", "corrupted")),
                "total_size_bytes": sum(a.size_bytes for a in items
                                        if a.status == "completed"),
                "added_bytes": sum(a.added_bytes for a in items if a.status == "completed"),
            })
        return data

    @staticmethod
    def _growth(activity: list[_Activity], first_day: datetime, days: int) -> dict[str, Any]:
        """New data the backups wrote into the repository (after deduplication and
        compression); space freed by prune is not subtracted."""
        daily: dict[datetime, int] = defaultdict(int)
        for item in activity:
            if item.status == "completed":
                daily[bucket_start(item.created_at, "day")] += item.added_bytes
        total = 0
        series = []
        for i in range(days):
            day = first_day + timedelta(days=i)
            total += daily.get(day, 0)
            series.append({"date": day.strftime("%Y-%m-%d"), "cumulative_added_bytes": total})
        return {"added_bytes": total, "bytes_per_day": round(total / days, 1),
                "bytes_per_week": round(total / days * 7, 1), "series": series}
