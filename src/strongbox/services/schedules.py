"""Schedules (seed 001 schedule configure/get, seed 004 section 2, seed 000 settings
``scheduling``): what runs when, per tenant, and the record of every run.

A schedule is a recurring *action* (``backup``, ``verify`` or ``cleanup``) with its timing
(a cron expression, or seed 004's frequency/time/day form turned into one, in an IANA time
zone; the form given is kept in ``spec``), and for backups the type, sources, filters,
options and retention to use. This module validates and stores them and keeps the run
bookkeeping (``schedule_runs``, counters, ``next_run_at``); :mod:`strongbox.services.
scheduler` decides when to fire them.

Schedules of origin ``settings`` mirror the tenant's settings document (seed 000
``scheduling.schedules`` and ``retention.auto_cleanup``/``cleanup_schedule``): they are
created, changed and removed by :meth:`ScheduleService.sync_settings` only, and the
schedules API refuses to change them (409 ``SCHEDULE_CONFLICT``). Schedules of origin
``policy`` belong to a source's backup policy (:mod:`strongbox.services.policies`) the same
way: only that service (passing ``owner=POLICY``) changes or deletes them.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from strongbox.catalog.database import Catalog, sql_offset
from strongbox.catalog.models import Backup, Schedule, ScheduleRun, TenantSettings
from strongbox.errors import NotFound, StrongboxError
from strongbox.services.clock import Clock, SystemClock
from strongbox.services.errors import FieldError, SourceNotFound, ValidationFailed
from strongbox.services.filters import check_applicable, has_any
from strongbox.services.pagination import Page
from strongbox.services.principal import Principal
from strongbox.services.schedule_times import (
    CronTimes,
    ScheduleSpecError,
    frequency_cron,
    normalize_cron,
    zone,
)
from strongbox.services.sources import SourceService

ACTIONS = ("backup", "verify", "cleanup")
BACKUP_TYPES = ("full", "incremental", "differential", "selective")
RUNNING, COMPLETED, FAILED, SKIPPED = "running", "completed", "failed", "skipped"
RUN_STATUSES = (RUNNING, COMPLETED, FAILED, SKIPPED)
API, SETTINGS, POLICY = "api", "settings", "policy"
OWNED_ORIGINS = {SETTINGS: "PUT /api/v1/settings/backup",
                 POLICY: "PUT /api/v1/policies/{source_id}"}  # where each is changed
SCHEDULED, MANUAL = "schedule", "manual"
DEFAULT_CLEANUP_CRON = "0 3 * * *"
RETENTION_KEYS = ("retention_days", "retention_count", "keep_last", "keep_hourly",
                  "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly")
EDITABLE = ("name", "description", "enabled", "action", "cron", "frequency", "time", "day",
            "timezone", "type", "source_ids", "filters", "options", "retention")
_NAMESPACE = uuid.UUID("6f1c1d7e-5a0b-4c43-9d2e-1b9b1f0c5e11")


class ScheduleNotFound(NotFound):
    code = "SCHEDULE_NOT_FOUND"


class ScheduleConflict(StrongboxError):
    """Seed 004 ``SCHEDULE_CONFLICT``: e.g. changing a schedule the settings own."""

    code = "SCHEDULE_CONFLICT"
    http_status = 409


class ScheduleBusy(StrongboxError):
    """Seed 004 ``OPERATION_IN_PROGRESS``: the schedule's previous run is still going."""

    code = "OPERATION_IN_PROGRESS"
    http_status = 409


@dataclass(frozen=True)
class ScheduleView:
    id: str
    tenant: str
    name: str
    description: str | None
    origin: str
    action: str
    cron: str
    timezone: str
    spec: dict[str, Any]
    enabled: bool
    backup_type: str
    source_ids: list[str] | None
    filters: dict[str, Any] | None
    options: dict[str, Any] | None
    retention: dict[str, Any] | None
    next_run_at: datetime | None
    last_run_at: datetime | None
    last_status: str | None
    last_error: str | None
    running_since: datetime | None
    total_runs: int
    successful_runs: int
    failed_runs: int
    created_at: datetime
    updated_at: datetime
    created_by: str | None

    @property
    def times(self) -> CronTimes:
        return CronTimes(self.cron, zone(self.timezone))


def _view(row: Schedule) -> ScheduleView:
    return ScheduleView(
        row.id, row.tenant, row.name, row.description, row.origin, row.action, row.cron,
        row.timezone, dict(row.spec or {}), row.enabled, row.backup_type,
        list(row.source_ids) if row.source_ids is not None else None, row.filters,
        row.options, row.retention, row.next_run_at, row.last_run_at, row.last_status,
        row.last_error, row.running_since, row.total_runs, row.successful_runs,
        row.failed_runs, row.created_at, row.updated_at, row.created_by)


@dataclass(frozen=True)
class ScheduleRunView:
    id: int
    schedule_id: str
    tenant: str
    scheduled_for: datetime
    started_at: datetime | None
    finished_at: datetime | None
    status: str
    trigger: str
    catch_up: bool
    job_ids: list[str]
    backup_ids: list[str]
    error: str | None


def _run_view(row: ScheduleRun) -> ScheduleRunView:
    return ScheduleRunView(row.id, row.schedule_id, row.tenant, row.scheduled_for,
                           row.started_at, row.finished_at, row.status, row.trigger,
                           row.catch_up, list(row.job_ids or []), list(row.backup_ids or []),
                           row.error)




@dataclass(frozen=True)
class RunStart:
    """What :meth:`ScheduleService.begin_run` did: started a run, or recorded a skip."""

    schedule: ScheduleView
    run: ScheduleRunView

    @property
    def skipped(self) -> bool:
        return self.run.status == SKIPPED


class ScheduleService:
    def __init__(self, catalog: Catalog, sources: SourceService,
                 clock: Clock | None = None) -> None:
        self.catalog = catalog
        self.sources = sources
        self.clock: Clock = clock or SystemClock()
        # Told when a schedule changes, so a waiting scheduler re-reads its timetable.
        self.on_change: Callable[[], None] = lambda: None

    # --- create, read, change ---------------------------------------------------------

    def create(self, principal: Principal, body: dict[str, Any], *, origin: str = API,
               schedule_id: str | None = None,
               spec_extra: dict[str, Any] | None = None) -> ScheduleView:
        """A new schedule. ``origin``, ``schedule_id`` and ``spec_extra`` (kept in ``spec``
        next to the timing) are for services that own schedules, e.g. backup policies."""
        values = self._validated(principal.tenant, None, body, replace=True)
        values["spec"].update(spec_extra or {})
        row = Schedule(id=schedule_id or str(uuid.uuid4()), tenant=principal.tenant,
                       origin=origin, created_by=principal.key_id, total_runs=0,
                       successful_runs=0, failed_runs=0, **values)
        row.next_run_at = self._next(row.cron, row.timezone) if row.enabled else None
        view = self._save(row, add=True)
        self.on_change()
        return view

    def get(self, tenant: str, schedule_id: str) -> ScheduleView:
        with self.catalog.session() as session:
            return _view(self._row(session, tenant, schedule_id))

    def list(self, tenant: str, *, page: int = 1, size: int = 20,
             enabled: bool | None = None, action: str | None = None) -> Page[ScheduleView]:
        self.sync_settings(tenant)
        query = select(Schedule).where(Schedule.tenant == tenant)
        if enabled is not None:
            query = query.where(Schedule.enabled == enabled)
        if action is not None:
            query = query.where(Schedule.action == action)
        with self.catalog.session() as session:
            total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
            rows = session.scalars(query.order_by(Schedule.created_at, Schedule.name)
                                   .offset(sql_offset(page, size)).limit(size))
            return Page([_view(row) for row in rows], total, page, size)

    def update(self, tenant: str, schedule_id: str, body: dict[str, Any], *,
               replace: bool = False, owner: str | None = None,
               spec_extra: dict[str, Any] | None = None) -> ScheduleView:
        """Change a schedule: ``replace`` (PUT) resets what ``body`` leaves out to the
        defaults; otherwise (PATCH) only the fields given change. ``owner``: the origin the
        caller acts for (a schedule of origin settings or policy changes only for it)."""
        current = self._editable(tenant, schedule_id, owner)
        values = self._validated(tenant, current, body, replace=replace)
        values["spec"].update(spec_extra or {})
        with self.catalog.session() as session:
            row = self._row(session, tenant, schedule_id)
            timing_changed = (values["cron"], values["timezone"]) != (row.cron, row.timezone)
            was_enabled = row.enabled
            for name, value in values.items():
                setattr(row, name, value)
            if not row.enabled:
                row.next_run_at = None
            elif timing_changed or not was_enabled or row.next_run_at is None:
                row.next_run_at = self._next(row.cron, row.timezone)
            row.updated_at = self.clock.now()
            try:
                session.flush()
            except IntegrityError:
                raise _duplicate_name(values["name"]) from None
            view = _view(row)
        self.on_change()
        return view

    def toggle(self, tenant: str, schedule_id: str, enabled: bool | None = None
               ) -> ScheduleView:
        """Enable or disable (``None``: flip). Enabling starts from now: slots that
        passed while it was disabled are not caught up."""
        self._editable(tenant, schedule_id)
        with self.catalog.session() as session:
            row = self._row(session, tenant, schedule_id)
            row.enabled = (not row.enabled) if enabled is None else enabled
            row.next_run_at = self._next(row.cron, row.timezone) if row.enabled else None
            row.updated_at = self.clock.now()
            view = _view(row)
        self.on_change()
        return view

    def delete(self, tenant: str, schedule_id: str, *, owner: str | None = None
               ) -> ScheduleView:
        """Remove a schedule and its run history; the backups it made stay (their
        ``schedule_id`` keeps naming it). A run in progress finishes unrecorded."""
        self._editable(tenant, schedule_id, owner)
        with self.catalog.session() as session:
            row = self._row(session, tenant, schedule_id)
            view = _view(row)
            session.execute(delete(ScheduleRun).where(ScheduleRun.schedule_id == row.id))
            session.delete(row)
        self.on_change()
        return view

    def runs(self, tenant: str, schedule_id: str, *, page: int = 1, size: int = 20,
             status: str | None = None) -> Page[ScheduleRunView]:
        """A schedule's runs, newest first."""
        self.get(tenant, schedule_id)
        query = select(ScheduleRun).where(ScheduleRun.schedule_id == schedule_id,
                                          ScheduleRun.tenant == tenant)
        if status is not None:
            query = query.where(ScheduleRun.status == status)
        with self.catalog.session() as session:
            total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
            rows = session.scalars(query.order_by(ScheduleRun.scheduled_for.desc(),
                                                  ScheduleRun.id.desc())
                                   .offset(sql_offset(page, size)).limit(size))
            return Page([_run_view(row) for row in rows], total, page, size)

    def _row(self, session: Session, tenant: str, schedule_id: str) -> Schedule:
        row = session.get(Schedule, schedule_id) if _is_uuid(schedule_id) else None
        if row is None or row.tenant != tenant:
            raise ScheduleNotFound(f"schedule {schedule_id} not found")
        return row

    def _editable(self, tenant: str, schedule_id: str, owner: str | None = None
                  ) -> ScheduleView:
        current = self.get(tenant, schedule_id)
        if current.origin in OWNED_ORIGINS and current.origin != owner \
                and not self._orphaned(current):
            what = ("the tenant's backup settings" if current.origin == SETTINGS
                    else "a source's backup policy")
            raise ScheduleConflict(
                f"schedule {current.name!r} comes from {what}; change it with "
                f"{OWNED_ORIGINS[current.origin]}",
                details={"schedule_id": current.id, "origin": current.origin})
        return current

    def _orphaned(self, schedule: ScheduleView) -> bool:
        """A policy's schedule whose source was deleted: nobody owns it any more, so the
        schedules API may remove it."""
        if schedule.origin != POLICY:
            return False
        errors: builtins.list[FieldError] = []
        self._sources(schedule.tenant, schedule.source_ids, errors)
        return bool(errors)

    def check(self, tenant: str, body: dict[str, Any]) -> None:
        """Validate a whole schedule body without storing it (ValidationFailed if bad):
        for services that write several schedules and want all of them valid first."""
        self._validated(tenant, None, body, replace=True)

    def _save(self, row: Schedule, *, add: bool) -> ScheduleView:
        try:
            with self.catalog.session() as session:
                if add:
                    session.add(row)
                else:
                    row = session.merge(row)
                session.flush()
                return _view(row)
        except IntegrityError:
            raise _duplicate_name(row.name) from None

    def _next(self, cron: str, timezone: str) -> datetime:
        return CronTimes(cron, zone(timezone)).next_after(self.clock.now())

    # --- validation ---------------------------------------------------------------------

    def _validated(self, tenant: str, current: ScheduleView | None, body: dict[str, Any], *,
                   replace: bool) -> dict[str, Any]:
        """Column values for a new or changed schedule, or ValidationFailed naming every
        bad field."""
        given = {k: v for k, v in body.items() if k in EDITABLE}
        base = _defaults() if (replace or current is None) else _as_body(current)
        merged = {**base, **given}
        errors: list[FieldError] = []
        name = (merged.get("name") or "").strip()
        if not name:
            errors.append(FieldError("name", "a schedule needs a name", "REQUIRED"))
        if merged["action"] not in ACTIONS:
            errors.append(FieldError("action", f"action is one of {', '.join(ACTIONS)}",
                                     "INVALID_VALUE", merged["action"]))
        if merged["type"] not in BACKUP_TYPES:
            errors.append(FieldError("type", f"type is one of {', '.join(BACKUP_TYPES)}",
                                     "INVALID_VALUE", merged["type"]))
        cron, spec = self._timing(current, given, merged, errors, replace=replace)
        sources = self._sources(tenant, merged.get("source_ids"), errors)
        filters = merged.get("filters") or None
        if merged["action"] == "backup" and merged["type"] == "selective" \
                and not has_any(filters):
            errors.append(FieldError("filters", "a selective backup needs at least one "
                                     "filter", "FILTER_REQUIRED"))
        if filters and merged["type"] == "selective":
            for source in sources:
                try:
                    check_applicable(source.kind, filters)
                except ValidationFailed as exc:
                    errors.extend(exc.errors)
        retention = self._retention(merged.get("retention"), errors)
        if errors:
            raise ValidationFailed("the schedule is not valid", errors)
        return {"name": name, "description": merged.get("description"),
                "enabled": bool(merged["enabled"]), "action": merged["action"], "cron": cron,
                "timezone": spec["timezone"], "spec": spec, "backup_type": merged["type"],
                "source_ids": [s.id for s in sources] or None, "filters": filters,
                "options": merged.get("options") or None, "retention": retention}

    @staticmethod
    def _timing(current: ScheduleView | None, given: dict[str, Any], merged: dict[str, Any],
                errors: list[FieldError], *, replace: bool) -> tuple[str, dict[str, Any]]:
        timezone = "UTC" if merged.get("timezone") is None else merged["timezone"]
        spec: dict[str, Any] = {"timezone": timezone}
        cron = ""
        try:
            zone(timezone)
        except ScheduleSpecError as exc:
            errors.append(FieldError(exc.field, exc.message, exc.code, exc.value))
        wants_cron = given.get("cron") is not None
        wants_form = any(given.get(k) is not None for k in ("frequency", "time", "day"))
        if wants_cron and given.get("frequency") is not None:
            errors.append(FieldError("frequency", "give either cron or frequency (with time "
                                     "and day), not both", "INVALID_VALUE",
                                     given["frequency"]))
            return cron, spec
        if not wants_cron and not wants_form and current is not None and not replace:
            wants_cron = "cron" in current.spec  # keep the form it had
            wants_form = not wants_cron
        try:
            if wants_cron:
                cron = normalize_cron(merged["cron"])
                spec["cron"] = merged["cron"]
            elif merged.get("frequency") is not None:
                cron = frequency_cron(merged["frequency"], merged.get("time"),
                                      merged.get("day"))
                spec.update({k: merged.get(k) for k in ("frequency", "time", "day")
                             if merged.get(k) is not None})
            else:
                errors.append(FieldError("cron", "give a cron expression, or a frequency "
                                         "(hourly, daily, weekly, monthly) with time and day",
                                         "REQUIRED"))
        except ScheduleSpecError as exc:
            errors.append(FieldError(exc.field, exc.message, exc.code, exc.value))
        return cron, spec

    def _sources(self, tenant: str, source_ids: Any, errors: list[FieldError]
                 ) -> builtins.list[Any]:
        found = []
        for index, source_id in enumerate(source_ids or []):
            try:
                found.append(self.sources.get(tenant, str(source_id)))
            except SourceNotFound:
                errors.append(FieldError(f"source_ids[{index}]", "no such source",
                                         "NOT_FOUND", source_id))
        return found

    @staticmethod
    def _retention(retention: Any, errors: list[FieldError]) -> dict[str, Any] | None:
        if not retention:
            return None
        kept = {}
        for key, value in dict(retention).items():
            if key not in RETENTION_KEYS:
                errors.append(FieldError(f"retention.{key}", "known keys: "
                                         + ", ".join(RETENTION_KEYS), "NOT_SUPPORTED", value))
            elif value is not None:
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    errors.append(FieldError(f"retention.{key}", "a whole number, 1 or more",
                                             "OUT_OF_RANGE", value))
                else:
                    kept[key] = value
        return kept or None

    # --- the tenant settings' schedules ------------------------------------------------

    def sync_settings(self, tenant: str | None = None) -> None:
        """Mirror the settings documents (all tenants, or one) into schedules of origin
        ``settings``: one per ``scheduling.schedules`` entry (enabled when both
        ``scheduling.enabled`` and the entry are), and a ``cleanup`` schedule for
        ``retention.auto_cleanup``. Run by the scheduler every pass and before listing."""
        query = select(TenantSettings)
        if tenant is not None:
            query = query.where(TenantSettings.tenant == tenant)
        with self.catalog.session() as session:
            documents = {row.tenant: dict(row.document) for row in session.scalars(query)}
        for name in documents if tenant is None else [tenant]:
            try:
                self._mirror(name, settings_schedules(name, documents.get(name) or {}))
            except IntegrityError:
                continue  # another thread mirrored the same rows at the same time

    def _mirror(self, tenant: str, wanted: builtins.list[dict[str, Any]]) -> None:
        now = self.clock.now()
        with self.catalog.session() as session:
            existing = {row.id: row for row in session.scalars(
                select(Schedule).where(Schedule.tenant == tenant, Schedule.origin == SETTINGS))}
            taken = set(session.scalars(select(Schedule.name).where(
                Schedule.tenant == tenant, Schedule.origin != SETTINGS)))
            for values in wanted:
                values["name"] = _free_name(values["name"], taken, values["id"])
                taken.add(values["name"])
                row = existing.pop(values["id"], None)
                if row is None:
                    row = Schedule(tenant=tenant, origin=SETTINGS, total_runs=0,
                                   successful_runs=0, failed_runs=0, created_at=now,
                                   created_by="settings", **values)
                    row.next_run_at = (self._next(row.cron, row.timezone) if row.enabled
                                       else None)
                    session.add(row)
                    continue
                timing = (row.cron, row.timezone, row.enabled)
                changed = any(getattr(row, k) != v for k, v in values.items())
                for key, value in values.items():
                    setattr(row, key, value)
                if (row.cron, row.timezone, row.enabled) != timing or (
                        row.enabled and row.next_run_at is None):
                    row.next_run_at = (self._next(row.cron, row.timezone) if row.enabled
                                       else None)
                if changed:
                    row.updated_at = now
            for row in existing.values():  # removed from the settings
                session.execute(delete(ScheduleRun).where(ScheduleRun.schedule_id == row.id))
                session.delete(row)

    # --- runs (used by the scheduler) ---------------------------------------------------

    def due(self, now: datetime) -> builtins.list[ScheduleView]:
        with self.catalog.session() as session:
            rows = session.scalars(select(Schedule).where(
                Schedule.enabled.is_(True), Schedule.next_run_at.is_not(None),
                Schedule.next_run_at <= now).order_by(Schedule.next_run_at))
            return [_view(row) for row in rows]

    def next_due_at(self) -> datetime | None:
        with self.catalog.session() as session:
            return session.scalar(select(func.min(Schedule.next_run_at)).where(
                Schedule.enabled.is_(True)))

    def begin_run(self, schedule_id: str, *, now: datetime, scheduled_for: datetime,
                  trigger: str, catch_up: bool = False,
                  expected_next: datetime | None = None) -> RunStart | None:
        """Claim a run atomically. A scheduled slot first moves ``next_run_at`` on (only
        if it still is ``expected_next``: else another process took it, and None comes
        back); if the previous run is still going the slot is recorded as skipped. A
        manual run of a busy schedule raises :class:`ScheduleBusy`."""
        with self.catalog.session() as session:
            row = session.get(Schedule, schedule_id, with_for_update=True)
            if row is None:
                return None
            if trigger == SCHEDULED:
                if not row.enabled or row.next_run_at != expected_next:
                    return None
                row.next_run_at = CronTimes(row.cron, zone(row.timezone)).next_after(now)
            if row.running_since is not None:
                if trigger == MANUAL:
                    raise ScheduleBusy(f"schedule {row.name!r} is still running (since "
                                       f"{row.running_since.isoformat()})",
                                       details={"schedule_id": row.id})
                run = ScheduleRun(schedule_id=row.id, tenant=row.tenant,
                                  scheduled_for=scheduled_for, finished_at=now,
                                  status=SKIPPED, trigger=trigger, catch_up=catch_up,
                                  error="the previous run was still in progress")
            else:
                row.running_since = row.last_run_at = now
                row.last_status = RUNNING
                row.last_error = None
                row.total_runs += 1
                run = ScheduleRun(schedule_id=row.id, tenant=row.tenant,
                                  scheduled_for=scheduled_for, started_at=now, status=RUNNING,
                                  trigger=trigger, catch_up=catch_up)
            session.add(run)
            session.flush()
            return RunStart(_view(row), _run_view(run))

    def attach(self, run_id: int, job_ids: builtins.list[str],
               backup_ids: builtins.list[str], error: str | None = None) -> None:
        """Record what a run started (and what failed to start)."""
        with self.catalog.session() as session:
            session.execute(update(ScheduleRun).where(ScheduleRun.id == run_id)
                            .values(job_ids=job_ids, backup_ids=backup_ids, error=error))

    def run(self, run_id: int) -> ScheduleRunView | None:
        with self.catalog.session() as session:
            row = session.get(ScheduleRun, run_id)
            return _run_view(row) if row is not None else None

    def finish_run(self, run_id: int, status: str, error: str | None = None) -> bool:
        """End a running run and update its schedule's counters; False if it had ended."""
        now = self.clock.now()
        with self.catalog.session() as session:
            run = session.get(ScheduleRun, run_id, with_for_update=True)
            if run is None or run.status != RUNNING:
                return False
            run.status, run.finished_at, run.error = status, now, error
            row = session.get(Schedule, run.schedule_id)
            if row is not None:
                row.running_since = None
                row.last_status, row.last_error = status, error
                if status == COMPLETED:
                    row.successful_runs += 1
                else:
                    row.failed_runs += 1
            return True

    def running_runs(self) -> builtins.list[ScheduleRunView]:
        with self.catalog.session() as session:
            return [_run_view(row) for row in session.scalars(
                select(ScheduleRun).where(ScheduleRun.status == RUNNING))]

    def tag_backups(self, backup_ids: builtins.list[str], schedule_id: str) -> None:
        """Record on each backup the schedule that made it (``backups.schedule_id``)."""
        if backup_ids:
            with self.catalog.session() as session:
                session.execute(update(Backup).where(Backup.id.in_(backup_ids))
                                .values(schedule_id=schedule_id))


def settings_schedules(tenant: str, document: dict[str, Any]) -> list[dict[str, Any]]:
    """The schedules a settings document asks for, as column values (validated cron
    expressions only: the settings service refuses others, so none should be skipped)."""
    wanted = []
    scheduling = document.get("scheduling") or {}
    for entry in scheduling.get("schedules") or []:
        try:
            cron = normalize_cron(entry.get("schedule") or "")
        except ScheduleSpecError:
            continue
        entry_id = str(entry.get("_id") or entry.get("name"))
        wanted.append({
            "id": str(uuid.uuid5(_NAMESPACE, f"{tenant}/scheduling/{entry_id}")),
            "name": f"settings: {entry.get('name') or entry_id}"[:100],
            "description": "from the backup settings (scheduling.schedules)",
            "action": "backup", "cron": cron, "timezone": "UTC",
            "spec": {"cron": entry.get("schedule"), "timezone": "UTC",
                     "settings_id": entry.get("_id")},
            "enabled": bool(scheduling.get("enabled")) and entry.get("enabled", True)
            is not False,
            "backup_type": entry.get("type") or "full", "source_ids": None,
            "filters": entry.get("filters") or None, "options": entry.get("options") or None,
            "retention": None})
    retention = document.get("retention") or {}
    if retention.get("auto_cleanup"):
        expression = retention.get("cleanup_schedule") or DEFAULT_CLEANUP_CRON
        try:
            cron = normalize_cron(expression)
        except ScheduleSpecError:
            cron = DEFAULT_CLEANUP_CRON
        wanted.append({
            "id": str(uuid.uuid5(_NAMESPACE, f"{tenant}/retention/cleanup")),
            "name": "settings: retention cleanup",
            "description": "from the backup settings (retention.auto_cleanup)",
            "action": "cleanup", "cron": cron, "timezone": "UTC",
            "spec": {"cron": expression, "timezone": "UTC"},
            "enabled": bool(retention.get("enabled", True)), "backup_type": "full",
            "source_ids": None, "filters": None, "options": None, "retention": None})
    return wanted


def _defaults() -> dict[str, Any]:
    return {"name": None, "description": None, "enabled": True, "action": "backup",
            "cron": None, "frequency": None, "time": None, "day": None, "timezone": "UTC",
            "type": "full", "source_ids": None, "filters": None, "options": None,
            "retention": None}


def _as_body(view: ScheduleView) -> dict[str, Any]:
    return {"name": view.name, "description": view.description, "enabled": view.enabled,
            "action": view.action, "cron": view.spec.get("cron"),
            "frequency": view.spec.get("frequency"), "time": view.spec.get("time"),
            "day": view.spec.get("day"), "timezone": view.timezone, "type": view.backup_type,
            "source_ids": view.source_ids, "filters": view.filters, "options": view.options,
            "retention": view.retention}


def _free_name(name: str, taken: set[str], row_id: str) -> str:
    return name if name not in taken else f"{name[:90]} ({row_id[:8]})"


def _duplicate_name(name: str) -> ValidationFailed:
    return ValidationFailed("the schedule is not valid", [FieldError(
        "name", "this tenant already has a schedule of that name", "DUPLICATE", name)])


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        return False
    return True
