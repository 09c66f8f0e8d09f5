"""The scheduler: a daemon thread inside the server that fires schedules when they are due.

One pass (:meth:`Scheduler.tick`):

1. mirror the tenants' settings documents into schedules (``scheduling.schedules``,
   ``retention.auto_cleanup``; see :meth:`ScheduleService.sync_settings`);
2. fire every enabled schedule whose ``next_run_at`` has come. Claiming a slot moves
   ``next_run_at`` to the next due time *after now* in one conditional update, so
   however many slots were missed (the server was down, the machine slept) the schedule
   runs **once** (``catch_up`` on that run), and two schedulers sharing a catalog never
   both take a slot. If the schedule's previous run is still going, the slot is recorded
   as ``skipped``: a schedule never runs twice at once;
3. end the runs whose jobs have all ended: ``completed`` if every job completed, else
   ``failed`` with the reasons; the schedule's ``last_status`` and counters follow.

The first pass after start-up is the catch-up pass: every schedule overdue then was due
while the server was down. Runs a previous server left ``running`` end as ``failed``
(their jobs were marked interrupted at start-up).

Between passes the thread waits on the :class:`~strongbox.services.clock.Clock` until the
next due time or ``interval`` seconds, whichever is first; a job of a run ending or a
schedule changing wakes it early. Actions are plain callables registered by name
(``backup``, ``verify``, ``cleanup``): this module knows nothing of what they do.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from strongbox.errors import StrongboxError
from strongbox.jobs.events import EventBus, JobEvent
from strongbox.jobs.store import ACTIVE, COMPLETED, JobStore, JobView
from strongbox.services.clock import Clock
from strongbox.services.errors import ServiceUnavailable
from strongbox.services.schedules import COMPLETED as RUN_COMPLETED
from strongbox.services.schedules import (
    FAILED,
    MANUAL,
    SCHEDULED,
    RunStart,
    ScheduleService,
    ScheduleView,
)

log = logging.getLogger(__name__)


@dataclass
class ActionOutcome:
    """What an action started: jobs to wait for, backups it made, parts that failed to
    start. ``status`` set means the action already finished (nothing to wait for)."""

    job_ids: list[str] = field(default_factory=list)
    backup_ids: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    status: str | None = None


Action = Callable[[ScheduleView], ActionOutcome]
# Called after a run ended (schedule, run status), e.g. to apply the schedule's retention.
AfterRun = Callable[[ScheduleView, str], None]


class Scheduler:
    def __init__(self, schedules: ScheduleService, jobs: JobStore, *,
                 bus: EventBus | None = None, interval: float = 30.0,
                 actions: dict[str, Action] | None = None) -> None:
        self.schedules = schedules
        self.jobs = jobs
        self.bus = bus
        self.interval = interval
        self.actions: dict[str, Action] = dict(actions or {})
        self.after_run: AfterRun | None = None
        self._lock = threading.RLock()  # one pass or manual run at a time
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started_at: datetime | None = None
        self._unsubscribe: dict[int, list[Callable[[], None]]] = {}
        schedules.on_change = self.wake

    @property
    def clock(self) -> Clock:
        """The schedules' clock: one notion of "now" for due times and bookkeeping."""
        return self.schedules.clock

    def register(self, action: str, fn: Action) -> None:
        self.actions[action] = fn

    # --- the thread ---------------------------------------------------------------------

    def start(self) -> None:
        if self.is_running():
            return
        self._stop.clear()
        self._started_at = self.clock.now()
        self._thread = threading.Thread(target=self._loop, name="scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        for run_id in list(self._unsubscribe):
            self._forget(run_id)

    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wake(self) -> None:
        """Run a pass now (a schedule changed, a job of a run ended)."""
        self._wake.set()

    def _loop(self) -> None:
        startup = True
        while not self._stop.is_set():
            try:
                self.tick(startup=startup)
                startup = False
            except Exception:  # the thread must outlive a bad pass (e.g. catalog down)
                log.exception("scheduler pass failed")
            if self._stop.is_set():
                break
            self.clock.wait_until(self._wake_at(), self._wake)
            self._wake.clear()

    def _wake_at(self) -> datetime:
        """The next pass: the next due slot, or one interval from now, whichever is first."""
        now = self.clock.now()
        at = now + timedelta(seconds=self.interval)
        try:
            upcoming = self.schedules.next_due_at()
        except Exception:
            return at
        if upcoming is not None:
            at = min(at, upcoming)
        return max(at, now + timedelta(milliseconds=1))

    # --- one pass -----------------------------------------------------------------------

    def tick(self, *, startup: bool = False) -> list[RunStart]:
        """Mirror the settings, fire what is due, end what has finished. Returns the runs
        started or skipped in this pass."""
        with self._lock:
            if self._started_at is None:
                self._started_at = self.clock.now()
            self.schedules.sync_settings()
            now = self.clock.now()
            fired = []
            for schedule in self.schedules.due(now):
                assert schedule.next_run_at is not None
                slot = schedule.next_run_at
                several = schedule.times.next_after(slot) <= now
                start = self._fire(schedule, now=now, scheduled_for=slot, trigger=SCHEDULED,
                                   catch_up=startup or several, expected_next=slot)
                if start is not None:
                    fired.append(start)
            self.finish_runs()
            return fired

    def run_now(self, tenant: str, schedule_id: str) -> RunStart:
        """Fire a schedule at once (``trigger: manual``); its timetable is unchanged.
        409 ``OPERATION_IN_PROGRESS`` while its previous run is going."""
        schedule = self.schedules.get(tenant, schedule_id)
        if not self.is_running():
            raise ServiceUnavailable("the scheduler is not running on this server "
                                     "(STRONGBOX_SCHEDULER_ENABLED=false), so a run could "
                                     "not be followed to its end")
        with self._lock:
            now = self.clock.now()
            start = self._fire(schedule, now=now, scheduled_for=now, trigger=MANUAL)
        assert start is not None
        return start

    def _fire(self, schedule: ScheduleView, *, now: datetime, scheduled_for: datetime,
              trigger: str, catch_up: bool = False,
              expected_next: datetime | None = None) -> RunStart | None:
        start = self.schedules.begin_run(schedule.id, now=now, scheduled_for=scheduled_for,
                                         trigger=trigger, catch_up=catch_up,
                                         expected_next=expected_next)
        if start is None or start.skipped:
            if start is not None:
                log.warning("schedule %s (%s): slot %s skipped, the previous run is still "
                            "going", schedule.id, schedule.name, scheduled_for.isoformat())
            return start
        run_id = start.run.id
        log.info("schedule %s (%s): %s run %d started%s", schedule.id, schedule.name,
                 schedule.action, run_id, " (catch-up)" if catch_up else "")
        action = self.actions.get(start.schedule.action)
        try:
            if action is None:
                raise ServiceUnavailable(f"no {start.schedule.action!r} action is available "
                                         "on this server")
            outcome = action(start.schedule)
        except Exception as exc:
            message = (f"{exc.code}: {exc.message}" if isinstance(exc, StrongboxError)
                       else f"{type(exc).__name__}: {exc}")
            if not isinstance(exc, StrongboxError):
                log.exception("schedule %s: the %s action crashed", schedule.id,
                              schedule.action)
            self.schedules.finish_run(run_id, FAILED, message)
            return self._refreshed(start)
        self.schedules.attach(run_id, outcome.job_ids, outcome.backup_ids,
                              "; ".join(outcome.errors) or None)
        if outcome.status is not None or not outcome.job_ids:
            status = outcome.status or (FAILED if outcome.errors else RUN_COMPLETED)
            self.schedules.finish_run(run_id, status, "; ".join(outcome.errors) or None)
        else:
            self._follow(run_id, outcome.job_ids)
        return self._refreshed(start)

    def _refreshed(self, start: RunStart) -> RunStart:
        run = self.schedules.run(start.run.id)
        schedule = self.schedules.get(start.schedule.tenant, start.schedule.id)
        return RunStart(schedule, run or start.run)

    def _follow(self, run_id: int, job_ids: list[str]) -> None:
        """Wake the loop when any job of the run ends, so the run ends promptly."""
        if self.bus is None:
            return

        def listener(event: JobEvent) -> None:
            if event.final:
                self._wake.set()

        self._unsubscribe[run_id] = [self.bus.subscribe(job_id, listener)
                                     for job_id in job_ids]
        self._wake.set()  # a job may have ended before the subscription

    def _forget(self, run_id: int) -> None:
        for unsubscribe in self._unsubscribe.pop(run_id, []):
            unsubscribe()

    def finish_runs(self) -> None:
        """End every running run whose jobs have all ended."""
        with self._lock:
            running = self.schedules.running_runs()
            for gone in set(self._unsubscribe) - {run.id for run in running}:
                self._forget(gone)  # its schedule was deleted meanwhile
            for run in running:
                jobs = [self.jobs.get(job_id) for job_id in run.job_ids]
                if any(job is not None and job.status in ACTIVE for job in jobs):
                    continue
                if not run.job_ids and not self._from_before_start(run.started_at):
                    continue  # another process may be starting it right now
                status, error = _outcome(run.error, run.job_ids, jobs)
                if self.schedules.finish_run(run.id, status, error):
                    log.info("schedule %s: run %d %s", run.schedule_id, run.id, status)
                    self._after(run.tenant, run.schedule_id, status)
                self._forget(run.id)

    def _after(self, tenant: str, schedule_id: str, status: str) -> None:
        if self.after_run is None:
            return
        try:
            self.after_run(self.schedules.get(tenant, schedule_id), status)
        except Exception:  # the run has ended either way; the next one tries again
            log.exception("schedule %s: the after-run step failed", schedule_id)

    def _from_before_start(self, started_at: datetime | None) -> bool:
        return (started_at is None or self._started_at is None
                or started_at < self._started_at)


def _outcome(start_errors: str | None, job_ids: list[str], jobs: list[JobView | None]
             ) -> tuple[str, str | None]:
    problems = [start_errors] if start_errors else []
    if not job_ids and not start_errors:
        problems.append("the server stopped before this run started its work")
    for job_id, job in zip(job_ids, jobs, strict=True):
        if job is None:
            problems.append(f"job {job_id} no longer exists")
        elif job.status != COMPLETED:
            error = job.error or {}
            problems.append(f"{job.kind} job {job.id} {job.status}: "
                            f"{error.get('code', 'FAILED')}: {error.get('message', '')}".rstrip())
    return (FAILED, "; ".join(problems)) if problems else (RUN_COMPLETED, None)
