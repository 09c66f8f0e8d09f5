"""API keys: created with a role for one tenant, shown once, stored only as a hash.

A token is 32 random bytes (``sbk_`` + URL-safe base64), so a plain SHA-256 of it is as
good as a slow password hash: there is nothing to guess. The first characters are kept as
a ``prefix`` so a person can tell keys apart in a listing.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from strongbox.catalog.database import Catalog
from strongbox.catalog.models import ApiKey
from strongbox.catalog.types import utcnow
from strongbox.errors import InvalidRequest, NotFound
from strongbox.services.principal import Principal, Role

TOKEN_PREFIX = "sbk_"
TENANT_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
LAST_USED_EVERY = 60.0  # seconds between last_used_at writes for one key


@dataclass(frozen=True)
class ApiKeyInfo:
    id: str
    tenant: str
    name: str
    role: Role
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _info(row: ApiKey) -> ApiKeyInfo:
    return ApiKeyInfo(row.id, row.tenant, row.name, Role(row.role), row.prefix, row.created_at,
                      row.last_used_at, row.revoked_at)


class KeyService:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._touched: dict[str, float] = {}
        self._lock = threading.Lock()

    def create(self, tenant: str, role: Role | str, name: str = "") -> tuple[ApiKeyInfo, str]:
        """A new key; returns its description and the token (the only time it exists)."""
        if not TENANT_PATTERN.match(tenant):
            raise InvalidRequest("tenant must be 1-100 letters, digits, '.', '_' or '-'")
        try:
            role = Role(role)
        except ValueError:
            raise InvalidRequest("role must be admin, operator or viewer") from None
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        row = ApiKey(id=str(uuid.uuid4()), tenant=tenant, name=(name or f"{role}-key")[:100],
                     role=role.value, key_hash=hash_token(token), prefix=token[:12])
        with self.catalog.session() as session:
            session.add(row)
            session.flush()
            return _info(row), token

    def authenticate(self, token: str) -> Principal | None:
        """The principal a token stands for, or None if it is unknown or revoked."""
        if not token.startswith(TOKEN_PREFIX):
            return None
        with self.catalog.session() as session:
            row = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_token(token)))
            if row is None or row.revoked_at is not None:
                return None
            if self._should_touch(row.id):
                row.last_used_at = utcnow()
            return Principal(row.id, row.name, row.tenant, Role(row.role))

    def _should_touch(self, key_id: str) -> bool:
        now = time.monotonic()
        with self._lock:
            if now - self._touched.get(key_id, -LAST_USED_EVERY) < LAST_USED_EVERY:
                return False
            self._touched[key_id] = now
            return True

    def list(self, tenant: str | None = None) -> list[ApiKeyInfo]:
        query = select(ApiKey).order_by(ApiKey.created_at)
        if tenant is not None:
            query = query.where(ApiKey.tenant == tenant)
        with self.catalog.session() as session:
            return [_info(row) for row in session.scalars(query)]

    def revoke(self, key_id: str) -> ApiKeyInfo:
        with self.catalog.session() as session:
            rows = session.scalars(select(ApiKey).where(ApiKey.id.startswith(key_id))).all()
            if len(rows) != 1 or not key_id:
                raise NotFound(f"no single API key matches {key_id!r}")
            row = rows[0]
            if row.revoked_at is None:
                row.revoked_at = utcnow()
            return _info(row)

    def any_exist(self) -> bool:
        with self.catalog.session() as session:
            return session.scalar(select(ApiKey.id).limit(1)) is not None
