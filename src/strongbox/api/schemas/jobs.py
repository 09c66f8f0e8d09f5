"""``/api/v1/jobs``: every kind of long-running operation (seed 004 section 8)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import Field

from strongbox.api.schemas.backups import JobError
from strongbox.api.schemas.common import ApiModel, JobStatus, Pagination


class JobStatusFilter(StrEnum):
    """Seed 000 ``JobStatus`` plus ``cancelled`` (``failed`` includes cancelled jobs)."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class OperationProgress(ApiModel):
    """The same facts whatever the kind; ``details`` is the kind's own progress block."""

    percentage: float = Field(description="0-100; 100 only once the job has completed")
    current_step: str | None = None
    current_operation: str | None = None
    total_steps: int | None = None
    completed_steps: int | None = None
    items_done: int | None = Field(None, description="Files, rows or documents processed")
    items_total: int | None = None
    bytes_done: int | None = None
    bytes_total: int | None = None
    elapsed_seconds: float | None = None
    eta_seconds: float | None = Field(None, description="Estimated seconds left (running "
                                                        "jobs whose progress allows it)")
    details: dict[str, Any] = Field(default_factory=dict)


class OperationStatus(ApiModel):
    job_id: str
    kind: str = Field(description="backup, restore, verify, cleanup, dr_test, "
                                  "snapshot_restore, upload, ...")
    status: JobStatus = Field(description="Seed 000 JobStatus: a cancelled job is failed "
                                          "with error code CANCELLED")
    cancelled: bool = Field(description="The job ended by cancellation")
    cancel_requested: bool = Field(description="Someone asked it to stop")
    cancellable: bool = Field(description="POST .../cancel would be accepted now")
    backup_id: str | None = None
    created_by: str | None = None
    created_at: datetime
    started_at: datetime | None = None
    updated_at: datetime
    completed_at: datetime | None = None
    progress: OperationProgress
    error: JobError | None = None


class OperationDetail(OperationStatus):
    result: dict[str, Any] | None = None


class PagedOperationsResponse(ApiModel):
    items: list[OperationStatus]
    pagination: Pagination


class CancelOperationRequest(ApiModel):
    reason: str | None = Field(None, max_length=500,
                               description="Why (written to the server log)")


class CancelOperationResponse(ApiModel):
    """Seed 004 ``POST /backup/operation/cancel`` answer, with the job's final state."""

    job_id: str
    kind: str
    status: Literal["cancelled", "cancelling"] = Field(
        description="cancelled: the job has ended; cancelling: it stops at its next safe "
                    "point")
    partial_data_cleaned: bool = Field(description="Whatever the job had written was "
                                                   "cleaned up or rolled back")
    can_restart: bool = Field(description="The same operation may simply be started again")
    cancelled_at: datetime | None = None
    message: str
    job: OperationStatus
