"""Dependencies every route shares: the services, the caller, its role, its rate limit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Request, Response, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from strongbox.api.ratelimit import SlidingWindowLimiter, bucket_for
from strongbox.api.schemas.common import ERROR_RESPONSES
from strongbox.services.container import Services
from strongbox.services.errors import Forbidden, RateLimitExceeded, Unauthorized
from strongbox.services.principal import Principal, Role

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False,
                              description="An API key (`strongbox keys create`).")
bearer = HTTPBearer(auto_error=False, description="The same API key as a bearer token.")


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def token_from(api_key: str | None, authorization: str | None) -> str | None:
    if api_key:
        return api_key.strip()
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return None


def authenticate(services: Services, token: str | None) -> Principal:
    if not token:
        raise Unauthorized("missing API key: send it as X-API-Key or Authorization: Bearer")
    principal = services.keys.authenticate(token)
    if principal is None:
        raise Unauthorized("invalid or revoked API key")
    return principal


def principal_from_headers(request: Request) -> Principal:
    """Authenticate a request outside the dependency system (e.g. in error handlers)."""
    principal = authenticate(get_services(request), token_from(
        request.headers.get("x-api-key"), request.headers.get("authorization")))
    request.state.principal = principal
    return principal


def current_principal(request: Request, services: Services = Depends(get_services),
                      api_key: str | None = Security(api_key_header),
                      credentials: HTTPAuthorizationCredentials | None = Security(bearer),
                      ) -> Principal:
    token = api_key.strip() if api_key else (credentials.credentials if credentials else None)
    principal = authenticate(services, token)
    request.state.principal = principal
    return principal


def require(role: Role) -> Callable[..., Principal]:
    """A dependency that lets in keys of ``role`` or stronger."""

    def dependency(principal: Principal = Depends(current_principal)) -> Principal:
        if not principal.allows(role):
            raise Forbidden(f"this needs the {role.value} role; the key is {principal.role}")
        return principal

    dependency.__name__ = f"require_{role.value}"
    return dependency


def rate_limit(request: Request, response: Response,
               principal: Principal = Depends(current_principal)) -> None:
    limiter: SlidingWindowLimiter = request.app.state.limiter
    route = request.scope.get("route")
    bucket = bucket_for(request.method, getattr(route, "path", request.url.path))
    decision = limiter.hit(principal.key_id, bucket)
    headers = {"X-RateLimit-Limit": str(decision.limit),
               "X-RateLimit-Remaining": str(decision.remaining)}
    if not decision.allowed:
        raise RateLimitExceeded(
            f"rate limit exceeded: {decision.limit} requests per window for this endpoint; "
            f"retry in {decision.retry_after} s", retry_after=decision.retry_after,
            details={"limit": decision.limit, "retry_after_seconds": decision.retry_after})
    response.headers.update(headers)


def api_router(**kwargs: Any) -> APIRouter:
    """A router whose every route needs an API key and counts against its rate limit."""
    return APIRouter(dependencies=[Depends(rate_limit)], responses=ERROR_RESPONSES, **kwargs)
