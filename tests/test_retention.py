"""The forget policy: which snapshots each rule keeps, and why.

Expectations are computed here independently of the implementation: group the snapshots by
calendar bucket, take the N newest buckets, keep the newest snapshot of each.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable, Iterable
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from strongbox.errors import InvalidRequest
from strongbox.repository.retention import (
    Decision,
    RetentionPolicy,
    SnapshotRef,
    apply_policy,
    format_duration,
    parse_duration,
)

BERLIN = ZoneInfo("Europe/Berlin")
START = datetime(2024, 11, 1, tzinfo=UTC)
END = datetime(2026, 11, 1, tzinfo=UTC)


def every_six_hours(tz: timezone | ZoneInfo = UTC) -> list[SnapshotRef]:
    """Two years of snapshots, one every 6 hours, with times shown in ``tz``."""
    snapshots = []
    at = START
    while at < END:
        snapshots.append(SnapshotRef(id=f"s{len(snapshots):05d}", time=at.astimezone(tz)))
        at += timedelta(hours=6)
    return snapshots


UTC_CALENDAR = every_six_hours()
BERLIN_CALENDAR = every_six_hours(BERLIN)
NEWEST = UTC_CALENDAR[-1]  # 2026-10-31 18:00 UTC, a Saturday in ISO week 44


def kept(decisions: Iterable[Decision]) -> set[str]:
    return {d.snapshot.id for d in decisions if d.keep}


def kept_times(decisions: Iterable[Decision]) -> set[datetime]:
    return {d.snapshot.time for d in decisions if d.keep}


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def newest_per_bucket(
    snapshots: list[SnapshotRef], bucket: Callable[[datetime], Hashable], count: int
) -> set[str]:
    newest: dict[Hashable, SnapshotRef] = {}
    for s in snapshots:
        key = bucket(s.time)
        if key not in newest or s.time > newest[key].time:
            newest[key] = s
    chosen = sorted(newest, reverse=True)
    if count >= 0:
        chosen = chosen[:count]
    return {newest[key].id for key in chosen}


# Buckets as sortable tuples, written independently of the module's own bucket names.
BUCKETS: dict[str, Callable[[datetime], Hashable]] = {
    "keep_hourly": lambda t: (t.year, t.month, t.day, t.hour),
    "keep_daily": lambda t: t.date(),
    "keep_weekly": lambda t: tuple(t.isocalendar())[:2],
    "keep_monthly": lambda t: (t.year, t.month),
    "keep_yearly": lambda t: t.year,
}


# --- each rule on its own ----------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 3, 10, 5000])
def test_keep_last_keeps_the_newest_n(count: int) -> None:
    decisions = apply_policy(UTC_CALENDAR, RetentionPolicy(keep_last=count))
    assert kept(decisions) == {s.id for s in UTC_CALENDAR[-count:]}


@pytest.mark.parametrize("calendar", [UTC_CALENDAR, BERLIN_CALENDAR], ids=["utc", "berlin"])
@pytest.mark.parametrize("rule", list(BUCKETS))
@pytest.mark.parametrize("count", [1, 2, 7, 30, 200, -1])
def test_bucket_rule_keeps_newest_of_each_newest_bucket(
    calendar: list[SnapshotRef], rule: str, count: int
) -> None:
    decisions = apply_policy(calendar, RetentionPolicy(**{rule: count}))
    assert kept(decisions) == newest_per_bucket(calendar, BUCKETS[rule], count)


def test_daily_7_keeps_the_last_snapshot_of_each_of_the_last_7_days() -> None:
    decisions = apply_policy(UTC_CALENDAR, RetentionPolicy(keep_daily=7))
    assert kept_times(decisions) == {utc(2026, 10, day, 18) for day in range(25, 32)}


def test_weekly_uses_iso_weeks() -> None:
    decisions = apply_policy(UTC_CALENDAR, RetentionPolicy(keep_weekly=3))
    # Saturday of week 44, then the Sundays that end weeks 43 and 42.
    assert kept_times(decisions) == {
        utc(2026, 10, 31, 18),
        utc(2026, 10, 25, 18),
        utc(2026, 10, 18, 18),
    }


def test_monthly_and_yearly_keep_month_and_year_ends() -> None:
    monthly = apply_policy(UTC_CALENDAR, RetentionPolicy(keep_monthly=3))
    assert kept_times(monthly) == {
        utc(2026, 10, 31, 18),
        utc(2026, 9, 30, 18),
        utc(2026, 8, 31, 18),
    }
    yearly = apply_policy(UTC_CALENDAR, RetentionPolicy(keep_yearly=10))
    assert kept_times(yearly) == {
        utc(2026, 10, 31, 18),
        utc(2025, 12, 31, 18),
        utc(2024, 12, 31, 18),
    }


def test_hourly_with_one_snapshot_an_hour_bucket_is_keep_last() -> None:
    hourly = apply_policy(UTC_CALENDAR, RetentionPolicy(keep_hourly=12))
    last = apply_policy(UTC_CALENDAR, RetentionPolicy(keep_last=12))
    assert kept(hourly) == kept(last)


def test_buckets_follow_the_snapshots_own_local_calendar() -> None:
    sydney = timezone(timedelta(hours=10))
    snapshots = [
        # The same UTC day (2026-03-10), but two different days in Sydney.
        SnapshotRef("late", datetime(2026, 3, 11, 0, 30, tzinfo=sydney)),
        SnapshotRef("early", datetime(2026, 3, 10, 23, 30, tzinfo=sydney)),
        SnapshotRef("earlier", datetime(2026, 3, 10, 20, 0, tzinfo=sydney)),
    ]
    decisions = apply_policy(snapshots, RetentionPolicy(keep_daily=5))
    assert kept(decisions) == {"late", "early"}
    assert [d.reasons for d in decisions] == [["daily 2026-03-11"], ["daily 2026-03-10"], []]

    as_utc = [dataclasses.replace(s, time=s.time.astimezone(UTC)) for s in snapshots]
    assert kept(apply_policy(as_utc, RetentionPolicy(keep_daily=5))) == {"late"}


def test_hour_repeated_by_a_dst_change_is_one_local_hour() -> None:
    # On 2026-10-25 Berlin's clocks go back: 02:15 happens at 00:15 UTC and at 01:15 UTC.
    snapshots = [
        SnapshotRef(f"s{h}", utc(2026, 10, 25, h, 15).astimezone(BERLIN)) for h in range(4)
    ]
    decisions = apply_policy(snapshots, RetentionPolicy(keep_hourly=-1))
    assert kept(decisions) == {"s3", "s2", "s1"}
    # s0, the first 02:15, shares its local hour with the newer s1.
    assert [d.reasons for d in decisions][2:] == [["hourly 2026-10-25 02:00"], []]


def test_keep_within_is_relative_to_the_newest_snapshot_and_inclusive() -> None:
    decisions = apply_policy(UTC_CALENDAR, RetentionPolicy(keep_within=parse_duration("7d")))
    cutoff = NEWEST.time - timedelta(days=7)
    assert kept(decisions) == {s.id for s in UTC_CALENDAR if s.time >= cutoff}
    assert len(kept(decisions)) == 7 * 4 + 1  # the snapshot exactly 7 days older is kept
    assert all(d.reasons == ["within 7d"] for d in decisions if d.keep)


def test_keep_within_spans_real_time_across_a_dst_change() -> None:
    # Berlin leaves summer time on 2026-10-25, so the same wall-clock time a week earlier is
    # 169 hours back; "7d" means 168 hours.
    newest = datetime(2026, 10, 31, 12, tzinfo=BERLIN)
    snapshots = [
        SnapshotRef("newest", newest),
        SnapshotRef("168h", datetime(2026, 10, 24, 13, tzinfo=BERLIN)),
        SnapshotRef("169h", datetime(2026, 10, 24, 12, tzinfo=BERLIN)),
    ]
    assert snapshots[1].time == newest.astimezone(UTC) - timedelta(hours=168)
    decisions = apply_policy(snapshots, RetentionPolicy(keep_within=timedelta(days=7)))
    assert kept(decisions) == {"newest", "168h"}


def test_keep_tags_keeps_every_tagged_snapshot_and_names_each_tag() -> None:
    snapshots = [
        SnapshotRef("a", utc(2026, 1, 5), tags=frozenset({"important", "release"})),
        SnapshotRef("b", utc(2026, 1, 4), tags=frozenset({"nightly"})),
        SnapshotRef("c", utc(2026, 1, 3), tags=frozenset({"release"})),
        SnapshotRef("d", utc(2026, 1, 2)),
    ]
    policy = RetentionPolicy(keep_tags=frozenset({"release", "important"}))
    decisions = apply_policy(snapshots, policy)
    assert [(d.snapshot.id, d.keep, d.reasons) for d in decisions] == [
        ("a", True, ["tag important", "tag release"]),
        ("b", False, []),
        ("c", True, ["tag release"]),
        ("d", False, []),
    ]


# --- rules together ----------------------------------------------------------------------


def test_rules_combine_as_a_union() -> None:
    rules = {"keep_last": 3, "keep_daily": 7, "keep_weekly": 4, "keep_monthly": 6}
    union: set[str] = set()
    for rule, count in rules.items():
        union |= kept(apply_policy(UTC_CALENDAR, RetentionPolicy(**{rule: count})))
    assert kept(apply_policy(UTC_CALENDAR, RetentionPolicy(**rules))) == union


def test_reasons_list_every_rule_that_keeps_a_snapshot() -> None:
    policy = RetentionPolicy(
        keep_last=2,
        keep_hourly=1,
        keep_daily=2,
        keep_weekly=2,
        keep_monthly=2,
        keep_yearly=2,
        keep_within=timedelta(hours=6),
        keep_tags=frozenset({"important"}),
    )
    snapshots = [dataclasses.replace(s, tags=frozenset({"important"})) for s in UTC_CALENDAR[-1:]]
    snapshots += UTC_CALENDAR[:-1]
    by_time = {d.snapshot.time: d.reasons for d in apply_policy(snapshots, policy)}
    assert by_time[utc(2026, 10, 31, 18)] == [
        "last 1",
        "hourly 2026-10-31 18:00",
        "daily 2026-10-31",
        "weekly 2026-W44",
        "monthly 2026-10",
        "yearly 2026",
        "within 6h",
        "tag important",
    ]
    assert by_time[utc(2026, 10, 31, 12)] == ["last 2", "within 6h"]
    assert by_time[utc(2026, 10, 30, 18)] == ["daily 2026-10-30"]
    assert by_time[utc(2026, 10, 25, 18)] == ["weekly 2026-W43"]
    assert by_time[utc(2026, 9, 30, 18)] == ["monthly 2026-09"]
    assert by_time[utc(2025, 12, 31, 18)] == ["yearly 2025"]
    assert by_time[utc(2026, 10, 30, 12)] == []


def test_protected_snapshots_are_never_removed() -> None:
    oldest, newest = UTC_CALENDAR[0], UTC_CALENDAR[-1]
    snapshots = [dataclasses.replace(s, protected=True) for s in (oldest, newest)]
    snapshots += UTC_CALENDAR[1:-1]
    decisions = apply_policy(snapshots, RetentionPolicy(keep_last=1))
    assert kept(decisions) == {oldest.id, newest.id}
    reasons = {d.snapshot.id: d.reasons for d in decisions}
    assert reasons[oldest.id] == ["protected"]
    assert reasons[newest.id] == ["last 1", "protected"]


def test_decisions_cover_every_snapshot_newest_first() -> None:
    shuffled = UTC_CALENDAR[::2] + UTC_CALENDAR[1::2]
    decisions = apply_policy(shuffled, RetentionPolicy(keep_monthly=2))
    assert [d.snapshot for d in decisions] == UTC_CALENDAR[::-1]
    assert all(d.keep == bool(d.reasons) for d in decisions)


# --- grouping ----------------------------------------------------------------------------


def test_group_key_applies_the_policy_within_each_group() -> None:
    def source(s: SnapshotRef) -> str:
        return s.id.split("-")[0]

    snapshots = [SnapshotRef(f"db-{d}", utc(2026, 5, d)) for d in range(1, 11)]
    snapshots += [SnapshotRef(f"files-{d}", utc(2026, 3, d, 12)) for d in range(1, 6)]
    policy = RetentionPolicy(keep_last=2, keep_within=timedelta(days=1))

    grouped = apply_policy(snapshots, policy, group_key=source)
    # keep_within counts from each group's own newest snapshot, so "files" is not emptied.
    assert kept(grouped) == {"db-10", "db-9", "files-5", "files-4"}
    assert {d.snapshot.id: d.reasons for d in grouped}["files-4"] == ["last 2", "within 1d"]

    assert kept(apply_policy(snapshots, policy)) == {"db-10", "db-9"}


# --- refusing --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "snapshots",
    [[], UTC_CALENDAR[:3], [SnapshotRef("p", utc(2026, 1, 1), protected=True)]],
)
def test_empty_policy_is_refused(snapshots: list[SnapshotRef]) -> None:
    assert RetentionPolicy().is_empty()
    with pytest.raises(InvalidRequest, match="refusing to forget with an empty policy"):
        apply_policy(snapshots, RetentionPolicy())


@pytest.mark.parametrize(
    "policy",
    [
        RetentionPolicy(keep_last=1),
        RetentionPolicy(keep_yearly=-1),
        RetentionPolicy(keep_within=timedelta(0)),
        RetentionPolicy(keep_tags=frozenset({"x"})),
    ],
)
def test_any_rule_makes_a_policy_non_empty(policy: RetentionPolicy) -> None:
    assert not policy.is_empty()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"keep_last": -2},
        {"keep_daily": True},
        {"keep_weekly": 1.5},
        {"keep_within": timedelta(hours=-1)},
        {"keep_tags": "release"},
    ],
)
def test_invalid_policy_is_rejected(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidRequest):
        RetentionPolicy(**kwargs)  # type: ignore[arg-type]


def test_naive_times_and_duplicate_ids_are_rejected() -> None:
    with pytest.raises(InvalidRequest, match="naive"):
        SnapshotRef("n", datetime(2026, 1, 1))
    twice = [SnapshotRef("x", utc(2026, 1, 1)), SnapshotRef("x", utc(2026, 1, 2))]
    with pytest.raises(InvalidRequest, match="listed twice"):
        apply_policy(twice, RetentionPolicy(keep_last=1))


# --- durations ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2y5m7d3h", timedelta(days=2 * 365 + 5 * 30 + 7, hours=3)),
        ("1y", timedelta(days=365)),
        ("6m", timedelta(days=180)),
        ("2w", timedelta(days=14)),
        ("7d", timedelta(days=7)),
        ("36h", timedelta(hours=36)),
        ("3h1d", timedelta(days=1, hours=3)),
        ("0d", timedelta(0)),
        (" 7d ", timedelta(days=7)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "7",
        "d",
        "7x",
        "7D",
        "7M",
        "-1d",
        "+1d",
        "1.5d",
        "7 d",
        "1d 2h",
        "1d1d",
        "d7",
        pytest.param("9" * 5000 + "d", id="5000-digits"),
        "99999999999y",
    ],
)
def test_parse_duration_rejects_bad_input(text: str) -> None:
    with pytest.raises(InvalidRequest):
        parse_duration(text)


@given(st.integers(0, 100_000), st.integers(0, 23))
def test_format_duration_reads_back(days: int, hours: int) -> None:
    span = timedelta(days=days, hours=hours)
    assert parse_duration(format_duration(span)) == span


# --- properties --------------------------------------------------------------------------

ZONES = [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8)), BERLIN]
TAGS = ["a", "b", "c"]


@st.composite
def snapshot_lists(draw: st.DrawFn) -> list[SnapshotRef]:
    # Snapshots within a few weeks so that hourly/daily/weekly buckets often collide.
    offsets = draw(st.lists(st.integers(0, 60 * 24 * 40), max_size=40))
    return [
        SnapshotRef(
            id=f"s{i}",
            time=(utc(2026, 3, 1) + timedelta(minutes=m)).astimezone(draw(st.sampled_from(ZONES))),
            tags=frozenset(draw(st.sets(st.sampled_from(TAGS)))),
            protected=draw(st.booleans()),
        )
        for i, m in enumerate(offsets)
    ]


policies = st.builds(
    RetentionPolicy,
    keep_last=st.integers(0, 5),
    keep_hourly=st.integers(0, 5),
    keep_daily=st.integers(0, 5),
    keep_weekly=st.integers(0, 5),
    keep_monthly=st.integers(0, 3),
    keep_yearly=st.integers(0, 2),
    keep_within=st.none() | st.integers(0, 24 * 10).map(lambda h: timedelta(hours=h)),
    keep_tags=st.frozensets(st.sampled_from(TAGS), max_size=2),
)

COUNT_RULES = [
    "keep_last",
    "keep_hourly",
    "keep_daily",
    "keep_weekly",
    "keep_monthly",
    "keep_yearly",
]


@settings(max_examples=300)
@given(snapshot_lists(), policies, st.sampled_from(COUNT_RULES))
def test_raising_a_count_never_removes_a_kept_snapshot(
    snapshots: list[SnapshotRef], policy: RetentionPolicy, rule: str
) -> None:
    assume(not policy.is_empty())
    more = dataclasses.replace(policy, **{rule: getattr(policy, rule) + 1})
    assert kept(apply_policy(snapshots, policy)) <= kept(apply_policy(snapshots, more))


@settings(max_examples=300)
@given(snapshot_lists(), policies, st.booleans())
def test_every_snapshot_decided_once_and_protected_always_kept(
    snapshots: list[SnapshotRef], policy: RetentionPolicy, grouped: bool
) -> None:
    assume(not policy.is_empty())
    group_key = (lambda s: s.time.utcoffset()) if grouped else None
    decisions = apply_policy(snapshots, policy, group_key=group_key)
    assert sorted(d.snapshot.id for d in decisions) == sorted(s.id for s in snapshots)
    assert [d.snapshot.time for d in decisions] == sorted((s.time for s in snapshots), reverse=True)
    for d in decisions:
        assert d.keep == bool(d.reasons)
        if d.snapshot.protected:
            assert d.keep and "protected" in d.reasons
