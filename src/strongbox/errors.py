"""The one error hierarchy of Strongbox.

Every layer raises subclasses of :class:`StrongboxError`. Each carries a machine-readable
``code`` (seed 000 section 6 where one fits) and the HTTP status the API maps it to, so the
mapping to the error envelope is written exactly once, in the API layer.
"""

from __future__ import annotations

from typing import Any


class StrongboxError(Exception):
    """Base of every error Strongbox raises on purpose."""

    code = "INTERNAL_ERROR"
    http_status = 500

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidRequest(StrongboxError):
    code = "INVALID_REQUEST"
    http_status = 400


class InvalidDateRange(InvalidRequest):
    code = "INVALID_DATE_RANGE"


class NotFound(StrongboxError):
    code = "NOT_FOUND"
    http_status = 404


# --- repository -------------------------------------------------------------------------


class RepositoryError(StrongboxError):
    """Something is wrong with a repository as a whole."""


class RepositoryNotFound(RepositoryError):
    code = "REPOSITORY_NOT_FOUND"
    http_status = 404


class RepositoryExists(RepositoryError):
    code = "REPOSITORY_EXISTS"
    http_status = 409


class WrongPassphrase(RepositoryError):
    code = "WRONG_PASSPHRASE"
    http_status = 401


class RepositoryLocked(RepositoryError):
    code = "REPOSITORY_LOCKED"
    http_status = 409


class IntegrityError(RepositoryError):
    """Stored data does not match what it claims to be (bad MAC, bad hash, truncated)."""

    code = "INTEGRITY_ERROR"
    http_status = 500


class BlobNotFound(RepositoryError):
    code = "BLOB_NOT_FOUND"
    http_status = 404


class SnapshotNotFound(NotFound):
    code = "SNAPSHOT_NOT_FOUND"


class BackendError(RepositoryError):
    """The storage backend failed (I/O error, object missing, permission)."""

    code = "STORAGE_ERROR"
    http_status = 503


class ObjectNotFound(BackendError):
    code = "OBJECT_NOT_FOUND"
    http_status = 404


class ObjectExists(BackendError):
    code = "OBJECT_EXISTS"
    http_status = 409


class InsufficientStorage(BackendError):
    code = "INSUFFICIENT_STORAGE"
    http_status = 507


# --- sources -----------------------------------------------------------------------------


class SourceError(StrongboxError):
    code = "SOURCE_ERROR"
    http_status = 400


class UnsafePath(SourceError):
    """A restore would write outside its target (``..``, absolute path, symlink escape)."""

    code = "UNSAFE_PATH"


class Cancelled(StrongboxError):
    """The work was cancelled by its caller; whatever it wrote has been undone."""

    code = "CANCELLED"
    http_status = 409
