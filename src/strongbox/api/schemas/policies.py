"""``/api/v1/policies``: a source's backup policy (seed 003 "Get policies"/"Update policy"),
in seed 000's style (bare objects, ``pagination``)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import AliasChoices, Field, StrictInt, StrictStr

from strongbox.api.schemas.common import ApiModel, Pagination
from strongbox.api.schemas.schedules import Frequency, ScheduleRetention
from strongbox.services.disaster_recovery import RecoveryPoint
from strongbox.services.policies import SourcePolicy
from strongbox.services.schedules import ScheduleView


class PolicyBackupType(StrEnum):
    """A policy backs up a whole source (a selective backup needs filters)."""

    FULL = "full"
    INCREMENTAL = "incremental"
    DIFFERENTIAL = "differential"


_CRON = "Five-field cron or @daily/@weekly/…, read in `timezone`. Give it or `frequency`."


class PolicyTiming(ApiModel):
    cron: str | None = Field(None, max_length=100, description=_CRON,
                             validation_alias=AliasChoices("cron", "schedule"))
    frequency: Frequency | None = Field(None, description="Instead of cron: hourly, daily, "
                                                          "weekly, monthly")
    time: str | None = Field(None, description="HH:MM for frequency; default 02:00")
    day: StrictInt | StrictStr | None = Field(
        None, description="weekly: monday … sunday or 0-6; monthly: 1-31 or \"last\"")
    timezone: str = Field("UTC", max_length=64, description="IANA zone, e.g. Europe/Berlin")


class PolicyBackup(PolicyTiming):
    type: PolicyBackupType = PolicyBackupType.FULL


class PolicyVerification(PolicyTiming):
    deep: bool = Field(False, description="Read and check every blob, not only the index")
    test_restore: bool = Field(False, description="Also restore into a scratch target")


class PolicySet(ApiModel):
    """``PUT``: the whole policy (what is left out is reset: no retention, no
    verification, no RPO target)."""

    backup: PolicyBackup
    retention: ScheduleRetention | None = Field(
        None, description="Applied after each successful run to the backups the policy's "
                          "backup schedule made")
    verification: PolicyVerification | None = Field(
        None, description="A verify schedule for the source; null: none")
    rpo_target_hours: float | None = Field(
        None, gt=0, le=87600, description="The most data (in hours) the source may lose; "
                                          "checked against the measured RPO")


def policy_body(body: PolicySet) -> dict[str, Any]:
    return body.model_dump(mode="json", exclude_none=False, by_alias=False)


class PolicyTimingOut(ApiModel):
    schedule_id: str
    name: str
    cron: str = Field(description="The cron expression as given, else the one frequency "
                                  "became")
    frequency: Frequency | None = None
    time: str | None = None
    day: StrictInt | StrictStr | None = None
    timezone: str
    enabled: bool
    next_run: datetime | None = None
    last_run: datetime | None = None
    last_status: str | None = None


class PolicyBackupOut(PolicyTimingOut):
    type: str


class PolicyVerificationOut(PolicyTimingOut):
    deep: bool
    test_restore: bool


class PolicyDocument(ApiModel):
    """What was set with ``PUT`` (all null while no policy is set)."""

    backup: PolicyBackupOut | None = None
    retention: dict[str, Any] | None = None
    verification: PolicyVerificationOut | None = None
    rpo_target_hours: float | None = None


class CoveringSchedule(ApiModel):
    schedule_id: str
    name: str
    origin: str = Field(description="api (made by hand), settings or policy")
    action: str
    cron: str
    timezone: str
    type: str
    enabled: bool
    next_run: datetime | None = None
    last_run: datetime | None = None
    last_status: str | None = None
    retention: dict[str, Any] | None = None
    deep: bool | None = None
    test_restore: bool | None = None


class RetentionInForce(ApiModel):
    schedules: list[dict[str, Any]] = Field(
        description="Covering backup schedules with their own retention: {schedule_id, name, "
                    "retention}")
    tenant: dict[str, Any] = Field(description="The tenant settings' retention (applied by "
                                               "cleanups, per source)")


class BackupRef(ApiModel):
    backup_id: str
    name: str
    type: str
    created_at: datetime
    verification_status: str
    verified_at: datetime | None = None


class RpoState(ApiModel):
    current_seconds: float | None = Field(None, description="Age of the newest restorable "
                                                            "backup: what a loss now costs")
    current_hours: float | None = None
    max_gap_seconds: float | None = Field(None, description="Largest gap between backups in "
                                                            "the window")
    schedule_interval_seconds: float | None = Field(
        None, description="Largest gap the enabled backup schedules leave between runs")
    target_hours: float | None = None
    window_days: int
    runs_total: int
    runs_failed: int
    runs_skipped: int


class PolicyState(ApiModel):
    last_backup: BackupRef | None = None
    last_verified_backup: BackupRef | None = None
    restorable_backups: int
    rpo: RpoState


class ReasonOut(ApiModel):
    code: str
    severity: str = Field(description="error (not compliant) or warning")
    message: str


class Compliance(ApiModel):
    status: str = Field(description="compliant, warning or non_compliant")
    compliant: bool
    reasons: list[ReasonOut]


class PolicyResponse(ApiModel):
    source_id: str
    source_name: str
    source_kind: str
    configured: bool = Field(description="A policy was set with PUT")
    policy: PolicyDocument
    backup_schedules: list[CoveringSchedule]
    verification_schedules: list[CoveringSchedule]
    retention: RetentionInForce
    state: PolicyState
    compliance: Compliance

    @classmethod
    def of(cls, view: SourcePolicy) -> PolicyResponse:
        rpo = view.rpo
        return cls(
            source_id=view.source.id, source_name=view.source.name,
            source_kind=view.source.kind, configured=view.configured,
            policy=PolicyDocument(
                backup=(PolicyBackupOut(**_timing(view.backup), type=view.backup.backup_type)
                        if view.backup else None),
                retention=view.backup.retention if view.backup else None,
                verification=(PolicyVerificationOut(
                    **_timing(view.verification),
                    deep=bool((view.verification.options or {}).get("deep")),
                    test_restore=bool((view.verification.options or {}).get("test_restore")))
                    if view.verification else None),
                rpo_target_hours=view.rpo_target_hours),
            backup_schedules=[_covering(s) for s in view.backup_schedules],
            verification_schedules=[_covering(s) for s in view.verification_schedules],
            retention=RetentionInForce(
                schedules=[{"schedule_id": s.id, "name": s.name, "retention": s.retention}
                           for s in view.backup_schedules if s.retention],
                tenant=view.tenant_retention),
            state=PolicyState(
                last_backup=_ref(view.last_backup),
                last_verified_backup=_ref(view.last_verified_backup),
                restorable_backups=view.restorable_backups,
                rpo=RpoState(
                    current_seconds=rpo.current_age_seconds,
                    current_hours=(round(rpo.current_age_seconds / 3600, 2)
                                   if rpo.current_age_seconds is not None else None),
                    max_gap_seconds=rpo.max_gap_seconds,
                    schedule_interval_seconds=rpo.target_seconds,
                    target_hours=view.rpo_target_hours, window_days=rpo.window_days,
                    runs_total=rpo.runs_total, runs_failed=rpo.runs_failed,
                    runs_skipped=rpo.runs_skipped)),
            compliance=Compliance(
                status=view.status, compliant=view.compliant,
                reasons=[ReasonOut(code=r.code, severity=r.severity, message=r.message)
                         for r in view.reasons]))


def _timing(schedule: ScheduleView) -> dict[str, Any]:
    spec = schedule.spec
    return {"schedule_id": schedule.id, "name": schedule.name,
            "cron": spec.get("cron") or schedule.cron, "frequency": spec.get("frequency"),
            "time": spec.get("time"), "day": spec.get("day"), "timezone": schedule.timezone,
            "enabled": schedule.enabled, "next_run": schedule.next_run_at,
            "last_run": schedule.last_run_at, "last_status": schedule.last_status}


def _covering(schedule: ScheduleView) -> CoveringSchedule:
    options = schedule.options or {}
    verify = schedule.action == "verify"
    return CoveringSchedule(
        schedule_id=schedule.id, name=schedule.name, origin=schedule.origin,
        action=schedule.action, cron=schedule.cron, timezone=schedule.timezone,
        type=schedule.backup_type, enabled=schedule.enabled, next_run=schedule.next_run_at,
        last_run=schedule.last_run_at, last_status=schedule.last_status,
        retention=schedule.retention,
        deep=bool(options.get("deep")) if verify else None,
        test_restore=bool(options.get("test_restore")) if verify else None)


def _ref(point: RecoveryPoint | None) -> BackupRef | None:
    if point is None:
        return None
    return BackupRef(backup_id=point.backup_id, name=point.name, type=point.type,
                     created_at=point.created_at,
                     verification_status=point.verification_status,
                     verified_at=point.verified_at)


class PagedPoliciesResponse(ApiModel):
    items: list[PolicyResponse]
    pagination: Pagination


class DeletePolicyResponse(ApiModel):
    message: str
    source_id: str
    removed_schedule_ids: list[str]
    policy: PolicyResponse
