"""Retention rules for catalog backups: which backups a policy keeps and which it deletes.

Pure logic, no I/O: :func:`plan_retention` takes the backups, a :class:`CleanupPolicy`
and the current time, and returns one decision per backup with every reason for it. The
cleanup service turns the deletions into a plan a person confirms; nothing here deletes.

How a policy decides, per source (``source_id``):

1. **Keep rules** (grandfather-father-son): ``keep_last``, ``keep_hourly``, ``keep_daily``,
   ``keep_weekly``, ``keep_monthly``, ``keep_yearly``, ``keep_within_days``, applied to
   the source's completed backups with :func:`strongbox.repository.retention.apply_policy`
   (the newest backup of each of the N newest calendar buckets, in ``timezone``;
   ``keep_within_days`` counts back from the source's newest backup). When any keep rule
   is set, a completed backup no rule keeps is deleted.
2. **Limits** delete on top of that, whatever the keep rules say: ``max_backups`` (also
   seed 002's ``keep_count``) keeps only the N newest completed backups;
   ``max_age_days`` (also ``older_than_days``) deletes backups created more than N days
   before ``now`` (failed ones too); ``delete_failed`` deletes ``failed`` and
   ``corrupted`` backups; ``delete_unverified`` deletes completed backups whose last
   verification did not pass (or that were never verified).
3. ``max_total_size_bytes`` is tenant-wide: while the kept backups' ``size_bytes`` add up
   to more, the oldest kept backup that may go is deleted.
4. **Expiry** (seed 001 ``retention_days`` of one backup, whatever the policy, even an
   empty one): a backup whose ``expires_at`` is at or before ``now`` is deleted with the
   reason ``expired``.

Whatever the policy says, these are always kept: a **protected** (pinned) backup, a
backup **in use** by a running job, a backup still running or being deleted, an
**exempt** one (a configuration snapshot's backup: those are managed under
``/api/v1/snapshots`` and neither counted nor judged here), and the **newest completed
backup of each source** (so no policy can leave a source with nothing to restore).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from strongbox.repository.retention import RetentionPolicy, SnapshotRef, apply_policy
from strongbox.services.errors import FieldError, ValidationFailed

KEEP_RULES = ("keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly",
              "keep_yearly")
RUNNING = ("pending", "in_progress", "deleting")
BROKEN = ("failed", "corrupted")
KEEP, DELETE = "keep", "delete"
# Day spans beyond this (1000 years) mean the same as this: no backup is that old. The
# settings take any day count >= 1, and a span past year 1 would overflow datetime.
MAX_SPAN_DAYS = 365_000


@dataclass(frozen=True)
class CleanupPolicy:
    """What a cleanup removes. Counts of 0 and limits of None mean "rule not set"."""

    keep_last: int = 0
    keep_hourly: int = 0
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0
    keep_yearly: int = 0
    keep_within_days: int | None = None
    timezone: str = "UTC"  # the calendar the daily/weekly/... buckets follow
    max_backups: int | None = None
    max_age_days: int | None = None
    max_total_size_bytes: int | None = None
    delete_failed: bool = False
    delete_unverified: bool = False

    def __post_init__(self) -> None:
        errors = []
        for name in KEEP_RULES:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                errors.append(FieldError(name, "a count >= 0", "OUT_OF_RANGE", value))
        for name in ("keep_within_days", "max_age_days", "max_backups"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 1):
                errors.append(FieldError(name, "a whole number >= 1", "OUT_OF_RANGE", value))
        size = self.max_total_size_bytes
        if size is not None and (not isinstance(size, int) or size < 1):
            errors.append(FieldError("max_total_size_bytes", "bytes >= 1", "OUT_OF_RANGE",
                                     size))
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # "Europe" is a folder
            errors.append(FieldError("timezone", "an IANA time zone such as Europe/Paris",
                                     "INVALID_VALUE", self.timezone))
        if errors:
            raise ValidationFailed("the retention policy is not valid", errors)

    @property
    def has_keep_rules(self) -> bool:
        return any(getattr(self, name) for name in KEEP_RULES) or bool(self.keep_within_days)

    @property
    def is_empty(self) -> bool:
        """True when the policy would delete nothing at all."""
        return not (self.has_keep_rules or self.max_backups or self.max_age_days
                    or self.max_total_size_bytes or self.delete_failed
                    or self.delete_unverified)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> CleanupPolicy:
        """From stored settings or a request: None is "not set", and so is a
        ``keep_within_days`` of 0 (how the settings switch that rule off)."""
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in doc.items() if k in known and v is not None
                      and not (k == "keep_within_days" and v == 0)})


@dataclass(frozen=True)
class BackupRecord:
    """What the rules need to know about one backup."""

    id: str
    source_id: str | None
    created_at: datetime  # timezone-aware
    status: str
    size_bytes: int = 0
    protected: bool = False
    protected_reason: str | None = None
    verified: bool | None = None  # True passed, False failed, None never verified
    in_use: bool = False
    exempt: str | None = None  # why no rule applies (e.g. a configuration snapshot)
    expires_at: datetime | None = None  # its own retention_days ran out then (aware)

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now


@dataclass
class RetentionDecision:
    backup: BackupRecord
    action: str  # KEEP or DELETE
    reasons: list[str] = field(default_factory=list)

    @property
    def delete(self) -> bool:
        return self.action == DELETE


def plan_retention(backups: Iterable[BackupRecord], policy: CleanupPolicy,
                   now: datetime) -> list[RetentionDecision]:
    """One decision per backup, newest first (see the module docstring for the rules)."""
    ordered = sorted(backups, key=lambda b: (b.created_at, b.id), reverse=True)
    groups: dict[str | None, list[BackupRecord]] = {}
    for backup in ordered:
        groups.setdefault(backup.source_id, []).append(backup)
    decisions: dict[str, RetentionDecision] = {}
    for members in groups.values():
        for decision in _decide_source(members, policy, now):
            decisions[decision.backup.id] = decision
    result = [decisions[b.id] for b in ordered]
    if policy.max_total_size_bytes is not None:
        _enforce_total_size(result, policy.max_total_size_bytes)
    return result


def _decide_source(members: Sequence[BackupRecord], policy: CleanupPolicy,
                   now: datetime) -> list[RetentionDecision]:
    completed = [b for b in members if b.status == "completed" and not b.exempt]
    kept_by_rules = _keep_rule_reasons(completed, policy)
    newest = completed[0].id if completed else None
    cutoff = _days_before(now, policy.max_age_days) if policy.max_age_days else None
    decisions = []
    rank = 0
    for backup in members:
        deletes: list[str] = []
        keeps: list[str] = []
        if backup.exempt:
            pass  # neither counted nor judged: see _guard
        elif backup.status == "completed":
            rank += 1
            if policy.has_keep_rules:
                keeps = kept_by_rules.get(backup.id, [])
                if not keeps:
                    deletes.append("not kept by any keep rule")
            if policy.max_backups is not None and rank > policy.max_backups:
                deletes.append(f"beyond the newest {policy.max_backups} backups of its "
                               "source (max_backups)")
            if policy.delete_unverified and backup.verified is not True:
                deletes.append("verification failed (delete_unverified)"
                               if backup.verified is False
                               else "never verified (delete_unverified)")
        elif backup.status in BROKEN and policy.delete_failed:
            deletes.append(f"{backup.status} backup (delete_failed)")
        if (cutoff is not None and backup.status not in RUNNING and not backup.exempt
                and backup.created_at < cutoff):
            deletes.append(f"older than {policy.max_age_days} days (max_age_days)")
        expires = backup.expires_at
        if (expires is not None and expires <= now and backup.status not in RUNNING
                and not backup.exempt):
            deletes.append(f"expired: its retention_days ran out at "
                           f"{expires.isoformat(timespec='seconds')}")
        guard = _guard(backup, newest)
        if guard is not None:
            decisions.append(RetentionDecision(backup, KEEP, [guard, *keeps]))
        elif deletes:
            decisions.append(RetentionDecision(backup, DELETE, deletes))
        else:
            decisions.append(RetentionDecision(backup, KEEP, keeps or [_why_kept(backup)]))
    return decisions


def _days_before(now: datetime, days: int) -> datetime | None:
    """``now`` minus ``days``; None when that is before the calendar begins (nothing is
    older than that)."""
    try:
        return now - timedelta(days=min(days, MAX_SPAN_DAYS))
    except OverflowError:
        return None


def _guard(backup: BackupRecord, newest: str | None) -> str | None:
    """The reason nothing may delete this backup, if there is one."""
    if backup.protected:
        return ("protected: " + backup.protected_reason if backup.protected_reason
                else "protected")
    if backup.exempt:
        return backup.exempt
    if backup.status in RUNNING:
        return "still running" if backup.status != "deleting" else "already being deleted"
    if backup.in_use:
        return "in use by a running job"
    if backup.id == newest:
        return "newest completed backup of its source (always kept)"
    return None


def _why_kept(backup: BackupRecord) -> str:
    if backup.status in BROKEN:
        return f"{backup.status} backup (delete_failed is off)"
    return "no rule removes it"


def _keep_rule_reasons(completed: Sequence[BackupRecord],
                       policy: CleanupPolicy) -> dict[str, list[str]]:
    if not completed or not policy.has_keep_rules:
        return {}
    zone = ZoneInfo(policy.timezone)
    rules = RetentionPolicy(
        **{name: getattr(policy, name) for name in KEEP_RULES},
        keep_within=(timedelta(days=min(policy.keep_within_days, MAX_SPAN_DAYS))
                     if policy.keep_within_days else None))
    refs = [SnapshotRef(b.id, b.created_at.astimezone(zone)) for b in completed]
    return {d.snapshot.id: d.reasons for d in apply_policy(refs, rules)}


def _enforce_total_size(decisions: list[RetentionDecision], limit: int) -> None:
    """Delete the oldest deletable kept backups until the kept ones fit in ``limit``."""
    kept = [d for d in decisions if not d.delete]
    total = sum(d.backup.size_bytes for d in kept)
    newest_per_source: set[str] = set()
    seen_sources: set[str | None] = set()
    for d in decisions:  # newest first
        if (d.backup.status == "completed" and not d.backup.exempt
                and d.backup.source_id not in seen_sources):
            seen_sources.add(d.backup.source_id)
            newest_per_source.add(d.backup.id)
    for d in reversed(kept):  # oldest first
        if total <= limit:
            return
        backup = d.backup
        if backup.protected or backup.in_use or backup.exempt or backup.status in RUNNING:
            continue
        if backup.id in newest_per_source:
            continue
        d.action = DELETE
        d.reasons = [f"kept backups total more than {limit} bytes (max_total_size_gb)"]
        total -= backup.size_bytes
