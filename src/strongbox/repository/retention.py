"""Retention: which snapshots a ``forget`` policy keeps, and why.

Pure logic, no I/O: the caller lists snapshots, asks :func:`apply_policy` for a decision on
each, shows the reasons, and only then deletes. The rules follow restic's documented
``forget`` behaviour:

- snapshots are considered newest first;
- ``keep_last`` keeps the N newest;
- each bucket rule (hourly, daily, weekly, monthly, yearly) keeps the newest snapshot of
  each of its N newest buckets, judged on the snapshot's own local calendar;
- ``keep_within`` keeps everything within a span of the *newest snapshot* (not of "now",
  so a repository that stopped receiving backups is not emptied as time passes);
- ``keep_tags`` keeps every snapshot carrying one of the tags;
- a count of ``-1`` means unlimited, as in restic.

The rules are independent and their results are unioned: a snapshot kept by one rule
does not use up a slot of another. Protected snapshots are always kept, on top of that.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta

from strongbox.errors import InvalidRequest

UNLIMITED = -1

_COUNT_FIELDS = (
    "keep_last",
    "keep_hourly",
    "keep_daily",
    "keep_weekly",
    "keep_monthly",
    "keep_yearly",
)


def _as_tag_set(value: Iterable[str], what: str) -> frozenset[str]:
    # A bare string is iterable too; frozenset("prod") would silently mean {"p","r","o","d"}.
    if isinstance(value, str):
        raise InvalidRequest(f"{what} must be a collection of tags, not the string {value!r}")
    return frozenset(value)


@dataclass(frozen=True)
class RetentionPolicy:
    keep_last: int = 0
    keep_hourly: int = 0
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0
    keep_yearly: int = 0
    # Keep everything newer than (newest snapshot time - keep_within).
    keep_within: timedelta | None = None
    # Keep every snapshot carrying any of these tags.
    keep_tags: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        for name in _COUNT_FIELDS:
            count = getattr(self, name)
            if isinstance(count, bool) or not isinstance(count, int) or count < UNLIMITED:
                raise InvalidRequest(
                    f"{name} must be a count >= 0, or -1 for unlimited; got {count!r}",
                    details={"field": name},
                )
        if self.keep_within is not None and self.keep_within < timedelta(0):
            raise InvalidRequest(
                f"keep_within must not be negative; got {self.keep_within}",
                details={"field": "keep_within"},
            )
        object.__setattr__(self, "keep_tags", _as_tag_set(self.keep_tags, "keep_tags"))

    def is_empty(self) -> bool:
        """True when no rule is set, so the policy would keep nothing at all."""
        return (
            all(getattr(self, name) == 0 for name in _COUNT_FIELDS)
            and self.keep_within is None
            and not self.keep_tags
        )


@dataclass(frozen=True)
class SnapshotRef:
    """What the policy needs to know about one snapshot."""

    id: str
    time: datetime  # timezone-aware; its tzinfo decides the local calendar for buckets
    tags: frozenset[str] = frozenset()
    protected: bool = False  # pinned: never removed whatever the policy says

    def __post_init__(self) -> None:
        if self.time.tzinfo is None or self.time.utcoffset() is None:
            raise InvalidRequest(
                f"snapshot {self.id} has a naive time {self.time.isoformat()}; "
                "retention needs timezone-aware times",
                details={"snapshot": self.id},
            )
        object.__setattr__(self, "tags", _as_tag_set(self.tags, f"tags of snapshot {self.id}"))


@dataclass
class Decision:
    snapshot: SnapshotRef
    keep: bool
    reasons: list[str] = field(default_factory=list)  # every rule that keeps it; [] if removed


# --- durations ---------------------------------------------------------------------------

# Fixed-length units, so a duration means the same span whatever date it is applied to.
_UNIT_DAYS = {"y": 365, "m": 30, "w": 7, "d": 1}
_DURATION = re.compile(r"(?:\d+[ymwdh])+")
_DURATION_PART = re.compile(r"(\d+)([ymwdh])")


def parse_duration(text: str) -> timedelta:
    """Parse a restic-like duration such as ``2y5m7d3h``.

    Units: ``y`` = 365 days, ``m`` = 30 days, ``w`` = 7 days, ``d`` = 1 day, ``h`` = 1 hour;
    lowercase only, since ``M`` would read as minutes to many people.
    """
    spec = text.strip()
    if not _DURATION.fullmatch(spec):
        raise InvalidRequest(
            f"invalid duration {text!r}: expected numbers with units y, m, w, d, h "
            "such as '2y5m7d3h'",
            details={"duration": text},
        )
    days = hours = 0
    seen: set[str] = set()
    for number, unit in _DURATION_PART.findall(spec):
        if unit in seen:
            raise InvalidRequest(
                f"invalid duration {text!r}: unit {unit!r} given twice",
                details={"duration": text},
            )
        seen.add(unit)
        if unit == "h":
            hours += _to_int(number, text)
        else:
            days += _to_int(number, text) * _UNIT_DAYS[unit]
    try:
        return timedelta(days=days, hours=hours)
    except OverflowError:
        raise InvalidRequest(
            f"invalid duration {text!r}: too long", details={"duration": text}
        ) from None


def _to_int(digits: str, text: str) -> int:
    try:
        return int(digits)
    except ValueError:  # Python refuses to convert absurdly long digit strings
        raise InvalidRequest(
            f"invalid duration {text[:40]!r}...: too long", details={"duration": text[:100]}
        ) from None


def format_duration(span: timedelta) -> str:
    """Show a duration compactly in days and hours, e.g. ``7d`` or ``1d12h``.

    Whole-hour spans come out in a form :func:`parse_duration` reads back; anything finer
    falls back to Python's own notation rather than losing precision.
    """
    seconds = int(span.total_seconds())
    if span != timedelta(seconds=seconds) or seconds % 3600:
        return str(span)
    days, hours = divmod(seconds // 3600, 24)
    parts = [f"{days}d"] if days else []
    if hours or not days:
        parts.append(f"{hours}h")
    return "".join(parts)


# --- buckets -----------------------------------------------------------------------------
# Each bucket function names the bucket a time falls in; the name doubles as the reason text.
# Fields of an aware datetime are its local calendar, which is the one people mean by "daily".


def _hour_bucket(t: datetime) -> str:
    return f"{t.year:04d}-{t.month:02d}-{t.day:02d} {t.hour:02d}:00"


def _day_bucket(t: datetime) -> str:
    return f"{t.year:04d}-{t.month:02d}-{t.day:02d}"


def _week_bucket(t: datetime) -> str:
    iso = t.isocalendar()
    return f"{iso.year:04d}-W{iso.week:02d}"


def _month_bucket(t: datetime) -> str:
    return f"{t.year:04d}-{t.month:02d}"


def _year_bucket(t: datetime) -> str:
    return f"{t.year:04d}"


_BUCKET_RULES: tuple[tuple[str, str, Callable[[datetime], str]], ...] = (
    ("keep_hourly", "hourly", _hour_bucket),
    ("keep_daily", "daily", _day_bucket),
    ("keep_weekly", "weekly", _week_bucket),
    ("keep_monthly", "monthly", _month_bucket),
    ("keep_yearly", "yearly", _year_bucket),
)


# --- the policy --------------------------------------------------------------------------


def apply_policy(
    snapshots: Iterable[SnapshotRef],
    policy: RetentionPolicy,
    *,
    group_key: Callable[[SnapshotRef], Hashable] | None = None,
) -> list[Decision]:
    """Decide, for every snapshot, whether ``policy`` keeps it and by which rules.

    With ``group_key`` the policy is applied separately within each group (e.g. per source),
    as restic's ``--group-by`` does. Decisions come back newest first.
    """
    if policy.is_empty():
        # Removing everything by accident is the worst bug a backup tool can have.
        raise InvalidRequest(
            "refusing to forget with an empty policy: it would remove every snapshot; "
            "set at least one keep rule",
            details={"policy": {f.name: getattr(policy, f.name) for f in fields(policy)}},
        )
    ordered = _newest_first(snapshots)
    groups: dict[Hashable, list[SnapshotRef]] = {}
    for snapshot in ordered:
        key = group_key(snapshot) if group_key is not None else None
        groups.setdefault(key, []).append(snapshot)
    reasons: dict[str, list[str]] = {}
    for members in groups.values():
        reasons.update(_reasons_in_group(members, policy))
    return [Decision(s, keep=bool(reasons[s.id]), reasons=reasons[s.id]) for s in ordered]


def _newest_first(snapshots: Iterable[SnapshotRef]) -> list[SnapshotRef]:
    ordered = sorted(snapshots, key=lambda s: (s.time, s.id), reverse=True)
    seen: set[str] = set()
    for snapshot in ordered:
        if snapshot.id in seen:
            # Two entries for one id would get two contradicting decisions.
            raise InvalidRequest(
                f"snapshot {snapshot.id} is listed twice", details={"snapshot": snapshot.id}
            )
        seen.add(snapshot.id)
    return ordered


def _reasons_in_group(
    members: Sequence[SnapshotRef], policy: RetentionPolicy
) -> dict[str, list[str]]:
    """Reasons for each snapshot of one group; ``members`` is newest first and non-empty."""
    reasons: dict[str, list[str]] = {s.id: [] for s in members}
    for rank, snapshot in enumerate(_first(members, policy.keep_last), start=1):
        reasons[snapshot.id].append(f"last {rank}")
    for count_field, name, bucket_of in _BUCKET_RULES:
        for snapshot, bucket in _bucket_keepers(members, bucket_of, getattr(policy, count_field)):
            reasons[snapshot.id].append(f"{name} {bucket}")
    if policy.keep_within is not None:
        label = f"within {format_duration(policy.keep_within)}"
        for snapshot in _within(members, policy.keep_within):
            reasons[snapshot.id].append(label)
    for snapshot in members:
        for tag in sorted(snapshot.tags & policy.keep_tags):
            reasons[snapshot.id].append(f"tag {tag}")
        if snapshot.protected:
            reasons[snapshot.id].append("protected")
    return reasons


def _first(members: Sequence[SnapshotRef], count: int) -> Sequence[SnapshotRef]:
    return members if count == UNLIMITED else members[:count]


def _bucket_keepers(
    members: Sequence[SnapshotRef], bucket_of: Callable[[datetime], str], count: int
) -> Iterator[tuple[SnapshotRef, str]]:
    """The newest snapshot of each of the ``count`` newest buckets, with its bucket name."""
    # A set rather than "differs from the previous bucket": with snapshots in several time
    # zones the local calendar need not be monotonic, and a bucket must still count once.
    seen: set[str] = set()
    for snapshot in members:
        if count != UNLIMITED and len(seen) >= count:
            return
        bucket = bucket_of(snapshot.time)
        if bucket not in seen:
            seen.add(bucket)
            yield snapshot, bucket


def _within(members: Sequence[SnapshotRef], span: timedelta) -> Sequence[SnapshotRef]:
    # Subtract in UTC: aware-datetime arithmetic in a DST zone is wall-clock arithmetic, which
    # would stretch or shrink "7d" by an hour across a clock change.
    try:
        cutoff = members[0].time.astimezone(UTC) - span
    except OverflowError:
        return members  # the span reaches before year 1: everything is within it
    return [s for s in members if s.time >= cutoff]
