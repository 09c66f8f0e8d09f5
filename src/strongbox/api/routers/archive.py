"""Download a backup as an archive (seed 000 1.4) and upload one (2.2)."""

from __future__ import annotations

import json
import re
import threading
from typing import Any, Literal

from fastapi import Depends, Header, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import ValidationError
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from strongbox.api.deps import api_router, get_services, require
from strongbox.api.errors import error_response, field_errors
from strongbox.api.schemas.archive import (
    FileInfo,
    UploadRestoreOptions,
    UploadRestoreResponse,
    UploadStatus,
    UploadValidation,
)
from strongbox.api.schemas.backups import BackupContents
from strongbox.api.schemas.restore import UploadStatusResponse
from strongbox.api.uploads import receive_upload
from strongbox.services.archive_format import ArchiveLimits
from strongbox.services.archives import (
    ArchiveService,
    file_slices,
    part_of,
    restore_starter_for,
)
from strongbox.services.backup_metadata import empty_contents
from strongbox.services.container import Services
from strongbox.services.errors import FieldError, ValidationFailed
from strongbox.services.principal import Principal, Role

router = api_router(tags=["archives"])
MIB = 1024 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_create_lock = threading.Lock()

UPLOAD_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {
    "schema": {"type": "object", "required": ["file"], "properties": {
        "file": {"type": "string", "format": "binary",
                 "description": "A Strongbox archive (docs/archive-format.md)"},
        "auto_restore": {"type": "boolean", "default": False},
        "restore_options": {"type": "string",
                            "description": "JSON string of RestoreOptions"},
        "passphrase": {"type": "string",
                       "description": "Extension: the passphrase of an encrypted archive"}}}}}}}
DOWNLOAD_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The archive", "content": {"application/gzip": {},
                                                    "application/zstd": {}}},
    206: {"description": "The requested byte range"},
    409: {"description": "The backup has not completed"},
    410: {"description": "The backup's data is no longer in the repository"},
    416: {"description": "The Range cannot be satisfied"},
}


def archive_service(request: Request, services: Services = Depends(get_services)
                    ) -> ArchiveService:
    """One ArchiveService per app (it holds the build locks of the download cache)."""
    with _create_lock:
        existing: ArchiveService | None = getattr(request.app.state, "archives", None)
        if existing is None:
            settings = services.settings
            restore = getattr(services, "restores", None)  # the restore service, if wired
            existing = ArchiveService(
                services.catalog, services.storage, services.backups, services.sources,
                settings.data_dir, ArchiveLimits(settings.archive_max_uncompressed_bytes,
                                                 settings.archive_max_ratio),
                restore_starter=restore_starter_for(restore) if restore is not None
                else None, jobs=services.jobs)
            request.app.state.archives = existing
        return existing


def byte_range(header: str | None, length: int) -> tuple[int, int] | Literal[False] | None:
    """(first, last) inclusive; None: serve everything; False: unsatisfiable."""
    match = _RANGE.match((header or "").strip().replace(" ", ""))
    if not match:
        return None  # absent, several ranges or not bytes: the whole body (RFC 9110)
    first, last = match.groups()
    if not first:
        if not last or int(last) == 0 or length == 0:
            return False
        return max(0, length - int(last)), length - 1
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= length:
        return False
    end = int(last) if last else length - 1
    return start, min(end, length - 1)


@router.get("/api/v1/backups/{backup_id}/download", response_class=Response,
            responses=DOWNLOAD_RESPONSES, summary="Download a backup as an archive")
def download_backup(request: Request, response: Response, backup_id: str,
                    compression: Literal["gzip", "zstd"] = Query("gzip"),
                    part: int | None = Query(None, ge=1, description="1-based part number"),
                    split_size_mb: int | None = Query(
                        None, ge=1, le=5000, description="Part size; default: the backup's "
                                                         "options.split_size_mb"),
                    passphrase: str | None = Header(
                        None, alias="X-Archive-Passphrase",
                        description="Encrypt the archive with this passphrase "
                                    "(docs/archive-format.md#encryption)"),
                    principal: Principal = Depends(require(Role.VIEWER)),
                    archives: ArchiveService = Depends(archive_service)) -> Response:
    backup, prepared = archives.prepare_download(principal.tenant, backup_id, compression)
    cleanup = None
    if passphrase is not None:
        prepared = archives.encrypted_copy(prepared, passphrase)
        cleanup = BackgroundTask(prepared.path.unlink, missing_ok=True)
    split = split_size_mb or (backup.options or {}).get("split_size_mb")
    piece = part_of(prepared.size, int(split) * MIB if split else None, part)
    filename = prepared.filename + (f".part{piece.number:03d}" if part else "")
    # A returned Response does not get the headers dependencies set (the rate limit's).
    headers = {**{k: v for k, v in response.headers.items() if k.startswith("x-ratelimit")},
               "Content-Disposition": f'attachment; filename="{filename}"',
               "X-Checksum": prepared.sha256, "X-Total-Parts": str(piece.total),
               "Accept-Ranges": "bytes"}
    length = piece.end - piece.start
    wanted = byte_range(request.headers.get("range"), length)
    if wanted is False:
        if cleanup is not None:
            prepared.path.unlink(missing_ok=True)
        return error_response(request, 416, "RANGE_NOT_SATISFIABLE",
                              f"the range is outside the {length} bytes",
                              headers={**{k: v for k, v in headers.items()
                                          if k.startswith("x-ratelimit")},
                                       "Content-Range": f"bytes */{length}"})
    status = 200
    first, last = 0, length - 1
    if wanted is not None:
        first, last = wanted
        status = 206
        headers["Content-Range"] = f"bytes {first}-{last}/{length}"
    headers["Content-Length"] = str(last - first + 1)
    return StreamingResponse(
        file_slices(prepared.path, piece.start + first, piece.start + last + 1),
        status_code=status, media_type=prepared.media_type, headers=headers,
        background=cleanup)


def _flag(fields: dict[str, str], name: str) -> bool:
    value = fields.get(name, "").strip().lower()
    if value in ("", "false", "0", "no", "off"):
        return False
    if value in ("true", "1", "yes", "on"):
        return True
    raise ValidationFailed("request validation failed", [FieldError(
        name, f"{name} must be true or false", "INVALID_TYPE", fields[name])])


def _restore_options(text: str | None) -> dict[str, Any]:
    if not text or not text.strip():
        return {}
    try:
        options = UploadRestoreOptions.model_validate(json.loads(text))
    except ValueError as exc:
        if isinstance(exc, ValidationError):
            errors = [FieldError(f"restore_options.{e.field}", e.message, e.code, e.value)
                      for e in field_errors([dict(d) for d in exc.errors()])]
        else:
            errors = [FieldError("restore_options", "restore_options must be a JSON "
                                 "object", "INVALID_JSON")]
        raise ValidationFailed("request validation failed", errors) from None
    return options.model_dump(exclude_none=True)


@router.post("/api/v1/restore/upload", status_code=202, response_model=UploadRestoreResponse,
             response_model_exclude_none=True, openapi_extra=UPLOAD_BODY,
             responses={413: {"description": "The file is too large (or a compression "
                                             "bomb)"},
                        422: {"description": "Incompatible archive version"}},
             summary="Upload a backup archive (and optionally restore it)")
async def upload_backup(request: Request,
                        upload_id: str | None = Query(
                            None, description="Extension: a UUID chosen by the client, to "
                                              "follow the upload at GET /api/v1/restore/"
                                              "upload/{upload_id} while it is sent"),
                        principal: Principal = Depends(require(Role.OPERATOR)),
                        archives: ArchiveService = Depends(archive_service),
                        services: Services = Depends(get_services)) -> UploadRestoreResponse:
    tracker = archives.uploads
    upload_id = await run_in_threadpool(tracker.begin, principal, upload_id)
    try:
        with archives.upload_area() as area:
            upload, fields = await receive_upload(
                request, area, services.settings.upload_max_bytes,
                on_progress=lambda n: tracker.received(upload_id, n))
            auto_restore = _flag(fields, "auto_restore")
            options = _restore_options(fields.get("restore_options"))
            await run_in_threadpool(tracker.validating, upload_id, upload)
            outcome = await run_in_threadpool(
                archives.register_upload, principal, upload, auto_restore=auto_restore,
                restore_options=options, passphrase=fields.get("passphrase") or None,
                max_bytes=services.settings.upload_max_bytes, upload_id=upload_id)
    except BaseException as exc:
        await run_in_threadpool(tracker.failed, upload_id, exc)
        raise
    await run_in_threadpool(tracker.finished, upload_id, upload, outcome)
    info, backup = outcome.info, outcome.backup
    return UploadRestoreResponse(
        upload_id=outcome.upload_id, backup_id=backup.id,
        status=UploadStatus.RESTORING if outcome.restore_job_id else UploadStatus.READY,
        file_info=FileInfo(filename=upload.filename, size_bytes=upload.size_bytes,
                           mime_type=upload.mime_type, checksum=upload.sha256),
        validation=UploadValidation(
            format_valid=True, version=info.version,
            compatibility=info.compatibility,  # type: ignore[arg-type]
            contents_summary=BackupContents.model_validate(backup.contents
                                                           or empty_contents()),
            errors=[], warnings=outcome.warnings),
        restore_job_id=outcome.restore_job_id)


@router.get("/api/v1/restore/upload/{upload_id}", response_model=UploadStatusResponse,
            response_model_exclude_none=True,
            responses={404: {"description": "UPLOAD_NOT_FOUND"}},
            summary="Follow an upload: uploading, validating, ready, restoring or failed")
def upload_status(upload_id: str, principal: Principal = Depends(require(Role.VIEWER)),
                  archives: ArchiveService = Depends(archive_service)) -> UploadStatusResponse:
    state = archives.uploads.get(principal.tenant, upload_id)
    return UploadStatusResponse.model_validate(vars(state))

