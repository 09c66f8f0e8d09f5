"""Sources: what a tenant protects (extension to seed 000)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from strongbox.api.schemas.common import ApiModel


class SourceKind(StrEnum):
    SQLITE = "sqlite"
    FILES = "files"
    POSTGRES = "postgres"


class SourceCreate(ApiModel):
    name: str = Field(min_length=1, max_length=100)
    kind: SourceKind
    path: str | None = Field(None, description="sqlite: the database file; files: the tree")
    include_patterns: list[str] | None = Field(None, description="files: globs to include")
    exclude_patterns: list[str] | None = Field(None, description="files: globs to exclude")
    dsn: str | None = Field(None, description="postgres: connection string (write-only "
                                              "password: it is never returned)")
    schema_name: str | None = Field(None, max_length=63, description="postgres: schema "
                                                                     "(default public)")
    row_streams: bool | None = Field(
        None, description="sqlite: full backups also store every table as a row stream next "
                          "to the page copy (default false: rows are read from the page "
                          "copy; streams cost most of a backup's time and about double its "
                          "bytes)")


class SourceUpdate(ApiModel):
    name: str | None = Field(None, min_length=1, max_length=100)
    path: str | None = None
    include_patterns: list[str] | None = None
    exclude_patterns: list[str] | None = None
    dsn: str | None = None
    schema_name: str | None = Field(None, max_length=63)
    row_streams: bool | None = None


class SourceResponse(ApiModel):
    id: str = Field(alias="_id")
    name: str
    kind: SourceKind
    path: str | None = None
    include_patterns: list[str] | None = None
    exclude_patterns: list[str] | None = None
    dsn: str | None = Field(None, description="with the password masked")
    schema_name: str | None = None
    row_streams: bool | None = None
    created_at: datetime
    updated_at: datetime


class SourceList(ApiModel):
    items: list[SourceResponse]
    total: int


class DeleteSourceResponse(ApiModel):
    message: str
    source_id: str
    deleted_at: datetime
