"""The one mapping from errors to the seed 000 error envelope (section 5).

Strongbox errors carry their own ``code`` and ``http_status``; request validation
(pydantic's 422) becomes 400 with ``validation_errors``; unknown routes and methods, and
anything unexpected, get the same envelope.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import HTTPConnection

from strongbox.api.schemas.common import BackupType
from strongbox.catalog.types import utcnow
from strongbox.errors import StrongboxError
from strongbox.services.errors import FieldError, RateLimitExceeded, ValidationFailed

log = logging.getLogger(__name__)

# pydantic error types → seed-style validation error codes
_CODES = {
    "missing": "REQUIRED",
    "string_too_short": "TOO_SHORT",
    "string_too_long": "TOO_LONG",
    "too_short": "TOO_SHORT",
    "too_long": "TOO_LONG",
    "string_pattern_mismatch": "INVALID_FORMAT",
    "greater_than": "OUT_OF_RANGE",
    "greater_than_equal": "OUT_OF_RANGE",
    "less_than": "OUT_OF_RANGE",
    "less_than_equal": "OUT_OF_RANGE",
    "enum": "INVALID_VALUE",
    "literal_error": "INVALID_VALUE",
    "invalid_cron": "INVALID_CRON",
}
_HTTP_CODES = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "FILE_TOO_LARGE"}


def error_body(request: HTTPConnection, code: str, message: str, *, details: Any = None,
               validation_errors: Sequence[FieldError] = ()) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message,
                             "timestamp": utcnow().isoformat().replace("+00:00", "Z"),
                             "path": request.url.path}
    if details is not None:
        error["details"] = details
    request_id = request.scope.get("state", {}).get("request_id")
    if request_id:
        error["request_id"] = request_id
    body: dict[str, Any] = {"error": error}
    if validation_errors:
        body["validation_errors"] = [e.to_dict() for e in validation_errors]
    encoded: dict[str, Any] = jsonable_encoder(body, custom_encoder={bytes: lambda b: b.hex()})
    return encoded


def error_response(request: Request, status: int, code: str, message: str, *,
                   details: Any = None, validation_errors: Sequence[FieldError] = (),
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(request, code, message, details=details,
                                   validation_errors=validation_errors),
                        status_code=status, headers=headers)


def _field(loc: Sequence[Any]) -> str:
    parts = list(loc[1:]) if loc and loc[0] in ("body", "query", "path", "header") else list(loc)
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "body"


def field_errors(errors: Sequence[dict[str, Any]]) -> list[FieldError]:
    result = []
    for err in errors:
        kind = str(err.get("type", ""))
        code = _CODES.get(kind) or ("INVALID_TYPE" if kind.endswith(("_type", "_parsing"))
                                    else kind.upper() or "INVALID")
        if kind == "json_invalid":  # its loc is a character position, its input empty
            result.append(FieldError("body", str(err.get("msg", "")), "INVALID_JSON"))
            continue
        value = None if kind == "missing" else err.get("input")
        result.append(FieldError(_field(err.get("loc", ())), str(err.get("msg", "")), code,
                                 value))
    return result


def validation_response(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = list(exc.errors())
    items = field_errors(errors)
    whole_body = [e for e in errors if tuple(e.get("loc", ()))[:1] == ("body",)
                  and (len(e.get("loc", ())) == 1 or e.get("type") == "json_invalid")]
    if whole_body:
        return error_response(request, 400, "INVALID_REQUEST",
                              "the request body is malformed: send one JSON object",
                              validation_errors=items)
    if any(e.get("type") == "enum" and tuple(e.get("loc", ()))[-1:] == ("type",)
           for e in errors):
        return error_response(request, 400, "INVALID_BACKUP_TYPE",
                              "invalid backup type: use one of "
                              + ", ".join(repr(t.value) for t in BackupType),
                              validation_errors=items)
    return error_response(request, 400, "VALIDATION_FAILED", "request validation failed",
                          validation_errors=items)


def strongbox_response(request: Request, exc: StrongboxError) -> JSONResponse:
    headers = None
    if isinstance(exc, RateLimitExceeded):
        headers = {"Retry-After": str(exc.retry_after)}
    errors = exc.errors if isinstance(exc, ValidationFailed) else ()
    if exc.http_status >= 500:
        log.error("%s: %s", exc.code, exc.message)
    return error_response(request, exc.http_status, exc.code, exc.message,
                          details=exc.details, validation_errors=errors, headers=headers)


def install_error_handlers(app: FastAPI,
                           authenticate: Callable[[Request], object] | None = None) -> None:
    """``authenticate`` runs before a validation error is reported when the route's own
    dependencies did not (FastAPI decodes JSON before it solves them), so a caller
    without a valid key gets 401, never a hint about the body."""

    async def on_strongbox(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StrongboxError)
        return strongbox_response(request, exc)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        if authenticate is not None and "principal" not in request.scope.get("state", {}):
            try:
                authenticate(request)
            except StrongboxError as auth_error:
                return strongbox_response(request, auth_error)
        return validation_response(request, exc)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = _HTTP_CODES.get(exc.status_code, "INVALID_REQUEST" if exc.status_code < 500
                               else "INTERNAL_ERROR")
        return error_response(request, exc.status_code, code, str(exc.detail),
                              headers=getattr(exc, "headers", None))

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(request, 500, "INTERNAL_ERROR", "internal server error")

    app.add_exception_handler(StrongboxError, on_strongbox)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)
