"""Review findings on the retention rules and the schedule retention policy: inputs the
settings accept must not crash the planner, and a schedule's buckets follow its zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from strongbox.services.cleanup import schedule_policy, settings_policy
from strongbox.services.retention_rules import BackupRecord, CleanupPolicy, plan_retention

NOW = datetime(2026, 1, 20, 12, 0, tzinfo=UTC)


def backups(count: int = 3) -> list[BackupRecord]:
    return [BackupRecord(f"b{n}", "db", NOW - timedelta(days=count - n), "completed", 10)
            for n in range(count)]


def test_a_huge_max_age_days_from_the_settings_deletes_nothing_instead_of_crashing() -> None:
    # The settings accept any max_age_days >= 1 (no upper bound): a cutoff before year 1
    # used to raise OverflowError (a 500 on every dry run, a crash of the scheduled one).
    policy = settings_policy({"enabled": True, "max_age_days": 10_000_000})
    assert policy is not None
    decisions = plan_retention(backups(), policy, NOW)
    assert not any(d.delete for d in decisions)


def test_a_huge_keep_within_days_keeps_everything_instead_of_crashing() -> None:
    # PUT /backups/cleanup/policy validates rules with CleanupPolicy, which has no upper
    # bound either; timedelta(days=1e9) overflowed.
    policy = CleanupPolicy(keep_within_days=1_000_000_000)
    decisions = plan_retention(backups(), policy, NOW)
    assert not any(d.delete for d in decisions)
    policy = CleanupPolicy(keep_within_days=900_000, max_age_days=900_000_000)
    assert not any(d.delete for d in plan_retention(backups(), policy, NOW))


def test_a_schedule_retention_uses_the_schedule_time_zone() -> None:
    # 22:00 and 23:00 on 9 January in New York, then 01:00 on 10 January: in UTC all three
    # fall on 10 January, so UTC buckets would delete the last backup of the 9th.
    times = [datetime(2026, 1, 10, h, 0, tzinfo=UTC) for h in (3, 4, 6)]
    records = [BackupRecord(f"b{n}", "db", t, "completed", 10) for n, t in enumerate(times)]
    policy = schedule_policy({"keep_daily": 2}, timezone="America/New_York")
    assert policy is not None and policy.timezone == "America/New_York"
    deleted = {d.backup.id for d in plan_retention(records, policy, NOW) if d.delete}
    assert deleted == {"b0"}
    assert schedule_policy({"keep_daily": 2}).timezone == "UTC"  # type: ignore[union-attr]
