"""``plan_retention`` on synthetic calendars: exactly the right backups kept, never a
protected one. The expected sets are worked out here by plain date arithmetic, not by the
code under test."""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, timedelta

import pytest

from strongbox.services.errors import ValidationFailed
from strongbox.services.retention_rules import (
    BackupRecord,
    CleanupPolicy,
    RetentionDecision,
    plan_retention,
)

START = date(2024, 1, 1)
END = date(2025, 12, 30)  # a Tuesday: ISO week 2026-W01 began on Monday 2025-12-29
NOW = datetime(2025, 12, 30, 12, 0, tzinfo=UTC)
GFS = CleanupPolicy(keep_daily=7, keep_weekly=4, keep_monthly=12, keep_yearly=3)


def nightly(day: date, source: str = "db", **kwargs: object) -> BackupRecord:
    moment = datetime(day.year, day.month, day.day, 2, 0, tzinfo=UTC)
    return BackupRecord(id=f"{source}-{day.isoformat()}", source_id=source, created_at=moment,
                        status="completed", size_bytes=1000, **kwargs)  # type: ignore[arg-type]


def two_years(source: str = "db") -> list[BackupRecord]:
    days = (END - START).days + 1
    return [nightly(START + timedelta(days=n), source) for n in range(days)]


def kept_days(decisions: list[RetentionDecision]) -> set[date]:
    return {d.backup.created_at.date() for d in decisions if not d.delete}


def month_ends(count: int) -> set[date]:
    """The last day of each of the ``count`` months up to END (END itself for its month)."""
    result, year, month = set(), END.year, END.month
    for _ in range(count):
        last = date(year, month, calendar.monthrange(year, month)[1])
        result.add(min(last, END))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return result


def test_two_year_calendar_keeps_exactly_the_grandfather_father_son_set() -> None:
    decisions = plan_retention(two_years(), GFS, NOW)
    assert len(decisions) == 730
    daily = {END - timedelta(days=n) for n in range(7)}
    # ISO weeks run Monday..Sunday: the newest backup of a week is its Sunday, except the
    # current week (END). The 4 newest weeks: END's, and the Sundays before it.
    last_sunday = END - timedelta(days=END.isoweekday() % 7)
    weekly = {END} | {last_sunday - timedelta(weeks=n) for n in range(3)}
    monthly = month_ends(12)
    yearly = {END, date(2024, 12, 31)}  # only two years exist; 3 asked
    expected = daily | weekly | monthly | yearly
    assert kept_days(decisions) == expected
    assert len(expected) == 21  # 7 daily + 2 more Sundays + 11 more month ends + 2024's last
    by_day = {d.backup.created_at.date(): d for d in decisions}
    assert by_day[date(2024, 12, 31)].reasons == ["yearly 2024"]
    assert by_day[date(2025, 1, 31)].reasons == ["monthly 2025-01"]
    assert by_day[date(2025, 12, 14)].reasons == ["weekly 2025-W50"]
    assert by_day[END].reasons[0].startswith("newest completed backup")
    assert by_day[date(2025, 6, 15)].reasons == ["not kept by any keep rule"]


def test_a_protected_backup_is_never_deleted() -> None:
    backups = two_years()
    pinned_day = date(2024, 6, 15)
    backups = [nightly(pinned_day, protected=True, protected_reason="audit 2024")
               if b.created_at.date() == pinned_day else b for b in backups]
    for policy in (GFS, CleanupPolicy(keep_last=1), CleanupPolicy(max_backups=1),
                   CleanupPolicy(max_age_days=1, delete_unverified=True),
                   CleanupPolicy(max_total_size_bytes=1)):
        decisions = plan_retention(backups, policy, NOW)
        pinned = next(d for d in decisions if d.backup.created_at.date() == pinned_day)
        assert not pinned.delete and pinned.reasons[0] == "protected: audit 2024"
        assert not any(d.delete and d.backup.protected for d in decisions)


def test_backups_in_use_or_running_are_kept() -> None:
    backups = [nightly(date(2025, 1, d)) for d in range(1, 6)]
    backups[0] = nightly(date(2025, 1, 1), in_use=True)
    running = BackupRecord("running", "db", datetime(2025, 1, 2, 3, tzinfo=UTC), "in_progress")
    decisions = plan_retention([*backups, running], CleanupPolicy(keep_last=1), NOW)
    actions = {d.backup.id: (d.action, d.reasons[0]) for d in decisions}
    assert actions["db-2025-01-01"] == ("keep", "in use by a running job")
    assert actions["running"] == ("keep", "still running")
    assert actions["db-2025-01-05"][0] == "keep"
    assert [a for a, _ in actions.values()].count("delete") == 3


def test_limits_apply_on_top_of_keep_rules_per_source() -> None:
    backups = two_years("db") + two_years("files")
    decisions = plan_retention(backups, CleanupPolicy(keep_daily=30, max_backups=10), NOW)
    for source in ("db", "files"):
        mine = [d for d in decisions if d.backup.source_id == source]
        assert kept_days(mine) == {END - timedelta(days=n) for n in range(10)}
    beyond = next(d for d in decisions if d.backup.id == "db-2025-12-15")
    assert beyond.reasons == ["beyond the newest 10 backups of its source (max_backups)"]


def test_max_age_days_counts_from_now_and_keeps_the_newest_of_a_silent_source() -> None:
    quiet = [nightly(date(2024, 3, d), "old-source") for d in range(1, 11)]
    decisions = plan_retention(two_years() + quiet, CleanupPolicy(max_age_days=30), NOW)
    kept = {d.backup.id for d in decisions if not d.delete}
    assert kept == {f"db-{(END - timedelta(days=n)).isoformat()}" for n in range(30)} | {
        "old-source-2024-03-10"}
    old = next(d for d in decisions if d.backup.id == "db-2025-11-29")
    assert old.reasons == ["older than 30 days (max_age_days)"]


def test_failed_and_unverified_backups() -> None:
    good = nightly(date(2025, 1, 1), verified=True)
    unverified = nightly(date(2025, 1, 2))
    bad = nightly(date(2025, 1, 3), verified=False)
    failed = BackupRecord("failed", "db", datetime(2025, 1, 4, 2, tzinfo=UTC), "failed")
    newest = nightly(date(2025, 1, 5))  # unverified, but the newest: kept
    records = [good, unverified, bad, failed, newest]
    decisions = {d.backup.id: d for d in plan_retention(
        records, CleanupPolicy(delete_failed=True, delete_unverified=True), NOW)}
    assert {k for k, d in decisions.items() if d.delete} == {unverified.id, bad.id, "failed"}
    assert decisions[bad.id].reasons == ["verification failed (delete_unverified)"]
    assert decisions["failed"].reasons == ["failed backup (delete_failed)"]
    only_failed = plan_retention(records, CleanupPolicy(delete_failed=True), NOW)
    assert [d.backup.id for d in only_failed if d.delete] == ["failed"]


def test_total_size_limit_deletes_the_oldest_first_across_sources() -> None:
    backups = [nightly(date(2025, 1, d), "a") for d in range(1, 6)] + [
        nightly(date(2025, 1, d), "b") for d in range(1, 6)]
    decisions = plan_retention(backups, CleanupPolicy(max_total_size_bytes=4500), NOW)
    kept = sorted(d.backup.id for d in decisions if not d.delete)
    assert kept == ["a-2025-01-04", "a-2025-01-05", "b-2025-01-04", "b-2025-01-05"]
    # Even a tiny limit leaves each source its newest backup.
    tiny = plan_retention(backups, CleanupPolicy(max_total_size_bytes=1), NOW)
    assert sorted(d.backup.id for d in tiny if not d.delete) == ["a-2025-01-05",
                                                                 "b-2025-01-05"]


def test_buckets_follow_the_policy_time_zone() -> None:
    # 23:30 UTC on the 1st is already the 2nd in Berlin: one Berlin day holds both.
    late = BackupRecord("late", "db", datetime(2025, 1, 1, 23, 30, tzinfo=UTC), "completed")
    early = BackupRecord("early", "db", datetime(2025, 1, 2, 6, 0, tzinfo=UTC), "completed")
    utc = plan_retention([late, early], CleanupPolicy(keep_daily=5), NOW)
    berlin = plan_retention([late, early], CleanupPolicy(keep_daily=5,
                                                         timezone="Europe/Berlin"), NOW)
    assert [d.action for d in utc] == ["keep", "keep"]
    assert [(d.backup.id, d.action) for d in berlin] == [("early", "keep"), ("late", "delete")]


def test_keep_within_counts_back_from_the_newest_backup() -> None:
    decisions = plan_retention(two_years(), CleanupPolicy(keep_within_days=10),
                               NOW + timedelta(days=400))
    assert kept_days(decisions) == {END - timedelta(days=n) for n in range(11)}


@pytest.mark.parametrize("fields", [{"keep_daily": -1}, {"max_backups": 0},
                                    {"timezone": "Mars/Olympus"}, {"max_age_days": True}])
def test_invalid_policies_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationFailed):
        CleanupPolicy(**fields)  # type: ignore[arg-type]


def test_an_empty_policy_deletes_nothing() -> None:
    assert CleanupPolicy().is_empty
    assert not any(d.delete for d in plan_retention(two_years(), CleanupPolicy(), NOW))


def test_exempt_backups_are_neither_counted_nor_deleted() -> None:
    snapshot = nightly(date(2025, 1, 6), exempt="configuration snapshot")
    old_snapshot = nightly(date(2024, 1, 6), "db", exempt="configuration snapshot")
    regular = [nightly(date(2025, 1, d)) for d in range(1, 6)]
    decisions = {d.backup.id: d for d in plan_retention(
        [*regular, snapshot, old_snapshot],
        CleanupPolicy(max_backups=2, max_age_days=30, max_total_size_bytes=1), NOW)}
    assert decisions[snapshot.id].reasons == ["configuration snapshot"]
    assert not decisions[old_snapshot.id].delete
    # The newest *regular* backup is the one always kept; the snapshot does not count.
    assert not decisions["db-2025-01-05"].delete
