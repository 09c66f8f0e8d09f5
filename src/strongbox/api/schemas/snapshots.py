"""``/api/v1/snapshots``: configuration snapshots (seed 004 section 3; an extension)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field

from strongbox.api.schemas.backups import NAME_PATTERN
from strongbox.api.schemas.common import ApiModel, Pagination

Tag = Annotated[str, Field(min_length=1, max_length=50, pattern=r"^[A-Za-z0-9 _.:@/-]+$")]
SnapshotStatus = Literal["pending", "in_progress", "active", "failed", "corrupted", "deleting"]


class CreateSnapshotRequest(ApiModel):
    name: str = Field(min_length=1, max_length=100, pattern=NAME_PATTERN)
    description: str | None = Field(None, max_length=500)
    tags: list[Tag] = Field(default_factory=list, max_length=20)
    sources: list[str] = Field(default_factory=list, max_length=50,
                               description="Source ids or names to capture")
    paths: list[str] = Field(default_factory=list, max_length=50,
                             description="Absolute paths of files or folders on the server "
                                         "(admin only); each becomes a `files` source")


class SnapshotComponentModel(ApiModel):
    backup_id: str
    job_id: str
    source_id: str | None = None
    source_name: str
    source_kind: str
    status: str
    size_bytes: int
    target: str | None = Field(None, description="file trees: the captured path")
    error_message: str | None = None


class ConfigSnapshotModel(ApiModel):
    id: str = Field(alias="_id")
    name: str
    description: str | None = None
    tags: list[str]
    status: SnapshotStatus
    can_restore: bool
    created_at: datetime
    completed_at: datetime | None = None
    created_by: str | None = None
    size_bytes: int
    components: list[SnapshotComponentModel]
    pre_restore_of: str | None = Field(
        None, description="For a pre-restore snapshot: the snapshot whose restore it "
                          "protected against")


class CreateSnapshotResponse(ApiModel):
    snapshot_id: str
    status: SnapshotStatus
    name: str
    job_ids: list[str]
    snapshot: ConfigSnapshotModel
    message: str


class SnapshotList(ApiModel):
    items: list[ConfigSnapshotModel]
    pagination: Pagination


class RestoreSnapshotRequest(ApiModel):
    components: list[str] | None = Field(
        None, description="Source ids of the components to restore; default: all")
    create_backup: bool = Field(True, description="Capture the current state first, as a "
                                                  "snapshot tagged `pre-restore`")
    reason: str | None = Field(None, max_length=500)
    remove_new_files: bool = Field(
        False, description="File trees: also delete files and folders the snapshot does not "
                           "hold (the pre-restore snapshot keeps them), so the tree is "
                           "exactly as captured")


class RestoreSnapshotResponse(ApiModel):
    status: Literal["restore_started"]
    restore_job_id: str
    snapshot_id: str
    pre_restore_snapshot_id: str | None = None
    components: list[str]
    progress_url: str
    message: str


class SnapshotJobStatus(ApiModel):
    job_id: str
    snapshot_id: str
    status: Literal["pending", "in_progress", "completed", "failed", "cancelled"]
    pre_restore_snapshot_id: str | None = None
    progress: dict[str, Any]
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None


class DeleteSnapshotResponse(ApiModel):
    message: str
    snapshot_id: str
    backups_deleted: int
    freed_bytes: int
