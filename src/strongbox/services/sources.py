"""Sources: what a tenant protects (a SQLite database, a file tree, a PostgreSQL database)."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from strongbox.catalog.database import Catalog
from strongbox.catalog.models import Backup, Schedule, Source
from strongbox.catalog.types import utcnow
from strongbox.services.errors import (
    BackupInProgress,
    FieldError,
    SourceNotFound,
    ValidationFailed,
)
from strongbox.services.secret_box import SecretBox

KINDS = ("sqlite", "files", "postgres")
MASK = "********"
_KV_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def mask_dsn(dsn: str) -> str:
    """The DSN with its password replaced by ``********`` (URL or key=value form)."""
    if "://" in dsn:
        parts = urlsplit(dsn)
        if parts.password is not None:
            user = parts.username or ""
            host = parts.hostname or ""
            if parts.port is not None:
                host = f"{host}:{parts.port}"
            netloc = f"{user}:{MASK}@{host}"
            dsn = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
        return re.sub(r"(password=)[^&]*", rf"\g<1>{MASK}", dsn, flags=re.IGNORECASE)
    return _KV_PASSWORD.sub(rf"\g<1>{MASK}", dsn)


@dataclass(frozen=True)
class SourceView:
    id: str
    tenant: str
    name: str
    kind: str
    config: dict[str, Any]
    created_at: datetime
    updated_at: datetime

    def public_config(self) -> dict[str, Any]:
        """The configuration as the API shows it: secrets masked."""
        config = dict(self.config)
        if "dsn" in config:
            config["dsn"] = mask_dsn(config["dsn"])
        return config


@dataclass
class SourceSpec:
    """What a caller gives to create or change a source; None means "not given"."""

    name: str | None = None
    kind: str | None = None
    path: str | None = None
    include_patterns: list[str] | None = None
    exclude_patterns: list[str] | None = None
    dsn: str | None = None
    schema: str | None = None
    row_streams: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)


SEALED_FIELDS = ("dsn",)  # the catalog keeps these sealed (services/secret_box.py)


def _config(kind: str, spec: SourceSpec, base: dict[str, Any]) -> dict[str, Any]:
    """Merge ``spec`` over ``base`` and check the result for ``kind``."""
    config = dict(base)
    errors: list[FieldError] = []
    if kind in ("sqlite", "files"):
        if spec.path is not None:
            config["path"] = str(Path(spec.path).expanduser().absolute())
        path = config.get("path")
        if not path:
            errors.append(FieldError("path", f"a {kind} source needs a path", "REQUIRED"))
        elif kind == "sqlite" and not Path(path).is_file():
            errors.append(FieldError("path", "no such database file", "NOT_FOUND", path))
        elif kind == "files" and not Path(path).exists():
            errors.append(FieldError("path", "no such file or folder", "NOT_FOUND", path))
    if kind == "sqlite" and spec.row_streams is not None:
        config["row_streams"] = spec.row_streams
    if kind == "files":
        for name in ("include_patterns", "exclude_patterns"):
            value = getattr(spec, name)
            if value is not None:
                config[name] = list(value)
            config.setdefault(name, [])
    if kind == "postgres":
        if spec.dsn is not None:
            config["dsn"] = spec.dsn
        if spec.schema is not None:
            config["schema"] = spec.schema
        config.setdefault("schema", "public")
        if not config.get("dsn"):
            errors.append(FieldError("dsn", "a postgres source needs a dsn", "REQUIRED"))
    for name in ("path", "include_patterns", "exclude_patterns", "dsn", "schema",
                 "row_streams"):
        if getattr(spec, name) is not None and name not in config:
            errors.append(FieldError(name, f"{name} does not apply to a {kind} source",
                                     "NOT_APPLICABLE"))
    if errors:
        raise ValidationFailed("the source is not valid", errors)
    return config


class SourceService:
    def __init__(self, catalog: Catalog, secrets: SecretBox) -> None:
        self.catalog = catalog
        self.secrets = secrets

    def _view(self, row: Source) -> SourceView:
        config = dict(row.config)
        for name in SEALED_FIELDS:
            if isinstance(config.get(name), str):
                config[name] = self.secrets.open(config[name])
        return SourceView(row.id, row.tenant, row.name, row.kind, config, row.created_at,
                          row.updated_at)

    def _sealed(self, config: dict[str, Any]) -> dict[str, Any]:
        sealed = dict(config)
        for name in SEALED_FIELDS:
            if isinstance(sealed.get(name), str):
                sealed[name] = self.secrets.seal(sealed[name])
        return sealed

    def create(self, tenant: str, spec: SourceSpec) -> SourceView:
        errors = []
        if not spec.name or not spec.name.strip():
            errors.append(FieldError("name", "a source needs a name", "REQUIRED"))
        if spec.kind not in KINDS:
            errors.append(FieldError("kind", "kind must be sqlite, files or postgres",
                                     "INVALID_VALUE", spec.kind))
        if errors:
            raise ValidationFailed("the source is not valid", errors)
        assert spec.name is not None and spec.kind is not None
        row = Source(id=str(uuid.uuid4()), tenant=tenant, name=spec.name.strip(), kind=spec.kind,
                     config=self._sealed(_config(spec.kind, spec, {})))
        return self._save(row, add=True)

    def _save(self, row: Source, *, add: bool) -> SourceView:
        try:
            with self.catalog.session() as session:
                if add:
                    session.add(row)
                else:
                    row = session.merge(row)
                session.flush()
                return self._view(row)
        except IntegrityError:
            raise ValidationFailed("the source is not valid", [FieldError(
                "name", "this tenant already has a source of that name", "DUPLICATE",
                row.name)]) from None

    def list(self, tenant: str) -> list[SourceView]:
        with self.catalog.session() as session:
            rows = session.scalars(select(Source).where(Source.tenant == tenant)
                                   .order_by(Source.created_at, Source.name))
            return [self._view(row) for row in rows]

    def get(self, tenant: str, source_id: str) -> SourceView:
        with self.catalog.session() as session:
            row = session.get(Source, source_id)
            if row is None or row.tenant != tenant:
                raise SourceNotFound(f"source {source_id} not found")
            return self._view(row)

    def default(self, tenant: str, kind: str = "sqlite") -> SourceView | None:
        """The tenant's first source of ``kind`` (the seed-000 backup target by default)."""
        return next((s for s in self.list(tenant) if s.kind == kind), None)

    def update(self, tenant: str, source_id: str, spec: SourceSpec) -> SourceView:
        current = self.get(tenant, source_id)
        if spec.kind is not None and spec.kind != current.kind:
            raise ValidationFailed("the source is not valid", [FieldError(
                "kind", "a source's kind cannot change", "IMMUTABLE", spec.kind)])
        name = current.name
        if spec.name is not None:
            if not spec.name.strip():
                raise ValidationFailed("the source is not valid",
                                       [FieldError("name", "the name is empty", "REQUIRED")])
            name = spec.name.strip()
        row = Source(id=current.id, tenant=tenant, name=name, kind=current.kind,
                     config=self._sealed(_config(current.kind, spec, current.config)),
                     created_at=current.created_at, updated_at=utcnow())
        return self._save(row, add=False)

    def delete(self, tenant: str, source_id: str) -> SourceView:
        with self.catalog.session() as session:
            row = session.get(Source, source_id)
            if row is None or row.tenant != tenant:
                raise SourceNotFound(f"source {source_id} not found")
            running = session.scalar(select(Backup.id).where(
                Backup.source_id == source_id, Backup.status.in_(("pending", "in_progress"))))
            if running is not None:
                raise BackupInProgress(f"backup {running} of this source is still running")
            view = self._view(row)
            session.delete(row)
            # The source's backup policy (services/policies.py) goes with it; schedules a
            # user made by hand stay, and show their failed runs.
            for schedule in session.scalars(select(Schedule).where(
                    Schedule.tenant == tenant, Schedule.origin == "policy")):
                if list(schedule.source_ids or []) == [source_id]:
                    session.delete(schedule)
            return view
