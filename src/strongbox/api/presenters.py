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
from strongbox.api.schemas.restore import (
    BackupPreviewResponse,
    CancelRestoreResponse,
    ConflictInfo,
    CreateRestoreResponse,
    RestoreError,
    RestoreJobStatus,
    RestoreResults,
    ValidationResults,
)
from strongbox.api.schemas.restore import RestoreProgress as RestoreProgressModel
from strongbox.api.schemas.sources import SourceResponse
from strongbox.jobs.store import CANCELLED, JobView
from strongbox.services.backup_metadata import empty_contents
from strongbox.services.backups import BackupView, RestoreAttemptView
from strongbox.services.restore import CancelledRestore, ConflictView, CreatedRestore
from strongbox.services.restore_preview import BackupPreview
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
        "parent_id": backup.parent_id,
        "protected": backup.protected,
        "protected_reason": backup.protected_reason,
        "schedule_id": backup.schedule_id,
        "tags": backup.tags or None,
        "expires_at": backup.expires_at,
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
        "schema_name": config.get("schema"), "row_streams": config.get("row_streams"),
        "created_at": source.created_at,
        "updated_at": source.updated_at})


# --- restore (seed 000 section 2) ---------------------------------------------------------

RESTORE_PROGRESS_DEFAULTS: dict[str, Any] = {
    "current_operation": "waiting to start", "collections_processed": [],
    "collections_remaining": [], "documents_restored": 0, "documents_skipped": 0,
    "documents_failed": 0, "percentage": 0.0, "elapsed_seconds": 0.0}


def conflict_info(conflict: ConflictView) -> ConflictInfo:
    return ConflictInfo(type=conflict.type, existing_id=conflict.existing_id,
                        backup_id=conflict.backup_id, existing_name=conflict.existing_name,
                        backup_name=conflict.backup_name, resolution=conflict.resolution)


def create_restore_response(created: CreatedRestore) -> CreateRestoreResponse:
    validation = created.validation
    return CreateRestoreResponse(
        job_id=created.job.id, status="pending",  # type: ignore[arg-type]
        mode=created.mode,  # type: ignore[arg-type]
        estimated_documents=created.estimated_documents,
        estimated_duration_seconds=created.estimated_duration_seconds,
        validation_results=None if validation is None else ValidationResults(
            is_valid=validation.is_valid, warnings=validation.warnings,
            errors=validation.errors,
            conflicts=[conflict_info(c) for c in validation.conflicts]),
        backup_id=created.backup.id, source_id=created.job.params["source_id"])


def restore_errors(job: JobView) -> list[RestoreError] | None:
    if not job.error:
        return None
    details = job.error.get("details")
    where = details if isinstance(details, dict) else {}
    return [RestoreError(
        timestamp=job.completed_at or job.updated_at, collection=str(where.get("table", "")),
        document_id=str(where["key"]) if where.get("key") is not None else None,
        error_code=job.error.get("code", "INTERNAL_ERROR"),
        message=job.error.get("message", ""), details=details)]


def restore_job_status(job: JobView) -> RestoreJobStatus:
    result = job.result if job.status == "completed" else None
    return RestoreJobStatus(
        job_id=job.id, status=job_status(job),  # type: ignore[arg-type]
        mode=job.params["mode"], backup_id=job.backup_id or "",
        progress=RestoreProgressModel.model_validate(
            {**RESTORE_PROGRESS_DEFAULTS, **job.progress}),
        started_at=job.started_at or job.created_at, updated_at=job.updated_at,
        completed_at=job.completed_at,
        results=RestoreResults.model_validate(result) if result else None,
        errors=restore_errors(job))


def cancel_restore_response(cancelled: CancelledRestore) -> CancelRestoreResponse:
    return CancelRestoreResponse(job_id=cancelled.job_id, status="cancelled",
                                 cancelled_at=cancelled.cancelled_at,
                                 documents_restored=cancelled.documents_restored,
                                 rollback_available=cancelled.rollback_available,
                                 message=cancelled.message)


def backup_preview(preview: BackupPreview) -> BackupPreviewResponse:
    conflicts = preview.conflicts
    return BackupPreviewResponse.model_validate({
        "backup_id": preview.backup.id, "created_at": preview.backup.created_at,
        "contents": {
            "projects": preview.projects,
            "sessions_summary": preview.sessions_summary or {"total": 0, "by_project": {}},
            "messages_summary": preview.messages_summary or {
                "total": 0, "by_type": {}, "average_per_session": 0},
            "prompts": preview.prompts,
            "tables": [vars(t) for t in preview.tables]},
        "restore_analysis": {
            "can_restore": preview.can_restore, "has_conflicts": preview.conflicts_count > 0,
            "conflicts_count": preview.conflicts_count,
            "conflicts": None if conflicts is None else [conflict_info(c) for c in conflicts],
            "estimated_time_seconds": preview.estimated_time_seconds,
            "required_space_bytes": preview.required_space_bytes,
            "recommendations": preview.recommendations}})
