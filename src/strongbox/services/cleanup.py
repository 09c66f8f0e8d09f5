"""Cleanup (seed 004 section 7, seed 002's cleanup form): analyse, confirm, execute.

A **dry run** applies a :class:`~strongbox.services.retention_rules.CleanupPolicy` to the
tenant's backups and stores the result as a *plan* (``cleanup_plans``): every backup to
delete with its reasons, the ones kept and why, and the bytes a prune would then free.
**Executing** a plan (with an explicit confirmation, before it expires) runs a ``cleanup``
job that deletes exactly the plan's backups, skipping (and reporting) any that became
protected, went into use or changed since, then prunes the repository so the space is
really freed.

:meth:`CleanupService.run_scheduled_cleanup` does both in one go from the tenant's
settings (``retention``), for the scheduler.

Every plan also deletes the backups whose own ``retention_days`` ran out (``expires_at``,
seed 001), whatever the policy says and even when the tenant's retention is disabled;
the safety rules of :mod:`~strongbox.services.retention_rules` still come first.
"""

from __future__ import annotations

import builtins
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update

from strongbox.catalog.database import Catalog
from strongbox.catalog.models import Backup, CleanupPlan
from strongbox.catalog.types import utcnow
from strongbox.errors import (
    NotFound,
    RepositoryLocked,
    SnapshotNotFound,
    StrongboxError,
)
from strongbox.jobs.executor import JobExecutor
from strongbox.jobs.progress import JobProgress
from strongbox.jobs.store import INTERRUPTED, JobStore, JobView
from strongbox.repository.lock import Lock
from strongbox.repository.prune import prune as prune_repository
from strongbox.repository.repository import Repository
from strongbox.services.backup_settings import GB, BackupSettingsService
from strongbox.services.backups import BackupService, BackupView, backup_expiry, parse_uuid
from strongbox.services.errors import FieldError, Forbidden, JobNotFound, ValidationFailed
from strongbox.services.principal import Principal, Role
from strongbox.services.retention_rules import (
    BackupRecord,
    CleanupPolicy,
    RetentionDecision,
    plan_retention,
)
from strongbox.services.storage import RepositoryProvider, stored_size

log = logging.getLogger(__name__)

KIND = "cleanup"
STEPS = ("deleting backups", "pruning repository")
PLAN_TTL = timedelta(hours=1)
STALE_PLANS_KEPT = timedelta(days=1)  # unexecuted plans are dropped this long after expiry
PRUNE_WAIT_SECONDS = 120.0
DR_TEST_KIND = "dr_test"  # services/dr_test_job.py KIND (not imported: it imports much)
DR_TEST_PLANNING = timedelta(minutes=1)  # a DR test picks its backups this soon after start
TERMINAL = ("completed", "failed", "corrupted")


class CleanupPlanNotFound(NotFound):
    code = "CLEANUP_PLAN_NOT_FOUND"


class CleanupPlanExpired(StrongboxError):
    code = "CLEANUP_PLAN_EXPIRED"
    http_status = 410


class CleanupPlanExecuted(StrongboxError):
    code = "CLEANUP_PLAN_ALREADY_EXECUTED"
    http_status = 409


class ConfirmationRequired(ValidationFailed):
    code = "CONFIRMATION_REQUIRED"


@dataclass
class CleanupCriteria:
    """A policy and what it applies to."""

    policy: CleanupPolicy
    source_ids: list[str] | None = None
    reason: str | None = None
    origin: str = "request"  # request, settings (the tenant's retention), schedule
    schedule_id: str | None = None  # only the backups this schedule made

    def to_dict(self) -> dict[str, Any]:
        return {"policy": self.policy.to_dict(), "source_ids": self.source_ids,
                "reason": self.reason, "origin": self.origin, "schedule_id": self.schedule_id}


@dataclass(frozen=True)
class PlannedBackup:
    """One backup of a plan and why it is deleted or kept."""

    backup_id: str
    name: str
    source_id: str | None
    source_name: str
    type: str
    status: str
    created_at: datetime
    size_bytes: int
    protected: bool
    reasons: list[str]

    def to_dict(self) -> dict[str, Any]:
        doc = dict(vars(self))
        doc["created_at"] = self.created_at.isoformat()
        return doc

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> PlannedBackup:
        return cls(**{**doc, "created_at": datetime.fromisoformat(doc["created_at"])})


@dataclass
class CleanupPlanView:
    id: str
    tenant: str
    created_at: datetime
    expires_at: datetime
    created_by: str | None
    criteria: dict[str, Any]
    to_delete: list[PlannedBackup]
    kept: list[PlannedBackup]
    estimated_bytes: int
    executed_at: datetime | None = None
    job_id: str | None = None
    result: dict[str, Any] | None = None

    @property
    def protected_count(self) -> int:
        return sum(1 for b in self.kept if b.protected)

    @property
    def in_use_count(self) -> int:
        return sum(1 for b in self.kept if "in use by a running job" in b.reasons)

    @property
    def total(self) -> int:
        return len(self.to_delete) + len(self.kept)


@dataclass
class StartedCleanup:
    plan: CleanupPlanView
    job: JobView


@dataclass
class CleanupOutcome:
    """What an executed plan did (the job's result)."""

    deleted_backup_ids: list[str] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    freed_bytes: int = 0
    repository_bytes_before: int = 0
    repository_bytes_after: int = 0
    prune: dict[str, Any] = field(default_factory=dict)


def _view(row: CleanupPlan) -> CleanupPlanView:
    analysis = row.analysis or {}
    return CleanupPlanView(
        row.id, row.tenant, row.created_at, row.expires_at, row.created_by, row.criteria,
        [PlannedBackup.from_dict(d) for d in analysis.get("delete", [])],
        [PlannedBackup.from_dict(d) for d in analysis.get("keep", [])],
        row.estimated_bytes, row.executed_at, row.job_id, row.result)


def settings_policy(retention: dict[str, Any]) -> CleanupPolicy | None:
    """The policy the tenant's ``retention`` settings describe (None when disabled).

    ``max_backups``, ``max_age_days`` and ``max_total_size_gb`` are seed 000's fields;
    the grandfather-father-son rules are kept next to them under ``retention.rules``
    (``PUT /api/v1/backups/cleanup/policy``).
    """
    if not retention.get("enabled"):
        return None
    rules = dict(retention.get("rules") or {})
    size_gb = retention.get("max_total_size_gb")
    return CleanupPolicy.from_dict({
        **rules, "max_backups": retention.get("max_backups"),
        "max_age_days": retention.get("max_age_days"),
        "max_total_size_bytes": gb_to_bytes(size_gb) if size_gb else None})


def gb_to_bytes(size_gb: float) -> int:
    """GB (GiB, as the settings' other sizes) to bytes; beyond an exabyte is "no limit"
    in practice, and capping keeps an absurd value from overflowing."""
    return int(min(float(size_gb), 1e9) * GB)


class CleanupService:
    def __init__(self, catalog: Catalog, store: JobStore, executor: JobExecutor,
                 storage: RepositoryProvider, backups: BackupService,
                 settings: BackupSettingsService, *, plan_ttl: timedelta = PLAN_TTL,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.catalog = catalog
        self.store = store
        self.executor = executor
        self.storage = storage
        self.backups = backups
        self.settings = settings
        self.plan_ttl = plan_ttl
        self.clock = clock  # tests move time forward to expire plans

    # --- the policy kept in the settings ----------------------------------------------------

    def policy_document(self, tenant: str) -> dict[str, Any]:
        """The tenant's ``retention`` settings with the keep rules (``rules``) filled in."""
        retention = dict(self.settings.get(tenant)["retention"])
        defaults = CleanupPolicy().to_dict()
        rules = {k: defaults[k] for k in RULE_FIELDS}
        rules.update({k: v for k, v in (retention.get("rules") or {}).items()
                      if k in RULE_FIELDS})
        rules["keep_within_days"] = rules["keep_within_days"] or None  # 0 is "off"
        retention["rules"] = rules
        return retention

    def update_policy(self, tenant: str, patch: dict[str, Any]
                      ) -> tuple[dict[str, Any], list[str]]:
        """Change the retention settings (seed 000 fields and ``rules``); returns the new
        document and the changed fields."""
        rules = patch.get("rules")
        if rules:
            merged = {**self.policy_document(tenant)["rules"], **rules}
            CleanupPolicy.from_dict(merged)  # validate before storing
        _doc, updated, _warnings = self.settings.update(tenant, {"retention": patch})
        return self.policy_document(tenant), updated

    # --- dry run ----------------------------------------------------------------------------

    def analyze(self, principal: Principal, criteria: CleanupCriteria | None) -> CleanupPlanView:
        """Plan a cleanup (nothing is deleted). ``None`` means: the tenant's settings."""
        tenant = principal.tenant
        settings_off = False
        if criteria is None:
            policy = settings_policy(self.settings.get(tenant)["retention"])
            # Retention disabled: only the backups' own expiry (retention_days) applies.
            settings_off = policy is None
            criteria = CleanupCriteria(policy or CleanupPolicy(), origin="settings")
        now = self.clock()
        rows = self._backups(tenant, criteria.source_ids, criteria.schedule_id)
        in_use = self.in_use_ids()
        records = [_record(row, in_use) for row in rows]
        if criteria.policy.is_empty and not any(r.expired(now) for r in records):
            if settings_off:
                raise ValidationFailed("no cleanup criteria given, retention is disabled in "
                                       "the settings and no backup has expired", [FieldError(
                                           "criteria", "give keep/limit rules, or enable "
                                           "retention in the settings", "REQUIRED")])
            raise ValidationFailed("the cleanup criteria would delete nothing", [FieldError(
                "criteria", "set at least one keep rule, limit or delete_* flag",
                "REQUIRED")])
        decisions = plan_retention(records, criteria.policy, now)
        by_id = {row.id: row for row in rows}
        to_delete = [_planned(by_id[d.backup.id], d) for d in decisions if d.delete]
        kept = [_planned(by_id[d.backup.id], d) for d in decisions if not d.delete]
        doomed = {by_id[p.backup_id].snapshot_id for p in to_delete}
        estimated = self._bytes_to_free({s for s in doomed if s})
        plan_id = str(uuid.uuid4())
        with self.catalog.session() as session:
            # Dry runs nobody executed are of no use a day after they expired.
            session.execute(delete(CleanupPlan).where(
                CleanupPlan.tenant == tenant, CleanupPlan.executed_at.is_(None),
                CleanupPlan.expires_at < now - STALE_PLANS_KEPT))
            row = CleanupPlan(
                id=plan_id, tenant=tenant, created_at=now, expires_at=now + self.plan_ttl,
                created_by=principal.key_id, criteria=criteria.to_dict(),
                backup_ids=[p.backup_id for p in to_delete], estimated_bytes=estimated,
                analysis={"delete": [p.to_dict() for p in to_delete],
                          "keep": [p.to_dict() for p in kept]})
            session.add(row)
            session.flush()
            return _view(row)

    def _backups(self, tenant: str, source_ids: list[str] | None,
                 schedule_id: str | None = None) -> builtins.list[Backup]:
        stmt = select(Backup).where(Backup.tenant == tenant, Backup.deleted_at.is_(None))
        if source_ids:
            stmt = stmt.where(Backup.source_id.in_(source_ids))
        if schedule_id:
            stmt = stmt.where(Backup.schedule_id == schedule_id)
        with self.catalog.session() as session:
            rows = list(session.scalars(stmt))
            session.expunge_all()
            return rows

    def in_use_ids(self) -> set[str]:
        """Backups a pending or running job reads: restores, verifications, DR tests,
        archive builds, and the parent an incremental backup is comparing against."""
        used: set[str] = set()
        for job in self.store.active():
            if job.kind == KIND:
                continue  # a cleanup names the backups it deletes, not ones it reads
            if job.backup_id:
                used.add(job.backup_id)
            if job.kind == DR_TEST_KIND and job.started_at is not None:
                used.update(self._dr_test_targets(job.tenant, job.started_at))
            # Every string in the parameters: backup_id, parent_backup_id, backup_ids,
            # components[].backup_id... whatever shape a job kind uses.
            used.update(_strings(job.params or {}))
        return used

    def _dr_test_targets(self, tenant: str, started_at: datetime) -> set[str]:
        """What a running DR test restores: the newest completed backup of each source
        when it started (services/dr_test_job.py picks them then and names none in its
        parameters). Also the newest a little later, as it plans just after starting."""
        targets: set[str] = set()
        for since in (started_at, started_at + DR_TEST_PLANNING):
            stmt = (select(Backup.id, Backup.source_id).where(
                Backup.tenant == tenant, Backup.status == "completed",
                Backup.deleted_at.is_(None),
                func.coalesce(Backup.completed_at, Backup.created_at) <= since)
                .order_by(Backup.created_at.desc(), Backup.id))
            seen: set[str | None] = set()
            with self.catalog.session() as session:
                for backup_id, source_id in session.execute(stmt):
                    if source_id not in seen:
                        seen.add(source_id)
                        targets.add(backup_id)
        return targets

    def _bytes_to_free(self, snapshot_ids: set[str]) -> int:
        """Stored bytes only these snapshots reference: what a prune frees after they are
        forgotten (a little less when a pack is only partly freed and kept, see prune)."""
        if not snapshot_ids:
            return 0
        repo = self.storage.open()
        with Lock(repo.backend, exclusive=False).acquire():
            doomed: set[bytes] = set()
            kept: set[bytes] = set()
            for snapshot in repo.list_snapshots():
                _collect_blobs(repo, snapshot.tree,
                               doomed if snapshot.id in snapshot_ids else kept)
            return stored_size(repo, doomed - kept)

    # --- plans ------------------------------------------------------------------------------

    def get_plan(self, tenant: str, plan_id: str) -> CleanupPlanView:
        key = parse_uuid(plan_id)
        with self.catalog.session() as session:
            row = session.get(CleanupPlan, key) if key else None
            if row is None or row.tenant != tenant:
                raise CleanupPlanNotFound(f"cleanup plan {plan_id} not found")
            return _view(row)

    def job(self, tenant: str, job_id: str) -> JobView:
        key = parse_uuid(job_id)
        job = self.store.get(key) if key else None
        if job is None or job.tenant != tenant or job.kind != KIND:
            raise JobNotFound(f"job {job_id} not found")
        return job

    # --- execute ----------------------------------------------------------------------------

    def execute(self, principal: Principal, plan_id: str, confirmation: bool) -> StartedCleanup:
        """Start deleting what plan ``plan_id`` lists (admin; needs ``confirmation``)."""
        if not principal.allows(Role.ADMIN):
            raise Forbidden(f"executing a cleanup needs the admin role; the key is "
                                   f"{principal.role}")
        plan = self.get_plan(principal.tenant, plan_id)
        if confirmation is not True:
            raise ConfirmationRequired("executing a cleanup needs confirmation: true", [
                FieldError("confirmation", "set confirmation to true to delete the "
                           f"{len(plan.to_delete)} backups the plan lists", "REQUIRED")])
        if plan.executed_at is not None:
            raise CleanupPlanExecuted(f"cleanup plan {plan.id} was already executed "
                                      f"(job {plan.job_id})",
                                      details={"job_id": plan.job_id})
        if self.clock() >= plan.expires_at:
            raise CleanupPlanExpired(f"cleanup plan {plan.id} expired at "
                                     f"{plan.expires_at.isoformat()}: run the dry run again",
                                     details={"expires_at": plan.expires_at.isoformat()})
        job_id = str(uuid.uuid4())
        with self.catalog.session() as session:
            # One execution per plan, even if two requests race.
            done = session.execute(update(CleanupPlan).where(
                CleanupPlan.id == plan.id, CleanupPlan.executed_at.is_(None))
                .values(executed_at=self.clock(), job_id=job_id))
            if not done.rowcount:  # type: ignore[attr-defined]
                raise CleanupPlanExecuted(f"cleanup plan {plan.id} was already executed")
            job = self.store.create(principal.tenant, KIND, {"plan_id": plan.id},
                                    created_by=principal.key_id, job_id=job_id,
                                    session=session)
        self.executor.submit(job)
        return StartedCleanup(self.get_plan(principal.tenant, plan.id), job)

    def run_scheduled_cleanup(self, tenant: str, *, created_by: str = "scheduler"
                              ) -> StartedCleanup | None:
        """Plan from the tenant's ``retention`` settings and execute at once.

        For the scheduler (``retention.auto_cleanup`` on, at ``retention.cleanup_schedule``).
        Returns None when nothing is to be deleted; otherwise the plan and the started
        ``cleanup`` job (follow it with :meth:`job`). With retention disabled it deletes
        only expired backups (``retention_days``). The plan is stored like any other, so
        what a scheduled run deleted, and why, stays visible.
        """
        principal = Principal(created_by, created_by, tenant, Role.ADMIN)
        policy = settings_policy(self.settings.get(tenant)["retention"]) or CleanupPolicy()
        try:
            plan = self.analyze(principal, CleanupCriteria(policy, origin="schedule"))
        except ValidationFailed:
            return None  # no rule and nothing expired
        if not plan.to_delete:
            return None
        return self.execute(principal, plan.id, True)


    def apply_schedule_retention(self, tenant: str, schedule_id: str,
                                 retention: dict[str, Any], *, created_by: str = "scheduler",
                                 timezone: str = "UTC") -> StartedCleanup | None:
        """A schedule's own ``retention`` over the backups that schedule made, run after
        each successful run of it (plan, then execute; the plan is stored like any other).
        ``retention_days`` deletes what is older, ``retention_count`` keeps that many;
        ``keep_*`` are the grandfather-father-son rules, on the calendar of ``timezone``
        (the schedule's own). None: nothing to delete."""
        policy = schedule_policy(retention, timezone=timezone)
        if policy is None or policy.is_empty:
            return None
        principal = Principal(created_by, created_by, tenant, Role.ADMIN)
        plan = self.analyze(principal, CleanupCriteria(
            policy, origin="schedule", schedule_id=schedule_id,
            reason=f"retention of schedule {schedule_id}"))
        if not plan.to_delete:
            return None
        return self.execute(principal, plan.id, True)


def schedule_policy(retention: dict[str, Any] | None, *, timezone: str = "UTC"
                    ) -> CleanupPolicy | None:
    """A schedule's ``retention`` block (services/schedules.py RETENTION_KEYS) as a policy;
    its daily/weekly/... buckets follow ``timezone`` (the schedule's: a schedule at 23:00
    in New York makes one backup per New York day, not per UTC day)."""
    if not retention:
        return None
    rules = {k: v for k, v in retention.items() if k.startswith("keep_") and v}
    return CleanupPolicy(**rules, max_age_days=retention.get("retention_days") or None,
                         max_backups=retention.get("retention_count") or None,
                         timezone=timezone)


RULE_FIELDS = ("keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly",
               "keep_yearly", "keep_within_days", "timezone", "delete_failed",
               "delete_unverified")


def _record(row: Backup, in_use: set[str]) -> BackupRecord:
    validation = row.validation or {}
    verified = validation.get("is_valid") if row.validation else None
    exempt = None
    if (row.options or {}).get("kind") == "config_snapshot":
        exempt = "configuration snapshot (managed under /api/v1/snapshots)"
    return BackupRecord(row.id, row.source_id, row.created_at, row.status,
                        row.size_bytes or 0, bool(row.protected), row.protected_reason,
                        verified if isinstance(verified, bool) else None, row.id in in_use,
                        exempt, backup_expiry(row.created_at, row.options))


def _strings(value: Any) -> builtins.list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in _strings(v)]
    return []


def _planned(row: Backup, decision: RetentionDecision) -> PlannedBackup:
    return PlannedBackup(row.id, row.name, row.source_id, row.source_name, row.type,
                         row.status, row.created_at, row.size_bytes or 0,
                         bool(row.protected), list(decision.reasons))


def _collect_blobs(repo: Repository, tree_id: str, into: set[bytes]) -> None:
    """Add every tree and data blob below ``tree_id`` to ``into`` (skipping subtrees
    already there: snapshots of one source share most of their trees)."""
    todo = [tree_id]
    while todo:
        tree_hex = todo.pop()
        key = bytes.fromhex(tree_hex)
        if key in into:
            continue
        into.add(key)
        for node in repo.load_tree(tree_hex).nodes:
            into.update(bytes.fromhex(h) for h in node.content)
            if node.type == "dir" and node.subtree:
                todo.append(node.subtree)


# --- the job ----------------------------------------------------------------------------------


class CleanupJobHandler:
    """Deletes a plan's backups, then prunes the repository."""

    kind = KIND
    steps = STEPS

    def __init__(self, catalog: Catalog, storage: RepositoryProvider,
                 backups: BackupService, in_use: Callable[[], set[str]], *,
                 prune_wait_seconds: float = PRUNE_WAIT_SECONDS) -> None:
        self.catalog = catalog
        self.storage = storage
        self.backups = backups
        self.in_use = in_use
        self.prune_wait_seconds = prune_wait_seconds
        # job id -> backups that job has claimed and not yet settled: what failed() may
        # settle (another cleanup or a DELETE may hold claims on the same plan's backups).
        self._claims: dict[str, set[str]] = {}

    def run(self, job: JobView, progress: JobProgress) -> dict[str, Any]:
        plan_id = job.params["plan_id"]
        with self.catalog.session() as session:
            row = session.get_one(CleanupPlan, plan_id)
            backup_ids = list(row.backup_ids)
        outcome = CleanupOutcome(repository_bytes_before=self.storage.used_bytes())
        claims = self._claims.setdefault(job.id, set())
        progress.step("deleting backups")
        progress.start("deleting backups", items_total=len(backup_ids))
        repo = self.storage.open()
        with Lock(repo.backend, exclusive=False).acquire():
            for backup_id in backup_ids:
                progress.check_cancelled()
                self._delete_one(job.tenant, backup_id, repo, outcome, claims)
                progress.advance(items=1)
        progress.step("pruning repository")
        outcome.prune = self._prune(progress)
        outcome.repository_bytes_after = self.storage.used_bytes()
        outcome.freed_bytes = max(0, outcome.repository_bytes_before
                                  - outcome.repository_bytes_after)
        result = {"cleanup_plan_id": plan_id,
                  "deleted_count": len(outcome.deleted_backup_ids),
                  "deleted_backup_ids": outcome.deleted_backup_ids,
                  "skipped_count": len(outcome.skipped), "skipped": outcome.skipped,
                  "freed_space": outcome.freed_bytes,
                  "repository_bytes_before": outcome.repository_bytes_before,
                  "repository_bytes_after": outcome.repository_bytes_after,
                  "prune": outcome.prune}
        self._record(plan_id, result)
        self._claims.pop(job.id, None)
        return result

    def _delete_one(self, tenant: str, backup_id: str, repo: Repository,
                    outcome: CleanupOutcome, claims: set[str]) -> None:
        claimed = self.backups.claim_for_cleanup(tenant, backup_id,
                                                 lambda b: b in self.in_use())
        if isinstance(claimed, str):
            outcome.skipped.append({"backup_id": backup_id, "reason": claimed})
            return
        backup, previous = claimed
        claims.add(backup.id)
        if previous == "completed" and not self._newer_completed_exists(backup):
            # The plan counted on a newer backup that has since gone (deleted, found
            # corrupted): this one is now the source's newest completed backup.
            self.backups.release_claim(backup.id, previous)
            claims.discard(backup.id)
            outcome.skipped.append({"backup_id": backup_id, "reason": "now the newest "
                                    "completed backup of its source (always kept)"})
            return
        try:
            _forget(repo, backup)
        except Exception:
            self.backups.release_claim(backup.id, previous)
            claims.discard(backup.id)
            raise
        self.backups.finish_deletion(backup.id)
        claims.discard(backup.id)
        outcome.deleted_backup_ids.append(backup.id)

    def _newer_completed_exists(self, backup: BackupView) -> bool:
        """Whether the backup's source has a completed backup newer than it (the order
        of retention_rules: created_at, then id). Checked after the claim, so two
        cleanups racing over a source's last backups cannot both go ahead."""
        same_source = (Backup.source_id.is_(None) if backup.source_id is None
                       else Backup.source_id == backup.source_id)
        with self.catalog.session() as session:
            rows = session.scalars(select(Backup).where(
                Backup.tenant == backup.tenant, same_source, Backup.status == "completed",
                Backup.deleted_at.is_(None), Backup.id != backup.id,
                Backup.created_at >= backup.created_at))
            return any((row.created_at, row.id) > (backup.created_at, backup.id)
                       and (row.options or {}).get("kind") != "config_snapshot"
                       for row in rows)

    def _prune(self, progress: JobProgress) -> dict[str, Any]:
        """Prune under the exclusive lock, waiting a while for running backups to end."""
        deadline = time.monotonic() + self.prune_wait_seconds
        while True:
            try:
                result = prune_repository(self.storage.open(), progress=progress)
                return {"done": True, **result.to_dict()}
            except RepositoryLocked as exc:
                if time.monotonic() >= deadline:
                    log.warning("cleanup: prune skipped, repository busy: %s", exc.message)
                    return {"done": False, "reason": f"the repository stayed locked: "
                            f"{exc.message}; the next cleanup or `strongbox repo prune` "
                            "frees the space"}
            progress.check_cancelled()
            time.sleep(0.5)

    def _record(self, plan_id: str, result: dict[str, Any]) -> None:
        with self.catalog.session() as session:
            session.execute(update(CleanupPlan).where(CleanupPlan.id == plan_id)
                            .values(result=result))

    def failed(self, job: JobView, error: dict[str, Any]) -> None:
        """Cancelled, failed or interrupted by a restart: settle the backups it had
        claimed, so none stays ``deleting`` for ever."""
        plan_id = (job.params or {}).get("plan_id")
        if not plan_id:
            return
        self._record(plan_id, {"cleanup_plan_id": plan_id, "error": error})
        mine = self._claims.pop(job.id, None)
        if mine is None and error.get("code") != INTERRUPTED:
            return  # it never ran here (cancelled while pending): it claimed nothing
        with self.catalog.session() as session:
            plan = session.get(CleanupPlan, plan_id)
            # Ran here: exactly its own claims. Interrupted by a restart: its claims were
            # not kept, but nothing else runs yet, so the plan's `deleting` rows are its.
            ids = mine if mine is not None else (plan.backup_ids if plan else [])
            claimed = [row for row in (session.get(Backup, b) for b in ids)
                       if row is not None and row.status == "deleting"
                       and row.deleted_at is None]
            if not claimed:
                return
            try:
                present = set(self.storage.open().snapshot_ids())
            except StrongboxError:
                log.exception("cleanup %s: cannot list snapshots to settle its backups", plan_id)
                return
            now = utcnow()
            for row in claimed:
                if not row.snapshot_id or row.snapshot_id not in present:
                    row.deleted_at = now  # its snapshot is gone: the deletion is complete
                else:
                    broken = (row.validation or {}).get("is_valid") is False
                    row.status = "corrupted" if broken else "completed"


def _forget(repo: Repository, backup: BackupView) -> None:
    if backup.snapshot_id:
        # Already forgotten (e.g. by `strongbox repo forget`) is as good as forgotten.
        with contextlib.suppress(SnapshotNotFound):
            repo.delete_snapshot(backup.snapshot_id)
