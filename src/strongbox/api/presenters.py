"""Service views → API schemas. The one place that knows both shapes."""

from __future__ import annotations

from typing import Any

from strongbox.api.schemas.backups import (
    BackupContents,
    BackupDetailResponse,
    BackupJobStatus,
    BackupMetadata,
    JobError,
    JobProgress,
    RestoreAttempt,
    filters_model,
)
from strongbox.api.schemas.sources import SourceResponse
from strongbox.jobs.store import CANCELLED, JobView
from strongbox.services.backup_metadata import empty_contents
from strongbox.services.backups import BackupView, RestoreAttemptView
from strongbox.services.sources import SourceView

FORMAT_VERSION = "1.0"


def backup_fields(backup: BackupView) -> dict[str, Any]:
    snapshot = backup.snapshot_id
    return {
        "_id": backup.id,
        "name": backup.name,
        "description": backup.description,
        "filename": f"snapshot-{snapshot}" if snapshot else "",
        "filepath": f"{backup.storage_location}/snapshots/{snapshot}" if snapshot else "",
        "created_at": backup.created_at,
        "created_by": backup.created_by,
        "size_bytes": backup.size_bytes,
        "compressed_size_bytes": backup.compressed_size_bytes,
        "type": backup.type,
        "status": backup.status,
        "filters": filters_model(backup.filters),
        "contents": BackupContents.model_validate(backup.contents or empty_contents()),
        "checksum": backup.checksum or "",
        "version": FORMAT_VERSION,
        "can_restore": backup.can_restore,
        "error_message": backup.error_message,
        "source_id": backup.source_id,
        "job_id": backup.job_id,
        "completed_at": backup.completed_at,
    }


def backup_metadata(backup: BackupView) -> BackupMetadata:
    return BackupMetadata.model_validate(backup_fields(backup))


def restore_attempt(attempt: RestoreAttemptView) -> RestoreAttempt:
    return RestoreAttempt.model_validate({
        "_id": attempt.id, "restored_at": attempt.restored_at,
        "restored_by": attempt.restored_by, "status": attempt.status,
        "documents_restored": attempt.documents_restored,
        "error_message": attempt.error_message})


def backup_detail(backup: BackupView, attempts: list[RestoreAttemptView]
                  ) -> BackupDetailResponse:
    return BackupDetailResponse.model_validate({
        **backup_fields(backup),
        "storage_location": backup.storage_location,
        "encryption": backup.encryption,
        "compression": backup.compression,
        "restore_history": [restore_attempt(a) for a in attempts],
        "validation_status": backup.validation,
    })


def job_progress(job: JobView, total_steps: int) -> JobProgress:
    defaults: dict[str, Any] = {
        "current_step": "queued", "total_steps": total_steps, "completed_steps": 0,
        "percentage": 0.0, "current_operation": "waiting to start",
        "documents_processed": 0, "bytes_written": 0, "elapsed_seconds": 0.0}
    return JobProgress.model_validate({**defaults, **job.progress})


def job_status(job: JobView) -> str:
    """Seed 000 ``JobStatus`` has no "cancelled": a cancelled job is a failed one whose
    error code is CANCELLED."""
    return "failed" if job.status == CANCELLED else job.status


def backup_job_status(job: JobView, total_steps: int) -> BackupJobStatus:
    return BackupJobStatus(
        job_id=job.id, backup_id=job.backup_id, status=job_status(job),  # type: ignore[arg-type]
        progress=job_progress(job, total_steps), started_at=job.started_at or job.created_at,
        updated_at=job.updated_at, completed_at=job.completed_at,
        error=JobError.model_validate(job.error) if job.error else None)


def source_response(source: SourceView) -> SourceResponse:
    config = source.public_config()
    return SourceResponse.model_validate({
        "_id": source.id, "name": source.name, "kind": source.kind,
        "path": config.get("path"), "include_patterns": config.get("include_patterns"),
        "exclude_patterns": config.get("exclude_patterns"), "dsn": config.get("dsn"),
        "schema_name": config.get("schema"), "created_at": source.created_at,
        "updated_at": source.updated_at})
