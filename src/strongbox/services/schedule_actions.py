"""What a schedule does when it fires: adapters from the scheduler's ``Action`` (a schedule
in, the jobs it started out) to the services that do the work. The container registers
them; the scheduler itself imports none of these features.
"""

from __future__ import annotations

import re
from typing import Any

from strongbox.errors import StrongboxError
from strongbox.services.backups import BackupService, NewBackup
from strongbox.services.cleanup import CleanupService
from strongbox.services.principal import Principal, Role
from strongbox.services.scheduler import Action, ActionOutcome, AfterRun
from strongbox.services.schedules import SETTINGS, ScheduleView
from strongbox.services.sources import SourceService
from strongbox.services.verification import VerificationService, VerifyOptions

SCHEDULER = "scheduler"  # created_by of what schedules make (seed 004 "created_by")


def _principal(schedule: ScheduleView) -> Principal:
    return Principal(SCHEDULER, f"schedule {schedule.name}", schedule.tenant, Role.OPERATOR)


def _failure(what: str, exc: StrongboxError) -> str:
    return f"{what}: {exc.code}: {exc.message}"


def backup_name(schedule: ScheduleView, stamp: str) -> str:
    """A backup name the API would accept too (letters, digits, spaces, - and _)."""
    base = re.sub(r"[^a-zA-Z0-9\s\-_]+", "-", schedule.name).strip(" -") or "scheduled"
    return f"{base[:80]} {stamp}"


def backup_action(backups: BackupService, sources: SourceService) -> Action:
    """``backup``: one backup per source of the schedule (its ``source_ids``; none given:
    every source the tenant has when the run starts; schedules from the settings: the
    tenant's default source, like ``POST /backups`` without ``source_id``)."""

    def run(schedule: ScheduleView) -> ActionOutcome:
        targets: list[str | None]
        if schedule.origin == SETTINGS:
            targets = [None]
        elif schedule.source_ids:
            targets = list(schedule.source_ids)
        else:
            targets = [source.id for source in sources.list(schedule.tenant)]
        outcome = ActionOutcome()
        if not targets:
            outcome.errors.append("the tenant has no sources to back up")
            return outcome
        stamp = (schedule.last_run_at.strftime("%Y%m%d-%H%M") if schedule.last_run_at
                 else "run")
        for source_id in targets:
            try:
                created = backups.create(_principal(schedule), NewBackup(
                    name=backup_name(schedule, stamp), type=schedule.backup_type,
                    description=f"scheduled backup (schedule {schedule.name!r})",
                    filters=schedule.filters, options=schedule.options,
                    source_id=source_id, schedule_id=schedule.id))
            except StrongboxError as exc:
                outcome.errors.append(_failure(f"source {source_id or '(default)'}", exc))
                continue
            outcome.job_ids.append(created.job.id)
            outcome.backup_ids.append(created.backup.id)
        return outcome

    return run


def verify_action(verification: VerificationService) -> Action:
    """``verify``: verify the newest backup of each of the schedule's sources (all the
    tenant's if none are named); ``options.deep``/``options.test_restore`` choose how
    thoroughly."""

    def run(schedule: ScheduleView) -> ActionOutcome:
        options = schedule.options or {}
        jobs = verification.verify_latest(
            schedule.tenant, source_ids=schedule.source_ids,
            options=VerifyOptions(deep=bool(options.get("deep", False)),
                                  test_restore=bool(options.get("test_restore", False))),
            created_by=SCHEDULER)
        return ActionOutcome(job_ids=[job.id for job in jobs])

    return run


def cleanup_action(cleanup: CleanupService) -> Action:
    """``cleanup``: apply the tenant's retention settings now (plan, then execute)."""

    def run(schedule: ScheduleView) -> ActionOutcome:
        started = cleanup.run_scheduled_cleanup(schedule.tenant, created_by=SCHEDULER)
        if started is None:  # retention off, or nothing to delete
            return ActionOutcome()
        return ActionOutcome(job_ids=[started.job.id])

    return run


def retention_after_run(cleanup: CleanupService) -> AfterRun:
    """After a successful backup run: the schedule's own ``retention`` over the backups
    that schedule made (CleanupService.apply_schedule_retention)."""

    def after(schedule: ScheduleView, status: str) -> None:
        if status == "completed" and schedule.action == "backup" and schedule.retention:
            cleanup.apply_schedule_retention(schedule.tenant, schedule.id, schedule.retention,
                                             created_by=SCHEDULER, timezone=schedule.timezone)

    return after


def scheduler_actions(services: Any) -> dict[str, Action]:
    """The actions of a server's scheduler, from its services (the container's
    ``Services``; typed loosely so this module does not import the container)."""
    return {"backup": backup_action(services.backups, services.sources),
            "verify": verify_action(services.verification),
            "cleanup": cleanup_action(services.cleanup)}
