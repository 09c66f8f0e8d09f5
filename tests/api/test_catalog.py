"""The catalog schema: migrations create exactly the models, and time zones survive."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from strongbox.catalog.database import Catalog
from strongbox.catalog.models import ApiKey, Base


def test_migrations_match_the_models(tmp_path: Path) -> None:
    catalog = Catalog(f"sqlite:///{tmp_path / 'sub' / 'catalog.sqlite'}")
    catalog.migrate()
    catalog.migrate()  # a second start changes nothing
    with catalog.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
        assert context.get_current_revision() == "0002"
    assert set(inspect(catalog.engine).get_table_names()) == set(Base.metadata.tables) | {
        "alembic_version"}
    catalog.dispose()


def test_datetimes_come_back_in_utc(tmp_path: Path) -> None:
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    catalog.migrate()
    moment = datetime(2025, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    with catalog.session() as session:
        session.add(ApiKey(id="k", tenant="t", name="n", role="viewer", key_hash="h",
                           prefix="p", created_at=moment))
    with catalog.session() as session:
        stored = session.get_one(ApiKey, "k").created_at
    assert stored == moment and stored.tzinfo == UTC
    catalog.dispose()
