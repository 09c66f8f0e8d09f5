"""The health of a Strongbox server as one tenant sees it (seed 004 ``/status``, seed 002
``/backups/status``), and the numbers ``/metrics`` exports.

Components: the scheduler (the ``schedules`` table, and the live scheduler object when
the server runs one), storage (repository reachable, used and free bytes, fill level),
encryption (is the repository encrypted, is its key available), and the job executor.
Alerts come from the catalog: a source whose last backup failed, a schedule that missed
its run, storage above the warning threshold, backups verification marked ``corrupted``.
The overall status is ``unhealthy`` if any alert is critical, ``degraded`` if any is a
warning, else ``healthy``.

Time comes from an injectable clock, so tests decide what "in the past" means.
"""

from __future__ import annotations

import shutil
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import select

from strongbox.catalog.database import Catalog
from strongbox.catalog.models import Backup, Job, Schedule
from strongbox.catalog.types import utcnow
from strongbox.jobs.store import ACTIVE, FINAL
from strongbox.repository.backend import open_backend
from strongbox.services.sources import SourceService
from strongbox.services.storage import RepositoryProvider

Clock = Callable[[], datetime]

INFO, WARNING, CRITICAL = "info", "warning", "critical"
HEALTHY, DEGRADED, UNHEALTHY = "healthy", "degraded", "unhealthy"
FINISHED_BACKUP = ("completed", "failed", "corrupted")
ALGORITHM = "AES-256-GCM"


class QuotaSource(Protocol):
    """What the status needs from the tenant's settings (BackupSettingsService has it)."""

    def quota_bytes(self, tenant: str) -> int | None: ...


@dataclass(frozen=True)
class Alert:
    level: str
    code: str
    message: str
    source_id: str | None = None
    schedule_id: str | None = None
    backup_id: str | None = None


@dataclass
class Thresholds:
    storage_warning_percent: float = 80.0
    storage_critical_percent: float = 95.0
    schedule_grace_seconds: float = 600.0


@dataclass
class SourceHealth:
    source_id: str
    name: str
    kind: str
    last_backup_at: datetime | None = None
    last_backup_status: str | None = None
    last_backup_id: str | None = None
    last_successful_backup_at: datetime | None = None
    last_successful_backup_id: str | None = None


@dataclass
class SystemStatus:
    status: str
    checked_at: datetime
    components: dict[str, dict[str, Any]]
    sources: list[SourceHealth]
    alerts: list[Alert]
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass
class MetricsData:
    """Catalog numbers for ``/metrics`` (all tenants, or one)."""

    backups_by_status: dict[tuple[str, str], int]
    last_success: dict[tuple[str, str, str], float]  # (tenant, source id, name) → epoch s
    job_durations: list[tuple[str, float]]  # (kind, seconds) of finished jobs
    active_jobs: dict[tuple[str, str], int]  # (kind, status) → count
    repository_used_bytes: int
    repository_free_bytes: int | None


def overall(alerts: list[Alert]) -> str:
    levels = {a.level for a in alerts}
    if CRITICAL in levels:
        return UNHEALTHY
    return DEGRADED if WARNING in levels else HEALTHY


def probe_alive(obj: Any) -> bool | None:
    """Whether a service object (the scheduler) says it is running; None if it cannot
    tell. Tries the usual spellings so it does not depend on one implementation."""
    for name in ("is_alive", "is_running", "alive", "running"):
        value = getattr(obj, name, None)
        if callable(value):
            try:
                return bool(value())
            except Exception:
                return False
        if isinstance(value, bool):
            return value
    thread = getattr(obj, "_thread", None) or getattr(obj, "thread", None)
    if thread is not None and callable(getattr(thread, "is_alive", None)):
        return bool(thread.is_alive())
    return None


class StatusService:
    def __init__(self, catalog: Catalog, storage: RepositoryProvider, sources: SourceService,
                 quotas: QuotaSource, *, executor: Any = None,
                 thresholds: Thresholds | None = None, workers: int = 1,
                 clock: Clock = utcnow) -> None:
        self.catalog = catalog
        self.storage = storage
        self.sources = sources
        self.quotas = quotas
        self.thresholds = thresholds or Thresholds()
        self.workers = workers
        self.clock = clock
        self.executor = executor

    # --- /api/v1/status -----------------------------------------------------------------------

    def status(self, tenant: str, scheduler: Any = None) -> SystemStatus:
        """``scheduler``: the server's live scheduler object, if it runs one."""
        now = self.clock()
        alerts: list[Alert] = []
        with self.catalog.session() as session:
            backups = list(session.execute(
                select(Backup.id, Backup.source_id, Backup.source_name, Backup.source_kind,
                       Backup.status, Backup.created_at, Backup.completed_at,
                       Backup.error_message, Backup.name, Backup.verified_at)
                .where(Backup.tenant == tenant, Backup.deleted_at.is_(None))))
            schedules = list(session.scalars(select(Schedule).where(Schedule.tenant == tenant)))
            schedule_rows = [(s.id, s.name, s.enabled, s.next_run_at, s.last_run_at,
                              s.last_status, s.running_since) for s in schedules]
            jobs = list(session.execute(select(Job.kind, Job.status).where(
                Job.tenant == tenant, Job.status.in_(ACTIVE))))
        sources = self._sources(tenant, backups, alerts)
        components = {
            "scheduler": self._scheduler(scheduler, schedule_rows, now, alerts),
            "storage": self._storage(tenant, alerts),
            "encryption": self._encryption(alerts),
            "jobs": self._jobs(jobs, alerts),
        }
        for row in backups:
            if row.status == "corrupted":
                alerts.append(Alert(WARNING, "BACKUP_CORRUPTED",
                                    f"backup {row.name!r} of {row.source_name!r} failed "
                                    "verification and is marked corrupted",
                                    source_id=row.source_id, backup_id=row.id))
        completed = [r.completed_at for r in backups
                     if r.status == "completed" and r.completed_at is not None]
        enabled_next = [r[3] for r in schedule_rows if r[2] and r[3] is not None]
        summary = {
            "total_backups": len(backups),
            "completed_backups": sum(1 for r in backups if r.status == "completed"),
            "failed_backups": sum(1 for r in backups if r.status == "failed"),
            "corrupted_backups": sum(1 for r in backups if r.status == "corrupted"),
            "verified_backups": sum(1 for r in backups if r.verified_at is not None),
            "last_successful_backup": max(completed, default=None),
            "next_scheduled_backup": min(enabled_next, default=None),
            "storage_used_bytes": components["storage"].get("used_bytes"),
        }
        order = {CRITICAL: 0, WARNING: 1, INFO: 2}
        alerts.sort(key=lambda a: order[a.level])
        return SystemStatus(overall(alerts), now, components, sources, alerts, summary)

    def _sources(self, tenant: str, backups: list[Any], alerts: list[Alert]
                 ) -> list[SourceHealth]:
        by_source: dict[str, list[Any]] = defaultdict(list)
        for row in backups:
            if row.source_id:
                by_source[row.source_id].append(row)
        result = []
        for source in self.sources.list(tenant):
            health = SourceHealth(source.id, source.name, source.kind)
            rows = sorted(by_source.get(source.id, []), key=lambda r: r.created_at)
            finished = [r for r in rows if r.status in FINISHED_BACKUP]
            if rows:
                health.last_backup_at = rows[-1].created_at
                health.last_backup_status = rows[-1].status
                health.last_backup_id = rows[-1].id
            good = [r for r in rows if r.status == "completed"]
            if good:
                last = max(good, key=lambda r: r.completed_at or r.created_at)
                health.last_successful_backup_at = last.completed_at
                health.last_successful_backup_id = last.id
            if finished and finished[-1].status == "failed":
                failed = finished[-1]
                alerts.append(Alert(WARNING, "BACKUP_FAILED",
                                    f"the last backup of {source.name!r} failed: "
                                    f"{failed.error_message or 'no reason recorded'}",
                                    source_id=source.id, backup_id=failed.id))
            if not rows:
                alerts.append(Alert(INFO, "NO_BACKUP", f"{source.name!r} has no backup yet",
                                    source_id=source.id))
            result.append(health)
        return result

    def _scheduler(self, scheduler: Any, rows: list[tuple[Any, ...]], now: datetime,
                   alerts: list[Alert]) -> dict[str, Any]:
        enabled = [r for r in rows if r[2]]
        alive = probe_alive(scheduler) if scheduler is not None else False
        grace = timedelta(seconds=self.thresholds.schedule_grace_seconds)
        missed = 0
        for sid, name, _enabled, next_run, _last, last_status, running_since in enabled:
            if next_run is not None and running_since is None and next_run < now - grace:
                missed += 1
                alerts.append(Alert(WARNING, "SCHEDULE_MISSED",
                                    f"schedule {name!r} was due at {next_run.isoformat()} "
                                    "and has not run", schedule_id=sid))
            if last_status == "failed":
                alerts.append(Alert(WARNING, "SCHEDULE_FAILED",
                                    f"the last run of schedule {name!r} failed",
                                    schedule_id=sid))
        if alive:
            status = "running"
        elif alive is None:
            status = "unknown"
        else:
            status = "stopped"
            if enabled:
                alerts.append(Alert(CRITICAL, "SCHEDULER_NOT_RUNNING",
                                    f"{len(enabled)} schedule(s) are enabled but the "
                                    "scheduler is not running: they will not fire"))
        next_runs = [r[3] for r in enabled if r[3] is not None]
        last_runs = [r[4] for r in rows if r[4] is not None]
        return {"status": status, "healthy": status != "stopped" or not enabled,
                "total_schedules": len(rows), "enabled_schedules": len(enabled),
                "missed_schedules": missed, "next_run": min(next_runs, default=None),
                "last_run": max(last_runs, default=None)}

    def _storage(self, tenant: str, alerts: list[Alert]) -> dict[str, Any]:
        location = self.storage.location
        doc: dict[str, Any] = {"location": location}
        try:
            reachable = open_backend(location).is_initialised()
        except Exception:
            reachable = False
        doc["reachable"] = reachable
        if not reachable:
            doc.update(status="unreachable", healthy=False)
            alerts.append(Alert(CRITICAL, "STORAGE_UNREACHABLE",
                                f"the repository at {location} cannot be reached"))
            return doc
        used = self.storage.used_bytes()
        doc["used_bytes"] = used
        try:
            disk = shutil.disk_usage(location)
            doc.update(available_bytes=disk.free, total_bytes=disk.total)
        except OSError:
            disk = None
        quota = self.quotas.quota_bytes(tenant)
        percent: float | None = None
        if quota:
            doc["quota_bytes"] = quota
            percent = used / quota * 100
        elif disk is not None and disk.total:
            percent = (disk.total - disk.free) / disk.total * 100
        limits = self.thresholds
        doc["warning_percent"] = limits.storage_warning_percent
        doc["critical_percent"] = limits.storage_critical_percent
        status = "healthy"
        if percent is not None:
            doc["percentage_used"] = round(percent, 2)
            what = "the storage quota" if quota else "the repository's disk"
            if percent >= limits.storage_critical_percent:
                status = "critical"
                alerts.append(Alert(CRITICAL, "STORAGE_CRITICAL",
                                    f"{what} is {percent:.1f}% full (critical at "
                                    f"{limits.storage_critical_percent:g}%)"))
            elif percent >= limits.storage_warning_percent:
                status = "warning"
                alerts.append(Alert(WARNING, "STORAGE_HIGH",
                                    f"{what} is {percent:.1f}% full (warning at "
                                    f"{limits.storage_warning_percent:g}%)"))
        doc.update(status=status, healthy=status == "healthy")
        return doc

    def _encryption(self, alerts: list[Alert]) -> dict[str, Any]:
        try:
            info = self.storage.info
            backend = open_backend(self.storage.location)
            available = (not info.encrypted or (
                info.key_id is not None and backend.exists(f"keys/{info.key_id}")))
        except Exception as exc:
            alerts.append(Alert(CRITICAL, "ENCRYPTION_KEY_UNAVAILABLE",
                                f"the repository cannot be opened: {exc}"))
            return {"status": "error", "encrypted": None, "key_available": False,
                    "healthy": False}
        doc: dict[str, Any] = {"status": "enabled" if info.encrypted else "disabled",
                               "encrypted": info.encrypted, "key_available": available,
                               "healthy": available}
        if info.encrypted:
            doc["algorithm"] = ALGORITHM
        else:
            alerts.append(Alert(INFO, "ENCRYPTION_DISABLED",
                                "the repository is not encrypted"))
        if not available:
            alerts.append(Alert(CRITICAL, "ENCRYPTION_KEY_UNAVAILABLE",
                                "the key slot this server opened the repository with is gone"))
        return doc

    def _jobs(self, jobs: list[Any], alerts: list[Alert]) -> dict[str, Any]:
        closed = bool(getattr(self.executor, "_closed", False))
        running = sum(1 for j in jobs if j.status == "in_progress")
        queued = sum(1 for j in jobs if j.status == "pending")
        if closed:
            alerts.append(Alert(CRITICAL, "EXECUTOR_STOPPED",
                                "the job executor is shut down: no job will run"))
        return {"status": "stopped" if closed else "running", "healthy": not closed,
                "workers": self.workers, "running_jobs": running, "queued_jobs": queued}

    # --- /metrics -------------------------------------------------------------------------

    def metrics(self, tenant: str | None) -> MetricsData:
        """Numbers for Prometheus, for one tenant or (``None``) all."""
        backup_query = select(Backup.tenant, Backup.status, Backup.source_id,
                              Backup.source_name, Backup.completed_at).where(
            Backup.deleted_at.is_(None))
        job_query = select(Job.kind, Job.status, Job.started_at, Job.completed_at)
        if tenant is not None:
            backup_query = backup_query.where(Backup.tenant == tenant)
            job_query = job_query.where(Job.tenant == tenant)
        by_status: dict[tuple[str, str], int] = defaultdict(int)
        last: dict[tuple[str, str, str], float] = {}
        durations: list[tuple[str, float]] = []
        active: dict[tuple[str, str], int] = defaultdict(int)
        with self.catalog.session() as session:
            for row in session.execute(backup_query):
                by_status[(row.tenant, row.status)] += 1
                if row.status == "completed" and row.completed_at and row.source_id:
                    key = (row.tenant, row.source_id, row.source_name)
                    last[key] = max(last.get(key, 0.0), row.completed_at.timestamp())
            for job in session.execute(job_query):
                if job.status in FINAL and job.started_at and job.completed_at:
                    durations.append((job.kind,
                                      (job.completed_at - job.started_at).total_seconds()))
                elif job.status in ACTIVE:
                    active[(job.kind, job.status)] += 1
        return MetricsData(dict(by_status), last, durations, dict(active),
                           self.storage.used_bytes(), self.storage.available_bytes())
