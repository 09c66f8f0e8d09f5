"""``GET /metrics``: Prometheus text exposition (docs/monitoring.md).

Not part of REST API v1, so it is left out of the OpenAPI schema: it answers Prometheus'
text format rather than JSON, lives outside ``/api/v1``, is not rate-limited (a scraper
polls it on a fixed interval), and with ``STRONGBOX_METRICS_PUBLIC=true`` it needs no key
at all, which the schema-wide checks of every API route (401 without a key) must not see.

With a key (``Authorization: Bearer <key>`` works in a Prometheus scrape config, or
``X-API-Key``), any role may read it and the catalog series cover the key's tenant only;
public, they cover every tenant.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from strongbox.api.deps import get_services, principal_from_headers
from strongbox.api.metrics import HttpMetrics, exposition
from strongbox.services.container import Services

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request, services: Services = Depends(get_services)) -> Response:
    tenant = None
    if not services.settings.metrics_public:
        tenant = principal_from_headers(request).tenant  # 401 without a valid key
    http: HttpMetrics = request.app.state.http_metrics
    return Response(exposition(http, services.status, tenant),
                    media_type=CONTENT_TYPE_LATEST)
