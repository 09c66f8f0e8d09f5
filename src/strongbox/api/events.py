"""Job events as seed 000 section 7 WebSocket messages."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from strongbox.catalog.types import utcnow
from strongbox.jobs.events import COMPLETED, FAILED, PROGRESS, JobEvent
from strongbox.jobs.store import JobView


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def backup_message(event: JobEvent) -> dict[str, Any]:
    timestamp = _iso(event.timestamp)
    if event.type == COMPLETED:
        result = event.result or {}
        return {"type": "backup.completed", "job_id": event.job_id,
                "backup_id": event.backup_id, "size_bytes": int(result.get("size_bytes", 0)),
                "duration_seconds": float(result.get("duration_seconds", 0.0)),
                "timestamp": timestamp}
    if event.type == FAILED:
        error = event.error or {}
        return {"type": "backup.failed", "job_id": event.job_id,
                "error": {"code": error.get("code", "INTERNAL_ERROR"),
                          "message": error.get("message", "")},
                "timestamp": timestamp}
    progress = event.progress
    message: dict[str, Any] = {
        "type": "backup.progress", "job_id": event.job_id,
        "progress": {"percentage": float(progress.get("percentage", 0.0)),
                     "current_operation": str(progress.get("current_operation", "")),
                     "documents_processed": int(progress.get("documents_processed", 0)),
                     "bytes_written": int(progress.get("bytes_written", 0))},
        "timestamp": timestamp}
    if event.backup_id:
        message["backup_id"] = event.backup_id
    return message


def event_from_job(job: JobView) -> JobEvent:
    """The job's current state as the event a late subscriber would have seen last."""
    if job.status == "completed":
        kind = COMPLETED
    elif job.status in ("failed", "cancelled"):
        kind = FAILED
    else:
        kind = PROGRESS
    return JobEvent(kind, job.id, job.kind, backup_id=job.backup_id, progress=job.progress,
                    result=job.result, error=job.error,
                    timestamp=job.updated_at if kind != PROGRESS else utcnow())


def restore_message(event: JobEvent) -> dict[str, Any]:
    """Section 7's restore events; ``restore.failed`` is shaped like ``backup.failed``."""
    timestamp = _iso(event.timestamp)
    if event.type == COMPLETED:
        result = event.result or {}
        return {"type": "restore.completed", "job_id": event.job_id,
                "documents_restored": int(result.get("total_documents", 0)),
                "duration_seconds": float(result.get("duration_seconds", 0.0)),
                "timestamp": timestamp}
    if event.type == FAILED:
        error = event.error or {}
        return {"type": "restore.failed", "job_id": event.job_id,
                "error": {"code": error.get("code", "INTERNAL_ERROR"),
                          "message": error.get("message", "")},
                "timestamp": timestamp}
    progress = event.progress
    return {"type": "restore.progress", "job_id": event.job_id,
            "progress": {"percentage": float(progress.get("percentage", 0.0)),
                         "current_collection": str(progress.get("current_collection", "")),
                         "documents_restored": int(progress.get("documents_restored", 0)),
                         "documents_skipped": int(progress.get("documents_skipped", 0))},
            "timestamp": timestamp}
