"""``/api/v1/notifications``: webhooks and the delivery log (docs/notifications.md).

Anyone with a key of the tenant may read; creating, changing, deleting and testing a
webhook needs the admin role (a webhook sends the tenant's events somewhere else).
"""

from __future__ import annotations

from fastapi import Depends, Query

from strongbox.api.deps import api_router, get_services, require
from strongbox.api.schemas.common import Pagination
from strongbox.api.schemas.notifications import (
    DeleteWebhookResponse,
    DeliveryChannel,
    DeliveryPageResponse,
    DeliveryResponse,
    DeliveryStatus,
    WebhookCreate,
    WebhookList,
    WebhookResponse,
    WebhookUpdate,
)
from strongbox.catalog.types import utcnow
from strongbox.services.container import Services
from strongbox.services.delivery_worker import DeliveryView
from strongbox.services.notifications import WebhookSpec, WebhookView
from strongbox.services.principal import Principal, Role

router = api_router(prefix="/api/v1/notifications", tags=["notifications"])

SECRET_SHOWN_ONCE = "store the secret now: it is not shown again"


def _webhook(view: WebhookView, message: str | None = None) -> WebhookResponse:
    return WebhookResponse.model_validate({**view.__dict__, "_id": view.id, "message": message})


def _delivery(view: DeliveryView) -> DeliveryResponse:
    return DeliveryResponse.model_validate({**view.__dict__, "_id": view.id})


@router.post("/webhooks", status_code=201, response_model=WebhookResponse,
             response_model_exclude_none=True,
             summary="Add a webhook (the answer shows its secret, this once)")
def create_webhook(body: WebhookCreate, principal: Principal = Depends(require(Role.ADMIN)),
                   services: Services = Depends(get_services)) -> WebhookResponse:
    view = services.notifications.create(principal.tenant, WebhookSpec(
        name=body.name, url=body.url, secret=body.secret, enabled=body.enabled,
        events=[e.value for e in body.events] if body.events is not None else None))
    return _webhook(view, SECRET_SHOWN_ONCE)


@router.get("/webhooks", response_model=WebhookList, response_model_exclude_none=True,
            summary="List webhooks (secrets masked)")
def list_webhooks(principal: Principal = Depends(require(Role.VIEWER)),
                  services: Services = Depends(get_services)) -> WebhookList:
    items = [_webhook(v) for v in services.notifications.list(principal.tenant)]
    return WebhookList(items=items, total=len(items))


@router.get("/webhooks/{webhook_id}", response_model=WebhookResponse,
            response_model_exclude_none=True, summary="Show a webhook (secret masked)")
def get_webhook(webhook_id: str, principal: Principal = Depends(require(Role.VIEWER)),
                services: Services = Depends(get_services)) -> WebhookResponse:
    return _webhook(services.notifications.get(principal.tenant, webhook_id))


@router.patch("/webhooks/{webhook_id}", response_model=WebhookResponse,
              response_model_exclude_none=True,
              summary="Change a webhook; a new or rotated secret is shown this once")
def update_webhook(webhook_id: str, body: WebhookUpdate,
                   principal: Principal = Depends(require(Role.ADMIN)),
                   services: Services = Depends(get_services)) -> WebhookResponse:
    view = services.notifications.update(principal.tenant, webhook_id, WebhookSpec(
        name=body.name, url=body.url, secret=body.secret, enabled=body.enabled,
        rotate_secret=body.rotate_secret,
        events=[e.value for e in body.events] if body.events is not None else None))
    changed_secret = body.secret is not None or body.rotate_secret
    return _webhook(view, SECRET_SHOWN_ONCE if changed_secret else None)


@router.delete("/webhooks/{webhook_id}", response_model=DeleteWebhookResponse,
               summary="Remove a webhook (its delivery log stays)")
def delete_webhook(webhook_id: str, principal: Principal = Depends(require(Role.ADMIN)),
                   services: Services = Depends(get_services)) -> DeleteWebhookResponse:
    view = services.notifications.delete(principal.tenant, webhook_id)
    return DeleteWebhookResponse(message=f"webhook {view.name!r} removed",
                                 webhook_id=view.id, deleted_at=utcnow())


@router.post("/webhooks/{webhook_id}/test", response_model=DeliveryResponse,
             response_model_exclude_none=True,
             summary="Send a signed `ping` now, once, and show how it went")
def test_webhook(webhook_id: str, principal: Principal = Depends(require(Role.ADMIN)),
                 services: Services = Depends(get_services)) -> DeliveryResponse:
    return _delivery(services.notifications.test(principal.tenant, webhook_id))


@router.get("/deliveries", response_model=DeliveryPageResponse,
            response_model_exclude_none=True,
            summary="The delivery log, newest first: every notification and its tries")
def list_deliveries(page: int = Query(1, ge=1), size: int = Query(20, ge=1, le=100),
                    status: DeliveryStatus | None = Query(None),
                    event: str | None = Query(None, max_length=50),
                    channel: DeliveryChannel | None = Query(None),
                    webhook_id: str | None = Query(None, max_length=36),
                    principal: Principal = Depends(require(Role.VIEWER)),
                    services: Services = Depends(get_services)) -> DeliveryPageResponse:
    result = services.notifications.deliveries(
        principal.tenant, page=page, size=size, event=event, webhook_id=webhook_id,
        status=status.value if status else None, channel=channel.value if channel else None)
    return DeliveryPageResponse(items=[_delivery(d) for d in result.items],
                                pagination=Pagination.of(result.total_items,
                                                         result.total_pages, page, size))
