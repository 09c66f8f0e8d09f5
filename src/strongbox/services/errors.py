"""Service-level errors: more members of the one hierarchy in :mod:`strongbox.errors`."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from strongbox.errors import InvalidDateRange, InvalidRequest, NotFound, StrongboxError


@dataclass(frozen=True)
class FieldError:
    """One rejected field (seed 000 ``ValidationError``)."""

    field: str
    message: str
    code: str
    value: Any = None

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        if doc["value"] is None:
            doc.pop("value")
        return doc


class ValidationFailed(InvalidRequest):
    code = "VALIDATION_FAILED"

    def __init__(self, message: str, errors: list[FieldError] | None = None, *,
                 details: Any = None) -> None:
        super().__init__(message, details=details)
        self.errors = errors or []


class InvalidBackupType(ValidationFailed):
    code = "INVALID_BACKUP_TYPE"


class InvalidDateRangeFields(ValidationFailed, InvalidDateRange):
    code = "INVALID_DATE_RANGE"


class Unauthorized(StrongboxError):
    code = "UNAUTHORIZED"
    http_status = 401


class Forbidden(StrongboxError):
    code = "FORBIDDEN"
    http_status = 403


class RateLimitExceeded(StrongboxError):
    code = "RATE_LIMIT_EXCEEDED"
    http_status = 429

    def __init__(self, message: str, *, retry_after: int, details: Any = None) -> None:
        super().__init__(message, details=details)
        self.retry_after = retry_after


class BackupNotFound(NotFound):
    code = "BACKUP_NOT_FOUND"


class JobNotFound(NotFound):
    code = "JOB_NOT_FOUND"


class SourceNotFound(NotFound):
    code = "SOURCE_NOT_FOUND"


class BackupInProgress(StrongboxError):
    code = "BACKUP_IN_PROGRESS"
    http_status = 409


class ServiceUnavailable(StrongboxError):
    code = "SERVICE_UNAVAILABLE"
    http_status = 503
