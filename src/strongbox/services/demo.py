"""First start with ``STRONGBOX_DEMO=1``: demo sources and an admin key to try things with."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from strongbox.catalog.database import Catalog
from strongbox.catalog.models import ApiKey, Source
from strongbox.demo import app_database, files
from strongbox.services.keys import ApiKeyInfo, KeyService
from strongbox.services.principal import Role
from strongbox.services.sources import SourceService, SourceSpec, SourceView


@dataclass
class DemoSetup:
    key: ApiKeyInfo
    token: str
    sources: list[SourceView]


def catalog_is_empty(catalog: Catalog) -> bool:
    with catalog.session() as session:
        return (session.scalar(select(ApiKey.id).limit(1)) is None
                and session.scalar(select(Source.id).limit(1)) is None)


def set_up_demo(catalog: Catalog, keys: KeyService, sources: SourceService, data_dir: Path,
                tenant: str = "default") -> DemoSetup | None:
    """Register the demo database and file tree and create an admin key, once: only
    when the catalog is empty (no keys, no sources)."""
    if not catalog_is_empty(catalog):
        return None
    demo_dir = (data_dir / "demo").absolute()
    demo_dir.mkdir(parents=True, exist_ok=True)
    database = demo_dir / "app.sqlite"
    if not database.exists():
        app_database.generate(database)
    tree = files.generate(demo_dir / "files")
    registered = [
        sources.create(tenant, SourceSpec(name="Demo application database", kind="sqlite",
                                          path=str(database))),
        sources.create(tenant, SourceSpec(name="Demo files", kind="files", path=str(tree))),
    ]
    key, token = keys.create(tenant, Role.ADMIN, "demo admin")
    return DemoSetup(key, token, registered)
