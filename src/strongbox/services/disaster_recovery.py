"""Disaster recovery (seeds 003 and 004 section 4): recovery points, the DR plan, DR tests.

The plan answers, for each source of a tenant, the three questions an operator has in an
incident: *what can I restore* (the latest verified backup, else the latest completed one,
flagged), *how much would I lose* (the RPO, measured from what really happened: the gaps
between successful backups and the age of the newest) and *how long would it take* (the
RTO, measured by the last DR test that restored the source into a scratch target). It
also orders the recovery steps: databases before the file trees that hold files their
rows refer to, except that a file tree holding a database file is restored before that
database, so the database ends up as its own backup has it.

Every "now" comes from an injectable clock, so tests control time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter
from sqlalchemy import func, select

from strongbox.catalog.database import Catalog, sql_offset
from strongbox.catalog.models import Backup, DrTest, Schedule, ScheduleRun
from strongbox.catalog.types import utcnow
from strongbox.errors import NotFound
from strongbox.services.backups import THROUGHPUT, parse_uuid
from strongbox.services.pagination import Page
from strongbox.services.sources import SourceService, SourceView

Clock = Callable[[], datetime]

DEFAULT_WINDOW_DAYS = 30
DEFAULT_STALE_HOURS = 24.0
# Schedule run statuses that produced their backups; anything else that has finished failed.
RUN_SUCCEEDED = frozenset({"success", "succeeded", "completed"})
RUN_UNFINISHED = frozenset({"pending", "running", "in_progress", "queued"})
RUN_SKIPPED = frozenset({"skipped"})  # not started: the previous run was still going
MAX_FIRINGS = 20_000  # firings of a schedule looked at when deriving its interval
# Restore order by kind; a file tree holding a database file gets rank 1 (see module doc).
KIND_RANK = {"postgres": 0, "sqlite": 2, "files": 3}
HOLDS_DATABASE_RANK = 1


class DrTestNotFound(NotFound):
    code = "DR_TEST_NOT_FOUND"


# --- recovery points ---------------------------------------------------------------------


@dataclass(frozen=True)
class RecoveryPoint:
    """One restorable backup: completed, not corrupted, not failed verification."""

    backup_id: str
    name: str
    type: str
    source_id: str | None
    source_name: str
    source_kind: str
    created_at: datetime
    completed_at: datetime | None
    size_bytes: int
    compressed_size_bytes: int | None
    verification_status: str  # verified | unverified
    verified_at: datetime | None
    protected: bool
    tags: list[str]

    @property
    def verified(self) -> bool:
        return self.verification_status == "verified"


def verification_status(row: Backup) -> str:
    """``verified`` when the last verification passed, ``failed`` when it found damage,
    ``unverified`` when none has run."""
    validation = row.validation or {}
    if row.status == "corrupted" or validation.get("is_valid") is False:
        return "failed"
    if validation.get("is_valid") is True or row.verified_at is not None:
        return "verified"
    return "unverified"


def _point(row: Backup) -> RecoveryPoint:
    validation = row.validation or {}
    verified_at = row.verified_at
    if verified_at is None and isinstance(validation.get("validated_at"), str):
        try:
            verified_at = datetime.fromisoformat(validation["validated_at"])
        except ValueError:
            verified_at = None
    return RecoveryPoint(
        row.id, row.name, row.type, row.source_id, row.source_name, row.source_kind,
        row.created_at, row.completed_at, row.size_bytes, row.compressed_size_bytes,
        verification_status(row), verified_at, bool(row.protected), list(row.tags or []))


def _restorable() -> list[Any]:
    return [Backup.status == "completed", Backup.deleted_at.is_(None),
            Backup.snapshot_id.is_not(None)]


RecoveryPointPage = Page[RecoveryPoint]


# --- RPO -----------------------------------------------------------------------------------


@dataclass
class ScheduleInfo:
    id: str
    name: str
    cron: str
    timezone: str
    enabled: bool
    backup_type: str
    last_run_at: datetime | None
    last_status: str | None
    interval_seconds: float | None


@dataclass
class RpoMeasure:
    """What the backup history of one source says about its recovery point objective.

    * ``max_gap_seconds``: the largest gap between consecutive successful backups created
      within the window (None with fewer than two);
    * ``current_age_seconds``: now minus the creation of the newest restorable backup;
    * ``effective_seconds``: the larger of the two: the data a disaster would cost at
      worst, judging by the window's history and by now;
    * ``target_seconds``: the largest interval between consecutive firings of the enabled
      backup schedules that cover the source (what the schedules promise).
    """

    window_days: int
    backups_in_window: int = 0
    max_gap_seconds: float | None = None
    current_age_seconds: float | None = None
    effective_seconds: float | None = None
    target_seconds: float | None = None
    scheduled: bool = False
    schedules: list[ScheduleInfo] = field(default_factory=list)
    runs_total: int = 0
    runs_succeeded: int = 0
    runs_failed: int = 0
    runs_skipped: int = 0


def largest_gap(moments: Iterable[datetime]) -> float | None:
    ordered = sorted(moments)
    if len(ordered) < 2:
        return None
    return max((b - a).total_seconds() for a, b in pairwise(ordered))


def measure_rpo(backup_times: Iterable[datetime], newest_restorable: datetime | None,
                now: datetime, window_days: int) -> RpoMeasure:
    """The measured RPO of one source (see :class:`RpoMeasure` for each number)."""
    start = now - timedelta(days=window_days)
    in_window = [t for t in backup_times if start <= t <= now]
    measure = RpoMeasure(window_days, len(in_window), largest_gap(in_window))
    if newest_restorable is not None:
        measure.current_age_seconds = max(0.0, (now - newest_restorable).total_seconds())
        measure.effective_seconds = max(measure.max_gap_seconds or 0.0,
                                         measure.current_age_seconds)
    return measure


def _firings(cron: str, timezone: str, start: datetime, window: timedelta) -> list[datetime]:
    """Firings of ``cron`` (in ``timezone``) from ``start`` to ``start + window``, and at
    least two; none if the expression or zone cannot be read."""
    try:
        it = croniter(cron, start.astimezone(ZoneInfo(timezone or "UTC")))
    except (ValueError, KeyError, TypeError):
        return []
    end = start + window
    firings: list[datetime] = []
    for _ in range(MAX_FIRINGS):
        moment = it.get_next(datetime)
        firings.append(moment)
        if len(firings) >= 2 and moment >= end:
            break
    return firings


def schedule_interval(schedules: Iterable[tuple[str, str]], start: datetime,
                      window: timedelta) -> float | None:
    """The largest interval between consecutive firings of the given (cron, timezone)
    schedules taken together, over ``window`` from ``start``: how old the newest backup
    can get when every run succeeds."""
    return largest_gap(moment for cron, zone in schedules
                       for moment in _firings(cron, zone, start, window))


# --- RTO and DR tests ------------------------------------------------------------------------


@dataclass(frozen=True)
class DrTestView:
    id: str
    tenant: str
    job_id: str | None
    status: str
    passed: bool | None
    created_by: str | None
    started_at: datetime
    completed_at: datetime | None
    duration_seconds: float | None
    results: dict[str, Any]

    def source_result(self, source_id: str) -> dict[str, Any] | None:
        for item in self.results.get("sources", []):
            if item.get("source_id") == source_id:
                return dict(item)
        return None


def dr_test_view(row: DrTest) -> DrTestView:
    return DrTestView(row.id, row.tenant, row.job_id, row.status, row.passed, row.created_by,
                      row.started_at, row.completed_at, row.duration_seconds,
                      dict(row.results or {}))


DrTestPage = Page[DrTestView]


@dataclass
class RtoMeasure:
    """How long recovering the source takes: measured by a DR test, else estimated."""

    measured_seconds: float | None = None
    test_id: str | None = None
    tested_at: datetime | None = None
    test_passed: bool | None = None
    tested_backup_id: str | None = None
    estimated_seconds: float | None = None
    basis: str = "none"  # dr_test | size_estimate | none


# --- the plan -----------------------------------------------------------------------------


@dataclass
class SourcePlan:
    source: SourceView
    order: int
    latest_backup: RecoveryPoint | None
    latest_is_verified: bool
    recovery_points: int
    rpo: RpoMeasure
    rto: RtoMeasure
    warnings: list[str] = field(default_factory=list)


@dataclass
class PlanStep:
    order: int
    action: str  # prepare | restore | verify
    title: str
    description: str
    source_id: str | None = None
    backup_id: str | None = None
    estimated_duration_seconds: float | None = None
    command: str | None = None


@dataclass
class DrPlan:
    generated_at: datetime
    window_days: int
    stale_hours: float
    sources: list[SourcePlan]
    steps: list[PlanStep]
    last_test: DrTestView | None
    warnings: list[str]

    @property
    def worst_rpo_seconds(self) -> float | None:
        values = [s.rpo.effective_seconds for s in self.sources
                  if s.rpo.effective_seconds is not None]
        return max(values) if values else None

    @property
    def total_rto_seconds(self) -> float | None:
        """Sources are recovered one after another: the sum of their RTOs (measured, else
        estimated); None when no source has either."""
        values = [s.rto.measured_seconds if s.rto.measured_seconds is not None
                  else s.rto.estimated_seconds for s in self.sources]
        known = [v for v in values if v is not None]
        return round(sum(known), 3) if known else None

    @property
    def ready(self) -> bool:
        """Every source has a backup, and the last DR test of each passed."""
        return bool(self.sources) and all(
            s.latest_backup is not None and s.rto.test_passed is True for s in self.sources)


def _inside(inner: str, outer: str) -> bool:
    try:
        return Path(inner).resolve().is_relative_to(Path(outer).resolve())
    except (OSError, ValueError):
        return False


def recovery_order(sources: list[SourceView]) -> tuple[list[SourceView], dict[str, list[str]]]:
    """Sources in the order to restore them, and notes about file trees holding databases.

    Databases first (PostgreSQL, then SQLite): an application's files are referenced by
    its rows, so with the database back the files it names follow. A file tree that holds
    a SQLite database file goes before the databases, so restoring the database afterwards
    leaves the database as its own (consistent, page-level) backup has it.
    """
    notes: dict[str, list[str]] = {}
    holders: set[str] = set()
    for tree in (s for s in sources if s.kind == "files" and s.config.get("path")):
        for db in (s for s in sources if s.kind == "sqlite" and s.config.get("path")):
            if _inside(db.config["path"], tree.config["path"]):
                holders.add(tree.id)
                note = (f"the database {db.name!r} lies inside the file tree {tree.name!r}: "
                        f"{tree.name!r} is restored first, then {db.name!r}")
                notes.setdefault(tree.id, []).append(note)
                notes.setdefault(db.id, []).append(note)

    def rank(source: SourceView) -> tuple[int, str, str]:
        value = HOLDS_DATABASE_RANK if source.id in holders else KIND_RANK.get(source.kind, 9)
        return value, source.name.lower(), source.id

    return sorted(sources, key=rank), notes


def _human(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


human_duration = _human


def size_estimate(size_bytes: int) -> float:
    """Seconds a restore of ``size_bytes`` takes at the assumed throughput (at least 1)."""
    return max(1.0, round(size_bytes / THROUGHPUT, 1))


class DisasterRecoveryService:
    def __init__(self, catalog: Catalog, sources: SourceService, *,
                 clock: Clock = utcnow) -> None:
        self.catalog = catalog
        self.sources = sources
        self.clock = clock

    # --- recovery points -----------------------------------------------------------------

    def recovery_points(self, tenant: str, source_id: str | None = None, *, page: int = 1,
                        size: int = 20) -> RecoveryPointPage:
        """Restorable backups, newest first: of one source, or of all the tenant's."""
        where = [Backup.tenant == tenant, *_restorable()]
        if source_id is not None:
            where.append(Backup.source_id == self.sources.get(tenant, source_id).id)
        with self.catalog.session() as session:
            rows = session.scalars(select(Backup).where(*where)
                                   .order_by(Backup.created_at.desc(), Backup.id)).all()
        # Verification failures are filtered here: the validation document is JSON.
        points = [p for p in (_point(r) for r in rows) if p.verification_status != "failed"]
        start = sql_offset(page, size)
        return RecoveryPointPage(points[start:start + size], len(points), page, size)

    def points_of(self, tenant: str, source_id: str) -> list[RecoveryPoint]:
        return self.recovery_points(tenant, source_id, page=1, size=1_000_000).items

    # --- DR tests -------------------------------------------------------------------------

    def tests(self, tenant: str, *, page: int = 1, size: int = 20) -> DrTestPage:
        with self.catalog.session() as session:
            total = session.scalar(select(func.count()).select_from(DrTest)
                                   .where(DrTest.tenant == tenant)) or 0
            rows = session.scalars(
                select(DrTest).where(DrTest.tenant == tenant)
                .order_by(DrTest.started_at.desc(), DrTest.id)
                .offset(sql_offset(page, size)).limit(size))
            items = [dr_test_view(r) for r in rows]
        return DrTestPage(items, int(total), page, size)

    def test(self, tenant: str, test_id: str) -> DrTestView:
        key = parse_uuid(test_id)
        with self.catalog.session() as session:
            row = session.get(DrTest, key) if key else None
            if row is None or row.tenant != tenant:
                raise DrTestNotFound(f"DR test {test_id} not found")
            return dr_test_view(row)

    def finished_tests(self, tenant: str, limit: int = 50) -> list[DrTestView]:
        """The newest finished DR tests (completed: every source was tried), newest first."""
        with self.catalog.session() as session:
            rows = session.scalars(
                select(DrTest).where(DrTest.tenant == tenant, DrTest.status == "completed")
                .order_by(DrTest.completed_at.desc()).limit(limit))
            return [dr_test_view(r) for r in rows]

    def rto_of(self, source_id: str, tests: list[DrTestView],
               latest: RecoveryPoint | None) -> RtoMeasure:
        """The RTO of a source: the newest finished DR test that tried it (restoring it
        into scratch and verifying it, timed), else an estimate from the backup's size."""
        rto = RtoMeasure()
        for test in tests:
            result = test.source_result(source_id)
            if result is None or result.get("status") == "skipped":
                continue
            rto.measured_seconds = result.get("duration_seconds")
            rto.test_id = test.id
            rto.tested_at = test.completed_at
            rto.test_passed = bool(result.get("ok"))
            rto.tested_backup_id = result.get("backup_id")
            rto.basis = "dr_test"
            break
        if latest is not None:
            rto.estimated_seconds = size_estimate(latest.size_bytes)
            if rto.basis == "none":
                rto.basis = "size_estimate"
        return rto

    # --- RPO ---------------------------------------------------------------------------------

    def _successful_times(self, tenant: str, source_id: str, since: datetime
                          ) -> list[datetime]:
        """Creation times of every successful backup of the source since ``since``,
        including ones deleted later (they were recovery points when they were taken)."""
        with self.catalog.session() as session:
            return list(session.scalars(select(Backup.created_at).where(
                Backup.tenant == tenant, Backup.source_id == source_id,
                Backup.snapshot_id.is_not(None), Backup.created_at >= since,
                Backup.status.in_(("completed", "deleting")))))

    def _schedules(self, tenant: str) -> list[Schedule]:
        with self.catalog.session() as session:
            rows = list(session.scalars(select(Schedule).where(Schedule.tenant == tenant)))
            session.expunge_all()
            return rows

    @staticmethod
    def covers(schedule: Schedule, source: SourceView, default_sqlite: str | None) -> bool:
        """Whether a backup schedule backs ``source`` up, as the scheduler picks targets:
        the sources it names; naming none, a schedule from the settings document takes the
        tenant's default (first sqlite) source and one made through the API every source."""
        if (schedule.action or "backup") != "backup":
            return False
        if schedule.source_ids:
            return source.id in schedule.source_ids
        if schedule.origin == "settings":
            return source.id == default_sqlite
        return True

    def _runs(self, schedule_ids: list[str], since: datetime) -> tuple[int, int, int, int]:
        """(finished, succeeded, failed, skipped) runs of these schedules due since."""
        if not schedule_ids:
            return 0, 0, 0, 0
        with self.catalog.session() as session:
            statuses = list(session.scalars(select(ScheduleRun.status).where(
                ScheduleRun.schedule_id.in_(schedule_ids), ScheduleRun.scheduled_for >= since)))
        finished = [s for s in statuses if s not in RUN_UNFINISHED]
        succeeded = sum(1 for s in finished if s in RUN_SUCCEEDED)
        skipped = sum(1 for s in finished if s in RUN_SKIPPED)
        return len(finished), succeeded, len(finished) - succeeded - skipped, skipped

    def rpo_of(self, tenant: str, source: SourceView, newest: RecoveryPoint | None,
               schedules: list[Schedule], default_sqlite: str | None, now: datetime,
               window_days: int) -> RpoMeasure:
        since = now - timedelta(days=window_days)
        times = self._successful_times(tenant, source.id, since)
        measure = measure_rpo(times, newest.created_at if newest else None, now, window_days)
        covering = [s for s in schedules if self.covers(s, source, default_sqlite)]
        window = timedelta(days=window_days)
        infos = [ScheduleInfo(s.id, s.name, s.cron, s.timezone, s.enabled, s.backup_type,
                              s.last_run_at, s.last_status,
                              schedule_interval([(s.cron, s.timezone)], now, window))
                 for s in covering]
        measure.schedules = infos
        enabled = [i for i in infos if i.enabled]
        measure.scheduled = bool(enabled)
        measure.target_seconds = schedule_interval(
            [(i.cron, i.timezone) for i in enabled], now, window)
        (measure.runs_total, measure.runs_succeeded, measure.runs_failed,
         measure.runs_skipped) = self._runs([s.id for s in covering], since)
        return measure

    # --- the plan ---------------------------------------------------------------------------

    def plan(self, tenant: str, *, window_days: int = DEFAULT_WINDOW_DAYS,
             stale_hours: float = DEFAULT_STALE_HOURS) -> DrPlan:
        now = self.clock()
        sources = self.sources.list(tenant)
        ordered, notes = recovery_order(sources)
        schedules = self._schedules(tenant)
        default_sqlite = next((s.id for s in sources if s.kind == "sqlite"), None)
        tests = self.finished_tests(tenant)
        plans = []
        for index, source in enumerate(ordered, start=1):
            points = self.points_of(tenant, source.id)
            verified = next((p for p in points if p.verified), None)
            latest = verified or (points[0] if points else None)
            plan = SourcePlan(
                source, index, latest, verified is not None, len(points),
                self.rpo_of(tenant, source, points[0] if points else None, schedules,
                            default_sqlite, now, window_days),
                self.rto_of(source.id, tests, latest))
            newer = points.index(verified) if verified is not None else 0
            plan.warnings = self._warnings(plan, notes.get(source.id, []), stale_hours)
            if newer:
                plan.warnings.append(
                    f"{newer} newer unverified backup(s) exist (the newest from "
                    f"{points[0].created_at.isoformat()}): verify them to recover more "
                    "recent data")
            plans.append(plan)
        warnings = [f"{p.source.name}: {w}" for p in plans for w in p.warnings]
        if not sources:
            warnings.append("this tenant has no sources: there is nothing to recover")
        elif not tests:
            warnings.append("no DR test has run yet: the RTOs are estimates; run "
                            "POST /api/v1/recovery/test")
        return DrPlan(now, window_days, stale_hours, plans, self._steps(plans),
                      tests[0] if tests else None, warnings)

    @staticmethod
    def _warnings(plan: SourcePlan, notes: list[str], stale_hours: float) -> list[str]:
        warnings: list[str] = []
        rpo, rto = plan.rpo, plan.rto
        if plan.latest_backup is None:
            warnings.append("no backup: this source cannot be recovered")
        elif not plan.latest_is_verified:
            warnings.append("no verified backup: the plan falls back to the latest "
                            "completed one, which no verification has checked")
        if rpo.current_age_seconds is not None:
            # Stale: older than two schedule intervals (a run may fail once), or, for a
            # source no schedule covers, older than ``stale_hours``.
            limit = (2 * rpo.target_seconds if rpo.target_seconds is not None
                     else stale_hours * 3600)
            if rpo.current_age_seconds > limit:
                warnings.append(f"stale: the newest backup is {_human(rpo.current_age_seconds)}"
                                f" old (limit {_human(limit)})")
        if not rpo.scheduled:
            warnings.append("not scheduled: no enabled backup schedule covers this source")
        if rpo.runs_failed:
            warnings.append(f"{rpo.runs_failed} of {rpo.runs_total} scheduled run(s) in the "
                            f"last {rpo.window_days} days failed")
        if rpo.runs_skipped:
            warnings.append(f"{rpo.runs_skipped} scheduled run(s) in the last "
                            f"{rpo.window_days} days were skipped (the previous one was "
                            "still running)")
        if rto.basis != "dr_test":
            warnings.append("never tested: no DR test has restored this source")
        elif rto.test_passed is False:
            warnings.append("the last DR test of this source failed")
        elif (plan.latest_backup is not None and rto.tested_at is not None
              and plan.latest_backup.created_at > rto.tested_at):
            warnings.append("the latest backup is newer than the last DR test")
        return warnings + notes

    @staticmethod
    def _steps(plans: list[SourcePlan]) -> list[PlanStep]:
        steps = [PlanStep(1, "prepare", "Stop writers and preview",
                          "Stop the applications that write to the sources below, and "
                          "preview each recovery (GET /api/v1/recovery/preview/{backup_id}) "
                          "to see what would be replaced and what newer data would be lost. "
                          "Each recovery takes a pre-recovery backup of its source first.")]
        for plan in plans:
            if plan.latest_backup is None:
                continue
            backup = plan.latest_backup
            duration = (plan.rto.measured_seconds if plan.rto.measured_seconds is not None
                        else plan.rto.estimated_seconds)
            flag = "" if plan.latest_is_verified else " (unverified)"
            steps.append(PlanStep(
                len(steps) + 1, "restore",
                f"Restore {plan.source.kind} source {plan.source.name!r}",
                f"Restore backup {backup.name!r} ({backup.backup_id}, taken "
                f"{backup.created_at.isoformat()}){flag} over the source, after a "
                "pre-recovery backup of it.", plan.source.id, backup.backup_id, duration,
                f"strongbox dr recover {backup.backup_id} --yes"))
        steps.append(PlanStep(len(steps) + 1, "verify", "Verify and restart",
                              "Check the applications' data, restart them, and run a DR "
                              "test again (strongbox dr test --wait) to renew the measured "
                              "RTO."))
        return steps
