"""The FastAPI application: ``create_app(settings)``."""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from strongbox import __version__
from strongbox.api.deps import principal_from_headers
from strongbox.api.errors import install_error_handlers
from strongbox.api.metrics import HttpMetrics
from strongbox.api.middleware import RequestContextMiddleware
from strongbox.api.ratelimit import SlidingWindowLimiter
from strongbox.api.routers import archive as archive_routes
from strongbox.api.routers import audit as audit_routes
from strongbox.api.routers import backups as backup_routes
from strongbox.api.routers import cleanup as cleanup_routes
from strongbox.api.routers import jobs as job_routes
from strongbox.api.routers import metrics as metrics_routes
from strongbox.api.routers import notifications as notification_routes
from strongbox.api.routers import policies as policy_routes
from strongbox.api.routers import recovery as recovery_routes
from strongbox.api.routers import restore as restore_routes
from strongbox.api.routers import schedules as schedule_routes
from strongbox.api.routers import settings as settings_routes
from strongbox.api.routers import snapshots as snapshot_routes
from strongbox.api.routers import sources as source_routes
from strongbox.api.routers import statistics as statistics_routes
from strongbox.api.routers import status as status_routes
from strongbox.api.routers import verification as verification_routes
from strongbox.api.routers import ws as ws_routes
from strongbox.services.container import Services, StartReport, build_services
from strongbox.settings import Settings

log = logging.getLogger(__name__)

DESCRIPTION = """Backups, jobs, sources, settings and statistics of a Strongbox server.

Every call needs an API key, as `X-API-Key: <key>` or `Authorization: Bearer <key>`
(create one with `strongbox keys create --role admin --tenant T`). Errors use one
envelope: `{"error": {code, message, details, timestamp, path, request_id},
"validation_errors": [...]}`. See docs/api.md for roles, limits and the job model.
"""


def announce(report: StartReport, out: Any = None) -> None:
    """Tell the person starting the server what they need: the demo key, shown once."""
    out = out or sys.stdout
    if report.demo is not None:
        out.write(
            "\n  Strongbox demo: sources registered for tenant "
            f"{report.demo.key.tenant!r}: "
            + ", ".join(s.name for s in report.demo.sources)
            + "\n  Admin API key (shown once; keep it):\n\n"
            f"    {report.demo.token}\n\n")
        out.flush()
    elif not report.has_keys:
        out.write("\n  No API keys yet: create one with\n"
                  "    strongbox keys create --role admin --tenant default\n\n")
        out.flush()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    services = build_services(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        report = await run_in_threadpool(services.start)
        app.state.start_report = report
        announce(report)
        yield
        await run_in_threadpool(services.stop)

    app = FastAPI(title="Strongbox API", version=__version__, description=DESCRIPTION,
                  lifespan=lifespan, docs_url="/docs", openapi_url="/openapi.json")
    app.state.services = services
    app.state.limiter = SlidingWindowLimiter(settings.rate_limits(),
                                             enabled=settings.rate_limits_enabled)
    install_error_handlers(app, authenticate=principal_from_headers)
    app.state.http_metrics = HttpMetrics()
    app.add_middleware(RequestContextMiddleware, audit=services.audit,
                       observer=app.state.http_metrics.observe, access_log=settings.access_log)
    for module in (backup_routes, restore_routes, source_routes, settings_routes, audit_routes,
                   ws_routes, archive_routes, verification_routes, status_routes,
                   statistics_routes, snapshot_routes, metrics_routes, recovery_routes,
                   cleanup_routes, notification_routes, schedule_routes, policy_routes,
                   job_routes):
        app.include_router(module.router)
    _document_400_not_422(app)
    return app


def app_services(app: FastAPI) -> Services:
    services: Services = app.state.services
    return services


def _document_400_not_422(app: FastAPI) -> None:
    """FastAPI documents its 422 on every route; this API answers 400 instead."""
    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = default_openapi()
            for path in schema.get("paths", {}).values():
                for operation in path.values():
                    if isinstance(operation, dict):
                        operation.get("responses", {}).pop("422", None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
