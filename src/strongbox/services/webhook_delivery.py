"""Webhook requests: the exact body, its HMAC-SHA256 signature, one POST, its outcome.

A receiver verifies a delivery by computing ``HMAC-SHA256(secret, raw request body)`` and
comparing ``"sha256=" + hexdigest`` with the ``X-Strongbox-Signature`` header in constant
time (docs/notifications.md has the snippet). The signature covers the body bytes exactly
as sent, so the body is serialised once, signed, and those same bytes are posted.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime
from typing import Any

import httpx

from strongbox import __version__
from strongbox.services.delivery_attempt import Outcome

EVENT_HEADER = "X-Strongbox-Event"
DELIVERY_HEADER = "X-Strongbox-Delivery"
TIMESTAMP_HEADER = "X-Strongbox-Timestamp"
SIGNATURE_HEADER = "X-Strongbox-Signature"
# Answers worth another try: the receiver is overloaded or briefly broken.
RETRYABLE_STATUS = frozenset({408, 425, 429})


def body_bytes(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def sign(secret: str, body: bytes) -> str:
    """The ``X-Strongbox-Signature`` value of ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_matches(secret: str, body: bytes, header: str | None) -> bool:
    return header is not None and hmac.compare_digest(sign(secret, body), header)


def headers_for(event: str, delivery_id: str, body: bytes, secret: str | None,
                moment: datetime) -> dict[str, str]:
    headers = {"Content-Type": "application/json", EVENT_HEADER: event,
               DELIVERY_HEADER: delivery_id, TIMESTAMP_HEADER: str(int(moment.timestamp()))}
    if secret:
        headers[SIGNATURE_HEADER] = sign(secret, body)
    return headers


class WebhookSender:
    """POSTs deliveries; safe to share between threads (one httpx connection pool)."""

    def __init__(self, timeout: float, transport: httpx.BaseTransport | None = None) -> None:
        # Redirects are not followed: the signed body goes only where the admin said.
        self._client = httpx.Client(timeout=timeout, follow_redirects=False,
                                    transport=transport,
                                    headers={"User-Agent": f"Strongbox-Webhooks/{__version__}"})

    def send(self, url: str, event: str, delivery_id: str, payload: dict[str, Any],
             secret: str | None, moment: datetime) -> Outcome:
        body = body_bytes(payload)
        try:
            response = self._client.post(url, content=body,
                                         headers=headers_for(event, delivery_id, body, secret,
                                                             moment))
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:  # no try will do better
            return Outcome.permanent(f"{type(exc).__name__}: {exc}")
        except httpx.TransportError as exc:
            return Outcome.transient(f"{type(exc).__name__}: {exc}" if str(exc)
                                     else type(exc).__name__)
        except httpx.HTTPError as exc:
            return Outcome.permanent(f"{type(exc).__name__}: {exc}")
        code = response.status_code
        if 200 <= code < 300:
            return Outcome.ok(code)
        error = f"HTTP {code}: {response.text[:200]}".rstrip(": ")
        if code >= 500 or code in RETRYABLE_STATUS:
            return Outcome.transient(error, code)
        return Outcome.permanent(error, code)

    def close(self) -> None:
        self._client.close()
