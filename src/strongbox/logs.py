"""Log setup of the server: one line per record, as JSON or text, with request and job ids.

``STRONGBOX_LOG_FORMAT`` picks the form: ``json`` (one JSON object a line, for log
collectors), ``text`` (for people), or ``auto`` (the default): text when stderr is a
terminal, JSON otherwise, so a server started by hand is readable and one run by systemd
or a container feeds a log pipeline without extra settings.

Every record carries ``request_id`` (the ``X-Request-ID`` of the HTTP request being
served, set by :class:`strongbox.api.middleware.RequestContextMiddleware`) and ``job_id``
(the job being run) when there is one. Both live in context variables: they follow the
request into the thread pool FastAPI runs sync routes on, and a job's thread sets its own
with :func:`job_context`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import IO, Any

from pythonjsonlogger.json import JsonFormatter

request_id_var: ContextVar[str | None] = ContextVar("strongbox_request_id", default=None)
job_id_var: ContextVar[str | None] = ContextVar("strongbox_job_id", default=None)

FORMATS = ("auto", "json", "text")
TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s%(context)s: %(message)s"
_MARK = "_strongbox_handler"  # tells our handler apart from ones others installed


class ContextFilter(logging.Filter):
    """Stamps each record with the current request and job ids (None outside them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        job_id = getattr(record, "job_id", None) or job_id_var.get()
        record.request_id = request_id
        record.job_id = job_id
        parts = [f"request_id={request_id}" if request_id else "",
                 f"job_id={job_id}" if job_id else ""]
        joined = " ".join(p for p in parts if p)
        record.context = f" [{joined}]" if joined else ""
        return True


class StrongboxJsonFormatter(JsonFormatter):
    """python-json-logger's formatter with fixed field names and UTC ISO timestamps."""

    def __init__(self) -> None:
        super().__init__(["levelname", "name", "message"],
                         rename_fields={"levelname": "level", "name": "logger"},
                         timestamp=True,
                         reserved_attrs=[*_RESERVED, "context", "color_message"])

    def add_fields(self, log_record: dict[str, Any], record: logging.LogRecord,
                   message_dict: dict[str, Any]) -> None:
        super().add_fields(log_record, record, message_dict)
        # Always present (null when unknown), so a query can rely on the keys.
        log_record.setdefault("request_id", getattr(record, "request_id", None))
        log_record.setdefault("job_id", getattr(record, "job_id", None))


# The standard LogRecord attributes: everything else given as ``extra=`` becomes a field.
_RESERVED = [*vars(logging.LogRecord("", 0, "", 0, "", (), None)), "message", "asctime"]


def resolve_format(name: str, stream: IO[str] | None = None) -> str:
    """``auto`` → ``text`` on a terminal, ``json`` otherwise."""
    if name not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {name!r}")
    if name != "auto":
        return name
    stream = stream or sys.stderr
    isatty = getattr(stream, "isatty", None)
    return "text" if callable(isatty) and isatty() else "json"


def make_handler(fmt: str, stream: IO[str] | None = None) -> logging.Handler:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(ContextFilter())
    if resolve_format(fmt, stream) == "json":
        handler.setFormatter(StrongboxJsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    setattr(handler, _MARK, True)
    return handler


def configure_logging(fmt: str = "auto", level: str | int = "INFO",
                      stream: IO[str] | None = None) -> logging.Handler:
    """Send every log record (the server's, uvicorn's, libraries') through one handler on
    the root logger. Calling it again replaces the handler it installed before."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _MARK, False)]:
        root.removeHandler(old)
    handler = make_handler(fmt, stream)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        # uvicorn's own handlers (if a previous config installed them) would print twice.
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    return handler


@contextmanager
def job_context(job_id: str) -> Iterator[None]:
    """Records logged inside carry ``job_id`` (use it around a job's work)."""
    token = job_id_var.set(job_id)
    try:
        yield
    finally:
        job_id_var.reset(token)


@contextmanager
def request_context(request_id: str) -> Iterator[None]:
    token = request_id_var.set(request_id)
    try:
        yield
    finally:
        request_id_var.reset(token)
