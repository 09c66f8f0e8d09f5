"""Shapes shared by every endpoint: the error envelope, pagination, enums."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict


class ApiModel(BaseModel):
    """Base of every schema: ``_id`` fields by alias, unknown request fields ignored."""

    model_config = ConfigDict(populate_by_name=True)


class BackupType(StrEnum):
    FULL = "full"
    SELECTIVE = "selective"
    # Seed 001: they build on a parent backup (recorded as ``parent_id``).
    INCREMENTAL = "incremental"
    DIFFERENTIAL = "differential"


class BackupStatus(StrEnum):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    CORRUPTED = "corrupted"
    DELETING = "deleting"


class JobStatus(StrEnum):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"


class ValidationErrorItem(ApiModel):
    field: str
    message: str
    code: str
    value: Any = None


class ErrorBody(ApiModel):
    code: str
    message: str
    details: Any = None
    timestamp: datetime
    path: str
    request_id: str | None = None


class ErrorResponse(ApiModel):
    error: ErrorBody
    validation_errors: list[ValidationErrorItem] | None = None


class Pagination(ApiModel):
    total_items: int
    total_pages: int
    current_page: int
    page_size: int
    has_next: bool
    has_previous: bool

    @classmethod
    def of(cls, total_items: int, total_pages: int, page: int, size: int) -> Pagination:
        return cls(total_items=total_items, total_pages=total_pages, current_page=page,
                   page_size=size, has_next=page < total_pages, has_previous=page > 1)


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in (
        (400, "Invalid request or validation failure"),
        (401, "Missing or invalid API key"),
        (403, "The key's role does not allow this"),
        (404, "Not found (or another tenant's)"),
        (429, "Rate limit exceeded"),
    )
}
