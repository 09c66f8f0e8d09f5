"""Receive a multipart upload straight into a private directory, with a size limit.

Starlette's form parser spools files to the system temporary directory and only hands
them over once the whole body has arrived; this parser writes the ``file`` part to the
upload area as it streams in and stops at the limit (413) without reading further.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from strongbox.errors import InvalidRequest
from strongbox.services.archives import FileTooLarge, ReceivedUpload
from strongbox.services.errors import FieldError, ValidationFailed

MAX_FIELD_BYTES = 64 * 1024
FORM_OVERHEAD = 64 * 1024  # multipart framing and small fields around the file
REPORT_INTERVAL = 0.5  # seconds between reports of the bytes received


class _Parts:
    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.fields: dict[str, str] = {}
        self.file: ReceivedUpload | None = None
        self._headers: dict[str, str] = {}
        self._header_field = b""
        self._header_value = b""
        self._name = ""
        self._buffer = bytearray()
        self._fd: int | None = None
        self._size = 0
        self._digest = hashlib.sha256()

    def callbacks(self) -> dict[str, Any]:
        return {"on_part_begin": self.part_begin, "on_header_field": self.header_field,
                "on_header_value": self.header_value, "on_header_end": self.header_end,
                "on_headers_finished": self.headers_finished, "on_part_data": self.part_data,
                "on_part_end": self.part_end}

    def part_begin(self) -> None:
        self._headers, self._buffer, self._name = {}, bytearray(), ""

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def header_end(self) -> None:
        self._headers[self._header_field.decode("latin-1").lower()] = \
            self._header_value.decode("latin-1")
        self._header_field = self._header_value = b""

    def headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get("content-disposition", ""))
        self._name = params.get(b"name", b"").decode("utf-8", "replace")
        if self._name == "file":
            if self.file is not None or self._fd is not None:
                raise InvalidRequest("send one file")
            filename = params.get(b"filename", b"upload").decode("utf-8", "replace")
            path = self.directory / "upload.bin"
            # O_EXCL | O_NOFOLLOW: never through a link planted in the area.
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                               0o600)
            self.file = ReceivedUpload(
                path, os.path.basename(filename.replace("\\", "/"))[:255] or "upload",
                self._headers.get("content-type", "application/octet-stream"), 0, "")

    def part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self._fd is not None:
            self._size += len(chunk)
            if self._size > self.max_bytes:
                raise FileTooLarge(f"the upload exceeds the limit of {self.max_bytes} bytes",
                                   details={"limit_bytes": self.max_bytes})
            self._digest.update(chunk)
            os.write(self._fd, chunk)
        else:
            self._buffer += chunk
            if len(self._buffer) > MAX_FIELD_BYTES:
                raise InvalidRequest(f"form field {self._name!r} is too long")

    def part_end(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            assert self.file is not None
            self.file.size_bytes = self._size
            self.file.sha256 = self._digest.hexdigest()
        elif self._name:
            self.fields[self._name] = self._buffer.decode("utf-8", "replace")

    @property
    def received(self) -> int:
        """Bytes of the file part received so far."""
        return self._size

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


async def receive_upload(request: Request, directory: Path, max_bytes: int, *,
                         on_progress: Callable[[int], None] | None = None,
                         report_interval: float = REPORT_INTERVAL
                         ) -> tuple[ReceivedUpload, dict[str, str]]:
    """The ``file`` part written to ``directory``, and the other form fields.
    ``on_progress`` (run off the event loop) hears the bytes of the file received so far,
    at most every ``report_interval`` seconds."""
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise ValidationFailed("send multipart/form-data", [FieldError(
            "file", "the backup file is required (multipart/form-data)", "REQUIRED")])
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes + FORM_OVERHEAD:
        raise FileTooLarge(f"the upload exceeds the limit of {max_bytes} bytes",
                           details={"limit_bytes": max_bytes})
    parts = _Parts(directory, max_bytes)
    parser = MultipartParser(boundary, parts.callbacks())  # type: ignore[arg-type]
    reported, last = 0, time.monotonic()
    try:
        async for chunk in request.stream():
            parser.write(chunk)
            now = time.monotonic()
            if on_progress is not None and parts.received != reported and (
                    now - last >= report_interval or reported == 0):
                reported, last = parts.received, now
                await run_in_threadpool(on_progress, reported)
        parser.finalize()
    except MultipartParseError as exc:
        raise InvalidRequest(f"malformed multipart body: {exc}") from None
    finally:
        parts.close()
    if parts.file is None or parts.file.sha256 == "":
        raise ValidationFailed("the backup file is missing", [FieldError(
            "file", "the backup file is required", "REQUIRED")])
    return parts.file, parts.fields
