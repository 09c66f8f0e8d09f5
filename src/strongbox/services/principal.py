"""Who is calling: an API key's tenant and role."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    """viewer reads; operator also backs up and restores; admin also configures and deletes."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return list(Role).index(self)


@dataclass(frozen=True)
class Principal:
    key_id: str
    key_name: str
    tenant: str
    role: Role

    def allows(self, needed: Role) -> bool:
        return self.role.rank >= needed.rank
