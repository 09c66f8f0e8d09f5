"""Request ids and the audit trail, as plain ASGI middleware."""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from strongbox.catalog.types import utcnow
from strongbox.services.audit import AuditRecord, AuditService

log = logging.getLogger(__name__)

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,36}$")


class RequestContextMiddleware:
    """Gives every request an id (``X-Request-ID``, echoed back) and records each
    mutating ``/api/`` call in the audit log once its response is sent."""

    def __init__(self, app: ASGIApp, audit: AuditService) -> None:
        self.app = app
        self.audit = audit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _REQUEST_ID.match(given) else str(uuid.uuid4())
        # The same dict backs request.state, so routes and handlers see (and add to) it.
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = request_id
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
            if scope["method"] in MUTATING and scope["path"].startswith("/api/"):
                await self._record(scope, state, status, request_id)

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
