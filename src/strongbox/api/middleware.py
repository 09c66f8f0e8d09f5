"""Request ids, the access log, HTTP metrics and the audit trail, as plain ASGI middleware."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from strongbox.catalog.types import utcnow
from strongbox.logs import request_id_var
from strongbox.services.audit import AuditRecord, AuditService

log = logging.getLogger(__name__)
access = logging.getLogger("strongbox.access")

# Told (method, route template, status code, seconds) after each request: /metrics.
RequestObserver = Callable[[str, str, int, float], None]

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,36}$")


class RequestContextMiddleware:
    """Gives every request an id (``X-Request-ID``, echoed back) and records each
    mutating ``/api/`` call in the audit log once its response is sent. The request id is
    also put in :data:`strongbox.logs.request_id_var`, so every log record written while
    the request is served carries it."""

    def __init__(self, app: ASGIApp, audit: AuditService,
                 observer: RequestObserver | None = None, access_log: bool = True) -> None:
        self.app = app
        self.audit = audit
        self.observer = observer
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _REQUEST_ID.match(given) else str(uuid.uuid4())
        # The same dict backs request.state, so routes and handlers see (and add to) it.
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = request_id
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"],
                                      (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self._observe(scope, status, time.perf_counter() - started)
            if scope["method"] in MUTATING and scope["path"].startswith("/api/"):
                await self._record(scope, state, status, request_id)
            request_id_var.reset(token)

    def _observe(self, scope: Scope, status: int, seconds: float) -> None:
        # The route template, not the path: ids in paths would make endless label values.
        route = getattr(scope.get("route"), "path", None) or "<unmatched>"
        if self.observer is not None:
            try:
                self.observer(scope["method"], route, status, seconds)
            except Exception:  # metrics must never break a response
                log.exception("could not record the request metrics")
        if self.access_log:
            access.info("%s %s %d %.1f ms", scope["method"], scope["path"], status,
                        seconds * 1000, extra={"method": scope["method"], "path": scope["path"],
                                               "route": route, "status_code": status,
                                               "duration_ms": round(seconds * 1000, 2)})

    async def _record(self, scope: Scope, state: dict[str, Any], status: int,
                      request_id: str) -> None:
        principal = state.get("principal")
        route = scope.get("route")
        client = scope.get("client")
        entry = AuditRecord(
            at=utcnow(), method=scope["method"], path=scope["path"], status_code=status,
            tenant=getattr(principal, "tenant", None), key_id=getattr(principal, "key_id", None),
            key_name=getattr(principal, "key_name", None),
            role=str(principal.role) if principal is not None else None,
            action=getattr(route, "name", None), request_id=request_id,
            client=client[0] if client else None)
        try:
            await anyio.to_thread.run_sync(self.audit.record, entry)
        except Exception:  # the response is sent; a lost audit line must be loud, not fatal
            log.exception("could not write the audit log entry for %s %s",
                          scope["method"], scope["path"])
