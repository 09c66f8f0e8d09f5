"""The scheduler on a controlled clock: due times across DST changes, catch-up after a
restart, never two runs of a schedule at once, run outcomes and counters.

Real catalog (SQLite) and job store; the action is a test callable that records when it
fired and creates a real job row whose end the test decides.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from strongbox.catalog.database import Catalog
from strongbox.catalog.models import TenantSettings
from strongbox.jobs.store import COMPLETED, FAILED, JobStore, job_error
from strongbox.services.clock import ManualClock
from strongbox.services.errors import ValidationFailed
from strongbox.services.principal import Principal, Role
from strongbox.services.schedule_times import CronTimes
from strongbox.services.scheduler import ActionOutcome, Scheduler
from strongbox.services.schedules import (
    ScheduleBusy,
    ScheduleConflict,
    ScheduleService,
    ScheduleView,
)
from strongbox.services.secret_box import SecretBox
from strongbox.services.sources import SourceService

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
OPERATOR = Principal("k1", "test", "t1", Role.OPERATOR)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


@dataclass
class Recorder:
    """The ``backup`` action of these tests: one real job per firing, ended by the test."""

    store: JobStore
    clock: ManualClock
    fired: list[datetime] = field(default_factory=list)
    jobs: list[str] = field(default_factory=list)
    fail_with: Exception | None = None

    def __call__(self, schedule: ScheduleView) -> ActionOutcome:
        if self.fail_with is not None:
            raise self.fail_with
        self.fired.append(self.clock.now())
        job = self.store.create(schedule.tenant, "test", {"schedule": schedule.id})
        self.jobs.append(job.id)
        return ActionOutcome(job_ids=[job.id])

    def finish_all(self, status: str = COMPLETED) -> None:
        for job_id in self.jobs:
            job = self.store.get(job_id)
            if job is not None and job.active:
                error = job_error("BOOM", "it broke") if status == FAILED else None
                self.store.finish(job_id, status, error=error)


@dataclass
class World:
    catalog: Catalog
    clock: ManualClock
    store: JobStore
    schedules: ScheduleService
    scheduler: Scheduler
    action: Recorder

    def restart(self) -> World:
        """A new server process on the same catalog and clock."""
        self.scheduler.stop()
        return make_world(self.catalog, self.clock, self.action.fired)

    def run_until(self, end: datetime) -> list[datetime]:
        """Jump from due time to due time up to ``end``, checking that nothing fires a
        second early; every run's jobs complete at once. Returns the firing times."""
        start = len(self.action.fired)
        while True:
            upcoming = self.schedules.next_due_at()
            if upcoming is None or upcoming > end:
                break
            self.clock.set(upcoming - timedelta(seconds=1))
            assert self.scheduler.tick() == []
            self.clock.set(upcoming)
            assert len(self.scheduler.tick()) == 1
            self.action.finish_all()
            self.scheduler.finish_runs()
        return self.action.fired[start:]


def make_world(catalog: Catalog, clock: ManualClock,
               fired: list[datetime] | None = None) -> World:
    store = JobStore(catalog)
    sources = SourceService(catalog, SecretBox(Path(catalog.engine.url.database or ".")
                                               .with_name("secret.key")))
    schedules = ScheduleService(catalog, sources, clock)
    action = Recorder(store, clock, fired if fired is not None else [])
    scheduler = Scheduler(schedules, store, interval=60.0, actions={"backup": action})
    return World(catalog, clock, store, schedules, scheduler, action)


@pytest.fixture()
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    catalog.migrate()
    yield catalog
    catalog.dispose()


def world_at(catalog: Catalog, moment: datetime) -> World:
    return make_world(catalog, ManualClock(moment))


def test_daily_job_across_spring_forward_in_berlin(catalog: Catalog) -> None:
    # 2026-03-29: 02:00 CET becomes 03:00 CEST; 02:30 does not exist that day.
    world = world_at(catalog, utc(2026, 3, 26, 12))
    world.schedules.create(OPERATOR, {"name": "nightly", "cron": "30 2 * * *",
                                      "timezone": "Europe/Berlin"})
    fired = world.run_until(utc(2026, 3, 31))
    assert [f.astimezone(BERLIN).strftime("%d %H:%M %Z") for f in fired] == [
        "27 02:30 CET", "28 02:30 CET", "29 03:00 CEST", "30 02:30 CEST"]
    assert fired == [utc(2026, 3, 27, 1, 30), utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1),
                     utc(2026, 3, 30, 0, 30)]


def test_daily_and_hourly_jobs_across_fall_back_in_berlin(catalog: Catalog) -> None:
    # 2026-10-25: 03:00 CEST becomes 02:00 CET; 02:00-02:59 happens twice.
    world = world_at(catalog, utc(2026, 10, 24, 12))
    world.schedules.create(OPERATOR, {"name": "nightly", "frequency": "daily",
                                      "time": "02:30", "timezone": "Europe/Berlin"})
    fired = world.run_until(utc(2026, 10, 27))
    assert fired == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]  # once a day

    world = world_at(catalog, utc(2026, 10, 24, 22, 30))
    world.schedules.create(OPERATOR, {"name": "hourly", "cron": "0 * * * *",
                                      "timezone": "Europe/Berlin"})
    fired = world.run_until(utc(2026, 10, 25, 3, 30))
    # Every hour of elapsed time: 01:00 CEST, 02:00 CEST, 02:00 CET (again), 03:00, 04:00.
    assert fired == [utc(2026, 10, 24, 23), utc(2026, 10, 25, 0), utc(2026, 10, 25, 1),
                     utc(2026, 10, 25, 2), utc(2026, 10, 25, 3)]


def test_new_york_spring_forward_and_fall_back(catalog: Catalog) -> None:
    world = world_at(catalog, utc(2026, 3, 7, 12))
    world.schedules.create(OPERATOR, {"name": "ny nightly", "cron": "30 2 * * *",
                                      "timezone": "America/New_York"})
    fired = world.run_until(utc(2026, 3, 10))
    # 03-08 02:30 does not exist (02:00 EST → 03:00 EDT): it runs at 03:00 EDT.
    assert [f.astimezone(NEW_YORK).strftime("%d %H:%M") for f in fired] == [
        "08 03:00", "09 02:30"]
    assert fired[0] == utc(2026, 3, 8, 7)

    times = CronTimes("0 * * * *", NEW_YORK)
    # 2026-11-01: 02:00 EDT → 01:00 EST; an hourly job runs in both 01:00 hours.
    assert times.between(utc(2026, 11, 1, 4), utc(2026, 11, 1, 8)) == [
        utc(2026, 11, 1, 5), utc(2026, 11, 1, 6), utc(2026, 11, 1, 7), utc(2026, 11, 1, 8)]
    once = CronTimes("30 1 * * *", NEW_YORK)
    assert once.between(utc(2026, 10, 31, 12), utc(2026, 11, 2, 12)) == [
        utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)]


def test_quarter_hourly_counts_on_dst_days() -> None:
    times = CronTimes("*/15 * * * *", BERLIN)
    assert len(times.between(utc(2026, 3, 28, 23), utc(2026, 3, 29, 22))) == 23 * 4
    assert len(times.between(utc(2026, 10, 24, 22), utc(2026, 10, 25, 23))) == 25 * 4


def test_a_missed_run_happens_once_after_a_restart(catalog: Catalog) -> None:
    world = world_at(catalog, utc(2026, 5, 1, 9, 30))
    schedule = world.schedules.create(OPERATOR, {"name": "hourly", "frequency": "hourly",
                                                 "time": "00:00"})
    assert schedule.next_run_at == utc(2026, 5, 1, 10)
    assert world.run_until(utc(2026, 5, 1, 10)) == [utc(2026, 5, 1, 10)]

    world.scheduler.stop()  # the server goes down for five hours and a half
    world.clock.set(utc(2026, 5, 1, 15, 40))
    world = world.restart()
    started = world.scheduler.tick(startup=True)
    assert len(started) == 1 and started[0].run.catch_up
    assert started[0].run.scheduled_for == utc(2026, 5, 1, 11)  # the first missed slot
    assert world.action.fired[-1] == utc(2026, 5, 1, 15, 40)
    assert world.scheduler.tick() == []  # not once per missed slot
    current = world.schedules.get("t1", schedule.id)
    assert current.next_run_at == utc(2026, 5, 1, 16)
    world.action.finish_all()
    world.scheduler.finish_runs()
    runs = world.schedules.runs("t1", schedule.id).items
    assert [(r.status, r.catch_up) for r in runs] == [("completed", True),
                                                       ("completed", False)]
    assert world.schedules.get("t1", schedule.id).total_runs == 2


def test_never_twice_at_once_and_the_counters(catalog: Catalog) -> None:
    world = world_at(catalog, utc(2026, 6, 1, 12, 0, 30))
    schedule = world.schedules.create(OPERATOR, {"name": "busy", "cron": "* * * * *"})
    world.clock.set(utc(2026, 6, 1, 12, 1))
    assert len(world.scheduler.tick()) == 1  # its job keeps running
    with pytest.raises(ScheduleBusy):  # what "run now" meets
        world.schedules.begin_run(schedule.id, now=world.clock.now(),
                                  scheduled_for=world.clock.now(), trigger="manual")
    world.clock.set(utc(2026, 6, 1, 12, 2))
    skipped = world.scheduler.tick()
    assert len(skipped) == 1 and skipped[0].skipped
    assert len(world.action.fired) == 1
    view = world.schedules.get("t1", schedule.id)
    assert (view.last_status, view.total_runs, view.running_since) == (
        "running", 1, utc(2026, 6, 1, 12, 1))
    assert view.next_run_at == utc(2026, 6, 1, 12, 3)

    world.action.finish_all(COMPLETED)
    world.scheduler.tick()
    view = world.schedules.get("t1", schedule.id)
    assert (view.last_status, view.total_runs, view.successful_runs, view.failed_runs) == (
        "completed", 1, 1, 0)
    assert view.running_since is None

    world.clock.set(utc(2026, 6, 1, 12, 3))
    world.scheduler.tick()
    world.action.finish_all(FAILED)
    world.scheduler.tick()
    view = world.schedules.get("t1", schedule.id)
    assert (view.last_status, view.total_runs, view.successful_runs, view.failed_runs) == (
        "failed", 2, 1, 1)
    assert "BOOM" in (view.last_error or "")
    statuses = [r.status for r in world.schedules.runs("t1", schedule.id).items]
    assert statuses == ["failed", "skipped", "completed"]

    world.action.fail_with = RuntimeError("the action crashed")
    world.clock.set(utc(2026, 6, 1, 12, 4))
    world.scheduler.tick()
    view = world.schedules.get("t1", schedule.id)
    assert (view.last_status, view.failed_runs) == ("failed", 2)
    assert "the action crashed" in (view.last_error or "")


def test_a_run_cut_off_by_a_restart_ends_failed(catalog: Catalog) -> None:
    world = world_at(catalog, utc(2026, 6, 1, 11, 59))
    schedule = world.schedules.create(OPERATOR, {"name": "cut", "cron": "0 12 * * *"})
    world.clock.set(utc(2026, 6, 1, 12))
    world.scheduler.tick()
    world.store.mark_interrupted()  # what the next server's executor does at start-up
    world.clock.advance(60)
    world = world.restart()
    world.scheduler.tick(startup=True)
    view = world.schedules.get("t1", schedule.id)
    assert (view.last_status, view.failed_runs, view.running_since) == ("failed", 1, None)
    assert "INTERRUPTED" in (view.last_error or "")


def test_disabled_schedules_do_not_fire_or_catch_up(catalog: Catalog) -> None:
    world = world_at(catalog, utc(2026, 6, 1, 0, 30))
    schedule = world.schedules.create(OPERATOR, {"name": "off", "cron": "0 * * * *"})
    assert world.schedules.toggle("t1", schedule.id).next_run_at is None
    world.clock.set(utc(2026, 6, 1, 5, 30))
    assert world.scheduler.tick() == []
    enabled = world.schedules.toggle("t1", schedule.id, True)
    assert enabled.next_run_at == utc(2026, 6, 1, 6)  # from now on, no catch-up
    assert world.scheduler.tick() == []


def test_the_settings_block_becomes_schedules(catalog: Catalog) -> None:
    world = world_at(catalog, utc(2026, 6, 1, 1, 30))
    document: dict[str, Any] = {
        "scheduling": {"enabled": True, "schedules": [
            {"_id": "s-1", "name": "nightly", "enabled": True, "schedule": "0 2 * * *",
             "type": "full"}]},
        "retention": {"enabled": True, "auto_cleanup": True, "cleanup_schedule": None}}
    with catalog.session() as session:
        session.add(TenantSettings(tenant="t1", document=document))
    world.scheduler.tick()
    mirrored = {s.name: s for s in world.schedules.list("t1").items}
    assert set(mirrored) == {"settings: nightly", "settings: retention cleanup"}
    nightly, cleanup = mirrored["settings: nightly"], mirrored["settings: retention cleanup"]
    assert (nightly.origin, nightly.action, nightly.next_run_at) == (
        "settings", "backup", utc(2026, 6, 1, 2))
    assert (cleanup.action, cleanup.cron, cleanup.next_run_at) == (
        "cleanup", "0 3 * * *", utc(2026, 6, 1, 3))
    with pytest.raises(ScheduleConflict):
        world.schedules.toggle("t1", nightly.id)

    world.clock.set(utc(2026, 6, 1, 2))
    assert len(world.scheduler.tick()) == 1 and world.action.fired == [utc(2026, 6, 1, 2)]

    document = {"scheduling": {"enabled": False, "schedules": document["scheduling"][
        "schedules"]}, "retention": {"enabled": True, "auto_cleanup": False}}
    with catalog.session() as session:
        session.get_one(TenantSettings, "t1").document = document
    world.scheduler.tick()
    items = world.schedules.list("t1").items
    assert [(s.name, s.enabled, s.next_run_at) for s in items] == [
        ("settings: nightly", False, None)]


def test_validation_names_every_bad_field(catalog: Catalog) -> None:
    world = world_at(catalog, utc(2026, 6, 1))
    with pytest.raises(ValidationFailed) as caught:
        world.schedules.create(OPERATOR, {
            "name": " ", "cron": "61 * * * *", "timezone": "Mars/Olympus",
            "type": "selective", "source_ids": ["nope"], "retention": {"keep_last": 0}})
    assert {(e.field, e.code) for e in caught.value.errors} == {
        ("name", "REQUIRED"), ("cron", "INVALID_CRON"), ("timezone", "INVALID_VALUE"),
        ("source_ids[0]", "NOT_FOUND"), ("filters", "FILTER_REQUIRED"),
        ("retention.keep_last", "OUT_OF_RANGE")}
    for body, field_name, code in (
            ({"frequency": "weekly", "day": "someday"}, "day", "INVALID_VALUE"),
            ({"frequency": "daily", "time": "25:00"}, "time", "INVALID_FORMAT"),
            ({"frequency": "daily", "cron": "0 2 * * *"}, "frequency", "INVALID_VALUE"),
            ({}, "cron", "REQUIRED")):
        with pytest.raises(ValidationFailed) as caught:
            world.schedules.create(OPERATOR, {"name": "x", **body})
        assert [(e.field, e.code) for e in caught.value.errors] == [(field_name, code)]


def test_the_frequency_form_and_updates(catalog: Catalog) -> None:
    world = world_at(catalog, utc(2026, 6, 1))  # a Monday
    weekly = world.schedules.create(OPERATOR, {"name": "weekly", "frequency": "weekly",
                                               "time": "04:15", "day": "friday",
                                               "timezone": "Europe/Berlin"})
    assert (weekly.cron, weekly.spec["frequency"]) == ("15 4 * * 5", "weekly")
    assert weekly.next_run_at == utc(2026, 6, 5, 2, 15)
    monthly = world.schedules.update("t1", weekly.id, {"frequency": "monthly", "day": "last"})
    assert monthly.cron == "15 4 L * *" and monthly.next_run_at == utc(2026, 6, 30, 2, 15)
    as_cron = world.schedules.update("t1", weekly.id, {"cron": "@daily"})
    assert as_cron.cron == "0 0 * * *" and "frequency" not in as_cron.spec
    assert world.schedules.update("t1", weekly.id, {"timezone": "UTC"}).next_run_at == \
        utc(2026, 6, 2)


def test_the_thread_fires_on_the_controlled_clock(catalog: Catalog) -> None:
    world = world_at(catalog, utc(2026, 6, 1, 11, 59, 59))
    world.schedules.create(OPERATOR, {"name": "noon", "cron": "0 12 * * *"})
    world.scheduler.start()
    try:
        _eventually(lambda: world.clock.waits >= 1)
        assert world.action.fired == []
        world.clock.advance(1)
        _eventually(lambda: world.action.fired == [utc(2026, 6, 1, 12)])
        world.action.finish_all()
        world.scheduler.wake()
        _eventually(lambda: world.schedules.list("t1").items[0].last_status == "completed")
    finally:
        world.scheduler.stop()
    assert not world.scheduler.is_running()


def _eventually(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_two_schedulers_on_one_catalog_take_a_slot_once(catalog: Catalog) -> None:
    first = world_at(catalog, utc(2026, 6, 1, 11, 59))
    second = make_world(catalog, first.clock)  # another server process, same catalog
    schedule = first.schedules.create(OPERATOR, {"name": "shared", "cron": "0 12 * * *"})
    slot = utc(2026, 6, 1, 12)
    first.clock.set(slot)
    stale = second.schedules.due(slot)  # the second read the timetable just before
    assert len(first.scheduler.tick()) == 1
    assert second.schedules.begin_run(schedule.id, now=slot, scheduled_for=slot,
                                      trigger="schedule", expected_next=stale[0].next_run_at
                                      ) is None
    assert second.scheduler.tick() == []
    assert len(first.action.fired) + len(second.action.fired) == 1
